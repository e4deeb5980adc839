"""Configuration: parsed once, errors name the variable, CONFIG.md matches the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from logshield_agent.config import (
    S3_STORAGE_CLASSES,
    VARIABLES,
    AgentConfig,
    ConfigError,
    config_warnings,
    load_config,
    parse_bytes,
    unknown_variables,
)

CONFIG_MD = Path(__file__).resolve().parents[2] / "agent" / "CONFIG.md"


README = Path(__file__).resolve().parents[2] / "README.md"


def render_rows() -> list[str]:
    return [f"| `LOGSHIELD_{name}` | {default} | {meaning} |" for name, (default, meaning) in VARIABLES.items()]


def readme_section() -> str:
    """The agent table as the README embeds it, between its markers."""
    return "\n".join(["<!-- agent-config:start -->", "| Variable | Default | Meaning |", "|---|---|---|",
                      *render_rows(), "<!-- agent-config:end -->"])


def render_config_md() -> str:
    lines = [
        "# logshield-agent configuration",
        "",
        "Environment variables only, parsed once at start-up by `logshield_agent/config.py`. An invalid value stops",
        "the agent with exit code 2 and a message naming the variable. This table is checked against the code by",
        "`tests/agent/test_config.py` (regenerate with `python -m tests.agent.test_config`).",
        "",
        "Credentials come from the standard chains: boto3 (`AWS_*`, incl. `AWS_ENDPOINT_URL`) for S3;",
        "`AZURE_STORAGE_CONNECTION_STRING`, `AZURE_STORAGE_SAS_TOKEN` or DefaultAzureCredential with",
        "`LOGSHIELD_AZURE_ACCOUNT_URL` for Azure. `LOGSHIELD_REDACT` also reads the library's `LOGSHIELD_*`",
        "redaction variables (see the presidio-logshield documentation).",
        "",
        "| Variable | Default | Meaning |",
        "|---|---|---|",
    ]
    lines.extend(render_rows())
    return "\n".join(lines) + "\n"


class TestLoadConfig:
    def test_defaults(self):
        """Only LOGSHIELD_PATHS is required; the documented defaults apply."""
        config = load_config({"LOGSHIELD_PATHS": "/var/log/*.log"})
        assert config.paths == ("/var/log/*.log",)
        assert config.batch_max_bytes == 16 * 1024 * 1024
        assert config.batch_max_age == 60
        assert config.compression == "zstd"
        assert config.redact == "off"
        assert config.http_bind == ("127.0.0.1", 9870)
        assert config.max_line_bytes == 1024 * 1024
        assert config.sink_url.startswith("file://") and config.sink_url.endswith("/.logshield-state/archive")

    def test_frozen(self):
        """The configuration object cannot be changed after parsing."""
        config = load_config({"LOGSHIELD_PATHS": "a"})
        with pytest.raises(Exception):  # noqa: B017
            config.paths = ("b",)

    def test_paths_split_on_commas(self):
        """LOGSHIELD_PATHS is a comma-separated list of globs."""
        assert load_config({"LOGSHIELD_PATHS": " /a/*.log , /b/x.log,"}).paths == ("/a/*.log", "/b/x.log")

    def test_sizes_and_off(self):
        """Byte sizes accept unit suffixes and HTTP_ADDR=off disables the server."""
        config = load_config({"LOGSHIELD_PATHS": "a", "LOGSHIELD_BATCH_MAX_BYTES": "2MiB",
                              "LOGSHIELD_MAX_LINE_BYTES": "64k", "LOGSHIELD_HTTP_ADDR": "off"})
        assert config.batch_max_bytes == 2 * 1024 * 1024
        assert config.max_line_bytes == 64 * 1024
        assert config.http_bind is None
        assert parse_bytes("10") == 10

    @pytest.mark.parametrize(
        ("env", "variable"),
        [
            ({}, "LOGSHIELD_PATHS"),
            ({"LOGSHIELD_PATHS": " , "}, "LOGSHIELD_PATHS"),
            ({"LOGSHIELD_COMPRESSION": "lz4"}, "LOGSHIELD_COMPRESSION"),
            ({"LOGSHIELD_BATCH_MAX_BYTES": "lots"}, "LOGSHIELD_BATCH_MAX_BYTES"),
            ({"LOGSHIELD_BATCH_MAX_AGE": "-1"}, "LOGSHIELD_BATCH_MAX_AGE"),
            ({"LOGSHIELD_SINK": "ftp://host/x"}, "LOGSHIELD_SINK"),
            ({"LOGSHIELD_SINK": "s3://"}, "LOGSHIELD_SINK"),
            ({"LOGSHIELD_REDACT": "yes"}, "LOGSHIELD_REDACT"),
            ({"LOGSHIELD_HTTP_ADDR": "localhost"}, "LOGSHIELD_HTTP_ADDR"),
            ({"LOGSHIELD_SERVICE": "a/b"}, "LOGSHIELD_SERVICE"),
            ({"LOGSHIELD_S3_OBJECT_LOCK_MODE": "forever"}, "LOGSHIELD_S3_OBJECT_LOCK_MODE"),
            ({"LOGSHIELD_AZURE_IMMUTABILITY": "sure"}, "LOGSHIELD_AZURE_IMMUTABILITY"),
            ({"LOGSHIELD_RETENTION_DAYS": "0"}, "LOGSHIELD_RETENTION_DAYS"),
            ({"LOGSHIELD_MAX_LINE_BYTES": "1GiB"}, "LOGSHIELD_MAX_LINE_BYTES"),
            ({"LOGSHIELD_BATCH_MAX_AGE": "inf"}, "LOGSHIELD_BATCH_MAX_AGE"),
            ({"LOGSHIELD_BATCH_MAX_AGE": "nan"}, "LOGSHIELD_BATCH_MAX_AGE"),
            ({"LOGSHIELD_BATCH_MAX_AGE": "1e9"}, "LOGSHIELD_BATCH_MAX_AGE"),
            ({"LOGSHIELD_SHUTDOWN_GRACE": "inf"}, "LOGSHIELD_SHUTDOWN_GRACE"),
            ({"LOGSHIELD_SHUTDOWN_GRACE": "86400"}, "LOGSHIELD_SHUTDOWN_GRACE"),
            ({"LOGSHIELD_ROTATED_GRACE": "inf"}, "LOGSHIELD_ROTATED_GRACE"),
            ({"LOGSHIELD_ROTATED_KEEP_DAYS": "inf"}, "LOGSHIELD_ROTATED_KEEP_DAYS"),
            ({"LOGSHIELD_ALERT_FACTOR": "inf"}, "LOGSHIELD_ALERT_FACTOR"),
            ({"LOGSHIELD_LIVENESS_TIMEOUT": "inf"}, "LOGSHIELD_LIVENESS_TIMEOUT"),
            ({"LOGSHIELD_BATCH_MAX_BYTES": "99999999999999999999GiB"}, "LOGSHIELD_BATCH_MAX_BYTES"),
            ({"LOGSHIELD_BATCH_MAX_BYTES": "2GiB"}, "LOGSHIELD_BATCH_MAX_BYTES"),
            ({"LOGSHIELD_ROTATED_KEEP_BYTES": "99999999999999999999GiB"}, "LOGSHIELD_ROTATED_KEEP_BYTES"),
            ({"LOGSHIELD_MULTIPART_THRESHOLD": "6GiB"}, "LOGSHIELD_MULTIPART_THRESHOLD"),
            ({"LOGSHIELD_MULTIPART_PART_SIZE": "4MiB"}, "LOGSHIELD_MULTIPART_PART_SIZE"),
            ({"LOGSHIELD_RETENTION_DAYS": "99999999"}, "LOGSHIELD_RETENTION_DAYS"),
            ({"LOGSHIELD_S3_STORAGE_CLASS": "BOGUS_CLASS"}, "LOGSHIELD_S3_STORAGE_CLASS"),
            ({"LOGSHIELD_S3_STORAGE_CLASS": "standard_ia"}, "LOGSHIELD_S3_STORAGE_CLASS"),
            ({"LOGSHIELD_HTTP_ADDR": "::1:9870"}, "LOGSHIELD_HTTP_ADDR"),
            ({"LOGSHIELD_HTTP_ADDR": "[not-ipv6]:9870"}, "LOGSHIELD_HTTP_ADDR"),
            ({"LOGSHIELD_HTTP_ADDR": "[::1]:99999"}, "LOGSHIELD_HTTP_ADDR"),
        ],
    )
    def test_invalid_value_names_variable(self, env, variable):
        """Every invalid value raises ConfigError naming the LOGSHIELD_* variable."""
        environ = {"LOGSHIELD_PATHS": "/x/*.log", **env}
        if not env:
            environ = {}
        with pytest.raises(ConfigError, match=variable):
            load_config(environ)

    @pytest.mark.parametrize(("addr", "bind"), [
        ("[::1]:9870", ("::1", 9870)), ("[::]:9871", ("::", 9871)), ("0.0.0.0:1", ("0.0.0.0", 1)),
        ("localhost:80", ("localhost", 80)), ("OFF", None),
    ])
    def test_http_addr_forms(self, addr, bind):
        """HTTP_ADDR takes host:port, a bracketed IPv6 literal with a port, or off."""
        assert load_config({"LOGSHIELD_PATHS": "a", "LOGSHIELD_HTTP_ADDR": addr}).http_bind == bind

    def test_storage_class_accepted(self):
        """A real S3 storage class passes validation unchanged."""
        config = load_config({"LOGSHIELD_PATHS": "a", "LOGSHIELD_S3_STORAGE_CLASS": "STANDARD_IA"})
        assert config.s3_storage_class == "STANDARD_IA"

    def test_storage_classes_are_botocores(self):
        """The accepted storage classes are exactly those of the S3 API model in the pinned botocore."""
        import botocore.session

        model = botocore.session.get_session().get_service_model("s3")
        assert set(S3_STORAGE_CLASSES) == set(model.shape_for("StorageClass").enum)

    def test_default_multipart_applies_to_full_batches(self):
        """With the defaults a full batch is uploaded in several parts, each at least S3's 5 MiB minimum."""
        config = load_config({"LOGSHIELD_PATHS": "a"})
        assert config.multipart_threshold <= config.batch_max_bytes
        assert 5 * 1024 * 1024 <= config.multipart_part_size < config.batch_max_bytes

    def test_sinks_default_to_the_documented_multipart_sizes(self):
        """S3Sink and AzureBlobSink built without sizes use the same defaults as the configuration."""
        import inspect

        from logshield_agent.sinks.azure_blob import AzureBlobSink
        from logshield_agent.sinks.s3 import S3Sink

        config = load_config({"LOGSHIELD_PATHS": "a"})
        s3 = inspect.signature(S3Sink).parameters
        azure = inspect.signature(AzureBlobSink).parameters
        assert s3["multipart_threshold"].default == azure["max_single_put_size"].default == config.multipart_threshold
        assert s3["part_size"].default == azure["max_block_size"].default == config.multipart_part_size

    def test_liveness_timeout_derived_or_set(self):
        """/healthz's stall limit outlasts one store request with all its attempts, unless set explicitly."""
        config = load_config({"LOGSHIELD_PATHS": "a"})
        assert config.liveness_after == 5 * (5 + 60) + 60
        quick = load_config({"LOGSHIELD_PATHS": "a", "LOGSHIELD_STORE_MAX_ATTEMPTS": "1",
                             "LOGSHIELD_STORE_READ_TIMEOUT": "1", "LOGSHIELD_STORE_CONNECT_TIMEOUT": "1"})
        assert quick.liveness_after == 62
        slow_poll = load_config({"LOGSHIELD_PATHS": "a", "LOGSHIELD_POLL_INTERVAL": "60",
                                 "LOGSHIELD_STORE_MAX_ATTEMPTS": "1", "LOGSHIELD_STORE_READ_TIMEOUT": "1"})
        assert slow_poll.liveness_after == 600
        assert load_config({"LOGSHIELD_PATHS": "a", "LOGSHIELD_LIVENESS_TIMEOUT": "15"}).liveness_after == 15

    def test_ignores_process_environment(self, monkeypatch):
        """An explicit environ mapping is the only source (no hidden os.environ reads)."""
        monkeypatch.setenv("LOGSHIELD_COMPRESSION", "gzip")
        assert load_config({"LOGSHIELD_PATHS": "a"}).compression == "zstd"


class TestConfigWarnings:
    @pytest.mark.parametrize(("env", "expected"), [
        ({"LOGSHIELD_SINK": "s3://b/p", "LOGSHIELD_RETENTION_DAYS": "30"}, "LOGSHIELD_S3_OBJECT_LOCK_MODE is unset"),
        ({"LOGSHIELD_SINK": "s3://b/p", "LOGSHIELD_S3_OBJECT_LOCK_MODE": "GOVERNANCE"},
         "LOGSHIELD_RETENTION_DAYS is unset"),
        ({"LOGSHIELD_SINK": "azure://c/p", "LOGSHIELD_RETENTION_DAYS": "30"}, "LOGSHIELD_AZURE_IMMUTABILITY=off"),
        ({"LOGSHIELD_SINK": "azure://c/p", "LOGSHIELD_AZURE_IMMUTABILITY": "locked"},
         "LOGSHIELD_RETENTION_DAYS is unset"),
    ])
    def test_retention_without_protection_is_warned(self, env, expected):
        """Retention days without the lock/immutability that applies them (or the reverse) give one warning."""
        (warning,) = config_warnings(load_config({"LOGSHIELD_PATHS": "a", **env}))
        assert expected in warning

    @pytest.mark.parametrize("env", [
        {"LOGSHIELD_SINK": "s3://b/p", "LOGSHIELD_RETENTION_DAYS": "30", "LOGSHIELD_S3_OBJECT_LOCK_MODE": "COMPLIANCE"},
        {"LOGSHIELD_SINK": "azure://c/p", "LOGSHIELD_RETENTION_DAYS": "30", "LOGSHIELD_AZURE_IMMUTABILITY": "unlocked"},
        {"LOGSHIELD_RETENTION_DAYS": "30"},
        {"LOGSHIELD_SINK": "s3://b/p"},
    ])
    def test_coherent_retention_is_quiet(self, env):
        """Retention with its protection, the local sweep, or no retention at all: no warning."""
        assert config_warnings(load_config({"LOGSHIELD_PATHS": "a", **env})) == []


class TestUnknownVariables:
    def test_misspelt_variable_is_named_with_the_closest(self):
        """A LOGSHIELD_* name nobody reads is warned about, with the known name it is closest to, never its value."""
        (warning,) = unknown_variables({"LOGSHIELD_BATCH_MAX_BYTE": "s3cr3t-value", "LOGSHIELD_PATHS": "a"})
        assert "LOGSHIELD_BATCH_MAX_BYTE" in warning and "did you mean LOGSHIELD_BATCH_MAX_BYTES?" in warning
        assert "s3cr3t-value" not in warning

    def test_agent_and_library_variables_are_known(self):
        """The agent's own variables and the library's (read by the redaction pass), key files included: quiet."""
        env = {"LOGSHIELD_PATHS": "a", "LOGSHIELD_SINK": "s3://b", "LOGSHIELD_DETECTION": "patterns",
               "LOGSHIELD_PSEUDONYM_KEY_FILE": "/k", "LOGSHIELD_CHAIN_KEY": "x", "OTHER": "1"}
        assert unknown_variables(env) == []

    def test_unrelated_name_has_no_suggestion(self):
        """A name close to no known one is still warned about, without a guess."""
        (warning,) = unknown_variables({"LOGSHIELD_ZZZ": "1"})
        assert warning == "LOGSHIELD_ZZZ is not a variable logshield reads; it is ignored"


class TestConfigDoc:
    def test_every_field_has_a_variable(self):
        """Every AgentConfig field is documented in VARIABLES and vice versa."""
        assert {name.lower() for name in VARIABLES} == set(AgentConfig.model_fields)

    def test_config_md_is_current(self):
        """agent/CONFIG.md is exactly what VARIABLES renders to."""
        assert CONFIG_MD.read_text() == render_config_md()

    def test_readme_embeds_the_same_table(self):
        """README.md carries the same generated table between its agent-config markers."""
        text = README.read_text()
        start, end = text.index("<!-- agent-config:start -->"), text.index("<!-- agent-config:end -->")
        assert text[start:end + len("<!-- agent-config:end -->")] == readme_section()

    def test_config_md_lists_every_variable(self):
        """Each variable appears once as a table row."""
        rows = re.findall(r"^\| `(LOGSHIELD_[A-Z0-9_]+)` \|", CONFIG_MD.read_text(), re.M)
        assert sorted(rows) == sorted(f"LOGSHIELD_{n}" for n in VARIABLES)


if __name__ == "__main__":  # regenerate: python -m tests.agent.test_config  (writes CONFIG.md and the README table)
    CONFIG_MD.write_text(render_config_md())
    text = README.read_text()
    start, end = text.index("<!-- agent-config:start -->"), text.index("<!-- agent-config:end -->")
    README.write_text(text[:start] + readme_section() + text[end + len("<!-- agent-config:end -->"):])
