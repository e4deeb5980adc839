"""Detection tiers: secret key names, validated patterns and secrets, NER shape filter, offline loading."""

from __future__ import annotations

import ipaddress
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from presidio_logshield.config import RedactionConfig
from presidio_logshield.detection import DetectionEngine, SecretKeyMatcher
from presidio_logshield.detection._keys import PersonalKeyMatcher
from presidio_logshield.detection._nlp import _NAME_TOKEN, name_runs
from presidio_logshield.detection._recognizers import _valid_ipv4


@pytest.fixture(scope="module")
def engine() -> DetectionEngine:
    return DetectionEngine(RedactionConfig(detection="patterns"))


@pytest.fixture(scope="module")
def full_engine() -> DetectionEngine:
    return DetectionEngine(RedactionConfig(detection="full"))


def _name_token(word: str) -> bool:
    return _NAME_TOKEN.fullmatch(word) is not None


def _found(engine: DetectionEngine, text: str) -> list[tuple[str, str]]:
    return [(f.entity_type, text[f.start:f.end]) for f in engine.detect([text])[0]]


class TestSecretKeyMatcher:
    @pytest.mark.parametrize("key", ["password", "Password", "db_password", "DB-PASSWORD", "refresh_token",
                                     "aws_secret_access_key", "x-api-key", "apiKey", "Authorization", "set-cookie",
                                     "client_secret", "private_key", "credentials", "sessionid", "auth",
                                     "accessToken", "pwd"])
    def test_secret_names_match(self, key: str) -> None:
        """Tier-1 names match whatever their case and separators, also inside compound names."""
        assert SecretKeyMatcher().match(key)

    @pytest.mark.parametrize("key", ["token_count", "tokens_used", "max_tokens", "tokenizer", "author",
                                     "password_length", "has_password", "auth_type", "secret_name", "user",
                                     "keyboard", "AuthFail", "tokenizers", "num_tokens", "total_tokens", "token_types",
                                     "authors", "keys", "bypasses"])
    def test_descriptive_names_do_not(self, key: str) -> None:
        """Keys that describe a secret (counts, types, flags) are not secrets."""
        assert SecretKeyMatcher().match(key) is None

    @pytest.mark.parametrize(("key", "name"), [
        ("tokens", "token"), ("access_tokens", "accesstoken"), ("refresh_tokens", "refreshtoken"),
        ("accessTokens", "accesstoken"), ("id_tokens", "idtoken"), ("sessions", "session"), ("csrf_tokens", "csrftoken"),
        ("sids", "sid"), ("prompt_tokens", "token"), ("api_keys", "apikey"), ("passwords", "password"),
        ("auth_tokens", "auth")])
    def test_plural_names_match_as_their_singular(self, key: str, name: str) -> None:
        """A list of secrets is named in the plural: the plural matches by its singular's name."""
        assert SecretKeyMatcher().match(key) == name

    def test_plural_names_are_weak(self) -> None:
        """Only a plural reached from its singular is weak (a number under it is a count, ``prompt_tokens=57``);
        names that match as they are keep their strength."""
        matcher = SecretKeyMatcher()
        assert matcher.classify("access_tokens") == ("accesstoken", False)
        assert matcher.counts("access_tokens") and matcher.counts("sessions")
        assert matcher.classify("passwords") == ("password", True) and not matcher.counts("passwords")
        assert not matcher.counts("access_token") and not matcher.counts("user")

    def test_configured_extra_keys(self) -> None:
        """config.secret_keys are matched normalised and by substring."""
        assert SecretKeyMatcher(["X-Internal-Sig"]).match("x_internal_sig_v2")


class TestPatterns:
    @pytest.mark.parametrize(("text", "entity", "value"), [
        ("mail bob.smith@example.com now", "EMAIL_ADDRESS", "bob.smith@example.com"),
        ("card 4111 1111 1111 1111.", "CREDIT_CARD", "4111 1111 1111 1111"),
        ("ssn 536-22-1234", "US_SSN", "536-22-1234"),
        ("SSN: 536221234", "US_SSN", "536221234"),
        ("iban DE89370400440532013000", "IBAN_CODE", "DE89370400440532013000"),
        ("from 192.168.1.20:8080", "IP_ADDRESS", "192.168.1.20"),
        ("peer 2001:db8::1 up", "IP_ADDRESS", "2001:db8::1"),
        ("call +1 415-555-2671", "PHONE_NUMBER", "+1 415-555-2671"),
        ("call 2125551234x now", None, None),
        ("url postgres://app:s3cr3t@db:5432/x", "URL_CREDENTIALS", "app:s3cr3t"),
        ("key AKIAIOSFODNN7EXAMPLE", "AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
        ("Authorization: Basic dXNlcjpwYXNz", "SECRET", "Basic dXNlcjpwYXNz"),
        ("sent with bearer abcDEF123456789", "AUTH_TOKEN", "abcDEF123456789"),
        ('{"password": "two words"}', "SECRET", "two words"),
        ("token=ghp_0123456789abcdefghijABCDEFGHIJ012345", "API_KEY", "ghp_0123456789abcdefghijABCDEFGHIJ012345"),
        ("github ghp_0123456789abcdefghijABCDEFGHIJ012345", "API_KEY", "ghp_0123456789abcdefghijABCDEFGHIJ012345"),
    ])
    def test_detects(self, engine: DetectionEngine, text: str, entity: str | None, value: str | None) -> None:
        """Each recognizer finds its entity with the exact span."""
        found = _found(engine, text)
        if entity is None:
            assert found == []
        else:
            assert (entity, value) in found

    @pytest.mark.parametrize("text", [
        "version 1.2.3.4 released", "took 1234567 ms", "at 2015-10-18 18:01:47,978", "blk_-5073870177832699716",
        "uuid 123e4567-e89b-12d3-a456-426614174000", "GET /api/v1/users/42 HTTP/1.1 200", "ts=1514040240000",
        "Fan speeds ( 3552 3534 3391 3515 )", "auth:SIMPLE", "sessionid: 0x24edfaa8717002d",
        "commit 9fceb02d0ae598e95dc970b74767f19372d61af8", "see https://example.com/docs?page=2",
        "token_count=1234 max_tokens=4096", "Basic authentication failed", "interval 10:20:30",
    ])
    def test_leaves_log_noise(self, engine: DetectionEngine, text: str) -> None:
        """Versions, durations, timestamps, ids, hashes, plain URLs and descriptive keys are not findings."""
        assert _found(engine, text) == []

    def test_pem_block_whole(self, engine: DetectionEngine) -> None:
        """A PEM private key is replaced from BEGIN to END, over several lines."""
        text = "k=-----BEGIN PRIVATE KEY-----\nMIIEv\nabc\n-----END PRIVATE KEY----- done"
        assert _found(engine, text) == [("PRIVATE_KEY", text[2:-5])]

    def test_allow_lists_and_entity_restriction(self) -> None:
        """allow_values / allow_patterns are never findings; config.entities restricts detection."""
        eng = DetectionEngine(RedactionConfig(detection="patterns", allow_values={"ops@example.com"},
                                              allow_patterns=[r"10\.0\.0\.\d+"], entities={"EMAIL_ADDRESS",
                                                                                           "IP_ADDRESS"}))
        text = "ops@example.com bob@example.com 10.0.0.7 10.1.0.7 ssn 536-22-1234"
        assert _found(eng, text) == [("EMAIL_ADDRESS", "bob@example.com"), ("IP_ADDRESS", "10.1.0.7")]


class TestNer:
    def test_person_after_equals(self) -> None:
        """A full name after ``=`` (``user=Alice Johnson``) is a person, not an identifier's tail."""
        eng = DetectionEngine(RedactionConfig(detection="full"))
        assert ("PERSON", "Alice Johnson") in _found(eng, "user=Alice Johnson action=delete")

    def test_names_and_places_but_not_components(self) -> None:
        """Full mode finds people and places and drops capitalised log components."""
        eng = DetectionEngine(RedactionConfig(detection="full"))
        assert eng.ner_available
        text = "Invoice for Maria Garcia shipped to Madrid"
        assert ("PERSON", "Maria Garcia") in _found(eng, text)
        for noise in ("BTLE scanner Powered Off", "CentOS-4 (Kernel Module GPG key)",
                      "path /System/Library/StagedFrameworks/Safari/SafariShared.framework"):
            assert not [e for e, _ in _found(eng, noise) if e == "PERSON"], noise

    @pytest.mark.parametrize(("text", "name", "entity", "value"), [
        ("invoice 10 sent to John Smith john.smith10@example.com", "John Smith", "EMAIL_ADDRESS",
         "john.smith10@example.com"),
        ("login ok for Sarah Smith 4111111111111111", "Sarah Smith", "CREDIT_CARD", "4111111111111111"),
    ])
    def test_span_running_into_a_value_is_trimmed(self, full_engine: DetectionEngine, text: str, name: str,
                                                 entity: str, value: str) -> None:
        """A PERSON span that spaCy runs on into the next token (an e-mail address, a card number) is cut back to its
        name-shaped words: the name is replaced, and so is the value after it, as its own entity."""
        found = _found(full_engine, text)
        assert ("PERSON", name) in found
        assert (entity, value) in found

    def test_span_is_trimmed_on_either_side(self, full_engine: DetectionEngine) -> None:
        """Words that are not name-shaped are cut from the start of a span as from its end; what is left must still
        look like a name."""
        text = "ok for Sarah Smith sarah4@example.com now"
        assert [text[s:e] for s, e in name_runs(text, text.index("for"), len(text))] == ["Sarah Smith"]
        assert [text[s:e] for s, e in name_runs(text, 0, text.index(" sarah4"))] == ["Sarah Smith"]
        assert name_runs(text, text.index("sarah4"), len(text)) == []
        assert name_runs("x Thunderbird_C1 y", 2, 16) == []

    @pytest.mark.parametrize(("text", "found"), [
        ("Ticket assigned to José García today", [("PERSON", "José García")]),
        ("Refund approved for Zoë Müller", [("PERSON", "Zoë Müller")]),
        ("Customer Łukasz Nowak called about the refund", [("PERSON", "Łukasz Nowak")]),
        ("Invoice sent to Søren Kierkegaard", [("PERSON", "Søren Kierkegaard")]),
        ("Meeting with François Dupont in Zürich", [("PERSON", "François Dupont"), ("LOCATION", "Zürich")]),
        ("José García logged in", [("PERSON", "José García")]),
        ("Kunde Jürgen Müller aus München hat angerufen", [("PERSON", "Jürgen Müller"), ("LOCATION", "München")]),
    ])
    def test_names_outside_ascii(self, full_engine: DetectionEngine, text: str, found: list[tuple[str, str]]) -> None:
        """Names and places with letters outside ASCII that spaCy tags are kept by the name-shape filter, and a line
        whose only capitalised words are such names is an NER candidate."""
        assert set(found) <= set(_found(full_engine, text))

    @pytest.mark.parametrize("text", ["Verbindung zur Datenbank fehlgeschlagen: Zeitüberschreitung nach 30 Sekunden",
                                      "Straße gesperrt – Umleitung aktiv"])
    def test_nouns_of_other_languages_are_not_places(self, full_engine: DetectionEngine, text: str) -> None:
        """A lone word outside ASCII that the English model calls a place is one only after a short word such as
        ``in`` or ``aus``: German nouns in a message stay."""
        assert _found(full_engine, text) == []

    @pytest.mark.parametrize("word", ["Alice", "José", "Łukasz", "Søren", "Zoë", "O'Brien", "O’Neil", "Jean-Luc",
                                      "McDonald", "Smith's", "J.", "J", "Jose\u0301"])
    def test_name_shaped_words(self, word: str) -> None:
        """An upper-case letter, then lower-case letters (any script with case), apostrophes and hyphens between
        parts; ``Mc``/``O'`` prefixes; an initial."""
        assert _name_token(word)

    @pytest.mark.parametrize("word", ["NullPointerException", "iPhone", "ÉCOLE", "Müller2", "HTTP", "x", "Jean-",
                                      "MacBook", "Thunderbird_C1", "東京"])
    def test_words_not_shaped_like_names(self, word: str) -> None:
        """Identifiers, capitals, digits and scripts without case are not name-shaped."""
        assert not _name_token(word)

    def test_ner_reads_found_values_masked(self) -> None:
        """What the pattern tiers found is overwritten with dashes of the same length before spaCy reads the text;
        overlapping and touching spans are masked once."""
        from presidio_analyzer import RecognizerResult

        from presidio_logshield.detection._engine import _masked

        def result(start: int, end: int) -> RecognizerResult:
            return RecognizerResult("X", start, end, 1.0)

        text = "for Ann Lee ann@x.io card 4111111111111111"
        masked = _masked(text, [result(12, 20), result(26, 42), result(30, 34)])
        assert masked == "for Ann Lee -------- card ----------------"
        assert len(masked) == len(text)
        assert _masked(text, []) is text

    def test_missing_model_warns_once_and_falls_back(self) -> None:
        """An uninstalled spaCy model gives one RuntimeWarning and pattern-only detection, no download."""
        with pytest.warns(RuntimeWarning, match="no spaCy pipeline installed"):
            eng = DetectionEngine(RedactionConfig(detection="full", spacy_model="xx_not_installed_model"))
        assert not eng.ner_available
        assert _found(eng, "mail bob@example.com") == [("EMAIL_ADDRESS", "bob@example.com")]


class TestFloatRenderings:
    @pytest.mark.parametrize(("text", "entity", "value"), [
        ("card=4111111111111111.0", "CREDIT_CARD", "4111111111111111.0"),
        ("ref 4111111111111111.0 ok", "CREDIT_CARD", "4111111111111111.0"),
        ("amount 4111111111111111.000000.", "CREDIT_CARD", "4111111111111111.000000"),
        ("ssn 536221234.0", "US_SSN", "536221234.0"),
        ("phone 4155552671.0", "PHONE_NUMBER", "4155552671.0"),
    ])
    def test_integer_valued_floats_are_found(self, engine: DetectionEngine, text: str, entity: str, value: str) -> None:
        """A long number written as a float (``str(4111111111111111.0)``, ``%f``) is found with its ``.0``."""
        assert (entity, value) in _found(engine, text)

    @pytest.mark.parametrize("text", [
        "took 4111111111111111.5 ms", "total 4111111111111111.01", "elapsed 123.45 s", "x=3.0", "ratio 0.0",
        "phone 4155552671.5", "ssn 536221234.25", "v4111111111111111.0", "4111111111111111.0.1",
    ])
    def test_other_floats_stay(self, engine: DetectionEngine, text: str) -> None:
        """A number with a fraction other than zeros, or a dotted version, is not taken for a card, SSN or phone."""
        assert _found(engine, text) == []


class TestIpv4Validation:
    @given(st.lists(st.text(alphabet="0123456789\u0663", min_size=0, max_size=4), min_size=1, max_size=5))
    def test_same_verdict_as_ipaddress(self, octets: list[str]) -> None:
        """The IPv4 check accepts exactly what ``ipaddress.IPv4Address`` accepts (leading zeros, > 255, non-ASCII)."""
        value = ".".join(octets)
        try:
            ipaddress.IPv4Address(value)
            expected = True
        except ValueError:
            expected = False
        assert _valid_ipv4(value) is expected


class TestEmailRecognizer:
    def test_lean_analyze_matches_presidio(self) -> None:
        """The e-mail recognizer's own analyze returns the spans and scores Presidio's PatternRecognizer would."""
        from presidio_analyzer import PatternRecognizer

        from presidio_logshield.detection._presidio import GatedEmailRecognizer
        from tests.lib.test_leaks_text import CASES

        recognizer = GatedEmailRecognizer()
        texts = [text for _, text, _ in CASES] + ["a@b", "x@y.co and z@w.io", "mail: first.last+tag@sub.example.org.",
                                                   "@@@", "user@host.c0m"]
        for text in texts:
            lean = [(r.start, r.end, r.score) for r in recognizer.presidio_analyze(text, ["EMAIL_ADDRESS"])]
            full = [(r.start, r.end, r.score) for r in PatternRecognizer.analyze(recognizer, text, ["EMAIL_ADDRESS"])]
            assert sorted(lean) == sorted(full), text


class TestConfiguredSecretKeys:
    @pytest.mark.parametrize("text", ["otp=123456 user=x", "my_otp: 123456", 'O_T_P: "123456"',
                                      "xInternalRef=ab12cd"])
    def test_free_text_values_are_secrets(self, text: str) -> None:
        """A configured secret key name in free text (any case, separators anywhere) has its value replaced, like
        the built-in names (``password=…``)."""
        engine = DetectionEngine(RedactionConfig(detection="patterns", secret_keys=["otp", "x_internal_ref"]))
        assert [f.entity_type for f in engine.detect([text])[0]] == ["SECRET"]

    def test_without_the_setting_nothing_changes(self) -> None:
        """The same texts keep their values when the names are not configured."""
        engine = DetectionEngine(RedactionConfig(detection="patterns"))
        assert engine.detect(["otp=123456 user=x", "xInternalRef=ab12cd"]) == [[], []]


class TestSpacedSecrets:
    @pytest.mark.parametrize(("text", "value"), [
        ("password is hunter2", "hunter2"),
        ("the password was 'S3cr3t!' before", "S3cr3t!"),
        ("mysql -u root --password hunter2; echo", "hunter2"),
        ("--password=hunter2", "hunter2"),
        ("deploy --api-key sk_abc123XYZ --region eu", "sk_abc123XYZ"),
        ("token is abcd1234efgh.", "abcd1234efgh"),
    ])
    def test_detects(self, engine: DetectionEngine, text: str, value: str) -> None:
        """A secret after a flag (``--password x``, ``--password=x``) or after ``is``/``was`` is found."""
        assert ("SECRET", value) in _found(engine, text)

    @pytest.mark.parametrize("text", [
        "password is incorrect", "Password is Required.", "token is expired", "token was EXPIRED",
        "--token-ttl 300", "--password-file /etc/pw", "--session 3", "session is 0x1f", "--password -x",
        "visible is system.call.count", "Failed password for root from port 42393 ssh2", "key is 0x1234",
    ])
    def test_leaves_words_and_settings(self, engine: DetectionEngine, text: str) -> None:
        """Words after ``is`` (``password is incorrect``), numbers after weak names, and option names that describe a
        secret (``--password-file``) are left alone."""
        assert [e for e, _ in _found(engine, text) if e == "SECRET"] == []


class TestKeyNameVocabulary:
    @pytest.mark.parametrize(("key", "name"), [
        ("password_alice@example.com", "password"), ("token-4111111111111111", "token"), ("DB-Password", "password"),
        ("access_token", "accesstoken"), ("db_pass", "pass"), ("adminPw", "pw"), ("x-api-key", "xapikey"),
        ("user_session", "session"), ("pwd", "pwd")])
    def test_the_name_comes_from_the_vocabulary(self, key: str, name: str) -> None:
        """A secret key is reported by the built-in name it matched, never by its own text."""
        assert SecretKeyMatcher().match(key) == name

    @given(st.sampled_from(["password", "token", "api_key", "pwd", "session", "secret"]),
           st.text(alphabet="abcxyz0123456789@._-", max_size=24))
    def test_no_name_carries_data(self, base: str, suffix: str) -> None:
        """Whatever follows a secret name in a key (an e-mail, a card number), the reported name is one of the fixed
        names (or None)."""
        name = SecretKeyMatcher(["x_internal"]).match(base + "_" + suffix)
        assert name is None or name in _VOCABULARY

    def test_personal_names(self) -> None:
        """Personal keys match whole, any case and separators; a longer key (billing_city, service.name) does not."""
        matcher = PersonalKeyMatcher()
        assert matcher.match("First-Name") == ("PERSON", "firstname")
        assert matcher.match("CITY") == ("LOCATION", "city")
        assert matcher.match("date_of_birth") == ("DATE_OF_BIRTH", "dateofbirth")
        assert matcher.match("service.name") is None and matcher.match("billing_city") is None

    def test_configured_changes(self) -> None:
        """pii_keys adds (username), removes (city) or clears the built-in names (``*=none``); a configured name is
        never ambiguous."""
        matcher = PersonalKeyMatcher({"user_name": "PERSON", "city": "none", "name": "PERSON"})
        assert matcher.match("userName") == ("PERSON", "username") and matcher.match("city") is None
        assert matcher.accepts("name", "orders")
        assert PersonalKeyMatcher().accepts("name", "orders") is False
        assert PersonalKeyMatcher({"*": "none", "iban": "IBAN_CODE"}).keys == {"iban": "IBAN_CODE"}


_VOCABULARY = {"password", "passwd", "passphrase", "pwd", "pass", "pw", "secret", "token", "apikey", "accesskey",
               "privatekey", "credential", "credentials", "authorization", "auth", "cookie", "setcookie", "session",
               "sessionid", "sid", "jwt", "bearer", "oauth", "signingkey", "encryptionkey", "masterkey", "clientsecret",
               "xapikey", "xauthtoken", "accesstoken", "refreshtoken", "idtoken", "authtoken", "apitoken",
               "sessiontoken", "csrftoken", "xinternal"}


class TestFreeTextSecrets:
    @pytest.mark.parametrize(("text", "value"), [
        ("pwd=hunter2", "hunter2"), ("pwd=a", "a"), ("login pass=x1 ok", "x1"), ("login pw=hunter2 ok", "hunter2"),
        ("Password=Hunter2!", "Hunter2!"), ("token=abc", "abc"), ("sid=abc123", "abc123"),
        ("GET /cb?access_token=ya29abc&session=s1 200", "ya29abc"), ("GET /cb?access_token=ya29abc&session=s1 200", "s1"),
        ("token=7f1c2a9e-3b4d-4c5e-8f60-1a2b3c4d5e6f", "7f1c2a9e-3b4d-4c5e-8f60-1a2b3c4d5e6f"),
        ("Cookie: _ga=GA1.2.3; sid=s%3Aabcdef1234", "_ga=GA1.2.3; sid=s%3Aabcdef1234"),
        ("Set-Cookie: sid=abcdef1234; HttpOnly; Path=/", "sid=abcdef1234; HttpOnly; Path=/"),
        ("body=username%3Dbob%26password%3Dhunter2", "hunter2"), ("q=password%3Dhunter2", "hunter2"),
        ("curl -u admin:hunter2 https://x", "admin:hunter2"), ("curl --user 'admin:p@ss w' x", None),
        ("wget --proxy-user=bob:s3cr3t x", "bob:s3cr3t"), ("exception: bad user pw=hunter2", "hunter2"),
        ("db_pass: x", "x"), ("adminPw=1", "1"),
    ])
    def test_detects(self, engine: DetectionEngine, text: str, value: str | None) -> None:
        """Short values after strong names, query strings, cookie headers, URL-encoded pairs and curl's -u are secrets
        (a quoted -u argument with a space is not taken)."""
        secrets = [v for e, v in _found(engine, text) if e == "SECRET"]
        assert (value in secrets) if value is not None else secrets == []

    @pytest.mark.parametrize("text", [
        "Session: 30546354_3222456494 initialized by client", "Auth successful (auth:SIMPLE)", "auth=oidc",
        "token: expired", "sessionid: 0x24edfaa8717002d", "docker run -u 1000:1000 img", "bypass=1 compass=2",
        "passenger=x", "inside: 3", "aside=4", "upward trend", "session_timeout=30m auth_method=oidc",
        "token_count=512 max_tokens=4096", "password=<SECRET>", "password=null",
    ])
    def test_leaves_ids_methods_and_lookalikes(self, engine: DetectionEngine, text: str) -> None:
        """Numbers after weak names, auth methods, states, uid:gid, words that contain a name, descriptive keys and
        placeholders are not secrets."""
        assert [e for e, _ in _found(engine, text) if e == "SECRET"] == []

    @pytest.mark.parametrize(("text", "value"), [('{"data": "password=x1", "n": 1}', "x1"),
                                                 ("url=https://x.com/cb?password=abc&x=1", "abc"),
                                                 ("payload={'field': 'pw=abc'}", "abc"), ("a=b=password=c", "c")])
    def test_pairs_inside_values(self, engine: DetectionEngine, text: str, value: str) -> None:
        """A pair inside the value of a key that names nothing (a quoted value, a URL) is found."""
        assert ("SECRET", value) in _found(engine, text)

    def test_nested_values_stay_linear(self, engine: DetectionEngine) -> None:
        """Values that run to the end of a long text (``a=a=a=…``) are rescanned a few levels deep, not once per pair:
        80,000 characters take well under a second (a rescan per pair would take minutes)."""
        text = "a=" * 40_000 + " pwd=hunter2"
        start = time.perf_counter()
        found = _found(engine, text)
        assert time.perf_counter() - start < 5
        assert ("SECRET", "hunter2") in found

    def test_url_credentials_with_odd_characters(self, engine: DetectionEngine) -> None:
        """An empty user or a ``/`` in the password is still a URL credential; a port and a path are not."""
        assert ("URL_CREDENTIALS", ":p/ss") in _found(engine, "connect redis://:p/ss@cache:6379")
        assert ("URL_CREDENTIALS", "app:s3/cr") in _found(engine, "postgres://app:s3/cr@db/x")
        assert ("URL_CREDENTIALS", "u:p") in _found(engine, "http://u:p@h/x@y")
        assert [e for e, _ in _found(engine, "GET http://host:8080/users/bob@example.com") if e == "URL_CREDENTIALS"] == []


class TestPersonalKeysInText:
    @pytest.mark.parametrize(("text", "entity", "value"), [
        ("login name=John Smith ok", "PERSON", "John Smith"), ("first_name=alice", "PERSON", "alice"),
        ('body={"name":"Alice Johnson","city":"Paris"}', "PERSON", "Alice Johnson"),
        ('body={"name":"Alice Johnson","city":"Paris"}', "LOCATION", "Paris"),
        ("city=New York zone=b", "LOCATION", "New York"), ("Name=John Smith City=Berlin", "LOCATION", "Berlin"),
        ("Name=John Smith City=Berlin", "PERSON", "John Smith"), ("phone=+1 415 555 2671 ok", "PHONE_NUMBER",
                                                                  "+1 415 555 2671"),
        ("iban: GB82 WEST 1234 5698 7654 32", "IBAN_CODE", "GB82 WEST 1234 5698 7654 32"),
        ("dob=1990-01-01", "DATE_OF_BIRTH", "1990-01-01"), ("address=221B Baker Street, London", "LOCATION",
                                                            "221B Baker Street"),
        ("lastName: 'de la Cruz'", "PERSON", "de la Cruz"), ("zip=10115 Berlin", "LOCATION", "10115"),
        ("email=alice%40example.com", "EMAIL_ADDRESS", "alice%40example.com"),
        ("form first_name%3DAlice%26x%3D1", "PERSON", "Alice"),
    ])
    def test_values_replaced_as_their_entity(self, engine: DetectionEngine, text: str, entity: str, value: str) -> None:
        """``key=value`` / ``key: value`` / embedded JSON with a personal key: the value (and the words continuing it
        in that field's shape) is found as the key's entity type, whatever it looks like."""
        assert (entity, value) in _found(engine, text)

    @pytest.mark.parametrize("text", [
        "name=orders-queue", "service.name=checkout", "hostname=web-1", "logger name=shop.api", "city=null",
        "address=10.0.0.1:8080", "filename: report.pdf", "queue name: orders", "name: web", "phone=-",
    ])
    def test_leaves_other_names(self, engine: DetectionEngine, text: str) -> None:
        """``name`` and ``address`` count only for a full name or a street address; longer keys and empty markers do
        not count."""
        assert [e for e, _ in _found(engine, text) if e in ("PERSON", "LOCATION", "PHONE_NUMBER")] == []


class TestKeyTierSettings:
    def test_on_whatever_entities_select(self) -> None:
        """entities=EMAIL_ADDRESS still replaces values after secret and personal key names."""
        eng = DetectionEngine(RedactionConfig(detection="patterns", entities={"EMAIL_ADDRESS"}))
        assert _found(eng, "a@example.com password=hunter2 city=Berlin ip 10.1.2.3") == [
            ("EMAIL_ADDRESS", "a@example.com"), ("SECRET", "hunter2"), ("LOCATION", "Berlin")]

    def test_off_when_disabled(self) -> None:
        """key_names=False turns the tier off: only the selected content types are found."""
        eng = DetectionEngine(RedactionConfig(detection="patterns", key_names=False))
        assert _found(eng, "a@example.com password=hunter2 city=Berlin") == [("EMAIL_ADDRESS", "a@example.com")]

    def test_configured_personal_key_in_text(self) -> None:
        """A key added with pii_keys is found in text with any separators; a removed one no longer is."""
        eng = DetectionEngine(RedactionConfig(detection="patterns", pii_keys={"user_name": "PERSON", "city": "none"}))
        assert _found(eng, "user.name=jdoe city=Berlin") == [("PERSON", "jdoe")]

    def test_rules_are_key_names(self) -> None:
        """Findings of the tier carry the matched name as their rule: ``key:password`` for ``db_password``."""
        eng = DetectionEngine(RedactionConfig(detection="patterns"))
        assert [f.rule for f in eng.detect(["db_password=x first_name=Al curl -u a:b"])[0]] == [
            "key:password", "key:firstname", "pattern:curl-user"]


class TestPatternPrecision:
    @pytest.mark.parametrize(("text", "entity", "value"), [
        ("iban de89370400440532013000", "IBAN_CODE", "de89370400440532013000"),
        ("IBAN: gb82 west 1234 5698 7654 32", "IBAN_CODE", "gb82 west 1234 5698 7654 32"),
        ("email=alice%40example.com", "EMAIL_ADDRESS", "alice%40example.com"),
        ("q=email%3Dbob.smith%2Btag%40example.co.uk%26x", "EMAIL_ADDRESS", "bob.smith%2Btag%40example.co.uk"),
        ("host 192.168.1.7/24 up", "IP_ADDRESS", "192.168.1.7"), ("route 10.1.2.3/32", "IP_ADDRESS", "10.1.2.3"),
        ("dev 10.0.0.1", "IP_ADDRESS", "10.0.0.1"), ("GET /v1/hosts/10.1.2.3", "IP_ADDRESS", "10.1.2.3"),
        ("http://10.1.2.3/x", "IP_ADDRESS", "10.1.2.3"), ("client 3.0.11.1 connected", "IP_ADDRESS", "3.0.11.1"),
        ("ip-10.1.2.3", "IP_ADDRESS", "10.1.2.3"), ("mail alice@example.com: delivered", "EMAIL_ADDRESS",
                                                     "alice@example.com"),
        ("clone https://oauth2token123456@gitlab.com/a/b", "EMAIL_ADDRESS", "oauth2token123456@gitlab.com"),
    ])
    def test_detects(self, engine: DetectionEngine, text: str, entity: str, value: str) -> None:
        """Lower-case IBANs, URL-encoded e-mail addresses, host addresses with a prefix or after a path are found."""
        assert (entity, value) in _found(engine, text)

    @pytest.mark.parametrize("text", [
        "Mozilla/5.0 (X11) AppleWebKit/537.36 Chrome/120.0.0.0 Safari/537.36", "openssl 3.0.11.1",
        "openssl-3.0.11.1", "kernel 5.10.0.1 loaded", "git@github.com:org/repo.git",
        "scp deploy@host.example.com:/srv/app.tar.gz .", "status=503 upstream=10.0.0.0/8 route default",
        "route 2001:db8::/32 via fe80::1%eth0", "sha ab12cd34ef567890",
    ])
    def test_leaves_versions_networks_and_remotes(self, engine: DetectionEngine, text: str) -> None:
        """Product versions (``Chrome/120.0.0.0``, ``openssl 3.0.11.1``), SSH remotes and CIDR networks are not
        personal data."""
        found = [(e, v) for e, v in _found(engine, text) if v not in ("fe80::1%eth0",)]
        assert found == []
