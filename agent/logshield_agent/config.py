"""Every ``LOGSHIELD_*`` variable the agent reads, parsed and validated once into a frozen ``AgentConfig``.

``load_config(environ)`` is the only place that looks at the environment; everything inward receives the
frozen object. An invalid value raises ``ConfigError`` whose message names the variable (the CLI prints it
and exits 2). ``agent/CONFIG.md`` is checked against ``VARIABLES`` by a test, so the docs cannot drift.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

__all__ = ["OFF_VALUES", "S3_STORAGE_CLASSES", "VARIABLES", "AgentConfig", "ConfigError", "config_warnings",
           "load_config", "parse_bytes", "unknown_variables"]

PREFIX = "LOGSHIELD_"
MiB = 1024 * 1024
GiB = 1024 * MiB
ALERT_DIMENSIONS = ("volume", "logger", "event", "actor", "entity", "action", "actor_action")
#: What turns the health server off (deploy/docker/healthcheck.py mirrors this; a test keeps them equal).
OFF_VALUES = ("off", "", "none", "false", "0")
#: S3's storage classes (botocore's StorageClass enum; a test keeps them equal to the pinned botocore's model).
S3_STORAGE_CLASSES = (
    "STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER", "DEEP_ARCHIVE",
    "OUTPOSTS", "GLACIER_IR", "SNOW", "EXPRESS_ONEZONE", "FSX_OPENZFS", "FSX_ONTAP", "AWS_BACKUP_WARM",
    "AWS_BACKUP_LOW_COST_WARM",
)

#: name (without prefix) -> (default as documented, meaning). The single source for CONFIG.md.
VARIABLES: dict[str, tuple[str, str]] = {
    "PATHS": ("(required)", "Comma-separated glob patterns of log files to tail, e.g. `/var/log/app/*.log*`."),
    "EXCLUDE": ("`*.gz,*.zst,*.bz2,*.xz,*.zip`", "Comma-separated globs of files `PATHS` matches but that are not "
                "tailed: a pattern without `/` is matched against the file name, one with `/` against the whole "
                "path; empty excludes nothing. Files whose first bytes are gzip, zstd, bzip2, xz or zip magic are "
                "skipped whatever their name (logged once per file, counted in /metrics)."),
    "SINK": ("`file://<state dir>/archive`", "Where objects go: `file:///dir`, `s3://bucket/prefix`, "
             "`azure://container/prefix`."),
    "STATE_DIR": ("`./.logshield-state`", "Directory for checkpoints (`checkpoints.json`), digest and alert state. "
                  "One agent per state directory (it holds a lock on `agent.lock`; a second one exits 2). Use a "
                  "persistent volume, e.g. `/var/lib/logshield`, in production."),
    "BATCH_MAX_BYTES": ("`16MiB`", "Uncompressed size at which a batch is cut (bytes; suffixes KiB/MiB/GiB/K/M/G; "
                        "1KiB to 1GiB)."),
    "BATCH_MAX_AGE": ("`60`", "Seconds after its first line at which a batch is shipped even if not full (at most "
                      "86400)."),
    "COMPRESSION": ("`zstd`", "Object compression: `zstd`, `gzip` or `none` (deterministic in every case)."),
    "REDACT": ("`off`", "Redaction pass before upload: `off`, `patterns` or `full` (loads Presidio)."),
    "SERVICE": ("derived from the file name, else `app`", "`service=` partition of object keys."),
    "HOST": ("`socket.gethostname()`", "`host=` partition of object keys."),
    "HTTP_ADDR": ("`127.0.0.1:9870`", "Address of /healthz, /readyz, /metrics: `host:port`, IPv6 in brackets "
                  "(`[::1]:9870`; `[::]:9870` also accepts IPv4); `off` disables the server."),
    "LIVENESS_TIMEOUT": ("`STORE_MAX_ATTEMPTS` × (`STORE_CONNECT_TIMEOUT` + `STORE_READ_TIMEOUT`) + 60, at least "
                         "60 and 10 × `POLL_INTERVAL`", "Seconds without a pipeline loop iteration after which "
                         "/healthz answers 503, so a liveness probe restarts a stuck agent. The default outlasts "
                         "the longest store request the loop itself makes (a digest upload with all its retries)."),
    "MAX_LINE_BYTES": ("`1MiB`", "Longest record (newline included); longer lines are shipped in pieces, each "
                       "non-final piece ending with `…[logshield: line continues]`."),
    "POLL_INTERVAL": ("`1.0`", "Seconds between scans for new data (file-change notifications wake it sooner)."),
    "SHUTDOWN_GRACE": ("`10`", "Seconds allowed on SIGTERM/SIGINT to ship the open batches and write the last "
                       "digest (at most 3600); the agent exits at the latest 1 s after it, whatever the store does "
                       "(unshipped data stays in the files)."),
    "ROTATED_RETENTION": ("`keep`", "`delete`: remove rotated files once fully shipped and unchanged for "
                          "`ROTATED_GRACE`; `keep`: leave them, subject to `ROTATED_KEEP_*`."),
    "ROTATED_KEEP_DAYS": ("unset", "With `keep`: delete fully shipped rotated files older than this many days."),
    "ROTATED_KEEP_BYTES": ("unset", "With `keep`: delete the oldest fully shipped rotated files while their "
                           "total size exceeds this."),
    "ROTATED_GRACE": ("`300`", "Seconds a rotated, fully shipped file must be unchanged before it may be deleted."),
    "ROTATED_SETTLE": ("`5`", "Seconds a rotated or deleted file must be unchanged before its unterminated last "
                       "line is shipped as a record (an application may still finish it through its old handle) "
                       "and a deleted file is let go; also how long a file shorter than 64 bytes waits before it "
                       "is identified by what it has."),
    "RETENTION_DAYS": ("unset", "Per-object retention: the retain-until date of S3 Object Lock (needs "
                       "`S3_OBJECT_LOCK_MODE`) or of the Azure immutability policy (needs `AZURE_IMMUTABILITY`), "
                       "and the expiry `retention apply` installs; for the local sink the sweep deletes objects "
                       "once expired. Without the lock/immutability setting objects are not protected: `check` and "
                       "start-up warn."),
    "S3_SSE": ("`none`", "S3 server-side encryption: `none`, `AES256` or `aws:kms`."),
    "S3_KMS_KEY_ID": ("unset", "KMS key for `aws:kms`."),
    "S3_STORAGE_CLASS": ("unset", "S3 storage class, one of S3's own names, e.g. `STANDARD_IA` (checked at start)."),
    "S3_OBJECT_LOCK_MODE": ("unset", "`GOVERNANCE` or `COMPLIANCE`: lock each object until its retain-until."),
    "MULTIPART_THRESHOLD": ("`8MiB`", "Objects (compressed) at least this big are uploaded in parts (S3 multipart, "
                            "Azure blocks); at most 5GiB."),
    "MULTIPART_PART_SIZE": ("`8MiB`", "Size of each part (S3: 5MiB to 5GiB) or block (Azure)."),
    "STORE_MAX_ATTEMPTS": ("`5`", "Attempts the cloud SDK makes per request (its own backoff with jitter in between) "
                           "before the agent backs off and retries the batch later."),
    "STORE_CONNECT_TIMEOUT": ("`5`", "Seconds to connect to the store."),
    "STORE_READ_TIMEOUT": ("`60`", "Seconds to wait for the store's answer."),
    "AZURE_ACCOUNT_URL": ("unset", "Blob account URL for DefaultAzureCredential / SAS token auth."),
    "AZURE_ACCESS_TIER": ("unset", "Blob access tier: `Hot`, `Cool`, `Cold` or `Archive`."),
    "AZURE_IMMUTABILITY": ("`off`", "Per-blob immutability policy: `off`, `unlocked` or `locked`."),
    "DIGEST": ("`on`", "`on`: record every shipped object and write a signed, chained digest under "
               "`<prefix>/_digest/` at start-up, each interval, at shutdown and after `--once`; `off`: no digests."),
    "DIGEST_INTERVAL": ("`3600`", "Seconds per digest period, aligned to the clock (an empty period still gets one)."),
    "DIGEST_KEY": ("unset", "Ed25519 private key for digests: PEM, or base64 of the 32 raw bytes."),
    "DIGEST_KEY_FILE": ("unset", "File holding that key. With neither, a key is created once in the state dir "
                        "(`digest-signing-key.pem`, mode 0600) and its public half written beside it."),
    "UPLOAD_CONCURRENCY": ("`2`", "Batches uploaded at once (from different files; one file's batches go one at a "
                           "time, in order). Memory: about `UPLOAD_CONCURRENCY + 1` batches."),
    "ALERTS": ("`on`", "Anomaly alerts on the shipped records (rates per logger/event, actor, redacted entity type, "
               "audit action); `off` turns them off."),
    "ALERT_DESTINATIONS": ("`stderr,store`", "Comma-separated: `stderr` (a JSON line), `store` (`<prefix>/_alerts/"
                           "dt=YYYY-MM-DD/<id>.<revision>.json` in the sink), `file:///path` (JSON lines appended), "
                           "`http(s)://…` (POST with retries). Each gets every event of an incident."),
    "ALERT_WINDOW": ("`60`", "Seconds of event time per counting window (aligned to the clock)."),
    "ALERT_FACTOR": ("`5`", "A window alerts when its count is more than this many times the key's baseline…"),
    "ALERT_FLOOR": ("`100`", "…and at least this count. Per dimension too: `100,entity=20,actor=300` (dimensions: "
                    "`volume`, `logger`, `event`, `actor`, `entity`, `action`, `actor_action`)."),
    "ALERT_DIMENSIONS": ("all", "Comma-separated dimensions to rate (fewer dimensions, less work per line)."),
    "ALERT_WARMUP": ("`600`", "Seconds of event time after the first record (without learned baselines) during which "
                     "nothing alerts."),
    "ALERT_BASELINE_WINDOWS": ("`30`", "Memory of the baseline: an exponentially weighted mean over about this many "
                               "windows in which the key occurred."),
    "ALERT_LATENESS": ("2 × `BATCH_MAX_AGE`, at least `120`", "Seconds a window stays open for records still on "
                       "their way (batches ship up to `BATCH_MAX_AGE` late); later ones are not rated (counted in "
                       "/metrics)."),
    "ALERT_COOLDOWN": ("`120`", "Quiet seconds that end an incident: anomalous windows closer than this are one "
                       "incident — alerted when its first window closes, closed with its final counts."),
    "ALERT_MAX_KEYS": ("`5000`", "Keys remembered per dimension (least recently seen forgotten first; counted in "
                       "/metrics)."),
    "ALERT_WEBHOOK_TOKEN": ("unset", "Sent as `Authorization: Bearer <token>` to `http(s)://` destinations."),
    "ALERT_WEBHOOK_TOKEN_FILE": ("unset", "File holding that token."),
}

_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": MiB, "g": 1024 * MiB, "t": 1024 * 1024 * MiB}


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the variable."""


def parse_bytes(value: Any) -> Any:
    """``"16MiB"`` → 16777216; integers pass through; anything else is left for pydantic to reject."""
    if isinstance(value, str):
        match = _SIZE.match(value)
        if not match:
            raise ValueError(f"not a byte size: {value!r} (use e.g. 1048576, 512KiB, 16MiB)")
        unit = (match.group(2) or "").lower()[:1]
        return int(match.group(1)) * _UNITS[unit]
    return value


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


class AgentConfig(BaseSettings):
    """The agent's configuration. Frozen; build it with ``load_config``."""

    # allow_inf_nan=False: "inf" and "nan" are never a sensible number of seconds, days or a factor.
    model_config = SettingsConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    paths: tuple[str, ...]
    exclude: tuple[str, ...] = ("*.gz", "*.zst", "*.bz2", "*.xz", "*.zip")
    sink: str | None = None
    state_dir: Path = Path(".logshield-state")
    batch_max_bytes: int = Field(16 * MiB, ge=1024, le=GiB)
    batch_max_age: float = Field(60.0, gt=0, le=86400)
    compression: Literal["zstd", "gzip", "none"] = "zstd"
    redact: Literal["off", "patterns", "full"] = "off"
    service: str | None = None
    host: str = Field(default_factory=socket.gethostname)
    http_addr: str | None = "127.0.0.1:9870"
    liveness_timeout: float | None = Field(None, gt=0, le=86400)
    max_line_bytes: int = Field(1 * MiB, ge=64)
    poll_interval: float = Field(1.0, gt=0, le=3600)
    shutdown_grace: float = Field(10.0, ge=0, le=3600)
    rotated_retention: Literal["delete", "keep"] = "keep"
    rotated_keep_days: float | None = Field(None, gt=0, le=36500)
    rotated_keep_bytes: int | None = Field(None, ge=0, le=1024 * 1024 * GiB)
    rotated_grace: float = Field(300.0, ge=0, le=30 * 86400)
    rotated_settle: float = Field(5.0, ge=0, le=86400)
    retention_days: int | None = Field(None, ge=1, le=36500)
    s3_sse: Literal["none", "AES256", "aws:kms"] = "none"
    s3_kms_key_id: str | None = None
    s3_storage_class: str | None = None
    s3_object_lock_mode: Literal["GOVERNANCE", "COMPLIANCE"] | None = None
    multipart_threshold: int = Field(8 * MiB, ge=1, le=5 * GiB)
    multipart_part_size: int = Field(8 * MiB, ge=5 * MiB, le=5 * GiB)
    store_max_attempts: int = Field(5, ge=1, le=20)
    store_connect_timeout: float = Field(5.0, gt=0, le=300)
    store_read_timeout: float = Field(60.0, gt=0, le=3600)
    azure_account_url: str | None = None
    azure_access_tier: Literal["Hot", "Cool", "Cold", "Archive"] | None = None
    azure_immutability: Literal["off", "unlocked", "locked"] = "off"
    upload_concurrency: int = Field(2, ge=1, le=64)
    digest: Literal["on", "off"] = "on"
    digest_interval: float = Field(3600.0, ge=60)
    digest_key: SecretStr | None = None
    digest_key_file: Path | None = None
    alerts: Literal["on", "off"] = "on"
    alert_destinations: tuple[str, ...] = ("stderr", "store")
    alert_window: int = Field(60, ge=1, le=86400)
    alert_factor: float = Field(5.0, gt=1)
    alert_floor: tuple[tuple[str, int], ...] = (("*", 100),)
    alert_dimensions: tuple[str, ...] = ALERT_DIMENSIONS
    alert_warmup: int = Field(600, ge=0)
    alert_baseline_windows: int = Field(30, ge=1, le=100_000)
    alert_lateness: int | None = Field(None, ge=0, le=86400)
    alert_cooldown: int = Field(120, ge=0, le=86400)
    alert_max_keys: int = Field(5000, ge=10, le=1_000_000)
    alert_webhook_token: SecretStr | None = None
    alert_webhook_token_file: Path | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        **_: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_config hands over exactly the variables it read; never read os.environ behind its back.
        return (init_settings,)

    @field_validator("paths", mode="before")
    @classmethod
    def _split_paths(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = tuple(part.strip() for part in value.split(",") if part.strip())
        if not value:
            raise ValueError("at least one glob pattern is required")
        return value

    @field_validator("exclude", mode="before")
    @classmethod
    def _split_exclude(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("batch_max_bytes", "max_line_bytes", "rotated_keep_bytes", "multipart_threshold",
                     "multipart_part_size", mode="before")
    @classmethod
    def _sizes(cls, value: Any) -> Any:
        return parse_bytes(_blank_to_none(value))

    @field_validator("sink", "service", "s3_kms_key_id", "s3_storage_class", "s3_object_lock_mode",
                     "azure_account_url", "azure_access_tier", "rotated_keep_days", "retention_days", "digest_key",
                     "liveness_timeout",
                     "digest_key_file", "alert_lateness", "alert_webhook_token", "alert_webhook_token_file",
                     mode="before")
    @classmethod
    def _blank(cls, value: Any) -> Any:
        return _blank_to_none(value)

    @field_validator("http_addr", mode="before")
    @classmethod
    def _http_addr(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in OFF_VALUES:
            return None
        if isinstance(value, str):
            host, sep, port = value.strip().rpartition(":")
            if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
                raise ValueError(f"expected host:port, [ipv6]:port or 'off', not {value!r}")
            if host.startswith("[") or host.endswith("]"):
                try:
                    ipaddress.IPv6Address(host[1:-1] if host.startswith("[") and host.endswith("]") else "-")
                except ValueError:
                    raise ValueError(f"{host!r} is not a bracketed IPv6 address (e.g. [::1]:9870)") from None
            elif ":" in host:
                raise ValueError(f"write an IPv6 address in brackets: [{host}]:{port}")
            return value.strip()
        return value

    @field_validator("s3_storage_class")
    @classmethod
    def _storage_class(cls, value: str | None) -> str | None:
        if value is not None and value not in S3_STORAGE_CLASSES:
            raise ValueError(f"unknown S3 storage class {value!r} (use one of {', '.join(S3_STORAGE_CLASSES)})")
        return value

    @field_validator("sink")
    @classmethod
    def _sink_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in ("file", "s3", "azure"):
            raise ValueError("expected file:///dir, s3://bucket/prefix or azure://container/prefix")
        if not rest.strip("/"):
            raise ValueError(f"{scheme}:// needs a {'directory' if scheme == 'file' else 'bucket/container'}")
        return value

    @field_validator("service", "host")
    @classmethod
    def _partition_value(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9._-]{1,128}", value):
            raise ValueError("use 1-128 characters from A-Z a-z 0-9 . _ - (it becomes part of object keys)")
        return value

    @field_validator("alert_destinations", mode="before")
    @classmethod
    def _destinations(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        found: list[str] = []
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            scheme, sep, rest = item.partition("://")
            if item in ("stderr", "store"):
                pass
            elif sep and scheme == "file":
                if not rest.startswith("/"):
                    raise ValueError("file:// needs an absolute path, e.g. file:///var/log/logshield-alerts.jsonl")
            elif sep and scheme in ("http", "https"):
                authority = rest.split("/", 1)[0].split("?", 1)[0]
                if "@" in authority:
                    raise ValueError(f"{scheme}:// with user:password@ is not supported; put the credential in "
                                     "LOGSHIELD_ALERT_WEBHOOK_TOKEN(_FILE)")
                if not authority or authority.startswith(":"):
                    raise ValueError(f"{scheme}:// needs a host")
            else:
                shown = f"{scheme}://…" if sep else item[:40]
                raise ValueError(f"unknown destination {shown!r} (use stderr, store, file:///path, http(s)://host/path)")
            if item not in found:
                found.append(item)
        if not found:
            raise ValueError("no destination; to turn alerts off set LOGSHIELD_ALERTS=off")
        return tuple(found)

    @field_validator("alert_floor", mode="before")
    @classmethod
    def _floors(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return (("*", value),)
        if not isinstance(value, str):
            return value
        floors: dict[str, int] = {"*": 100}
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            name, sep, number = item.rpartition("=")
            name = name.strip() if sep else "*"
            if name != "*" and name not in ALERT_DIMENSIONS:
                raise ValueError(f"unknown dimension {name!r} (use {', '.join(ALERT_DIMENSIONS)})")
            if not number.strip().isdigit() or int(number) < 1:
                raise ValueError(f"expected a positive count, not {number.strip()!r} (e.g. 100,entity=20)")
            floors[name] = int(number)
        return tuple(floors.items())

    @field_validator("alert_dimensions", mode="before")
    @classmethod
    def _dimensions(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        names = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
        unknown = [name for name in names if name not in ALERT_DIMENSIONS]
        if unknown or not names:
            problem = f"unknown dimension {unknown[0]!r}" if unknown else "no dimension"
            raise ValueError(f"{problem} (use {', '.join(ALERT_DIMENSIONS)}; to turn alerts off set "
                             "LOGSHIELD_ALERTS=off)")
        return names

    @field_validator("alert_webhook_token_file")
    @classmethod
    def _token_file(cls, value: Path | None) -> Path | None:
        if value is not None:
            try:
                token = value.read_text().strip()
            except OSError as exc:
                raise ValueError(f"cannot read {value}: {exc.strerror or type(exc).__name__}") from None
            if not token:
                raise ValueError(f"{value} is empty")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> AgentConfig:
        if self.max_line_bytes > self.batch_max_bytes:
            raise ValueError("LOGSHIELD_MAX_LINE_BYTES must not exceed LOGSHIELD_BATCH_MAX_BYTES")
        if self.digest_key is not None and self.digest_key_file is not None:
            raise ValueError("set LOGSHIELD_DIGEST_KEY or LOGSHIELD_DIGEST_KEY_FILE, not both")
        if self.s3_kms_key_id and self.s3_sse != "aws:kms":
            raise ValueError("LOGSHIELD_S3_KMS_KEY_ID needs LOGSHIELD_S3_SSE=aws:kms")
        if self.alert_webhook_token is not None and self.alert_webhook_token_file is not None:
            raise ValueError("set LOGSHIELD_ALERT_WEBHOOK_TOKEN or LOGSHIELD_ALERT_WEBHOOK_TOKEN_FILE, not both")
        webhook = any(d.startswith(("http://", "https://")) for d in self.alert_destinations)
        if (self.alert_webhook_token is not None or self.alert_webhook_token_file is not None) and not webhook:
            raise ValueError("LOGSHIELD_ALERT_WEBHOOK_TOKEN is set but LOGSHIELD_ALERT_DESTINATIONS has no "
                             "http(s):// destination")
        return self

    @property
    def sink_url(self) -> str:
        """The sink URL, defaulting to ``file://<state dir>/archive``."""
        return self.sink or f"file://{(self.state_dir / 'archive').absolute()}"

    @property
    def http_bind(self) -> tuple[str, int] | None:
        if self.http_addr is None:
            return None
        host, _, port = self.http_addr.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def liveness_after(self) -> float:
        """Seconds without a pipeline loop iteration before /healthz fails (``LOGSHIELD_LIVENESS_TIMEOUT``)."""
        if self.liveness_timeout is not None:
            return self.liveness_timeout
        request = self.store_max_attempts * (self.store_connect_timeout + self.store_read_timeout)
        return max(60.0, 10 * self.poll_interval, request + 60.0)


def config_warnings(config: AgentConfig) -> list[str]:
    """Settings that are valid but probably not what was meant; ``check`` and start-up print each one."""
    found: list[str] = []
    scheme = config.sink_url.partition("://")[0]
    days = config.retention_days
    if scheme == "s3" and days and config.s3_object_lock_mode is None:
        found.append(f"LOGSHIELD_RETENTION_DAYS={days} but LOGSHIELD_S3_OBJECT_LOCK_MODE is unset: objects get no "
                     "per-object retention (anyone allowed to delete can delete them; only a bucket default "
                     "retention, if any, applies). Set LOGSHIELD_S3_OBJECT_LOCK_MODE=GOVERNANCE or COMPLIANCE on a "
                     "bucket with Object Lock; the days still drive the expiry of `retention apply`")
    if scheme == "s3" and config.s3_object_lock_mode and not days:
        found.append(f"LOGSHIELD_S3_OBJECT_LOCK_MODE={config.s3_object_lock_mode} but LOGSHIELD_RETENTION_DAYS is "
                     "unset: no retain-until date is sent, so objects are locked only by a bucket default retention")
    if scheme == "azure" and days and config.azure_immutability == "off":
        found.append(f"LOGSHIELD_RETENTION_DAYS={days} but LOGSHIELD_AZURE_IMMUTABILITY=off: blobs get no "
                     "immutability policy (anyone allowed to delete can delete them). Set "
                     "LOGSHIELD_AZURE_IMMUTABILITY=unlocked or locked on a container with version-level "
                     "immutability; the days still drive the expiry of `retention apply`")
    if scheme == "azure" and config.azure_immutability != "off" and not days:
        found.append(f"LOGSHIELD_AZURE_IMMUTABILITY={config.azure_immutability} but LOGSHIELD_RETENTION_DAYS is "
                     "unset: no immutability policy is set on the blobs")
    return found


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A warning for each ``LOGSHIELD_*`` variable that neither the agent nor the library reads (a misspelt name is
    otherwise silently ignored), with the closest known name when there is one. Names only, never values."""
    import difflib

    from presidio_logshield.config import environment_variables

    known = {PREFIX + name for name in VARIABLES} | environment_variables()
    found = []
    for name in sorted(n for n in environ if n.startswith(PREFIX) and n not in known):
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
        hint = f" (did you mean {close[0]}?)" if close else ""
        found.append(f"{name} is not a variable logshield reads{hint}; it is ignored")
    return found


def load_config(environ: Mapping[str, str] | None = None, **overrides: Any) -> AgentConfig:
    """Read ``LOGSHIELD_*`` from ``environ`` (default ``os.environ``); ``overrides`` win (tests, CLI flags)."""
    import os

    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    for name in VARIABLES:
        value = env.get(PREFIX + name)
        if value is not None:
            raw[name.lower()] = value
    raw.update(overrides)
    try:
        return AgentConfig(**raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else ""
        msg = str(err["msg"]).removeprefix("Value error, ")
        if field:
            problems.append(f"{PREFIX}{field.upper()}: {msg}")
        else:
            problems.append(msg)
    return "invalid configuration: " + "; ".join(problems)
