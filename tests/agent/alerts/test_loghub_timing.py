"""The 16 Loghub systems replayed with their *real* timestamps (bursts, silences, days-long gaps), one agent per
system shipping each minute as it ends: what alerts, and why.

Unlike ``test_loghub_replay`` (real lines on a smooth synthetic clock), the rates here are the systems' own. Each
line becomes a library record of logger ``loghub.<system>`` at the line's time, so the rated dimensions are the
system's volume and its logger (they alert together). The alerts that remain are real rate anomalies of the corpus,
each explained below; every other system — including Android's and Spark's 800-1,100 lines a minute, Windows' CBS
bursts after a day of near silence, BGL's and HPC's years of sparse lines — raises nothing.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from .loghub_times import PARSERS, timed_lines
from .test_loghub_replay import CORPUS
from .traffic import MINUTE, Harness, record

#: (system, window start) of each incident expected, with the reason; each is raised for volume and logger.
EXPECTED = {
    # The step counter's sync burst: 121 lines in a minute, an hour after the start, against ~22 a minute.
    ("HealthApp", "2017-12-23T23:14:00+00:00"),
    # SSH brute force on LabSZ: bursts of "authentication failure" / "Failed password for root" lines
    # (111-115 a minute against 6-15 between bursts) — what an alert should catch.
    ("OpenSSH", "2017-12-10T09:12:00+00:00"),
    ("OpenSSH", "2017-12-10T10:55:00+00:00"),
    ("OpenSSH", "2017-12-10T11:04:00+00:00"),
    # A ZooKeeper quorum losing its connections: after ~10 lines a minute, 15 minutes of 50-110 a minute of
    # "Connection broken" / "Interrupted while waiting for message" warnings. The climb below the floor is far above
    # the long-horizon level, so it is learned only slowly and the storm alerts when it crosses 100 a minute.
    ("Zookeeper", "2015-07-29T19:29:00+00:00"),
    ("Zookeeper", "2015-07-29T19:33:00+00:00"),
}


def replay(system: str) -> Harness:
    lines = timed_lines(CORPUS / f"{system}_2k.log", system)
    h = Harness()
    minutes: dict[int, list[bytes]] = {}
    for t, line in lines:
        minutes.setdefault(t // MINUTE, []).append(record(t + 0.5, f"loghub.{system}", message=line))
    for minute in sorted(minutes):
        h.ship(minutes[minute], (minute + 1) * MINUTE + 30, service=system.lower())  # shipped as the minute ends
    h.idle((max(minutes) + 60) * MINUTE)
    return h


class TestLoghubRealTiming:
    def test_timestamps_are_parsed(self):
        """Every system's parser reads (nearly) every line: the replay uses the corpus's own timing."""
        files = sorted(Path(CORPUS).glob("*_2k.log"))
        if len(files) < 16:
            pytest.skip(f"Loghub corpus not found under {CORPUS}")
        for path in files:
            system = path.name.removesuffix("_2k.log")
            assert system in PARSERS
            assert len(timed_lines(path, system)) >= 1850, system  # BGL: 143 continuation lines without a time

    def test_only_the_explained_incidents_alert(self):
        """Replayed live, the 16 systems raise exactly the incidents listed (volume and logger each), nothing
        else; none of their records is late."""
        if len(list(Path(CORPUS).glob("*_2k.log"))) < 16:
            pytest.skip(f"Loghub corpus not found under {CORPUS}")
        raised: Counter[tuple[str, str]] = Counter()
        for system in sorted(PARSERS):
            h = replay(system)
            assert h.detector.late == 0, system
            for alert in h.alerts:
                assert alert["state"] == "closed" and alert["dimension"] in ("volume", "logger"), alert
                raised[(system, alert["window_start"])] += 1
        assert set(raised) == EXPECTED, sorted(set(raised) ^ EXPECTED)
        assert set(raised.values()) == {2}  # each incident seen by volume and by logger
