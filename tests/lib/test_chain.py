"""Record chains written by the handler: verifiable, and every kind of tampering is caught."""

from __future__ import annotations

import json
import logging

import pytest

from presidio_logshield import PIIRedactingHandler
from presidio_logshield.audit import ChainTip, RecordChain, last_chain_tip, split_sealed, verify_chain
from tests.lib.fakes import FakeRedactor

KEY = b"k" * 32


def write_events(path, n: int, start: int = 0, **options) -> None:
    handler = PIIRedactingHandler(filename=path, redactor=FakeRedactor(), chain_key=KEY, **options)
    logger = logging.getLogger("test.chain")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    for i in range(start, start + n):
        logger.info("event %d for a%d@example.com", i, i)
    logger.removeHandler(handler)
    handler.close()


@pytest.fixture
def chained_lines(tmp_path) -> list[str]:
    path = tmp_path / "app.log"
    write_events(path, 20)
    return path.read_text().splitlines()


class TestRecordChain:
    def test_handler_output_verifies(self, chained_lines):
        """Records carry stream, seq 1..n and a chain value that verifies with the key."""
        docs = [json.loads(line) for line in chained_lines]
        assert [d["seq"] for d in docs] == list(range(1, 21))
        assert docs[0]["stream_start"]["chain"] == "hmac-sha256"
        assert verify_chain(chained_lines, KEY) == []

    def test_wrong_key_fails(self, chained_lines):
        """Without the right key the keyed chain does not verify."""
        assert verify_chain(chained_lines, b"x" * 32)

    @pytest.mark.parametrize("tamper, kind", [
        (lambda ls: ls[:5] + ls[6:], "gap"),
        (lambda ls: ls[:5] + [ls[6], ls[5]] + ls[7:], "reorder"),
        (lambda ls: ls[:5] + [ls[5].replace("event 5", "event 9")] + ls[6:], "mismatch"),
    ])
    def test_tampering_is_reported(self, chained_lines, tamper, kind):
        """Dropping, swapping or editing one line is reported with its kind."""
        problems = verify_chain(tamper(list(chained_lines)), KEY)
        assert kind in {p.kind for p in problems}

    def test_reserialising_a_line_breaks_the_chain(self, chained_lines):
        """The chain covers the line's bytes: the same record written with other spacing does not verify."""
        doc = json.loads(chained_lines[3])
        respaced = json.dumps(doc)  # ", " and ": " separators: same data, other bytes
        problems = verify_chain(chained_lines[:3] + [respaced] + chained_lines[4:], KEY)
        assert [p.kind for p in problems] == ["mismatch"] and problems[0].line == 4

    def test_unkeyed_chain_says_what_it_proves(self):
        """Without a key the first record states the chain detects accidents, not forgery."""
        chain = RecordChain()
        first = chain.seal({"message": "a"})
        start = json.loads(first)["stream_start"]
        assert start["chain"] == "sha256" and "not forgery" in start["note"]
        lines = [first, chain.seal({"message": "b"})]
        assert verify_chain(lines) == []
        assert verify_chain([lines[1]])[0].kind == "gap"

    def test_sealed_line_is_the_json_with_chain_last(self):
        """A sealed line parses as the record plus stream, seq and chain; the chain is its last member."""
        chain = RecordChain(KEY)
        line = chain.seal({"message": "café \udcff"})
        doc = json.loads(line)
        assert list(doc)[-1] == "chain" and doc["seq"] == 1 and doc["chain"] == chain.last
        covered, value = split_sealed(line)
        assert value == chain.last and json.loads(covered) == {k: v for k, v in doc.items() if k != "chain"}

    def test_application_fields_named_like_chain_fields_are_kept(self):
        """An extra called stream or seq is renamed extra_stream / extra_seq, never overwritten; the chain holds."""
        chain = RecordChain(KEY)
        line = chain.seal({"message": "m", "stream": "video-7", "seq": 99})
        doc = json.loads(line)
        assert doc["extra_stream"] == "video-7" and doc["extra_seq"] == 99 and doc["seq"] == 1
        assert list(doc)[-4:] == ["stream", "seq", "stream_start", "chain"]
        assert verify_chain([line], KEY) == []

    def test_fork_starts_a_stream_naming_the_previous(self):
        """After a fork the child's chain is a new stream whose first record names the parent's end."""
        chain = RecordChain()
        chain.seal({"message": "parent"})
        parent = chain.tip
        chain.restart_after_fork()
        doc = json.loads(chain.seal({"message": "child"}))
        assert doc["seq"] == 1 and doc["stream"] != parent.stream
        assert doc["stream_start"]["previous"] == parent.stream and doc["stream_start"]["previous_seq"] == 1
        assert doc["stream_start"]["previous_chain"] == parent.chain


class TestRestart:
    def test_restart_names_the_stream_that_last_wrote_the_file(self, tmp_path):
        """A new handler on an existing file starts a stream naming the previous one's last seq and chain."""
        path = tmp_path / "app.log"
        write_events(path, 5)
        tip = last_chain_tip(path)
        write_events(path, 3, start=5)
        lines = path.read_text().splitlines()
        second = json.loads(lines[5])
        assert second["seq"] == 1 and second["stream_start"]["previous"] == tip.stream
        assert second["stream_start"]["previous_seq"] == 5 and second["stream_start"]["previous_chain"] == tip.chain
        assert verify_chain(lines, KEY) == []

    def test_lost_tail_before_a_restart_is_a_gap(self, tmp_path):
        """Lines removed from the end of the previous stream are reported, although every chain link holds."""
        path = tmp_path / "app.log"
        write_events(path, 5)
        write_events(path, 3, start=5)
        lines = path.read_text().splitlines()
        problems = verify_chain(lines[:3] + lines[5:], KEY)
        assert [p.kind for p in problems] == ["gap"] and "reached seq 5" in problems[0].detail

    def test_restart_after_size_rotation_reads_the_backup(self, tmp_path):
        """When the log was just rotated, the previous stream's end is found in ``app.log.1``."""
        path = tmp_path / "app.log"
        write_events(path, 4)
        path.rename(tmp_path / "app.log.1")
        expected = last_chain_tip(tmp_path / "app.log.1")
        write_events(path, 1)
        start = json.loads(path.read_text().splitlines()[0])["stream_start"]
        assert ChainTip(start["previous"], start["previous_seq"], start["previous_chain"]) == expected

    def test_truncated_last_line_is_skipped(self, tmp_path):
        """A half-written last line does not count: the tip is the last complete sealed record."""
        path = tmp_path / "app.log"
        write_events(path, 3)
        complete = last_chain_tip(path)
        with open(path, "a") as fh:
            fh.write('{"timestamp":"2026-11-24T10:00:00Z","message":"cut of')
        assert last_chain_tip(path) == complete and complete.seq == 3


def _writer_process(template, n: int, *, crash: bool = False, wait: bool = False):
    """Start a real process that writes n records through ``template`` and exits (cleanly, by SIGKILL, or once its
    stdin closes); returns the Popen with its stream id on the first stdout line."""
    import os
    import subprocess
    import sys
    script = "\n".join([
        "import logging, os, signal, sys",
        f"sys.path.insert(0, {os.getcwd()!r})",
        "from presidio_logshield import PIIRedactingHandler",
        "from tests.lib.fakes import FakeRedactor",
        f"h = PIIRedactingHandler(filename={str(template)!r}, redactor=FakeRedactor(), chain_key={KEY!r},",
        "                         asynchronous=False)",
        "log = logging.getLogger('t'); log.addHandler(h); log.propagate = False; log.setLevel(logging.INFO)",
        f"for i in range({n}): log.info('event %d', i)",
        "print(h.chain.stream, flush=True)",
        "sys.stdin.readline()" if wait else "",
        "os.kill(os.getpid(), signal.SIGKILL)" if crash else "",
    ])
    return subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _run(template, n: int, **options) -> str:
    process = _writer_process(template, n, **options)
    out, _ = process.communicate(timeout=60)
    return out.split()[0]


def _records(directory) -> dict[str, list[str]]:
    """Every stream's lines, from every file of the directory."""
    streams: dict[str, list[str]] = {}
    for path in sorted(directory.glob("app-*.log")):
        for line in path.read_text().splitlines():
            streams.setdefault(json.loads(line)["stream"], []).append(line)
    return streams


class TestTemplateRestart:
    def test_restarted_process_names_the_previous_stream_of_its_template(self, tmp_path):
        """app-{pid}.log: the second process writes another file, yet its first record names the first process's
        stream and where it ended; cutting that stream's tail is then reported as a gap."""
        template = tmp_path / "app-{pid}.log"
        first = _run(template, 5)
        second = _run(template, 3)
        streams = _records(tmp_path)
        start = json.loads(streams[second][0])["stream_start"]
        last_of_first = json.loads(streams[first][-1])
        assert (start["previous"], start["previous_seq"]) == (first, 5)
        assert start["previous_chain"] == last_of_first["chain"]
        everything = streams[first] + streams[second]
        assert verify_chain(everything, KEY) == []
        problems = verify_chain(streams[first][:3] + streams[second], KEY)
        assert [p.kind for p in problems] == ["gap"] and "reached seq 5" in problems[0].detail

    def test_killed_process_is_claimed_where_its_file_ends(self, tmp_path):
        """A process killed without closing has recorded no end: the next one reads it from the dead one's file."""
        template = tmp_path / "app-{pid}.log"
        killed = _run(template, 4, crash=True)
        successor = _run(template, 1)
        start = json.loads(_records(tmp_path)[successor][0])["stream_start"]
        assert (start["previous"], start["previous_seq"]) == (killed, 4)

    def test_live_processes_are_not_claimed_and_each_dead_one_once(self, tmp_path):
        """A stream whose process still runs is nobody's predecessor; once dead, the oldest unclaimed stream goes to
        the next new process and the one after it gets the next."""
        template = tmp_path / "app-{pid}.log"
        live = _writer_process(template, 1, wait=True)
        live_stream = live.stdout.readline().strip()
        meanwhile = _run(template, 2)
        live.communicate("\n", timeout=60)
        third = _run(template, 1)
        fourth = _run(template, 1)
        streams = _records(tmp_path)
        previous = {s: json.loads(streams[s][0])["stream_start"]["previous"] for s in (meanwhile, third, fourth)}
        assert previous == {meanwhile: None, third: live_stream, fourth: meanwhile}

    def test_state_is_one_hidden_versioned_file_per_template(self, tmp_path):
        """The state lives beside the logs, hidden from *.log* globs, named after the template, versioned; a newer
        version is left untouched and nothing is claimed from it."""
        from presidio_logshield.audit.streams import state_path
        template = tmp_path / "app-{pid}.log"
        first = _run(template, 1)
        path = state_path(template)
        assert path.name == ".app-{pid}.log.streams.json" and path.parent == tmp_path
        state = json.loads(path.read_text())
        assert state["version"] == 1 and [e["stream"] for e in state["streams"]] == [first]
        assert state["streams"][0]["tip"]["seq"] == 1
        future = json.dumps({"version": 99, "streams": state["streams"]})
        path.write_text(future)
        later = _run(template, 1)
        assert json.loads(_records(tmp_path)[later][0])["stream_start"]["previous"] is None
        assert path.read_text() == future
