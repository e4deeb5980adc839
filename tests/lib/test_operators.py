"""Operators: replace, mask, redact, keep, pseudonym (HMAC-SHA256) and encrypt (AES-256-GCM) + reveal."""

from __future__ import annotations

import pytest

from presidio_logshield.config import RedactionConfig
from presidio_logshield.detection import Finding
from presidio_logshield.operators import Operators, apply_findings, reveal_text

KEY = b"k" * 32


def _ops(**kwargs: object) -> Operators:
    return Operators(RedactionConfig(detection="patterns", **kwargs))


class TestOperators:
    def test_replace_is_the_default(self) -> None:
        """Without configuration a value becomes ``<ENTITY>``."""
        assert _ops().apply("EMAIL_ADDRESS", "a@b.io") == "<EMAIL_ADDRESS>"

    def test_mask_keeps_the_last_characters_but_never_of_secrets(self) -> None:
        """mask keeps mask_keep_last characters of PII and nothing of a secret."""
        ops = _ops(default_operator="mask")
        assert ops.apply("CREDIT_CARD", "4111111111111111") == "************1111"
        assert ops.apply("SECRET", "hunter2hunter2") == "********"

    def test_redact_and_keep(self) -> None:
        """redact removes the value; keep leaves it."""
        assert _ops(default_operator="redact").apply("PERSON", "Ann Lee") == ""
        assert _ops(default_operator="keep").apply("PERSON", "Ann Lee") == "Ann Lee"

    def test_pseudonym_is_stable_normalised_and_keyed(self) -> None:
        """Equal values (after normalisation) give equal pseudonyms; another key gives another one."""
        ops = _ops(default_operator="pseudonym", pseudonym_key=b"p" * 32, pseudonym_key_id="k1")
        a = ops.apply("EMAIL_ADDRESS", "Bob@X.com")
        assert a == ops.apply("EMAIL_ADDRESS", "bob@x.com")
        assert a.startswith("<EMAIL_ADDRESS:ps:k1:") and len(a.split(":")[-1]) == 17
        other = _ops(default_operator="pseudonym", pseudonym_key=b"q" * 32, pseudonym_key_id="k1")
        assert other.apply("EMAIL_ADDRESS", "bob@x.com") != a
        assert ops.apply("PHONE_NUMBER", "+1 415-555-2671") == ops.apply("PHONE_NUMBER", "+14155552671")

    def test_encrypt_round_trips_through_reveal(self) -> None:
        """encrypt writes a fresh AES-GCM token each time; reveal_text decrypts tokens of the same key."""
        config = RedactionConfig(detection="patterns", default_operator="encrypt", encryption_key=KEY)
        ops = Operators(config)
        token = ops.apply("EMAIL_ADDRESS", "bob@x.com")
        assert token != ops.apply("EMAIL_ADDRESS", "bob@x.com")
        assert token.startswith(f"<EMAIL_ADDRESS:enc:{config.encryption_kid}:")
        assert reveal_text(f"mail {token} sent", config) == ("mail bob@x.com sent", 1)

    def test_reveal_ignores_other_keys_and_tampering(self) -> None:
        """Tokens of another key id or with a changed ciphertext are left untouched."""
        config = RedactionConfig(detection="patterns", default_operator="encrypt", encryption_key=KEY)
        token = Operators(config).apply("PERSON", "Ann Lee")
        other = RedactionConfig(detection="patterns", encryption_key=b"z" * 32)
        assert reveal_text(token, other) == (token, 0)
        tampered = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
        assert reveal_text(tampered, config) == (tampered, 0)
        swapped = token.replace("<PERSON:", "<LOCATION:")
        assert reveal_text(swapped, config) == (swapped, 0)

    def test_reveal_without_key_refuses(self) -> None:
        """reveal_text needs the encryption key."""
        with pytest.raises(ValueError, match="LOGSHIELD_ENCRYPTION_KEY"):
            reveal_text("x", RedactionConfig(detection="patterns"))

    def test_apply_findings_replaces_right_to_left(self) -> None:
        """Several findings in one text are replaced without shifting each other's offsets."""
        text = "a bob@x.com b 10.0.0.1"
        findings = [Finding(2, 11, "EMAIL_ADDRESS", 1.0, "r"), Finding(14, 22, "IP_ADDRESS", 0.9, "r")]
        assert apply_findings(text, findings, _ops()) == "a <EMAIL_ADDRESS> b <IP_ADDRESS>"
