"""Redactor: the interface the handler codes against — texts, JSON-like values, summaries, cache, fork, offline."""

from __future__ import annotations

import json
import os
import re
import socket
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from presidio_logshield.config import RedactionConfig
from presidio_logshield.redactor import RedactionSummary, Redactor


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor(RedactionConfig(detection="patterns"))


class TestRedactionSummary:
    def test_counts_merge_and_dict(self) -> None:
        """Summaries hold counts and rule ids only and merge by addition."""
        a, b = RedactionSummary(), RedactionSummary()
        assert not a and a.as_dict() == {}
        a.add("EMAIL_ADDRESS", "presidio:EmailRecognizer")
        b.add("EMAIL_ADDRESS", "presidio:EmailRecognizer")
        b.add("SECRET", "key:password")
        a.merge(b)
        assert a.as_dict() == {"entities": {"EMAIL_ADDRESS": 2, "SECRET": 1},
                               "rules": ["key:password", "presidio:EmailRecognizer"]}


class TestRedactText:
    def test_text(self, redactor: Redactor) -> None:
        """redact_text replaces findings and reports them."""
        out, summary = redactor.redact_text("mail bob@x.com from 10.1.2.3")
        assert out == "mail <EMAIL_ADDRESS> from <IP_ADDRESS>"
        assert summary.as_dict()["entities"] == {"EMAIL_ADDRESS": 1, "IP_ADDRESS": 1}

    def test_clean_text_unchanged(self, redactor: Redactor) -> None:
        """A line with nothing to find comes back identical with an empty summary."""
        assert redactor.redact_text("GET /health 200 in 3ms") == ("GET /health 200 in 3ms", RedactionSummary())


class TestRedactBatch:
    def test_value_types(self, redactor: Redactor) -> None:
        """str, dict, list, tuple, numbers, bool, None, bytes and other objects are handled per the contract."""
        class Obj:
            def __str__(self) -> str:
                return "owner bob@x.com"
        values = ["bob@x.com", {"a": ["bob@x.com", ("x", 1)]}, 4111111111111111, 42, 1.5, True, None,
                  b"ip 10.0.0.1", Obj()]
        out = [v for v, _ in redactor.redact_batch(values)]
        assert out == ["<EMAIL_ADDRESS>", {"a": ["<EMAIL_ADDRESS>", ["x", 1]]}, "<CREDIT_CARD>", 42, 1.5, True, None,
                       "ip <IP_ADDRESS>", "owner <EMAIL_ADDRESS>"]

    def test_integer_valued_floats(self, redactor: Redactor) -> None:
        """A card or phone number logged as a float is detected as the integer it holds; other floats stay floats."""
        values = [4111111111111111.0, {"amount_ref": 4111111111111111.0, "contact_phone": 4155552671.0}, 123.45, 3.0,
                  -0.0, 1.5e300, float("inf"), 1514040240000.0]
        out = [v for v, _ in redactor.redact_batch(values)]
        assert out == ["<CREDIT_CARD>", {"amount_ref": "<CREDIT_CARD>", "contact_phone": "<PHONE_NUMBER>"}, 123.45,
                       3.0, -0.0, 1.5e300, float("inf"), 1514040240000.0]
        assert all(type(a) is type(b) for a, b in zip(out[2:], values[2:], strict=True))

    def test_secret_keys_replace_whole_values(self, redactor: Redactor) -> None:
        """A secret key name replaces its value whole, whatever its type; descriptive keys stay."""
        (out, summary), = redactor.redact_batch([{"password": {"nested": 1}, "DB-Password": "x", "token_count": 5,
                                                   "headers": {"Authorization": "Bearer abc"}}])
        assert out == {"password": "<SECRET>", "DB-Password": "<SECRET>", "token_count": 5,
                       "headers": {"Authorization": "<SECRET>"}}
        assert summary.rules == {"key:password", "key:authorization"}  # DB-Password matched the name "password"
        assert summary.entities == {"SECRET": 3}

    def test_plural_secret_keys(self, redactor: Redactor) -> None:
        """Lists under plural secret names (tokens, access_tokens, refresh_tokens, sessions) are replaced like those
        under api_keys or passwords; a count or a list of token ids under such a name stays."""
        values = {k: ["v4lue1xyz", "v4lue2xyz"] for k in ("tokens", "access_tokens", "refresh_tokens", "api_keys",
                                                          "passwords", "secrets", "auth_tokens", "sessions")}
        (out, _), = redactor.redact_batch([values])
        assert out == dict.fromkeys(values, "<SECRET>")
        counts = {"usage": {"prompt_tokens": 57, "completion_tokens": 120.0, "cached_tokens": "0"}, "sessions": 3,
                  "tokens": [101, 2023, 318]}
        assert redactor.redact_batch([counts])[0][0] == counts
        assert redactor.redact_text("usage prompt_tokens=57 completion_tokens=120")[0] == \
            "usage prompt_tokens=57 completion_tokens=120"
        assert redactor.redact_text("refresh_tokens=r1a2b3c4 sessions: s3ss10nX")[0] == \
            "refresh_tokens=<SECRET> sessions: <SECRET>"
        assert redactor.redact_batch([[("access_tokens", "t0kenXYZ"), ("tokens", 12)]])[0][0] == \
            [["access_tokens", "<SECRET>"], ["tokens", 12]]

    def test_keys_are_text_too(self, redactor: Redactor) -> None:
        """A dict key that is an e-mail address is redacted; colliding redacted keys keep both values."""
        (out, _), = redactor.redact_batch([{"a@x.com": 1, "b@x.com": 2, 7: "n"}])
        assert out == {"<EMAIL_ADDRESS>": 1, "<EMAIL_ADDRESS>~": 2, 7: "n"}

    def test_each_value_gets_its_own_summary(self, redactor: Redactor) -> None:
        """Shared strings are detected once but counted in every value they occur in."""
        results = redactor.redact_batch(["bob@x.com", "bob@x.com", "nothing"])
        assert [s.entities for _, s in results] == [{"EMAIL_ADDRESS": 1}, {"EMAIL_ADDRESS": 1}, {}]

    def test_deterministic(self, redactor: Redactor) -> None:
        """The same batch gives the same output, cached or not."""
        batch = [{"m": "call +1 415-555-2671, ssn 536-22-1234"}, "x 10.0.0.1"]
        first = redactor.redact_batch(batch)
        redactor.cache_clear()
        assert redactor.redact_batch(batch) == first == redactor.redact_batch(batch)

    def test_deep_nesting_does_not_recurse_forever(self, redactor: Redactor) -> None:
        """Values nested deeper than MAX_DEPTH are written as (redacted) text."""
        value: object = "bob@x.com"
        for _ in range(100):
            value = [value]
        out, summary = redactor.redact_batch([value])[0]
        assert "bob@x.com" not in repr(out) and summary.entities == {"EMAIL_ADDRESS": 1}


class TestEnvironment:
    def test_patterns_mode_has_no_ner(self, redactor: Redactor) -> None:
        """detection=patterns: ner_available is False and analyzer is a Presidio engine."""
        assert redactor.ner_available is False
        assert redactor.analyzer is not None

    def test_no_socket_opened(self) -> None:
        """Construction and use (full mode) never connect anywhere."""
        connects: list[object] = []

        def hook(event: str, args: tuple[object, ...]) -> None:
            if event in ("socket.connect", "socket.getaddrinfo"):
                connects.append(args)
        sys.addaudithook(hook)
        original = socket.socket.connect
        socket.socket.connect = lambda *a, **k: (_ for _ in ()).throw(OSError("network used"))  # type: ignore
        try:
            r = Redactor(RedactionConfig(detection="full"))
            r.redact_batch(["John Smith bob@x.com https://example.com/x", {"k": "v"}])
        finally:
            socket.socket.connect = original  # type: ignore[method-assign]
        assert connects == []

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
    def test_usable_after_fork(self, redactor: Redactor) -> None:
        """A forked child keeps using the parent's Redactor."""
        redactor.redact_text("warm bob@x.com")
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            ok = redactor.redact_text("child bob@x.com")[0] == "child <EMAIL_ADDRESS>"
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0


_RULE = re.compile(r"(?:key:[a-z0-9]+|pattern:[A-Za-z_-]+|presidio:[A-Za-z]+|ner:[A-Z_]+)")


class TestSummaryVocabulary:
    def test_rules_never_carry_data_from_keys(self, redactor: Redactor) -> None:
        """Secret keys holding an e-mail or a card number are reported as ``key:password`` / ``key:token``, and the PII
        in the keys themselves is redacted too (``password_alice@example.com`` is an address as a whole)."""
        (out, summary), = redactor.redact_batch([{"creds": {"password_alice@example.com": "x",
                                                            "token-4111111111111111": "y", "pwd.4111111111111111": 1}}])
        assert out == {"creds": {"<EMAIL_ADDRESS>": "<SECRET>", "token-<CREDIT_CARD>": "<SECRET>",
                                 "pwd.<CREDIT_CARD>": "<SECRET>"}}
        assert summary.rules == {"key:password", "key:token", "key:pwd", "presidio:EmailRecognizer",
                                 "pattern:CREDIT_CARD"}

    @given(st.sampled_from(["password", "token", "first_name", "city", "msg"]),
           st.sampled_from(["alice@example.com", "4111111111111111", "536-22-1234", "10.1.2.3", "x"]),
           st.sampled_from(["_", "-", ".", ""]))
    @settings(max_examples=60, deadline=None)
    def test_every_rule_is_from_the_vocabulary(self, name: str, data: str, sep: str) -> None:
        """Whatever a key holds, every rule id in the summary is a fixed name, and the data is not in the output."""
        (out, summary), = _REDACTOR.redact_batch([{f"{name}{sep}{data}": data, "m": f"{name}={data}"}])
        assert all(_RULE.fullmatch(rule) for rule in summary.rules), summary.rules
        assert data == "x" or data not in json.dumps(out)


class TestPersonalKeys:
    def test_values_under_personal_keys(self, redactor: Redactor) -> None:
        """first_name, last_name, city, dob and phone values are replaced as their entity whatever they look like;
        ``name`` only when it holds a full name; booleans and empty markers stay."""
        (out, summary), = redactor.redact_batch([{
            "first_name": "Alice", "last_name": "Johnson", "city": "Berlin", "dob": "1990-01-01", "phone": 4155552671,
            "name": "orders-queue", "user": {"name": "Alice Johnson"}, "mobile": True, "email": "-"}])
        assert out == {"first_name": "<PERSON>", "last_name": "<PERSON>", "city": "<LOCATION>",
                       "dob": "<DATE_OF_BIRTH>", "phone": "<PHONE_NUMBER>", "name": "orders-queue",
                       "user": {"name": "<PERSON>"}, "mobile": True, "email": "-"}
        assert summary.rules == {"key:firstname", "key:lastname", "key:city", "key:dob", "key:phone", "key:name"}

    def test_counts_under_entity_names_stay(self, redactor: Redactor) -> None:
        """Entity type names are labels, not personal keys (summary and audit counts, operator settings), and a number
        too short for the key's entity stays (``phone=2``); long enough numbers under personal keys are replaced."""
        counts = {"entities": {"EMAIL_ADDRESS": 1, "PHONE_NUMBER": 2, "CREDIT_CARD": 30, "DATE_OF_BIRTH": 4,
                               "US_SSN": 1, "IBAN_CODE": 12}}
        labels = {"operations": {"EMAIL_ADDRESS:replace": 1}, "operators": "CREDIT_CARD=mask,PHONE_NUMBER=redact"}
        (out, summary), (text, _), (same, _) = redactor.redact_batch(
            [counts, "redacted EMAIL_ADDRESS=3 PHONE_NUMBER=12 phone=2", labels])
        assert out == counts and same == labels and not summary
        assert text == "redacted EMAIL_ADDRESS=3 PHONE_NUMBER=12 phone=2"
        assert redactor.redact_batch([{"phone": "4155552671", "zip": 10115, "card": "4111111111111111"}])[0][0] == {
            "phone": "<PHONE_NUMBER>", "zip": "<LOCATION>", "card": "<CREDIT_CARD>"}

    def test_operator_of_the_entity_applies(self) -> None:
        """The value is operated on as the key's entity type (here PERSON masked)."""
        r = Redactor(RedactionConfig(detection="patterns", operators={"PERSON": "mask"}))
        assert r.redact_batch([{"surname": "Johnson"}])[0][0] == {"surname": "*****on"}

    def test_context_hint_is_not_a_key(self, redactor: Redactor) -> None:
        """A key that only gives context (``cellular_state`` → phone) does not make its value a phone number."""
        assert redactor.redact_batch([{"cellular_state": "on", "telemetry": "ok"}])[0][0] == {
            "cellular_state": "on", "telemetry": "ok"}

    def test_name_value_pairs_in_lists(self, redactor: Redactor) -> None:
        """A list of ``(name, value)`` pairs (headers as tuples, ASGI byte pairs) is read like a dict: secret and
        personal names replace their values; other pairs and other lists are detected as usual."""
        (out, summary), = redactor.redact_batch([{"headers": [("X-Api-Key", "plainkey"), (b"cookie", b"sid=1"),
                                                              ("Accept", "text/html"), ["city", "Berlin"]],
                                                  "pairs": [("a", "b@example.com"), ("tokens", 3)], "one": ["pw"]}])
        assert out == {"headers": [["X-Api-Key", "<SECRET>"], ["cookie", "<SECRET>"], ["Accept", "text/html"],
                                   ["city", "<LOCATION>"]],
                       "pairs": [["a", "<EMAIL_ADDRESS>"], ["tokens", 3]], "one": ["pw"]}
        assert summary.rules == {"key:xapikey", "key:cookie", "key:city", "presidio:EmailRecognizer"}

    def test_json_in_a_message(self, redactor: Redactor) -> None:
        """JSON embedded in a message goes through the key names too."""
        out, _ = redactor.redact_text('body={"name":"Alice Johnson","city":"Paris","password":"x"}')
        assert out == 'body={"name":"<PERSON>","city":"<LOCATION>","password":"<SECRET>"}'


class TestKeyTierSettings:
    def test_on_whatever_entities_select(self) -> None:
        """entities=EMAIL_ADDRESS keeps the key-name tier: password and first_name values are still replaced."""
        r = Redactor(RedactionConfig(detection="patterns", entities={"EMAIL_ADDRESS"}))
        (out, _), (text, _) = r.redact_batch([{"password": "x", "first_name": "Alice", "ip": "10.1.2.3"},
                                              "mail a@example.com password=hunter2"])
        assert out == {"password": "<SECRET>", "first_name": "<PERSON>", "ip": "10.1.2.3"}
        assert text == "mail <EMAIL_ADDRESS> password=<SECRET>"

    def test_off_when_disabled(self) -> None:
        """key_names=False: keys no longer decide anything."""
        r = Redactor(RedactionConfig(detection="patterns", key_names=False))
        assert r.redact_batch([{"password": "x", "first_name": "Alice"}])[0][0] == {"password": "x",
                                                                                   "first_name": "Alice"}

    def test_raw_lines_with_personal_keys_are_candidates(self, redactor: Redactor) -> None:
        """The agent's line gate opens for a personal key (as a JSON key or in text), not for longer look-alikes."""
        lines = [b'{"first_name": "Alice"}', b'{"msg": "name=John Smith"}', b'{"hostname": "web-1", "pod_name": "x"}',
                 b'{"msg": "GET /x", "service.name": "shop"}']
        assert redactor.lines_need_redaction(lines) == [True, True, False, False]


_REDACTOR = Redactor(RedactionConfig(detection="patterns"))
