"""Leak tests: generated valid PII and secrets in many templates and positions; no raw value may survive."""

from __future__ import annotations

import base64
import json
import random
import string

import phonenumbers
import pytest

from presidio_logshield.config import RedactionConfig
from presidio_logshield.redactor import Redactor

FIRST = ["James", "Mary", "Robert", "Patricia", "Michael", "Jennifer", "William", "Linda", "David", "Elizabeth",
         "Richard", "Barbara", "Joseph", "Susan", "Thomas", "Jessica", "Charles", "Sarah", "Daniel", "Karen",
         "Matthew", "Nancy", "Anthony", "Lisa", "Mark", "Betty", "Steven", "Sandra", "Andrew", "Ashley",
         "Olivia", "Liam", "Emma", "Noah", "Sophia", "Lucas", "Mia", "Ethan", "Amelia", "Oliver", "Priya",
         "Rahul", "Mohammed", "Fatima", "Wei", "Yuki", "Hans", "Ingrid", "Pierre", "Camille"]
LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
        "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Taylor", "Moore", "Jackson", "Martin", "Lee",
        "Thompson", "White", "Harris", "Clark", "Lewis", "Robinson", "Walker", "Young", "Allen", "King",
        "Wright", "Scott", "Green", "Baker", "Adams", "Nelson", "Carter", "Mitchell", "Roberts", "Turner",
        "Patel", "Sharma", "Khan", "Nguyen", "Chen", "Tanaka", "Schmidt", "Larsen", "Dubois", "Moreau"]
#: Names with letters outside ASCII (Latin scripts with accents, stroke, ring, cedilla); only in the name sentences.
NON_ASCII_FIRST = ["José", "Zoë", "Łukasz", "Søren", "François", "Jürgen", "Björn", "Renée", "Chloé", "Ángel",
                   "Mónica", "Sébastien", "Ines", "Małgorzata", "Øystein", "Çağla", "Dvořák", "Élodie", "Håkan", "Núria"]
NON_ASCII_LAST = ["García", "Müller", "Nowak", "Kierkegaard", "Dupont", "Gómez", "Šimić", "Wójcik", "Pérez", "Jiménez",
                  "Höfler", "Çelik", "Özdemir", "Lindqvist", "Sørensen", "Fernández", "Kovačević", "Brontë", "Lefèvre",
                  "Ångström"]
CITIES = ["London", "Paris", "Berlin", "Madrid", "Chicago", "Boston", "Seattle", "Toronto", "Sydney", "Mumbai"]


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return body + str((10 - total % 10) % 10)


def credit_card(rng: random.Random) -> str:
    prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15),
                                 ("6011", 16), ("4", 13)])
    number = luhn_complete(prefix, length, rng)
    style = rng.choice(["plain", "space", "dash"])
    if style == "plain" or length != 16:
        return number
    sep = " " if style == "space" else "-"
    return sep.join(number[i:i + 4] for i in range(0, 16, 4))


def ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _iban_check(country: str, bban: str) -> str:
    rearranged = bban + country + "00"
    number = int("".join(str(int(c, 36)) for c in rearranged))
    return f"{98 - number % 97:02d}"


def iban(rng: random.Random) -> str:
    value = _iban(rng)
    if rng.random() < 0.2 and value.replace(" ", "")[4:].isdigit():
        value = value.lower()  # lower-case IBANs are found too (digits after the country code, or the word iban)
    return value


def _iban(rng: random.Random) -> str:
    country, bban = rng.choice([
        ("DE", "".join(rng.choice(string.digits) for _ in range(18))),
        ("GB", "NWBK" + "".join(rng.choice(string.digits) for _ in range(14))),
        ("FR", "".join(rng.choice(string.digits) for _ in range(23))),
        ("NL", "ABNA" + "".join(rng.choice(string.digits) for _ in range(10))),
    ])
    value = country + _iban_check(country, bban) + bban
    if rng.random() < 0.4:
        value = " ".join(value[i:i + 4] for i in range(0, len(value), 4))
    return value


def phone(rng: random.Random) -> tuple[str, bool]:
    """A valid phone number and whether it needs a context word to be recognised (bare/space-grouped)."""
    while True:
        area = rng.choice(["212", "415", "646", "303", "617", "312", "206", "512"])
        exchange = f"{rng.randint(2, 9)}{rng.randint(0, 9)}{rng.randint(0, 9)}"
        line = f"{rng.randint(0, 9999):04d}"
        if exchange == "555" or not phonenumbers.is_valid_number(phonenumbers.parse(area + exchange + line, "US")):
            continue
        break
    style = rng.choice(["intl", "paren", "dash", "dot", "bare", "uk", "de"])
    if style == "intl":
        return f"+1 {area}-{exchange}-{line}", False
    if style == "paren":
        return f"({area}) {exchange}-{line}", False
    if style == "dash":
        return f"{area}-{exchange}-{line}", False
    if style == "dot":
        return f"{area}.{exchange}.{line}", False
    if style == "uk":
        return f"+44 20 7{rng.randint(100, 999)} {rng.randint(1000, 9999)}", False
    if style == "de":
        return f"+49 30 {rng.randint(1000000, 9999999)}", False
    return f"{area}{exchange}{line}", True


def email(rng: random.Random) -> str:
    user = rng.choice(FIRST).lower() + rng.choice([".", "_", "", "+tag."]) + rng.choice(LAST).lower()
    return f"{user}{rng.randint(1, 99)}@{rng.choice(['example.com', 'mail.co.uk', 'corp.io', 'uni.edu'])}"


def ipv4(rng: random.Random) -> str:
    return ".".join(str(x) for x in (rng.choice([10, 172, 192, 8, 34, 52, 81, 203]), rng.randint(0, 255),
                                     rng.randint(0, 255), rng.randint(1, 254)))


def ipv6(rng: random.Random) -> str:
    groups = [f"{rng.randint(0, 0xffff):x}" for _ in range(8)]
    if rng.random() < 0.5:
        return "2001:db8::" + ":".join(groups[:3])
    return ":".join(groups)


def personal(rng: random.Random) -> tuple[str, str]:
    """(text, value that must not survive): a personal key with its value in free text or embedded JSON."""
    first, last, city = rng.choice(FIRST), rng.choice(LAST), rng.choice(CITIES)
    form = rng.choice(["first", "last", "city", "name", "json", "full", "dob"])
    sep = rng.choice(["=", ": ", "="])
    if form == "first":
        return f"{rng.choice(['first_name', 'firstName', 'given_name'])}{sep}{first}", first
    if form == "last":
        return f"{rng.choice(['last_name', 'surname', 'lastName'])}{sep}{last}", last
    if form == "city":
        return f"{rng.choice(['city', 'City', 'town'])}{sep}{city}", city
    if form == "name":
        return f"{rng.choice(['name', 'Name', 'full_name'])}{sep}{first} {last}", f"{first} {last}"
    if form == "full":
        return f'full_name="{first.lower()} {last.lower()}"', f"{first.lower()} {last.lower()}"
    if form == "dob":
        value = f"{rng.randint(1940, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        return f"{rng.choice(['dob', 'date_of_birth', 'birthDate'])}{sep}{value}", value
    return json.dumps({"name": f"{first} {last}", "city": city, "plan": "pro"}), f"{first} {last}"


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _rand(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


#: Characters a bare ``key=value`` secret may hold (no space and none of ``,;&"'<>()[]{}``, which end a bare value).
_SECRET_CHARS = string.ascii_letters + string.digits + "!#$%*+-._~^"


def _password(rng: random.Random, low: int = 4, high: int = 40) -> str:
    """A secret of any length in [low, high]: sometimes a plain lower-case word, sometimes symbols and digits."""
    length = rng.randint(low, high)
    style = rng.choice(["word", "alnum", "mixed"])
    if style == "word":
        return _rand(rng, length, string.ascii_lowercase)
    if style == "alnum":
        return _rand(rng, length)
    return _rand(rng, length, _SECRET_CHARS).lstrip("-") or "x1!x"


def _token(rng: random.Random, low: int = 4, high: int = 40) -> str:
    """A credential for a weak name (token, session, sid): letters and at least one digit, so never a plain number
    nor a plain word."""
    body = _rand(rng, rng.randint(low, high) - 2, string.ascii_letters + string.digits + "_-")
    return rng.choice(string.ascii_letters) + body + rng.choice(string.digits)


def secret(rng: random.Random) -> tuple[str, str, str]:
    """(entity kind, text to embed, the secret part that must not survive)."""
    kind = rng.choice(["jwt", "akid", "aws", "bearer", "basic", "pem", "url", "kv", "kvjson", "github", "slack",
                       "stripe", "google", "spaced", "kv", "kv", "kv", "kvweak", "kvweak", "query", "cookie", "urlenc", "curl",
                       "urlcred2"])
    if kind == "jwt":
        token = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64({'sub': _rand(rng, 8)})}.{_rand(rng, 43)}"
        return kind, token, token
    if kind == "akid":
        value = "AKIA" + _rand(rng, 16, string.ascii_uppercase + string.digits)
        return kind, value, value
    if kind == "aws":
        value = _rand(rng, 36) + "Ab1/"
        return kind, f"aws_secret_access_key {value}", value
    if kind == "bearer":
        value = _rand(rng, 32) + "-" + _rand(rng, 8)
        return kind, f"Authorization: Bearer {value}", value
    if kind == "basic":
        value = base64.b64encode(f"user{rng.randint(1, 99)}:{_rand(rng, 12)}".encode()).decode()
        return kind, f"Authorization: Basic {value}", value
    if kind == "pem":
        body = "\n".join(_rand(rng, 64, string.ascii_letters + string.digits + "+/") for _ in range(4))
        return kind, f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----", body.split("\n")[2]
    if kind == "url":
        password = _rand(rng, 14)
        return kind, f"postgres://app:{password}@db.internal:5432/orders", password
    if kind == "kv":
        password = _password(rng)
        key = rng.choice(["password", "db_password", "PASSWORD", "Password", "pwd", "pass", "pw", "passwd", "secret",
                          "api_key", "client_secret", "access_token", "refresh_token", "adminPw", "db_pass"])
        sep = rng.choice(["=", ": ", " = ", "=", ":"])
        return kind, f"{key}{sep}{password}", password
    if kind == "kvweak":
        value = _token(rng)
        key = rng.choice(["token", "session", "sid", "sessionid", "auth", "Token", "SID"])
        return kind, f"{key}{rng.choice(['=', ': ', '='])}{value}", value
    if kind == "query":
        value = _token(rng)
        first, second = rng.sample(["access_token", "session", "token", "password", "api_key", "sid"], 2)
        return kind, f"GET /cb?state=ok&{first}={_token(rng)}&{second}={value} HTTP/1.1", value
    if kind == "cookie":
        value = _token(rng, 8, 32) + rng.choice(["", "%3D", "."])
        name = rng.choice(["sid", "_session", "JSESSIONID", "remember_me", "connect.sid"])
        if rng.random() < 0.5:
            return kind, f"Cookie: _ga=GA1.2.{rng.randint(1, 10**9)}; {name}={value}; theme=dark", value
        return kind, f"Set-Cookie: {name}={value}; Path=/; HttpOnly; Secure", value
    if kind == "urlenc":
        value = _rand(rng, rng.randint(4, 30))
        key = rng.choice(["password", "pwd", "pass", "client_secret", "access_token"])
        return kind, f"body=username%3Dbob%26{key}%3D{value}%26remember%3D1", value
    if kind == "curl":
        password = _password(rng)
        flag = rng.choice(["-u ", "--user ", "--user=", "-U "])
        return kind, f"curl -s {flag}deploy:{password} https://api.example.com/v1/x", password
    if kind == "urlcred2":
        password = _rand(rng, 4) + "/" + _rand(rng, rng.randint(4, 20))
        user = rng.choice(["", "app", "x-access-token"])
        return kind, f"{rng.choice(['redis', 'amqp', 'https'])}://{user}:{password}@cache.internal:6379/0", password
    if kind == "spaced":
        password = _rand(rng, 8) + str(rng.randint(10, 99)) + rng.choice("!#%x")
        form = rng.choice(["--password {p}", "--password={p}", "password is {p}", "the db password was '{p}'",
                           "--api-key {p} --verbose", "pwd is {p}"])
        return kind, form.format(p=password), password
    if kind == "kvjson":
        password = _rand(rng, 10) + " " + _rand(rng, 6)
        return kind, f'{{"user": "app", "password": "{password}"}}', password
    if kind == "github":
        value = "ghp_" + _rand(rng, 36)
        return kind, value, value
    if kind == "slack":
        value = f"xoxb-{rng.randint(10**11, 10**12)}-{_rand(rng, 24)}"
        return kind, value, value
    if kind == "stripe":
        value = "sk_live_" + _rand(rng, 24)
        return kind, value, value
    value = "AIza" + _rand(rng, 35, string.ascii_letters + string.digits + "_-")
    return kind, value, value


# ------------------------------------------------------------------------------------------------ cases

TEMPLATES = [
    "{v}",
    "value {v}",
    "{v} was seen",
    "user record updated: {v}.",
    "login failed for ({v}) after 3 attempts",
    "payload={{'field': '{v}'}}",
    '{{"data": "{v}", "n": 1}}',
    "[{v}]",
    "note: {v}; retrying in 5s",
    "2024-05-01T10:00:00Z INFO svc.api request_id=7f3a9c contact {v} processed in 12ms",
]
PHONE_CONTEXT = ["phone {v}", "call me at {v}", "mobile: {v}", "tel {v} (home)"]


def _cases(count: int, seed: int) -> list[tuple[str, str, str]]:
    """(kind, text, raw value) triples."""
    rng = random.Random(seed)
    out: list[tuple[str, str, str]] = []
    makers = ["email", "card", "ssn", "iban", "phone", "ipv4", "ipv6", "secret", "personal", "secret"]
    for i in range(count):
        kind = makers[i % len(makers)]
        template = rng.choice(TEMPLATES)
        if kind == "email":
            value = embedded = email(rng)
        elif kind == "card":
            value = embedded = credit_card(rng)
        elif kind == "ssn":
            value = embedded = ssn(rng)
        elif kind == "iban":
            value = embedded = iban(rng)
        elif kind == "phone":
            value, needs_context = phone(rng)
            embedded = value
            if needs_context:
                template = rng.choice(PHONE_CONTEXT)
        elif kind == "ipv4":
            value = embedded = ipv4(rng)
        elif kind == "ipv6":
            value = embedded = ipv6(rng)
        elif kind == "personal":
            embedded, value = personal(rng)
            if '"' in embedded:  # not inside a template's own quotes
                template = rng.choice(["{v}", "body={v}", "request payload {v} rejected"])
        else:
            kind, embedded, value = secret(rng)
            if "\n" in embedded or embedded.startswith("{"):
                template = rng.choice(["{v}", "key material follows: {v} end", "config {v}"])
        out.append((kind, template.format(v=embedded), value))
    return out


CASES = _cases(1000, seed=20261123)


@pytest.fixture(scope="module", params=["patterns", "full"])
def redactor(request: pytest.FixtureRequest) -> Redactor:
    return Redactor(RedactionConfig(detection=request.param))


SELF_EVIDENT = {"email", "card", "ssn", "iban", "phone", "ipv4", "ipv6", "jwt", "akid", "github", "slack",
                "stripe", "google"}


class TestNoLeaks:
    def test_no_generated_value_survives_in_text(self, redactor: Redactor) -> None:
        """Every generated e-mail, card, SSN, IBAN, phone, IP and secret is gone from the redacted text."""
        outputs = redactor.redact_batch([text for _, text, _ in CASES])
        leaks = [(kind, text, out) for (kind, text, value), (out, _) in zip(CASES, outputs, strict=True)
                 if value in out]
        assert not leaks, f"{len(leaks)} of {len(CASES)} leaked:\n" + "\n".join(map(repr, leaks[:20]))

    def test_no_generated_value_survives_in_structures(self, redactor: Redactor) -> None:
        """Self-evident values (not those that need a key or context word) are redacted on their own too:
        as dict values, list items and dict keys."""
        cases = [(text, value) for kind, text, value in CASES
                 if kind in SELF_EVIDENT and not (kind == "phone" and value.isdigit())]
        values = [{"msg": text, "items": [value], value: 1} for text, value in cases]
        dumped = json.dumps([v for v, _ in redactor.redact_batch(values)])
        leaked = [value for _, value in cases if json.dumps(value)[1:-1] in dumped]
        assert len(cases) > 300
        assert not leaked

    def test_every_kind_is_covered(self) -> None:
        """The generated cases cover every entity kind, several hundred in all."""
        kinds = {kind for kind, _, _ in CASES}
        assert {"email", "card", "ssn", "iban", "phone", "ipv4", "ipv6", "jwt", "akid", "aws", "bearer",
                "basic", "pem", "url", "kv", "kvjson", "github", "slack", "stripe", "google", "spaced", "kvweak",
                "query", "cookie", "urlenc", "curl", "urlcred2", "personal"} <= kinds
        assert len(CASES) >= 1000

    def test_secret_lengths_vary(self) -> None:
        """Generated key=value secrets span 4 to 40 characters, plain words included (not one fixed shape)."""
        lengths = {len(value) for kind, _, value in CASES if kind == "kv"}
        assert min(lengths) <= 6 and max(lengths) >= 35 and len(lengths) >= 10
        assert any(value.isalpha() and value.islower() for kind, _, value in CASES if kind == "kv")

    def test_personal_keys_in_structures(self, redactor: Redactor) -> None:
        """Values under personal keys (first_name, last_name, city, a full name under ``name``, a phone number as an
        int) are gone from dicts, at any depth."""
        rng = random.Random(3)
        people = [(rng.choice(FIRST), rng.choice(LAST), rng.choice(CITIES), 2125550100 + i) for i in range(60)]
        values = [{"first_name": f, "last_name": last, "address": {"city": c}, "customer": {"name": f"{f} {last}"},
                   "phone": p} for f, last, c, p in people]
        dumped = json.dumps([v for v, _ in redactor.redact_batch(values)])
        leaked = [x for f, last, c, p in people for x in (f, last, c, str(p)) if x in dumped]
        assert not leaked

    def test_int_card_and_phone_values(self, redactor: Redactor) -> None:
        """An int credit card number, and an int phone number under a phone-like key, are redacted."""
        (card, _), (record, _) = redactor.redact_batch([4111111111111111, {"mobile": 4155552671}])
        assert card == "<CREDIT_CARD>"
        assert record == {"mobile": "<PHONE_NUMBER>"}


NAME_TEMPLATES = [
    "User {f} {l} logged in",
    "Sending invoice to {f} {l} at the billing address",
    "Password reset requested by {f} {l}",
    "Order 1234 shipped to {f} {l} in {c}",
    "Support ticket opened by customer {f} {l}: printer not working",
    "{f} {l} updated their profile",
    "Meeting scheduled with {f} {l} tomorrow",
    "Approved by {f} {l}.",
]


def _name_cases(count: int, first: list[str] = FIRST, last: list[str] = LAST, seed: int = 7
                ) -> list[tuple[str, str, str]]:
    rng = random.Random(seed)
    return [(rng.choice(NAME_TEMPLATES).format(f=f, l=surname, c=rng.choice(CITIES)), f, surname)
            for f, surname in ((rng.choice(first), rng.choice(last)) for _ in range(count))]


#: Measured 2026-11-23 with en_core_web_sm 3.8.0: 0.970 (194/200); the floor leaves a margin.
PERSON_RECALL_FLOOR = 0.90


#: Names outside ASCII in the same sentences, measured 2026-12-02 with en_core_web_sm 3.8.0: 0.880 (176/200; 0.000 before
#: the name-shape filter accepted letters outside ASCII). Most misses are the model's: ORG or FAC for a name it does
#: not know. The floor leaves a margin.
NON_ASCII_RECALL_FLOOR = 0.82


@pytest.fixture(scope="module")
def full_redactor() -> Redactor:
    return Redactor(RedactionConfig(detection="full"))


class TestPersonRecall:
    def test_person_recall_on_generated_sentences(self, full_redactor: Redactor) -> None:
        """spaCy NER (full mode) removes the full name from at least PERSON_RECALL_FLOOR of the sentences."""
        self._check_recall(full_redactor, _name_cases(200), PERSON_RECALL_FLOOR)

    def test_names_outside_ascii(self, full_redactor: Redactor) -> None:
        """Names such as José García or Łukasz Nowak are removed from at least NON_ASCII_RECALL_FLOOR of the same
        sentences."""
        self._check_recall(full_redactor, _name_cases(200, NON_ASCII_FIRST, NON_ASCII_LAST, seed=8), NON_ASCII_RECALL_FLOOR)

    @staticmethod
    def _check_recall(redactor: Redactor, cases: list[tuple[str, str, str]], floor: float) -> None:
        outputs = redactor.redact_batch([text for text, _, _ in cases])
        found = sum(1 for (text, f, last), (out, _) in zip(cases, outputs, strict=True)
                    if f not in out and last not in out)
        recall = found / len(cases)
        print(f"PERSON recall: {recall:.3f} ({found}/{len(cases)})")
        missed = [out for (text, f, last), (out, _) in zip(cases, outputs, strict=True) if f in out or last in out]
        assert recall >= floor, "missed:\n" + "\n".join(missed[:30])


#: A name right before a value of another kind: spaCy often runs the PERSON span on into that value.
NAME_VALUE_TEMPLATES = [
    "msg {i} for {f} {l} {e} card {c}",
    "login ok for {f} {l} {e}",
    "invoice {i} sent to {f} {l} {e}",
    "user {f} {l} {e} logged in",
    "callback requested by {f} {l} {p}",
    "login ok for {f} {l} from {ip}",
    "session {i} opened by {f} {l} {ip}",
    "payment by {f} {l} {c} declined",
    "ticket {i} for {f} {l} {p} closed",
]


def _name_value_cases(count: int) -> list[tuple[str, str, str, list[str]]]:
    """(text, first name, last name, the values beside the name that must not survive)."""
    rng = random.Random(11)
    out = []
    for i in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        values = {"e": f"{first.lower()}.{last.lower()}{i}@example.com", "c": credit_card(rng),
                  "p": rng.choice(["+1 415-555-2671", "(212) 555-0147", "+44 20 7946 0958"]), "ip": ipv4(rng)}
        template = NAME_VALUE_TEMPLATES[i % len(NAME_VALUE_TEMPLATES)]
        text = template.format(i=i, f=first, l=last, **values)
        out.append((text, first, last, [v for k, v in values.items() if "{" + k + "}" in template]))
    return out


#: Measured 2026-12-02 with en_core_web_sm 3.8.0: 0.959 (863/900). Before spans were trimmed to their name-shaped words
#: 0.711 (spaCy had run the name into the value and the whole span was dropped); trimmed, but with spaCy reading the
#: values unmasked, 0.904. The floor leaves a margin.
NAME_BESIDE_VALUE_RECALL_FLOOR = 0.93


@pytest.fixture(scope="module")
def name_value_outputs(full_redactor: Redactor) -> list[tuple[tuple[str, str, str, list[str]], str]]:
    """Each case of :func:`_name_value_cases` with its redacted text (full mode)."""
    cases = _name_value_cases(900)
    return list(zip(cases, (out for out, _ in full_redactor.redact_batch([c[0] for c in cases])), strict=True))


class TestNamesBesideValues:
    def test_values_beside_names_never_survive(
            self, name_value_outputs: list[tuple[tuple[str, str, str, list[str]], str]]) -> None:
        """The e-mail address, card, phone number or IP address after a name is gone whatever NER makes of it."""
        leaks = [out for (_, _, _, values), out in name_value_outputs if any(v in out for v in values)]
        assert not leaks, "\n".join(leaks[:20])

    def test_name_recall(self, name_value_outputs: list[tuple[tuple[str, str, str, list[str]], str]]) -> None:
        """The full name before such a value is removed from at least NAME_BESIDE_VALUE_RECALL_FLOOR of the lines."""
        outputs = name_value_outputs
        missed = [out for (_, first, last, _), out in outputs if first in out or last in out]
        recall = 1 - len(missed) / len(outputs)
        print(f"PERSON recall beside values: {recall:.3f} ({len(outputs) - len(missed)}/{len(outputs)})")
        assert recall >= NAME_BESIDE_VALUE_RECALL_FLOOR, "missed:\n" + "\n".join(missed[:30])


class TestLineGate:
    """``Redactor.line_needs_redaction``: the agent keeps a line unparsed only when it certainly holds nothing."""

    def test_every_leak_case_is_a_candidate(self, redactor: Redactor) -> None:
        """Every generated value, as a plain line and inside JSON lines of several shapes, opens the gate."""
        missed = []
        for kind, text, value in CASES:
            lines = [text, json.dumps({"msg": text}), json.dumps({"items": [value], "n": 1}),
                     json.dumps({"mobile" if kind == "phone" else "national_id" if kind == "ssn" else "v": value})]
            for line in lines:
                found = redactor.redact_batch([json.loads(line) if line.startswith("{") else line])[0][1]
                if found and not redactor.line_needs_redaction(line):
                    missed.append((kind, line))
        assert not missed, f"{len(missed)} lines with findings skipped:\n" + "\n".join(map(repr, missed[:20]))

    def test_secret_and_context_keys_are_candidates(self, redactor: Redactor) -> None:
        """A secret key or a key that gives context (national_id, mobile) makes the line a candidate."""
        for line in ['{"p_w_d": "x"}', '{"national_id": "078051120"}', '{"mobile": 4155552671}',
                     '{"x-api-key": "abc"}', '{"msg": "caf\\u00e9"}']:
            assert redactor.line_needs_redaction(line), line

    def test_clean_lines_mostly_skip(self, redactor: Redactor) -> None:
        """Ordinary service lines skip the parse: that is what makes the agent's redaction pass fast."""
        rng = random.Random(5)
        lines = [json.dumps({"timestamp": f"2026-11-23T10:00:{i % 60:02d}.{rng.randrange(10**6):06d}Z",
                             "level": "INFO", "logger": "shop.api", "pid": 812,
                             "message": f"GET /api/v1/orders {code} in {ms:.1f} ms",
                             "request_id": f"req-{rng.getrandbits(64):016x}"})
                 for i, (code, ms) in enumerate([(200, 3.2), (404, 11.0), (201, 47.5)] * 50)]
        assert sum(redactor.line_needs_redaction(line) for line in lines) <= 3
