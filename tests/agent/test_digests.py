"""Archive digests: what the digest writer records and writes, and what ``verify`` catches (local store)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import pytest
from logshield_agent.audit import DigestKey, DigestWriter, parse_digest, verify_archive
from logshield_agent.audit.digest import parse_digest_key
from logshield_agent.audit.signing import GENERATED_KEY_FILE, KeyError_
from logshield_agent.sinks.keys import parse_key
from logshield_agent.sinks.local import LocalDirSink
from logshield_agent.transforms.compress import compress, decompress

from presidio_logshield import PIIRedactingHandler
from tests.lib.fakes import FakeRedactor

from .conftest import make_pipeline

HOUR = 3600.0
T0 = 1_795_000_000.0 // HOUR * HOUR  # an hour boundary


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def app_logs(directory: Path, n: int, *, start: int = 0, chain_key: bytes | None = None) -> None:
    """Real library records (chained) in a rotating file."""
    handler = PIIRedactingHandler(filename=directory / "app.log", redactor=FakeRedactor(), asynchronous=False,
                                  max_bytes=8000, backup_count=50, chain_key=chain_key)
    logger = logging.getLogger("test.digests")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    for i in range(start, start + n):
        logger.info("order %d paid by user%d@example.com", i, i)
    logger.removeHandler(handler)
    handler.close()


def writer(tmp_path: Path, clock: Clock, sink: LocalDirSink | None = None) -> DigestWriter:
    key = DigestKey.load(key=None, key_file=None, state_dir=tmp_path / "state")
    return DigestWriter(sink or LocalDirSink(tmp_path / "store"), tmp_path / "state", host="testhost", key=key,
                        interval=HOUR, wall=clock)


def ship(tmp_path: Path, digests: DigestWriter, **env: str) -> None:
    make_pipeline(tmp_path, observers=[digests], wall=digests.wall,
                  env={"batch_max_bytes": "8KiB", "max_line_bytes": "1KiB", **env}).run_once()


def digests_in(store: Path) -> list[tuple[str, dict]]:
    sink = LocalDirSink(store)
    found = [(i.key, parse_digest(sink.get(i.key)).doc) for i in sink.list("_digest/host=")]
    return sorted(found, key=lambda kd: kd[1]["seq"])


@pytest.fixture
def archive(tmp_path) -> Path:
    """An archive of three digest periods built by the real pipeline from real library records."""
    (tmp_path / "logs").mkdir()
    clock = Clock(T0 + 10)
    digests = writer(tmp_path, clock)
    app_logs(tmp_path / "logs", 120)
    ship(tmp_path, digests)                    # digest 1: [T0+10, T0+10] at the end of --once
    clock.now = T0 + HOUR + 5
    digests.tick(clock.now)                    # digest 2: the empty rest of the hour
    app_logs(tmp_path / "logs", 80, start=120)
    clock.now = T0 + HOUR + 50
    ship(tmp_path, digests)                    # digest 3
    return tmp_path / "store"


def verify(store: Path, tmp_path: Path, **kwargs):
    public = (tmp_path / "state" / "digest-public-key.pem").read_bytes()
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
        assert [d["seq"] for _, d in digests] == [1, 2, 3]
        listed = [o["key"] for _, d in digests for o in d["objects"]]
        assert sorted(listed) == data_keys(archive) and len(listed) == len(set(listed))
        for (prev_key, _), (_, doc) in zip(digests, digests[1:], strict=False):
            data = (archive / prev_key).read_bytes()
            assert doc["previous"] == {"key": prev_key, "sha256": hashlib.sha256(data).hexdigest()}
        assert verify(archive, tmp_path).ok

    def test_empty_period_still_gets_a_digest(self, archive):
        """An hour without objects has its own digest: silence is on record."""
        _, empty = digests_in(archive)[1]
        assert empty["objects"] == [] and empty["period_start"] < empty["period_end"]

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
        (key, doc), = digests_in(tmp_path / "store")
        entry_line = json.dumps(doc["objects"][0], separators=(",", ":")).encode() + b"\n"
        ledger.write_bytes(entry_line * 2 + b'{"key":"torn')  # replayed twice, then a torn append
        clock.now = T0 + 2
        writer(tmp_path, clock).close(clock.now)
        last = digests_in(tmp_path / "store")[-1][1]
        assert [o["key"] for o in last["objects"]] == [doc["objects"][0]["key"]]

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

        ship(tmp_path, writer(tmp_path, clock, DownSink(tmp_path / "store")))  # the digest put fails at the end
        pending = json.loads((tmp_path / "state" / "digests.json").read_bytes())["pending"]
        assert pending is not None and digests_in(tmp_path / "store") == []
        clock.now = T0 + 500
        writer(tmp_path, clock).tick(clock.now)
        (key, doc), = digests_in(tmp_path / "store")
        assert key == pending["key"] and sorted(o["key"] for o in doc["objects"]) == data_keys(tmp_path / "store")

    def test_lost_state_continues_the_chain_from_the_store(self, archive, tmp_path):
        """Without its state directory the writer finds its newest digest in the store and links to it."""
        for name in ("digests.json", "digest-ledger.jsonl"):
            (tmp_path / "state" / name).unlink(missing_ok=True)
        clock = Clock(T0 + 3 * HOUR)
        writer(tmp_path, clock).close(clock.now)
        digests = digests_in(archive)
        assert digests[-1][1]["seq"] == 4 and digests[-1][1]["previous"]["key"] == digests[-2][0]
        assert verify(archive, tmp_path).ok

    def test_digest_keys_sort_in_time_order(self, archive):
        """Digest names carry host, period end and seq, and sort in chain order."""
        keys = sorted(i.key for i in LocalDirSink(archive).list("_digest/host="))
        assert [parse_digest_key(k)[2] for k in keys] == [1, 2, 3]


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
        assert report.ok and report.counts["digests"] == 3 and report.counts["sealed_records"] == 200

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
        copy = key.replace(f"hour={parts.hour}", "hour=23")
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
        key, doc = digests_in(archive)[0]
        data = (archive / key).read_bytes().replace(doc["objects"][0]["sha256"].encode(), b"0" * 64)
        rewrite(archive, key, data)
        assert "digest-signature" in kinds(verify(archive, tmp_path))

    def test_other_signer(self, archive, tmp_path):
        """Verified against another pinned key, every digest is refused."""
        other = DigestKey.load(key=None, key_file=None, state_dir=tmp_path / "other")
        report = verify_archive(LocalDirSink(archive),
                                public_key=(tmp_path / "other" / "digest-public-key.pem").read_bytes())
        assert "digest-signature" in kinds(report) and other.fingerprint

    def test_archive_without_digests_is_not_intact(self, tmp_path):
        """Objects but no digest at all (digests were off): verify cannot vouch for the archive."""
        (tmp_path / "logs").mkdir()
        app_logs(tmp_path / "logs", 20)
        make_pipeline(tmp_path).run_once()
        assert "no-digests" in kinds(verify_archive(LocalDirSink(tmp_path / "store")))

    def test_unpinned_key_is_a_warning(self, archive):
        """Without --public-key the archive's own key is used and a warning says so."""
        report = verify_archive(LocalDirSink(archive))
        assert report.ok and {w.kind for w in report.warnings} == {"key-not-pinned"}

    def test_keyed_chain_needs_its_key(self, tmp_path):
        """An HMAC record chain verifies with LOGSHIELD_CHAIN_KEY and is reported unverifiable without it."""
        (tmp_path / "logs").mkdir()
        app_logs(tmp_path / "logs", 60, chain_key=b"k" * 32)
        ship(tmp_path, writer(tmp_path, Clock(T0 + 1)))
        assert verify(tmp_path / "store", tmp_path, chain_key=b"k" * 32).ok
        report = verify(tmp_path / "store", tmp_path)
        assert report.ok and "chain-key-missing" in {w.kind for w in report.warnings}
        assert "chain-mismatch" in kinds(verify(tmp_path / "store", tmp_path, chain_key=b"x" * 32))
