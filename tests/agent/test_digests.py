"""Archive digests: what the digest writer records and writes, and what ``verify`` catches (local store)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from logshield_agent.audit import DigestKey, DigestWriter, parse_digest, verify_archive
from logshield_agent.audit.digest import encode_digest, parse_digest_key
from logshield_agent.audit.signing import GENERATED_KEY_FILE, KeyError_, public_pem
from logshield_agent.cli import main
from logshield_agent.sinks.keys import parse_key
from logshield_agent.sinks.local import LocalDirSink
from logshield_agent.transforms.compress import compress, decompress

from presidio_logshield import PIIRedactingHandler
from presidio_logshield.audit import RecordChain
from tests.lib.fakes import FakeRedactor

from .conftest import make_pipeline

HOUR = 3600.0
T0 = 1_795_000_000.0 // HOUR * HOUR  # an hour boundary


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def app_logs(directory: Path, n: int, *, start: int = 0, chain_key: bytes | None = None,
             name: str = "app.log") -> None:
    """Real library records (chained) in a rotating file."""
    handler = PIIRedactingHandler(filename=directory / name, redactor=FakeRedactor(), asynchronous=False,
                                  max_bytes=8000, backup_count=50, chain_key=chain_key)
    logger = logging.getLogger("test.digests")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    for i in range(start, start + n):
        logger.info("order %d paid by user%d@example.com", i, i)
    logger.removeHandler(handler)
    handler.close()


def writer(tmp_path: Path, clock: Clock, sink: LocalDirSink | None = None, *, host: str = "testhost",
           state: Path | None = None) -> DigestWriter:
    state = state or tmp_path / "state"
    key = DigestKey.load(key=None, key_file=None, state_dir=state)
    digests = DigestWriter(sink or LocalDirSink(tmp_path / "store"), state, host=host, key=key, interval=HOUR,
                           wall=clock)
    digests.open(clock())  # what the pipeline does when it starts
    return digests


def ship(tmp_path: Path, digests: DigestWriter, **env: str) -> None:
    """One ``--once`` run: ship everything, then the final digest."""
    make_pipeline(tmp_path, digests.sink, observers=[digests], wall=digests.wall,
                  env={"batch_max_bytes": "8KiB", "max_line_bytes": "1KiB", **env}).run_once()


def ship_live(tmp_path: Path, digests: DigestWriter, **env: str) -> None:
    """A running agent: ship what is there, without stopping (no final digest)."""
    pipeline = make_pipeline(tmp_path, digests.sink, observers=[digests], wall=digests.wall,
                             env={"batch_max_bytes": "8KiB", "max_line_bytes": "1KiB", **env})
    for _ in range(200):
        pipeline.step()
        if not any(s.pending is not None or (s.fd is not None and s.read_offset < s.size)
                   for s in pipeline.tailer.streams.values()):
            break
    pipeline.flush(deadline=pipeline.clock() + 5)


def digests_in(store: Path) -> list[tuple[str, dict]]:
    sink = LocalDirSink(store)
    found = [(i.key, parse_digest(sink.get(i.key)).doc) for i in sink.list("_digest/host=")]
    return sorted(found, key=lambda kd: (kd[1]["host"], kd[1]["seq"]))


def at(t: float) -> datetime:
    return datetime.fromtimestamp(t, timezone.utc)


NOW = at(T0 + HOUR + 60)  # "now" for verify: a minute after the archive fixture's last digest


@pytest.fixture
def archive(tmp_path) -> Path:
    """Two runs of the agent over real library records, as ``--once`` leaves them: run 1 ships 120 records; run 2
    starts an hour later (its start digest covers the silence in between), writes the period digest at the hour,
    ships 80 more records and stops. Digests: 1 start, 2 final, 3 start, 4 period (empty), 5 final."""
    (tmp_path / "logs").mkdir()
    clock = Clock(T0 + 10)
    app_logs(tmp_path / "logs", 120)
    ship(tmp_path, writer(tmp_path, clock))
    clock.now = T0 + HOUR - 100
    second = writer(tmp_path, clock)
    clock.now = T0 + HOUR + 5
    second.tick(clock.now)
    app_logs(tmp_path / "logs", 80, start=120)
    clock.now = T0 + HOUR + 50
    ship(tmp_path, second)
    return tmp_path / "store"


@pytest.fixture
def live(tmp_path) -> Path:
    """A running agent: start digest, 120 records listed by the period digest at the hour, then 80 records shipped
    after it (pending: the next digest will list them). The objects' store times follow the agent's clock."""
    (tmp_path / "logs").mkdir()
    clock = Clock(T0 + 10)
    digests = writer(tmp_path, clock)
    app_logs(tmp_path / "logs", 120)
    ship_live(tmp_path, digests)
    stamp(tmp_path / "store", T0 + 20)
    clock.now = T0 + HOUR + 5
    digests.tick(clock.now)
    app_logs(tmp_path / "logs", 80, start=120)
    clock.now = T0 + HOUR + 30
    ship_live(tmp_path, digests)
    stamp(tmp_path / "store", T0 + HOUR + 30, only_after=T0 + HOUR + 60)
    return tmp_path / "store"


def stamp(store: Path, t: float, *, only_after: float | None = None) -> None:
    """Set the store time (mtime) of the data objects — of those newer than ``only_after`` when given."""
    for path in store.rglob("*.ndjson.zst"):
        if only_after is None or path.stat().st_mtime > only_after:
            os.utime(path, (t, t))


def verify(store: Path, tmp_path: Path, **kwargs):
    public = (tmp_path / "state" / "digest-public-key.pem").read_bytes()
    kwargs.setdefault("now", NOW)
    return verify_archive(LocalDirSink(store), public_key=public, **kwargs)


def kinds(report) -> set[str]:
    return {f.kind for f in report.findings}


def data_keys(store: Path) -> list[str]:
    return sorted(i.key for i in LocalDirSink(store).list("service="))


def rewrite(store: Path, key: str, body: bytes) -> None:
    """What an attacker with write access does: replace the object (and its metadata) in place."""
    path = store / key
    os.chmod(path, 0o644)
    path.write_bytes(body)


class TestDigestWriter:
    def test_every_object_is_listed_once_in_a_signed_chain(self, archive, tmp_path):
        """Each shipped object appears in exactly one digest; digests chain by seq and previous hash."""
        digests = digests_in(archive)
        assert [d["seq"] for _, d in digests] == [1, 2, 3, 4, 5]
        listed = [o["key"] for _, d in digests for o in d["objects"]]
        assert sorted(listed) == data_keys(archive) and len(listed) == len(set(listed))
        for (prev_key, _), (_, doc) in zip(digests, digests[1:], strict=False):
            data = (archive / prev_key).read_bytes()
            assert doc["previous"] == {"key": prev_key, "sha256": hashlib.sha256(data).hexdigest()}
        assert verify(archive, tmp_path).ok

    def test_digests_say_why_they_were_written(self, archive):
        """start when the agent starts (before it ships), period at the interval, final when it stops; each names
        the interval."""
        digests = [doc for _, doc in digests_in(archive)]
        assert [d["kind"] for d in digests] == ["start", "final", "start", "period", "final"]
        assert {d["interval"] for d in digests} == {3600}
        assert digests[0]["objects"] == [] and digests[0]["previous"] is None
        assert digests[2]["period_start"] == digests[1]["period_end"]  # the silence between runs is on record

    def test_start_digest_is_stored_before_anything_ships(self, tmp_path):
        """The writer stores its start digest when the pipeline opens it (not when it is made: `check` makes one
        without touching the store), so every object of a run follows a digest of it."""
        (tmp_path / "logs").mkdir()
        key = DigestKey.load(key=None, key_file=None, state_dir=tmp_path / "state")
        made = DigestWriter(LocalDirSink(tmp_path / "store"), tmp_path / "state", host="testhost", key=key,
                            interval=HOUR, wall=Clock(T0 + 1))
        assert digests_in(tmp_path / "store") == []
        made.open(T0 + 1)
        (key, doc), = digests_in(tmp_path / "store")
        assert doc["kind"] == "start" and data_keys(tmp_path / "store") == []

    def test_empty_period_still_gets_a_digest(self, archive):
        """An hour without objects has its own digest: silence is on record."""
        _, empty = digests_in(archive)[3]
        assert empty["kind"] == "period" and empty["objects"] == []
        assert empty["period_start"] < empty["period_end"]

    def test_entries_name_first_and_last_records(self, archive):
        """An entry carries the byte range, line count and the first and last chained record it holds."""
        entries = [o for _, d in digests_in(archive) for o in d["objects"]]
        assert sorted(o["first_record"]["seq"] for o in entries)[0] == 1
        for entry in entries:  # one process, one stream: the records of an object are consecutive
            assert entry["last_record"]["seq"] - entry["first_record"]["seq"] + 1 == entry["lines"]
            assert entry["byte_start"] == 0 and entry["byte_end"] > 0

    def test_crash_replay_does_not_list_an_object_twice(self, tmp_path):
        """The same acknowledged batch offered twice (crash before the checkpoint) is one digest entry."""
        (tmp_path / "logs").mkdir()
        app_logs(tmp_path / "logs", 30)
        clock = Clock(T0 + 1)
        digests = writer(tmp_path, clock)
        ship(tmp_path, digests)
        ledger = digests.ledger_path
        assert ledger.read_bytes() == b""  # written out by the digest at the end of --once
        key, doc = digests_in(tmp_path / "store")[-1]
        entry_line = json.dumps(doc["objects"][0], separators=(",", ":")).encode() + b"\n"
        ledger.write_bytes(entry_line * 2 + b'{"key":"torn')  # replayed twice, then a torn append
        clock.now = T0 + 2
        writer(tmp_path, clock).close(clock.now)
        start, final = (d for _, d in digests_in(tmp_path / "store")[-2:])
        assert [o["key"] for o in start["objects"]] == [doc["objects"][0]["key"]] and final["objects"] == []

    def test_pending_digest_is_rebuilt_byte_for_byte(self, tmp_path):
        """A crash after deciding a digest and before storing it: the restart stores the very same digest."""
        (tmp_path / "logs").mkdir()
        app_logs(tmp_path / "logs", 30)
        clock = Clock(T0 + 1)

        class DownSink(LocalDirSink):
            def put(self, key, *args, **kwargs):
                if key.startswith("_digest/host="):
                    raise OSError("crash")
                return super().put(key, *args, **kwargs)

        ship(tmp_path, writer(tmp_path, clock, DownSink(tmp_path / "store")))  # every digest put fails
        pending = json.loads((tmp_path / "state" / "digests.json").read_bytes())["pending"]
        assert pending is not None and pending["kind"] == "start" and digests_in(tmp_path / "store") == []
        clock.now = T0 + 500
        writer(tmp_path, clock).tick(clock.now)
        (key, doc), (_, restart) = digests_in(tmp_path / "store")
        assert key == pending["key"] and doc["kind"] == "start" and doc["objects"] == []
        assert restart["kind"] == "start"
        assert sorted(o["key"] for o in restart["objects"]) == data_keys(tmp_path / "store")

    def test_lost_state_continues_the_chain_from_the_store(self, archive, tmp_path):
        """Without its state directory the writer finds its newest digest in the store and links to it."""
        for name in ("digests.json", "digest-ledger.jsonl"):
            (tmp_path / "state" / name).unlink(missing_ok=True)
        clock = Clock(T0 + 3 * HOUR)
        writer(tmp_path, clock).close(clock.now)
        digests = digests_in(archive)
        assert [d["seq"] for _, d in digests[-2:]] == [6, 7] and digests[-2][1]["previous"]["key"] == digests[-3][0]
        assert verify(archive, tmp_path, now=at(clock.now)).ok

    def test_digest_keys_sort_in_time_order(self, archive):
        """Digest names carry host, period end and seq, and sort in chain order."""
        keys = sorted(i.key for i in LocalDirSink(archive).list("_digest/host="))
        assert [parse_digest_key(k)[2] for k in keys] == [1, 2, 3, 4, 5]


class TestSigningKey:
    def test_generated_once_and_private(self, tmp_path):
        """Without a configured key one is made in the state dir (0600) and reused on the next start."""
        first = DigestKey.load(key=None, key_file=None, state_dir=tmp_path)
        again = DigestKey.load(key=None, key_file=None, state_dir=tmp_path)
        assert first.fingerprint == again.fingerprint and first.origin == "generated"
        assert (tmp_path / GENERATED_KEY_FILE).stat().st_mode & 0o777 == 0o600

    def test_key_from_env_and_file(self, tmp_path):
        """A PEM or base64 key from the environment or a file signs; the fingerprint follows the key."""
        made = DigestKey.load(key=None, key_file=None, state_dir=tmp_path / "a")
        pem = (tmp_path / "a" / GENERATED_KEY_FILE).read_text()
        assert DigestKey.load(key=pem, key_file=None, state_dir=tmp_path).fingerprint == made.fingerprint
        (tmp_path / "k.pem").write_text(pem)
        assert DigestKey.load(key=None, key_file=tmp_path / "k.pem", state_dir=tmp_path).origin == "file"

    def test_bad_key_names_the_variable_not_the_value(self, tmp_path):
        """A malformed key is an error naming LOGSHIELD_DIGEST_KEY, never echoing it."""
        with pytest.raises(KeyError_, match="LOGSHIELD_DIGEST_KEY") as err:
            DigestKey.load(key="c2VjcmV0LXZhbHVl", key_file=None, state_dir=tmp_path)
        assert "c2VjcmV0" not in str(err.value)


class TestVerifyCatches:
    def test_intact_archive(self, archive, tmp_path):
        """Nothing changed: no finding, and the counts say what was checked."""
        report = verify(archive, tmp_path)
        assert report.ok and report.counts["digests"] == 5 and report.counts["sealed_records"] == 200
        assert report.hosts["testhost"]["newest_kind"] == "final" and not report.counts.get("objects_undigested")

    def test_flipped_byte(self, archive, tmp_path):
        """One byte of one object changed."""
        key = data_keys(archive)[1]
        data = bytearray((archive / key).read_bytes())
        data[len(data) // 2] ^= 0x01
        rewrite(archive, key, bytes(data))
        assert "object-modified" in kinds(verify(archive, tmp_path))

    def test_deleted_object(self, archive, tmp_path):
        """An object removed from the store (from the middle of the stream)."""
        entries = sorted((o for _, d in digests_in(archive) for o in d["objects"]),
                         key=lambda o: o["first_record"]["seq"])
        key = entries[2]["key"]
        (archive / key).unlink()
        report = verify(archive, tmp_path)
        assert "object-missing" in kinds(report) and "chain-gap" in kinds(report)

    def test_dropped_line_recompressed(self, archive, tmp_path):
        """One line removed and the object re-compressed: the hash, the line count and the chain all say so."""
        bodies = {k: decompress((archive / k).read_bytes(), "zstd") for k in data_keys(archive)}
        key = max(bodies, key=lambda k: bodies[k].count(b"\n"))
        lines = bodies[key].splitlines(keepends=True)
        assert len(lines) > 4
        rewrite(archive, key, compress(b"".join(lines[:3] + lines[4:]), "zstd"))
        assert {"object-modified", "lines-removed", "chain-gap"} <= kinds(verify(archive, tmp_path))

    def test_copy_under_new_key(self, archive, tmp_path):
        """An object copied under another key (another hour): in no digest, its bytes already listed."""
        key = data_keys(archive)[0]
        parts = parse_key(key)
        copy = key.replace(f"hour={parts.hour}", f"hour={(int(parts.hour) + 1) % 24:02d}")  # another hour, whatever the clock says
        (archive / copy).parent.mkdir(parents=True, exist_ok=True)
        (archive / copy).write_bytes((archive / key).read_bytes())
        assert "object-added" in kinds(verify(archive, tmp_path))

    def test_deleted_digest(self, archive, tmp_path):
        """The middle digest removed: a hole in the sequence and a broken link."""
        key, _ = digests_in(archive)[1]
        (archive / key).unlink()
        assert {"digest-missing", "digest-chain"} <= kinds(verify(archive, tmp_path))

    def test_reordered_digests(self, archive, tmp_path):
        """Two digests' contents swapped: names no longer match contents and links break."""
        (k1, _), (k2, _) = digests_in(archive)[:2]
        b1, b2 = (archive / k1).read_bytes(), (archive / k2).read_bytes()
        rewrite(archive, k1, b2)
        rewrite(archive, k2, b1)
        assert {"digest-order", "digest-chain"} <= kinds(verify(archive, tmp_path))

    def test_edited_digest(self, archive, tmp_path):
        """A digest edited to hide an object: the signature fails."""
        key, doc = next((k, d) for k, d in digests_in(archive) if d["objects"])
        data = (archive / key).read_bytes().replace(doc["objects"][0]["sha256"].encode(), b"0" * 64)
        rewrite(archive, key, data)
        assert "digest-signature" in kinds(verify(archive, tmp_path))

    def test_other_signer(self, archive, tmp_path):
        """Verified against another pinned key, every digest is refused."""
        other = DigestKey.load(key=None, key_file=None, state_dir=tmp_path / "other")
        report = verify_archive(LocalDirSink(archive), now=NOW,
                                public_key=(tmp_path / "other" / "digest-public-key.pem").read_bytes())
        assert "digest-signature" in kinds(report) and other.fingerprint

    def test_leftover_check_probe_is_named_not_a_finding(self, archive, tmp_path):
        """A probe object `check` could not delete is a warning that says so; any other stray object stays unknown."""
        (archive / "_check").mkdir()
        (archive / "_check" / "testhost-0a1b2c3d").write_bytes(b"probe")
        (archive / "stray.bin").write_bytes(b"x")
        report = verify(archive, tmp_path)
        assert report.ok
        assert {(w.kind, w.key) for w in report.warnings} >= {("check-probe", "_check/testhost-0a1b2c3d"),
                                                             ("unknown-object", "stray.bin")}

    def test_archive_without_digests_is_not_intact(self, tmp_path):
        """Objects but no digest at all (digests were off): verify cannot vouch for the archive."""
        (tmp_path / "logs").mkdir()
        app_logs(tmp_path / "logs", 20)
        make_pipeline(tmp_path).run_once()
        assert "no-digests" in kinds(verify_archive(LocalDirSink(tmp_path / "store"), now=NOW))

    def test_unpinned_key_is_a_warning(self, archive):
        """Without --public-key the archive's own key is used and a warning says so."""
        report = verify_archive(LocalDirSink(archive), now=NOW)
        assert report.ok and {w.kind for w in report.warnings} == {"key-not-pinned", "host-stopped"}

    def test_keyed_chain_needs_its_key(self, tmp_path):
        """An HMAC record chain verifies with LOGSHIELD_CHAIN_KEY and is reported unverifiable without it."""
        (tmp_path / "logs").mkdir()
        app_logs(tmp_path / "logs", 60, chain_key=b"k" * 32)
        ship(tmp_path, writer(tmp_path, Clock(T0 + 1)))
        assert verify(tmp_path / "store", tmp_path, chain_key=b"k" * 32).ok
        report = verify(tmp_path / "store", tmp_path)
        assert report.ok and "chain-key-missing" in {w.kind for w in report.warnings}
        assert report.counts["streams_unverifiable"] == 1
        assert "chain-mismatch" in kinds(verify(tmp_path / "store", tmp_path, chain_key=b"x" * 32))


def entries_of(store: Path) -> list[dict]:
    """Every digest entry, in stream order."""
    return sorted((o for _, d in digests_in(store) for o in d["objects"]), key=lambda o: o["first_record"]["seq"])


def put_object(store: Path, key: str, body: bytes) -> None:
    path = store / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(compress(body, "zstd"))


def fabricated(key_of: str, n: int = 40) -> tuple[str, bytes]:
    """A made-up object beside ``key_of``: a fresh file fingerprint and a new, self-consistent unkeyed stream."""
    chain = RecordChain()
    body = b"".join(chain.seal({"timestamp": "2026-11-18T11:00:00.000000Z", "level": "INFO", "logger": "shop",
                                "message": f"order {i} refunded"}) + b"\n" for i in range(n))
    name = f"{'b' * 12}-{0:016x}-{len(body):016x}.ndjson.zst"
    return key_of.rsplit("/", 1)[0] + "/" + name, body


class TestNothingToVerify:
    def test_missing_archive_is_not_intact(self, tmp_path, capsys):
        """A mistyped or empty archive is a finding, not "0 digests … INTACT"; the command exits 1."""
        report = verify_archive(LocalDirSink(tmp_path / "nonexistent"), now=NOW)
        assert kinds(report) == {"archive-empty"} and not report.ok
        assert main(["verify", f"file://{tmp_path / 'nonexistent'}"]) == 1
        assert "archive-empty" in capsys.readouterr().out

    def test_window_without_a_digest_is_not_intact(self, archive, tmp_path):
        """--since after the newest digest (on an archive that lost an object): no digest covers it, a finding."""
        (archive / entries_of(archive)[1]["key"]).unlink()
        report = verify(archive, tmp_path, since=at(T0 + 30 * 24 * HOUR))
        assert kinds(report) == {"no-digest-in-window"}
        assert "object-missing" in kinds(verify(archive, tmp_path))


class TestUndigestedObjects:
    def test_copy_under_a_fresh_key_is_read(self, live, tmp_path):
        """An object copied under a new file fingerprint after the newest digest is read: its seqs are duplicates."""
        key = entries_of(live)[2]["key"]
        copy = key.rsplit("/", 1)[0] + "/aaaaaaaaaaaa-0000000000000000-0000000000000010.ndjson.zst"
        shutil.copy(live / key, live / copy)
        stamp(live, T0 + HOUR + 40, only_after=T0 + HOUR + 60)
        report = verify(live, tmp_path)
        assert "chain-duplicate" in kinds(report) and copy in {f.key for f in report.findings}

    def test_pending_objects_are_checked_and_fine_until_overdue(self, live, tmp_path):
        """Objects shipped after the newest (period) digest are read — lines and chains — and are pending."""
        report = verify(live, tmp_path)
        assert report.ok, report.findings
        assert report.counts["pending"] == report.counts["objects_undigested"] > 0
        assert report.counts["sealed_records"] == 200

    def test_fabricated_object_after_the_final_digest(self, archive, tmp_path):
        """A made-up object with a valid new chain, stored after the host's final digest: added."""
        key, body = fabricated(entries_of(archive)[-1]["key"])
        put_object(archive, key, body)
        report = verify(archive, tmp_path)
        assert kinds(report) == {"object-added"} and "final digest" in report.findings[0].detail

    def test_overdue_newest_digest(self, live, tmp_path):
        """Hours later with no newer digest: the newest digest is stale and the pending objects undigested."""
        report = verify(live, tmp_path, now=at(T0 + 4 * HOUR))
        assert {"digest-stale", "object-undigested"} <= kinds(report)
        assert verify(live, tmp_path, now=at(T0 + 4 * HOUR), max_digest_age=float("inf")).ok

    def test_deleted_newest_digest_is_seen_once_overdue(self, live, tmp_path):
        """The newest digest deleted: its objects become pending — checked, and findings once a digest is due."""
        digests = writer(tmp_path, Clock(T0 + 2 * HOUR))  # a restart: start digest listing the pending objects
        digests.tick(T0 + 2 * HOUR)
        newest, doc = digests_in(live)[-1]
        assert doc["objects"]
        (live / newest).unlink()
        assert verify(live, tmp_path, now=at(T0 + 2 * HOUR + 60)).ok
        assert {"digest-stale", "object-undigested"} <= kinds(verify(live, tmp_path, now=at(T0 + 5 * HOUR)))

    def test_object_stored_before_a_digest_that_omits_it(self, archive, tmp_path):
        """An unlisted object whose store time is well before later digests: added."""
        key, body = fabricated(entries_of(archive)[0]["key"])
        put_object(archive, key, body)
        os.utime(archive / key, (T0 + 20, T0 + 20))
        report = verify(archive, tmp_path)
        assert "object-added" in kinds(report) and "do not list it" in report.findings[0].detail


class TestHosts:
    @pytest.fixture
    def two_hosts(self, archive, tmp_path) -> Path:
        """The archive plus a second host, web2, with its own agent, state and logs."""
        other = tmp_path / "web2"
        (other / "logs").mkdir(parents=True)
        app_logs(other / "logs", 40)
        digests = writer(other, Clock(T0 + HOUR + 20), LocalDirSink(archive), host="web2")
        make_pipeline(other, LocalDirSink(archive), observers=[digests], wall=digests.wall,
                      env={"host": "web2", "batch_max_bytes": "8KiB", "max_line_bytes": "1KiB"}).run_once()
        return archive

    def test_host_whose_digests_are_deleted(self, two_hosts, tmp_path):
        """web2's whole _digest/host=web2 removed: its objects belong to no chain, a finding."""
        shutil.rmtree(two_hosts / "_digest" / "host=web2")
        report = verify(two_hosts, tmp_path)
        assert kinds(report) == {"no-digests"} and "web2" in report.findings[0].detail

    def test_expected_host_that_is_gone(self, two_hosts, tmp_path):
        """web2 removed entirely (digests and objects): silent, unless it is expected."""
        shutil.rmtree(two_hosts / "_digest" / "host=web2")
        for path in list(two_hosts.glob("service=*/host=web2")):
            shutil.rmtree(path)
        report = verify_archive(LocalDirSink(two_hosts), now=NOW)
        assert report.ok
        report = verify_archive(LocalDirSink(two_hosts), now=NOW, expect_hosts=["testhost", "web2"])
        assert kinds(report) == {"host-missing"}

    def test_both_hosts_verify(self, two_hosts, tmp_path):
        """Two hosts, each its own chain and key, both pinned: intact, and the signers say which key is whose."""
        keys = [(tmp_path / d / "digest-public-key.pem").read_bytes() for d in ("state", "web2/state")]
        report = verify_archive(LocalDirSink(two_hosts), public_keys=keys, now=NOW, expect_hosts=["testhost", "web2"])
        assert report.ok, report.findings
        assert sorted(s["host"] for s in report.signers) == ["testhost", "web2"]
        assert all(s["pinned"] for s in report.signers)


class TestWindow:
    def _drop_first_run(self, archive: Path) -> None:
        for key, doc in digests_in(archive)[:2]:
            for entry in doc["objects"]:
                (archive / entry["key"]).unlink()
            (archive / key).unlink()

    def test_window_start_needs_its_predecessor(self, archive, tmp_path):
        """The first run's digests and objects deleted, then --since 7d: the window's first digest has no
        predecessor, a finding."""
        self._drop_first_run(archive)
        report = verify(archive, tmp_path, since=NOW - timedelta(days=7))
        assert "digest-missing" in kinds(report)

    def test_history_before_the_window_may_be_gone(self, archive, tmp_path):
        """The same deletion with a window that begins after it (retention): the window's first digest follows
        one that is there — intact."""
        self._drop_first_run(archive)
        report = verify(archive, tmp_path, since=at(T0 + HOUR))
        assert report.ok, report.findings


def forge_newest(store: Path, tmp_path: Path) -> bytes:
    """What forge.py does: drop the newest object from the newest digest and the store, re-sign that digest with an
    attacker's key and publish the key beside the real one. Returns the attacker's public key (PEM)."""
    attacker = DigestKey(Ed25519PrivateKey.generate(), "file")
    key, doc = next((k, d) for k, d in reversed(digests_in(store)) if d["objects"])
    victim = max(doc["objects"], key=lambda o: o["last_record"]["seq"])  # the stream's tail: no gap after it
    doc["objects"].remove(victim)
    (store / victim["key"]).unlink()
    doc["public_key"] = attacker.fingerprint
    rewrite(store, key, encode_digest({k: v for k, v in doc.items() if k != "signature"}, attacker.sign))
    pem = public_pem(attacker.public)
    (store / "_digest" / "public-keys" / f"{attacker.fingerprint.split(':')[1]}.pem").write_bytes(pem)
    return pem


class TestSigners:
    def test_signers_are_reported(self, archive, tmp_path):
        """Which key signed which digests: one run of five digests, pinned."""
        report = verify(archive, tmp_path)
        (run,) = report.signers
        assert (run["host"], run["first_seq"], run["last_seq"], run["digests"], run["pinned"]) == (
            "testhost", 1, 5, 5, True)

    def test_key_change_without_pinning_is_a_finding(self, archive, tmp_path):
        """The newest digest re-signed with another key published in the archive: a key change, not silence."""
        forge_newest(archive, tmp_path)
        report = verify_archive(LocalDirSink(archive), now=NOW)
        assert "digest-key-change" in kinds(report)
        assert [s["digests"] for s in report.signers] == [4, 1]

    def test_pinned_key_refuses_the_other_signer(self, archive, tmp_path):
        """With the real key pinned, the re-signed digest is refused."""
        forge_newest(archive, tmp_path)
        assert "digest-signature" in kinds(verify(archive, tmp_path))

    def test_rotation_between_pinned_keys(self, archive, tmp_path):
        """Both keys pinned (a planned rotation): the change is accepted and reported."""
        other = forge_newest(archive, tmp_path)
        report = verify(archive, tmp_path, public_keys=[other])
        assert "digest-key-change" not in kinds(report) and "digest-signature" not in kinds(report)
        assert [(s["first_seq"], s["last_seq"], s["pinned"]) for s in report.signers] == [(1, 4, True),
                                                                                           (5, 5, True)]

    def test_command_takes_several_keys(self, archive, tmp_path, capsys):
        """`verify --public-key A --public-key B` pins both and prints who signed what."""
        other = forge_newest(archive, tmp_path)
        (tmp_path / "other.pem").write_bytes(other)
        code = main(["verify", f"file://{archive}", "--max-digest-age", "off", "--public-key",
                     str(tmp_path / "state" / "digest-public-key.pem"), "--public-key", str(tmp_path / "other.pem")])
        out = capsys.readouterr().out
        assert code == 0 and out.count("signed: host testhost") == 2 and "verdict: INTACT" in out, out


class TestChainKinds:
    def test_unkeyed_streams_with_a_key_given(self, archive, tmp_path):
        """LOGSHIELD_CHAIN_KEY given, streams declaring sha256: checked as sha256 (a warning says they are
        unkeyed) — not chain-mismatch; with require_keyed_chains, a finding."""
        report = verify(archive, tmp_path, chain_key=b"k" * 32)
        assert report.ok, report.findings[:3]
        assert "chain-unkeyed" in {w.kind for w in report.warnings}
        assert "chain-unkeyed" in kinds(verify(archive, tmp_path, chain_key=b"k" * 32, require_keyed_chains=True))

    def test_edit_in_unkeyed_stream_is_caught_with_a_key_given(self, archive, tmp_path):
        """A changed byte is still a mismatch when the verifier holds a key (the stream's own kind is used)."""
        key = entries_of(archive)[1]["key"]
        lines = decompress((archive / key).read_bytes(), "zstd").splitlines(keepends=True)
        lines[3] = lines[3].replace(b"order ", b"ORDER ", 1)
        rewrite(archive, key, compress(b"".join(lines), "zstd"))
        assert "chain-mismatch" in kinds(verify(archive, tmp_path, chain_key=b"k" * 32))

    def test_mixed_keyed_and_unkeyed_streams(self, tmp_path):
        """One archive with an HMAC stream and an unkeyed one: with the key both verify."""
        (tmp_path / "logs").mkdir()
        app_logs(tmp_path / "logs", 40, chain_key=b"k" * 32)
        app_logs(tmp_path / "logs", 40, start=40, name="other.log")
        ship(tmp_path, writer(tmp_path, Clock(T0 + 1)))
        report = verify(tmp_path / "store", tmp_path, chain_key=b"k" * 32)
        assert report.ok, report.findings[:3]


def sealed(chain: RecordChain, n: int, start: int = 0) -> list[bytes]:
    return [chain.seal({"timestamp": "2026-11-18T11:00:00.000000Z", "level": "INFO", "logger": "shop",
                        "message": f"order {i}"}) for i in range(start, start + n)]


def join(objects: dict[str, list[bytes]], chain_key: bytes | None):
    from logshield_agent.audit.chains import ChainJoiner, object_segments

    joiner = ChainJoiner(chain_key, windowed=False)
    issues = []
    for key, lines in objects.items():
        found = object_segments(key, lines, chain_key)
        issues += found.issues
        joiner.add(found)
    return issues + joiner.check(), joiner


class TestChainJoiner:
    def test_plain_links_in_a_keyed_stream(self):
        """An HMAC stream whose tail was re-chained with plain SHA-256 (edited without the key): a finding with
        the key, and without it too — never "unverifiable"."""
        from presidio_logshield.audit.chain import _link, split_sealed

        lines = sealed(RecordChain(b"k" * 32), 10)
        body, chain = split_sealed(lines[4])
        forged, last = [], split_sealed(lines[3])[1]
        for line in lines[4:]:
            body = split_sealed(line)[0].replace(b"order", b"refund")
            last = _link(None, last, body)
            forged.append(body[:-1] + b',"chain":"' + last.encode() + b'"}')
        objects = {"a": lines[:4], "b": forged}
        for key in (b"k" * 32, None):
            issues, _ = join(objects, key)
            assert "chain-mismatch" in {i.kind for i in issues}, key
        assert any("unkeyed SHA-256 link" in i.detail for i in issues)

    def test_keyed_stream_without_the_key_is_unverifiable(self):
        """Without the key an intact HMAC stream is neither a pass nor a failure: unverifiable."""
        issues, joiner = join({"a": sealed(RecordChain(b"k" * 32), 10)}, None)
        assert issues == [] and len(joiner.unverifiable) == 1

    def test_unkeyed_successor_of_a_keyed_stream(self):
        """A stream that continues an HMAC stream but declares an unkeyed chain: a downgrade (also when the key was
        turned off on purpose: the finding says when)."""
        first = RecordChain(b"k" * 32)
        a = sealed(first, 5)
        b = sealed(RecordChain(None, previous=first.tip), 5)
        for key in (b"k" * 32, None):
            issues, _ = join({"a": a, "b": b}, key)
            assert "chain-downgrade" in {i.kind for i in issues}, key
        issues, _ = join({"a": a, "b": sealed(RecordChain(b"k" * 32, previous=first.tip), 5)}, b"k" * 32)
        assert issues == []

    def test_stream_ids_with_escapes_and_non_ascii(self):
        """A stream id that JSON escapes (a quote, a backslash, non-ASCII) is read as the same stream on every line:
        an intact chain passes and an edit inside it is still caught."""
        chain = RecordChain(b"k" * 32)
        chain.stream = 'h"ost\\é:1:2:3'
        lines = sealed(chain, 6)
        assert b'\\"' in lines[0] and b"\\\\" in lines[0]
        issues, joiner = join({"a": lines}, b"k" * 32)
        assert issues == [] and set(joiner.segments) == {chain.stream}
        edited = [*lines[:3], lines[3].replace(b"order", b"refund"), *lines[4:]]
        issues, _ = join({"a": edited}, b"k" * 32)
        assert "chain-mismatch" in {i.kind for i in issues}
