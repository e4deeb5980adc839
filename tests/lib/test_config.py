"""Configuration: every option validated once; a wrong value fails with an error naming what to fix, never open."""

from __future__ import annotations

import re

import pytest

from presidio_logshield.config import (
    ENTITY_TYPES,
    ConfigError,
    load_handler_config,
    load_redaction_config,
    split_top_level,
)


class TestEntityNames:
    @pytest.mark.parametrize(("value", "suggestion"), [("EMAIL,PHONE", "EMAIL_ADDRESS"), ("EMAIL_ADRESS", "EMAIL_ADDRESS"),
                                                       ("SSN", "US_SSN"), ("PERSONS", "PERSON")])
    def test_unknown_entity_names_the_variable_and_a_suggestion(self, value: str, suggestion: str) -> None:
        """A typo in LOGSHIELD_ENTITIES is an error naming the variable and the closest known type, not a silent
        configuration that detects nothing."""
        with pytest.raises(ConfigError, match="LOGSHIELD_ENTITIES") as info:
            load_redaction_config(environ={"LOGSHIELD_ENTITIES": value})
        assert f"did you mean {suggestion!r}" in str(info.value)

    def test_unknown_operator_entity(self) -> None:
        """LOGSHIELD_OPERATORS=EMAIL_ADRESS=mask fails naming the variable and EMAIL_ADDRESS."""
        with pytest.raises(ConfigError, match=r"LOGSHIELD_OPERATORS.*'EMAIL_ADRESS'.*did you mean 'EMAIL_ADDRESS'"):
            load_redaction_config(environ={"LOGSHIELD_OPERATORS": "EMAIL_ADRESS=mask"})

    def test_keyword_errors_name_the_keyword(self) -> None:
        """The same check applies to keyword arguments, and the error names the keyword."""
        with pytest.raises(ConfigError, match="keyword argument 'entities'"):
            load_redaction_config(environ={}, entities=["EMAIL_ADDRESS", "CARD"])

    def test_known_names_in_any_case(self) -> None:
        """Every supported type is accepted, in any case."""
        config = load_redaction_config(environ={"LOGSHIELD_ENTITIES": ",".join(ENTITY_TYPES).lower(),
                                                "LOGSHIELD_OPERATORS": "email_address=mask"})
        assert config.entities == ENTITY_TYPES
        assert dict(config.operators) == {"EMAIL_ADDRESS": "mask"}


class TestAllowPatterns:
    def test_commas_inside_braces_brackets_and_groups_do_not_split(self) -> None:
        """``user-\\d{1,3}`` is one pattern; only commas outside {} [] () separate patterns."""
        config = load_redaction_config(environ={"LOGSHIELD_ALLOW_PATTERNS": r"user-\d{1,3}, (a|b,c) ,[,;]x,y\,z"})
        assert config.allow_patterns == (r"user-\d{1,3}", "(a|b,c)", "[,;]x", r"y\,z")
        assert re.fullmatch(config.allow_patterns[0], "user-42")

    def test_json_array(self) -> None:
        """A JSON array gives the patterns as they are (commas and all)."""
        config = load_redaction_config(environ={"LOGSHIELD_ALLOW_PATTERNS": '["a,b", "c{1,2}"]'})
        assert config.allow_patterns == ("a,b", "c{1,2}")

    def test_invalid_regex_names_the_variable(self) -> None:
        """Each pattern is compiled at configuration time; a bad one names the variable."""
        with pytest.raises(ConfigError, match="LOGSHIELD_ALLOW_PATTERNS.*invalid regular expression"):
            load_redaction_config(environ={"LOGSHIELD_ALLOW_PATTERNS": r"ok-\d+,(unclosed"})

    @pytest.mark.parametrize(("text", "parts"), [("", []), ("a", ["a"]), ("a{1,2},b", ["a{1,2}", "b"]),
                                                  ("[]a,],b", ["[]a,]", "b"]), ("[^],],b", ["[^],]", "b"]),
                                                  (r"\(,\)", [r"\(", r"\)"])])
    def test_split_top_level(self, text: str, parts: list[str]) -> None:
        """Escaped brackets do not nest; a ] first in a class is a literal."""
        assert split_top_level(text) == parts

    def test_allow_values_as_json_array(self) -> None:
        """Values holding a comma can be given as a JSON array."""
        config = load_redaction_config(environ={"LOGSHIELD_ALLOW_VALUES": '["Doe, John", "ops@example.com"]'})
        assert config.allow_values == {"Doe, John", "ops@example.com"}


class TestNumbers:
    @pytest.mark.parametrize("value", ["inf", "-inf", "nan", "-1", "0", "1e9"])
    def test_detection_timeout_must_be_finite_and_positive(self, value: str) -> None:
        """A timeout that would overflow a wait, never expire, or is not positive is refused."""
        with pytest.raises(ConfigError, match="LOGSHIELD_DETECTION_TIMEOUT"):
            load_handler_config(environ={"LOGSHIELD_DETECTION_TIMEOUT": value})

    @pytest.mark.parametrize(("name", "value"), [("LOGSHIELD_BLOCK_TIMEOUT", "inf"), ("LOGSHIELD_BLOCK_TIMEOUT", "nan"),
                                                 ("LOGSHIELD_SCORE_THRESHOLD", "nan")])
    def test_other_floats_must_be_finite(self, name: str, value: str) -> None:
        """block_timeout and score_threshold refuse non-finite numbers too."""
        with pytest.raises(ConfigError, match=name):
            load_handler_config(environ={name: value})

    def test_ordinary_values_pass(self) -> None:
        """Finite values in range are taken as given."""
        config = load_handler_config(environ={"LOGSHIELD_DETECTION_TIMEOUT": "2.5", "LOGSHIELD_BLOCK_TIMEOUT": "0"})
        assert (config.detection_timeout, config.block_timeout) == (2.5, 0.0)


class TestKeyMaterial:
    @pytest.mark.parametrize("value", ["hex:", "a", "hex:" + "ab" * 15, "base64:QUFB", "fifteen-bytes!!"])
    def test_short_hmac_keys_are_refused(self, value: str) -> None:
        """A pseudonym key of fewer than 16 bytes (empty hex, one character) is an error naming the variable and
        never echoing the key."""
        with pytest.raises(ConfigError, match="LOGSHIELD_PSEUDONYM_KEY.*at least 16 bytes") as info:
            load_redaction_config(environ={"LOGSHIELD_PSEUDONYM_KEY": value})
        material = value.partition(":")[2] if ":" in value else value
        assert len(material) < 2 or material not in str(info.value)

    def test_short_chain_key_is_refused(self) -> None:
        """The chain's HMAC key has the same floor."""
        with pytest.raises(ConfigError, match="LOGSHIELD_CHAIN_KEY.*at least 16 bytes"):
            load_handler_config(environ={"LOGSHIELD_CHAIN_KEY": "short"})

    @pytest.mark.parametrize("length", [0, 16, 31, 33])
    def test_aes_key_must_be_32_bytes(self, length: int) -> None:
        """The encryption key is exactly 32 bytes."""
        with pytest.raises(ConfigError, match="LOGSHIELD_ENCRYPTION_KEY.*exactly 32 bytes"):
            load_redaction_config(environ={"LOGSHIELD_ENCRYPTION_KEY": "hex:" + "11" * length})

    def test_good_keys(self) -> None:
        """16 bytes for HMAC, 32 for AES, as hex, base64 or text."""
        config = load_handler_config(environ={"LOGSHIELD_PSEUDONYM_KEY": "sixteen-bytes-ok",
                                              "LOGSHIELD_ENCRYPTION_KEY": "hex:" + "22" * 32,
                                              "LOGSHIELD_CHAIN_KEY": "base64:" + "QUJDREVGR0hJSktMTU5PUA=="})
        assert len(config.redaction.pseudonym_key.get_secret_value()) == 16
        assert len(config.redaction.encryption_key.get_secret_value()) == 32
        assert config.chain_key.get_secret_value() == b"ABCDEFGHIJKLMNOP"

    def test_key_id_must_fit_the_token(self) -> None:
        """A key id is written inside ``<TYPE:enc:KID:…>``: one that token could not carry is refused."""
        with pytest.raises(ConfigError, match="LOGSHIELD_ENCRYPTION_KEY_ID"):
            load_redaction_config(environ={"LOGSHIELD_ENCRYPTION_KEY_ID": "key one"})
