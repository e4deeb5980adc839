"""Steady real traffic raises no alert: the Loghub corpus replayed as library records for two hours."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
from logshield_agent.alerts.fields import hashed

from .traffic import MINUTE, T0, Harness, record, spread

# The shared corpus beside the checkout (…/shared/corpus), as test_precision uses it.
CORPUS = next((p for p in (Path(__file__).resolve().parents[4] / "shared" / "corpus" / "loghub",
                           Path("/work/shared/corpus/loghub")) if p.is_dir()), Path("/work/shared/corpus/loghub"))
HOURS = 2
ACTIONS = ["login", "invoice.read", "invoice.read", "invoice.read", "invoice.update", "user.export"]
ENTITIES = ["EMAIL_ADDRESS", "EMAIL_ADDRESS", "IP_ADDRESS", "IP_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "PERSON"]


def systems() -> dict[str, list[str]]:
    files = sorted(CORPUS.glob("*_2k.log"))
    if len(files) < 16:
        pytest.skip(f"Loghub corpus not found under {CORPUS}")
    return {f.name.removesuffix("_2k.log"): f.read_text(errors="replace").splitlines() for f in files}


def replay(corpus: dict[str, list[str]], minutes: int, *, seed: int = 7) -> dict[str, dict[int, list[bytes]]]:
    """Per system, per minute: its real lines as library records on a steady clock (a slow daily-like swell, noise),
    with actors from a long-tailed population on 70% of lines, redactions on 3% and audit records on 1%."""
    rng = random.Random(seed)
    population = [f"user-{i:04d}" for i in range(300)]
    weights = [1 / (rank + 1) ** 1.1 for rank in range(len(population))]
    out: dict[str, dict[int, list[bytes]]] = {}
    for number, (system, lines) in enumerate(sorted(corpus.items())):
        rate = 20 + 12 * number  # 20 … 200 records a minute
        phase = rng.uniform(0, 2 * math.pi)
        cursor = rng.randrange(len(lines))
        per_minute: dict[int, list[bytes]] = {}
        for minute in range(minutes):
            mean = rate * (1 + 0.3 * math.sin(2 * math.pi * minute / 120 + phase))
            count = max(0, round(rng.gauss(mean, math.sqrt(mean))))
            batch = []
            for t in spread(T0 + minute * MINUTE + rng.random(), MINUTE, count):
                cursor = (cursor + 1) % len(lines)
                actor = rng.choices(population, weights)[0] if rng.random() < 0.7 else None
                roll = rng.random()
                if roll < 0.01:
                    outcome = "failure" if rng.random() < 0.03 else "success"
                    batch.append(record(t, "presidio_logshield.audit", message=f"audit {system}", actor=actor,
                                        audit={"action": rng.choice(ACTIONS), "outcome": outcome}))
                elif roll < 0.04:
                    batch.append(record(t, f"loghub.{system}", message=lines[cursor], actor=actor,
                                        entities={rng.choice(ENTITIES): rng.choice([1, 1, 1, 2])}))
                else:
                    batch.append(record(t, f"loghub.{system}", message=lines[cursor], actor=actor))
            per_minute[minute] = batch
        out[system] = per_minute
    return out


class TestLoghubReplay:
    @pytest.mark.parametrize("batch_minutes", [1, 10])
    def test_steady_traffic_raises_no_alert(self, batch_minutes):
        """Sixteen real systems for two hours, shipped per file every 1 or 10 minutes: no alert at all; a spike
        added afterwards to the same traffic is caught (the detector was live all along)."""
        corpus = systems()
        minutes = HOURS * 60
        traffic = replay(corpus, minutes + 20)
        h = Harness(lateness=max(120, 2 * batch_minutes * MINUTE))
        for start in range(0, minutes, batch_minutes):
            wall = T0 + (start + batch_minutes) * MINUTE + 20
            for system, per_minute in sorted(traffic.items()):
                lines = [line for m in range(start, start + batch_minutes) for line in per_minute[m]]
                h.ship(lines, wall, service=system.lower())
                wall += 0.5
        assert h.alerts == [], [(a["dimension"], a["key"], a["count"], a["baseline"]) for a in h.alerts]
        keys = h.detector.key_counts
        assert keys["logger"] == 17 and keys["volume"] == 16 and keys["actor"] > 250 and keys["entity"] == 5
        assert h.detector.late == 0
        # The same traffic, then a burst of one actor's exports in minute +5: caught.
        spike_minute = minutes + 5
        traffic["HDFS"][spike_minute] += [record(t, "presidio_logshield.audit", actor="user-0042",
                                                 audit={"action": "user.export"})
                                          for t in spread(T0 + spike_minute * MINUTE, MINUTE, 400)]
        for minute in range(minutes, minutes + 20):
            wall = T0 + (minute + 1) * MINUTE + 20
            for system, per_minute in sorted(traffic.items()):
                h.ship(per_minute[minute], wall, service=system.lower())
        h.idle(T0 + (minutes + 40) * MINUTE)
        raised = {(a["dimension"], a["key"]) for a in h.alerts}
        actor = hashed("user-0042")
        assert ("actor", actor) in raised and ("actor_action", f"{actor}|user.export") in raised
