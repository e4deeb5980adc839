"""The README's library configuration table documents every option."""

from __future__ import annotations

import re
from pathlib import Path

from presidio_logshield.config import HandlerConfig, RedactionConfig

README = Path(__file__).resolve().parents[2] / "README.md"


class TestReadme:
    def test_every_library_option_is_in_the_table(self):
        """Each RedactionConfig / HandlerConfig field appears as a LOGSHIELD_<NAME> row of the library table."""
        text = README.read_text()
        table = text[text.index("### Library"):text.index("### Agent")]
        documented = set(re.findall(r"`LOGSHIELD_([A-Z0-9_]+?)(?:\[_FILE\])?`", table))
        options = {name.upper() for name in (*RedactionConfig.model_fields, *HandlerConfig.model_fields)}
        options -= {"REDACTION"}  # the nested config, not an option
        assert options - documented == set()
