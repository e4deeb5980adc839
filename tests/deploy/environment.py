"""Which environment variables each deployed process reads, so a test can check every variable a deploy file sets.

A variable set for a process that never reads it is a silent misconfiguration (a stale name, a typo, a setting
given to the wrong container). The answers come from the code itself: the agent's ``VARIABLES``, the library's
option models, ``python --help-env``, pip's own options, and the source of the SDKs the agent runs.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

__all__ = ["agent_reads", "library_reads", "pip_reads", "python_reads"]

#: Read by every process here: the executable search path, the home directory (``~/.aws``, ``expanduser``) and
#: Python's ``tempfile``.
PROCESS = frozenset({"PATH", "HOME", "TMPDIR"})
#: The third-party code in the agent process whose own environment variables count (AWS_*, AZURE_*, caches).
AGENT_SDKS = ("botocore", "boto3", "azure.identity", "azure.core", "azure.storage.blob", "tldextract")


@functools.cache
def python_variables() -> frozenset[str]:
    """The interpreter's own variables, as ``python --help-env`` lists them (Python >= 3.11)."""
    out = subprocess.run([sys.executable, "--help-env"], capture_output=True, text=True, timeout=60, check=True)
    return frozenset(re.findall(r"^(PYTHON[A-Z0-9_]+)", out.stdout, re.M))


def python_reads(name: str) -> bool:
    return name in PROCESS or name in python_variables()


@functools.cache
def _source_mentions(name: str, packages: tuple[str, ...]) -> bool:
    quoted = (f'"{name}"', f"'{name}'")
    for package in packages:
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.submodule_search_locations, package
        for directory in spec.submodule_search_locations:
            for path in Path(directory).rglob("*.py"):
                text = path.read_text(errors="replace")
                if any(q in text for q in quoted):
                    return True
    return False


def _agent_variables() -> frozenset[str]:
    from logshield_agent.config import VARIABLES

    return frozenset(f"LOGSHIELD_{name}" for name in VARIABLES)


def _library_variables(*, handler: bool) -> frozenset[str]:
    from presidio_logshield.config import HandlerConfig, RedactionConfig

    fields = set(RedactionConfig.model_fields) | (set(HandlerConfig.model_fields) - {"redaction"} if handler else set())
    names = {f"LOGSHIELD_{field.upper()}" for field in fields}
    return frozenset(names | {f"{name}_FILE" for name in names if name.endswith("_KEY")})


def agent_reads(name: str, *, redact: str = "off") -> bool:
    """Does ``logshield-agent`` read ``name``? With a redaction pass it also reads the library's redaction options
    (detection, operators and their keys) — never the handler's (chain key, rotation, audit file)."""
    if name in _agent_variables() or python_reads(name):
        return True
    if name.startswith("LOGSHIELD_"):
        return redact != "off" and name in _library_variables(handler=False)
    return _source_mentions(name, AGENT_SDKS)


def library_reads(name: str) -> bool:
    """Does an application using presidio_logshield's handler read ``name``?"""
    return name in _library_variables(handler=True) or python_reads(name)


@functools.cache
def _pip_options() -> frozenset[str]:
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--help"], capture_output=True, text=True,
                         timeout=120, check=True)
    return frozenset(re.findall(r"--([a-z][a-z0-9-]+)", out.stdout))


def pip_reads(name: str) -> bool:
    """pip reads ``PIP_<OPTION>`` for each of its command-line options (``PIP_NO_CACHE_DIR`` → ``--no-cache-dir``)."""
    if python_reads(name):
        return True
    return name.startswith("PIP_") and name[4:].lower().replace("_", "-") in _pip_options()
