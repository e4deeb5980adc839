"""Shared fixtures for the agent's unit tests: thread-leak guard, config and store helpers."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from logshield_agent.config import AgentConfig, load_config
from logshield_agent.pipeline import Pipeline
from logshield_agent.sinks.keys import parse_key
from logshield_agent.sinks.local import LocalDirSink
from logshield_agent.sources.checkpoint import Checkpointer
from logshield_agent.transforms.compress import decompress


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Every test must stop and join the threads it starts."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2.0
    while True:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not leaked, f"threads leaked: {[t.name for t in leaked]}"


_pipelines: list[Pipeline] = []


@pytest.fixture(autouse=True)
def close_pipelines(no_leaked_threads):
    """Pipelines made by a test are closed (upload threads joined) before the thread-leak check."""
    yield
    while _pipelines:
        _pipelines.pop().close()


class SteppingPipeline(Pipeline):
    """For tests that drive the loop by hand: each ``step`` returns once the uploads it started are finished,
    so a test sees the same order of effects on every run."""

    def step(self, stop=None) -> bool:
        busy = super().step(stop)
        while self._inflight:
            self._harvest(block=True)
        return busy


def agent_config(tmp_path: Path, **env: str) -> AgentConfig:
    base = {
        "LOGSHIELD_PATHS": str(tmp_path / "logs" / "*.log*"),
        "LOGSHIELD_STATE_DIR": str(tmp_path / "state"),
        "LOGSHIELD_SINK": f"file://{tmp_path / 'store'}",
        "LOGSHIELD_HOST": "testhost",
        "LOGSHIELD_HTTP_ADDR": "off",
        "LOGSHIELD_POLL_INTERVAL": "0.05",
        "LOGSHIELD_BATCH_MAX_AGE": "0.01",
        "LOGSHIELD_SHUTDOWN_GRACE": "2",
    }
    base.update({f"LOGSHIELD_{k.upper()}": v for k, v in env.items()})
    return load_config(base)


def make_pipeline(tmp_path: Path, sink=None, **kwargs) -> Pipeline:
    env = kwargs.pop("env", {})
    config = agent_config(tmp_path, **env)
    (tmp_path / "logs").mkdir(exist_ok=True)
    sink = sink or LocalDirSink(tmp_path / "store")
    kwargs.setdefault("settle", 0.0)
    kwargs.setdefault("backoff_base", 0.001)
    kwargs.setdefault("backoff_cap", 0.01)
    pipeline = SteppingPipeline(config, sink, Checkpointer.open(config.state_dir), **kwargs)
    _pipelines.append(pipeline)
    return pipeline


def stored_objects(root: Path) -> dict[str, bytes]:
    """key → decompressed body for every log object in a local store (not digests or alerts)."""
    sink = LocalDirSink(root)
    out = {}
    for info in sink.list():
        if info.key.startswith(("_digest/", "_alerts/")):
            continue
        parts = parse_key(info.key)
        assert parts is not None, info.key
        out[info.key] = decompress(sink.get(info.key), parts.compression)
    return out


def stored_lines(root: Path) -> Counter:
    lines: Counter = Counter()
    for body in stored_objects(root).values():
        lines.update(body.splitlines(keepends=True))
    return lines


def assert_no_overlap(root: Path) -> None:
    """Objects of the same source never cover overlapping byte ranges."""
    ranges: dict[str, list[tuple[int, int]]] = {}
    for key in stored_objects(root):
        parts = parse_key(key)
        ranges.setdefault(parts.fingerprint12, []).append((parts.start, parts.end))
    for fp, spans in ranges.items():
        spans.sort()
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            assert end <= start, f"overlapping objects for {fp}: {spans}"
