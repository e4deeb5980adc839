"""The rate detector through the alert observer: the spikes users asked about, and what must not look like one."""

from __future__ import annotations

import json

from logshield_agent.alerts.fields import hashed

from .traffic import MINUTE, T0, Harness, minutes_of, record, spread, steady

HOUR = 60 * MINUTE


def only(alerts: list[dict], **fields) -> dict:
    """The single alert matching ``fields`` (and fail when there are others)."""
    assert len(alerts) == 1, [(a["dimension"], a["key"], a["count"]) for a in alerts]
    (alert,) = alerts
    for name, value in fields.items():
        assert alert[name] == value, (name, alert[name])
    return alert


class TestUserExamples:
    def test_rare_endpoint_hit_500_times_in_a_minute(self):
        """An endpoint used about once a minute, suddenly hit 500 times in one minute: one alert, with evidence."""
        h = Harness()
        timed = steady(T0, 60, 300)
        timed += [(t, record(t, event="GET /admin/export", level="WARNING")) for t in spread(T0 + 7, HOUR, 60)]
        timed += [(t, record(t, event="GET /admin/export", level="WARNING"))
                  for t in spread(T0 + 45 * MINUTE, MINUTE, 500)]
        h.live(timed, T0)
        h.idle(T0 + 75 * MINUTE)
        alert = only(h.alerts, dimension="event", key="GET /admin/export", count=501, windows=1)
        assert alert["window_start"] == "2026-11-18T11:45:00+00:00"
        assert alert["window_end"] == "2026-11-18T11:46:00+00:00"
        assert 0.5 < alert["baseline"] < 2 and alert["ratio"] > 250 and alert["floor"] == 100
        assert alert["sample"]["levels"] == ["WARNING"] and alert["sample"]["services"] == ["shop"]
        assert alert["host"] == "web-1" and alert["id"].startswith("20261118T114500Z-")

    def test_rarely_used_recognizer_suddenly_fires(self):
        """A recognizer that fires a few times an hour, then 500 times in a minute: an entity alert."""
        h = Harness()
        timed = [(t, record(t)) for t in spread(T0, HOUR, 200 * 60)]
        timed += [(t, record(t, entities={"IBAN_CODE": 1})) for t in spread(T0 + 3, HOUR, 6)]
        timed += [(t, record(t, "shop.payouts", entities={"IBAN_CODE": 1}))
                  for t in spread(T0 + 30 * MINUTE, MINUTE, 500)]
        h.live(timed, T0)
        h.idle(T0 + 75 * MINUTE)
        by_dimension = {a["dimension"]: a for a in h.alerts}
        assert by_dimension["entity"]["key"] == "IBAN_CODE" and by_dimension["entity"]["count"] == 501  # one usual one in that minute
        assert by_dimension["entity"]["sample"]["loggers"][0] == "shop.payouts"
        assert set(by_dimension) == {"entity", "logger"}  # the new logger spiked with it
        assert by_dimension["logger"]["key"] == "shop.payouts"

    def test_spike_of_redacted_credit_cards(self):
        """About six credit cards a minute, then 400 in a minute on the usual endpoint: one entity alert."""
        h = Harness()
        timed = steady(T0, 60, 300, card_every=50)
        timed += [(t, record(t, actor=f"user{i % 40}", entities={"CREDIT_CARD": 1}))
                  for i, t in enumerate(spread(T0 + 40 * MINUTE, MINUTE, 400))]
        h.live(timed, T0)
        h.idle(T0 + 75 * MINUTE)
        alert = only(h.alerts, dimension="entity", key="CREDIT_CARD", windows=1)
        assert 400 < alert["count"] < 430 and 2 < alert["baseline"] < 12
        assert alert["window_start"] == "2026-11-18T11:40:00+00:00"

    def test_actor_touching_far_more_records_than_usual(self):
        """carol reads two invoices a minute, then 800 in a minute: alerts name carol, and no other actor."""
        h = Harness()
        timed = steady(T0, 60, 300)
        for who in ("carol", "dave", "erin"):
            timed += [(t, record(t, "presidio_logshield.audit", actor=who,
                                 audit={"action": "invoice.read", "resource": f"invoice/{i}"}))
                      for i, t in enumerate(spread(T0 + 1, HOUR, 120))]
        timed += [(t, record(t, "presidio_logshield.audit", actor="carol",
                             audit={"action": "invoice.read", "resource": f"invoice/{i}"}))
                  for i, t in enumerate(spread(T0 + 50 * MINUTE, MINUTE, 800))]
        h.live(timed, T0)
        h.idle(T0 + 75 * MINUTE)
        found = {(a["dimension"], a["key"]): a for a in h.alerts}
        carol = hashed("carol")  # actors that are not the library's placeholders are shown hashed
        assert found[("actor", carol)]["count"] == 802 and found[("actor", carol)]["key_hashed"]
        assert found[("actor_action", f"{carol}|invoice.read")]["sample"]["outcomes"] == ["success"]
        assert found[("action", "invoice.read")]["sample"]["actors"][0] == carol
        others = {hashed(name) for name in ("dave", "erin", *(f"user{i}" for i in range(40)))}
        assert not [k for k in found if k[1].split("|")[0] in others]
        assert "carol" not in str(h.events)


class TestEventTime:
    def test_backlog_after_outage_is_not_a_spike(self):
        """Thirty minutes shipped at once after an outage land in their own windows: no alert, nothing late."""
        h = Harness()
        minutes = minutes_of(steady(T0, 90, 300), T0)
        for minute in range(90):
            if 30 <= minute < 60:
                continue  # the agent is down
            if minute == 60:
                for late in range(30, 61):  # back up: the backlog, then this minute, seconds apart
                    h.ship(minutes[late], T0 + 61 * MINUTE + late)
                continue
            h.ship(minutes[minute], T0 + (minute + 1) * MINUTE + 30)
        h.idle(T0 + 100 * MINUTE)
        assert h.alerts == [] and h.detector.late == 0
        volume = h.detector._keys["volume"]["shop"]
        assert volume.active == 90 and 290 < volume.baseline < 310  # every minute rated once, at its size

    def test_stream_catching_up_behind_the_watermark_is_late(self):
        """One file's batches held for 20 minutes while another ships: counted as late, not rated, no alert."""
        h = Harness()
        live = minutes_of(steady(T0, 60, 300, seed=1), T0)
        held = minutes_of([(t, record(t, "batch.worker")) for t in spread(T0, HOUR, 150 * 60)], T0)
        for minute in range(60):
            h.ship(live[minute], T0 + (minute + 1) * MINUTE + 30)
            if not 20 <= minute < 40:
                h.ship(held[minute], T0 + (minute + 1) * MINUTE + 31)
            if minute == 40:
                for late in range(20, 40):
                    h.ship(held[late], T0 + 41 * MINUTE + 32)
        h.idle(T0 + 70 * MINUTE)
        assert h.alerts == []
        assert 15 * 150 <= h.detector.late <= 20 * 150  # the held minutes older than the lateness

    def test_out_of_order_batches_within_lateness_count_together(self):
        """A spike shipped in two batches, the later half first, is one window's count."""
        h = Harness()
        minutes = minutes_of(steady(T0, 40, 300), T0)
        for minute in range(30):
            h.ship(minutes[minute], T0 + (minute + 1) * MINUTE + 30)
        spike = [record(t, "shop.admin") for t in spread(T0 + 30 * MINUTE, MINUTE, 300)]
        h.ship(minutes[30] + spike[150:], T0 + 31 * MINUTE + 5)
        h.ship(spike[:150], T0 + 31 * MINUTE + 50)
        for minute in range(31, 40):
            h.ship(minutes[minute], T0 + (minute + 1) * MINUTE + 30)
        h.idle(T0 + 50 * MINUTE)
        only(h.alerts, dimension="logger", key="shop.admin", count=300)

    def test_future_records_are_not_rated(self):
        """Records stamped an hour ahead of the clock are dropped from rating and counted."""
        h = Harness()
        minutes = minutes_of(steady(T0, 20, 300), T0)
        for minute in range(20):
            h.ship(minutes[minute], T0 + (minute + 1) * MINUTE + 30)
        h.ship([record(t, "shop.admin") for t in spread(T0 + 80 * MINUTE, MINUTE, 500)], T0 + 21 * MINUTE)
        h.idle(T0 + 40 * MINUTE)
        assert h.alerts == [] and h.detector.future == 500


class TestIncidents:
    def test_cooldown_makes_one_alert_with_final_count(self):
        """Spikes in minutes 40-42 and 44 are one incident; one alert with its totals, after the cooldown."""
        h = Harness(cooldown=120)
        timed = steady(T0, 70, 300)
        for minute in (40, 41, 42, 44):
            timed += [(t, record(t, "shop.admin")) for t in spread(T0 + minute * MINUTE, MINUTE, 500)]
        timed += [(t, record(t, "shop.admin")) for t in spread(T0 + 60 * MINUTE, MINUTE, 2000)]
        minutes = minutes_of(timed, T0)
        for minute in range(50):
            h.ship(minutes[minute], T0 + (minute + 1) * MINUTE + 30)
        alert = only(h.alerts, dimension="logger", key="shop.admin", windows=4, count=2000, peak_count=500)
        assert (alert["window_start"], alert["window_end"]) == ("2026-11-18T11:40:00+00:00",
                                                                "2026-11-18T11:45:00+00:00")
        for minute in range(50, 70):
            h.ship(minutes[minute], T0 + (minute + 1) * MINUTE + 30)
        h.idle(T0 + 80 * MINUTE)
        later = [a for a in h.alerts[1:] if a["dimension"] == "logger"]  # (volume alerts too: 2300 vs ~340)
        assert [(a["key"], a["count"], a["windows"]) for a in later] == [("shop.admin", 2000, 1)]

    def test_no_alert_during_warmup(self):
        """A spike before the baselines have learned for the warm-up raises nothing."""
        h = Harness(warmup=20 * MINUTE)
        timed = steady(T0, 30, 300) + [(t, record(t, "shop.admin")) for t in spread(T0 + 10 * MINUTE, MINUTE, 900)]
        h.live(timed, T0)
        h.idle(T0 + 40 * MINUTE)
        assert h.alerts == []

    def test_windows_close_when_traffic_stops(self):
        """A spike in the last minute of traffic is reported once the wall clock has moved on, without close()."""
        h = Harness()
        timed = steady(T0, 30, 300) + [(t, record(t, "shop.admin")) for t in spread(T0 + 29 * MINUTE, MINUTE, 600)]
        h.live(timed, T0)
        assert h.alerts == []
        h.idle(T0 + 30 * MINUTE + 120 + 180)
        only(h.alerts, key="shop.admin", count=600)

    def test_shutdown_reports_open_incidents(self):
        """close() closes the open windows and reports the incident in progress."""
        h = Harness()
        timed = steady(T0, 30, 300) + [(t, record(t, "shop.admin")) for t in spread(T0 + 29 * MINUTE, MINUTE, 600)]
        h.live(timed, T0, delay=1)
        h.close()
        only(h.alerts, key="shop.admin", count=600)

    def test_alerts_of_one_incident_name_each_other(self):
        """Alerts raised together for overlapping windows list each other's ids."""
        h = Harness()
        timed = steady(T0, 40, 300) + [(t, record(t, "shop.admin", actor="mallory"))
                                       for t in spread(T0 + 30 * MINUTE, MINUTE, 600)]
        h.live(timed, T0)
        h.idle(T0 + 50 * MINUTE)
        logger, actor = sorted(h.alerts, key=lambda a: a["dimension"], reverse=True)
        assert (logger["dimension"], actor["dimension"]) == ("logger", "actor")
        assert logger["related_alerts"] == [actor["id"]] and actor["related_alerts"] == [logger["id"]]


class TestMemory:
    def test_keys_per_dimension_are_capped(self):
        """With a cap of 10 keys, many actors evict the least recent ones and a window counts extras together."""
        h = Harness(max_keys=10)
        timed = [(t, record(t, actor=f"user{i}")) for i, t in enumerate(spread(T0, 20 * MINUTE, 20 * 100))]
        h.live(timed, T0)
        h.idle(T0 + 30 * MINUTE)
        assert h.detector.key_counts["actor"] <= 10 and h.detector.evicted["actor"] > 0
        assert "(other keys)" in h.detector._keys["actor"]

    def test_baselines_survive_a_restart(self, tmp_path):
        """Baselines saved at shutdown are restored: no new warm-up, and a spike right after the restart alerts."""
        from logshield_agent.alerts import AlertObserver, DetectorSettings, RateDetector

        from .traffic import Recorder, batch

        def observer(recorder, clock):
            settings = DetectorSettings(warmup=10 * MINUTE, dimensions=frozenset({"logger"}))
            return AlertObserver(RateDetector(settings), [recorder], host="web-1", state_dir=tmp_path,
                                 wall=lambda: clock[0])

        clock = [0.0]
        first = observer(Recorder(), clock)
        minutes = minutes_of(steady(T0, 40, 300) + [(t, record(t, "shop.admin"))
                                                     for t in spread(T0 + 31 * MINUTE, MINUTE, 800)], T0)
        for minute in range(30):
            clock[0] = T0 + (minute + 1) * MINUTE + 30
            first.batch_shipped(batch(minutes[minute]))
        first.close(clock[0])
        recorder = Recorder()
        second = observer(recorder, clock)
        for minute in range(30, 40):
            clock[0] = T0 + (minute + 1) * MINUTE + 30
            second.batch_shipped(batch(minutes[minute]))
        second.close(clock[0])
        assert [(a["key"], a["count"], a["state"]) for a in recorder.documents][-1] == ("shop.admin", 800, "closed")
        assert len({a["id"] for a in recorder.documents}) == 1


def export_burst(start_minute: int, end_minute: int, per_minute: int, actor: str = "mallory") -> list:
    return [(t, record(t, "presidio_logshield.audit", actor=actor, audit={"action": "user.export"}))
            for m in range(start_minute, end_minute) for t in spread(T0 + m * MINUTE, MINUTE, per_minute)]


class TestSustainedAndRamps:
    def test_sustained_activity_is_one_incident_alerted_at_onset(self):
        """One actor exporting 300 users a minute from minute 30 to 90 (never seen before): the alert goes out as
        the first window closes, the baseline stays frozen so all 60 minutes are one incident, and the closed
        event (same id, its own event id) carries the final counts."""
        h = Harness()
        minutes = minutes_of(steady(T0, 100, 300) + export_burst(30, 90, 300), T0)
        for minute in range(34):
            h.ship(minutes[minute], T0 + (minute + 1) * MINUTE + 30)
        onset = [e for e in h.events if e["dimension"] == "actor"]
        assert [(e["state"], e["window_start"], e["count"]) for e in onset] == [
            ("open", "2026-11-18T11:30:00+00:00", 300)]
        assert onset[0]["detected_at"] <= "2026-11-18T11:35:00+00:00"  # the window + lateness + a batch
        for minute in range(34, 100):
            h.ship(minutes[minute], T0 + (minute + 1) * MINUTE + 30)
        h.idle(T0 + 110 * MINUTE)
        actor = [e for e in h.events if e["dimension"] == "actor"]
        assert [e["state"] for e in actor] == ["open", "ongoing", "closed"]
        assert len({e["id"] for e in actor}) == 1 and len({e["event_id"] for e in actor}) == 3
        final = actor[-1]
        assert (final["window_start"], final["window_end"]) == ("2026-11-18T11:30:00+00:00",
                                                                "2026-11-18T12:30:00+00:00")
        assert final["windows"] == 60 and final["count"] == 18000 and final["baseline"] == 0
        assert final["learned"] and final["end_reason"] == "quiet"
        assert {(a["dimension"], a["state"]) for a in h.alerts} >= {("actor", "closed"), ("action", "closed"),
                                                                    ("actor_action", "closed")}

    def test_new_level_is_learned_after_sustain_windows(self):
        """The same actor keeps going after the hour: its level is now its baseline — no new incident."""
        h = Harness()
        h.live(steady(T0, 140, 300) + export_burst(30, 140, 300), T0)
        h.idle(T0 + 150 * MINUTE)
        actor = [a for a in h.alerts if a["dimension"] == "actor"]
        assert len(actor) == 1 and actor[0]["windows"] == 60

    def test_ramp_from_a_quiet_history_alerts(self):
        """After two quiet hours, one actor ramps from 5 to 500 exports a minute over 100 minutes: the ramp does not
        teach the baseline as it grows, so it alerts when it reaches the floor (100 a minute)."""
        h = Harness()
        timed = steady(T0, 230, 300)
        for n in range(1, 101):
            timed += [(t, record(t, "presidio_logshield.audit", actor="mallory", audit={"action": "user.export"}))
                      for t in spread(T0 + (119 + n) * MINUTE, MINUTE, 5 * n)]
        h.live(timed, T0)
        h.idle(T0 + 240 * MINUTE)
        opened = [e for e in h.events if e["dimension"] == "actor" and e["state"] == "open"]
        assert opened and opened[0]["window_start"] == "2026-11-18T13:19:00+00:00"  # 100 a minute
        assert opened[0]["baseline"] < 20

    def test_recurring_burst_is_learned_after_a_few_runs(self):
        """A new job writing 2,000 lines in five minutes every two hours alerts on its first runs only."""
        h = Harness()
        timed = steady(T0, 12 * 60, 60)
        for run in range(6):
            timed += [(t, record(t, "batch.nightly")) for t in spread(T0 + (60 + 120 * run) * MINUTE, 5 * MINUTE,
                                                                     2000)]
        h.live(timed, T0)
        h.idle(T0 + 12 * 60 * MINUTE + 600)
        runs = sorted({a["window_start"] for a in h.alerts if a["key"] == "batch.nightly"})
        assert 1 <= len(runs) <= 3, runs


class TestKeysShown:
    def test_raw_actor_never_appears_in_an_alert(self):
        """An actor that is not a library placeholder is shown as a marked SHA-256, in the key and the sample; the
        library's placeholders and pseudonyms are shown as they are."""
        h = Harness()
        raw, pseudonym, placeholder = "alice.secret@corp.example", "<ACTOR:ps:742ef288:869bc314187208c9>", \
            "<EMAIL_ADDRESS>"
        timed = steady(T0, 40, 300)
        for who in (raw, pseudonym, placeholder):
            timed += export_burst(30, 31, 400, actor=who)
        h.live(timed, T0)
        h.idle(T0 + 50 * MINUTE)
        actors = {a["key"]: a for a in h.alerts if a["dimension"] == "actor"}
        assert set(actors) == {hashed(raw), pseudonym, placeholder}
        assert actors[hashed(raw)]["key_hashed"] and not actors[pseudonym]["key_hashed"]
        assert "alice" not in json.dumps(h.events)
        (action,) = [a for a in h.alerts if a["dimension"] == "action"]
        assert set(action["sample"]["actors"]) == {hashed(raw), pseudonym, placeholder}

    def test_other_programs_event_is_hashed(self):
        """structlog-style JSON whose event is a message: the alert's key is its hash, not the text."""
        import json as _json

        h = Harness()
        quiet = [(t, _json.dumps({"timestamp": t, "level": "info", "logger": "api", "event": "request done"})
                  .encode() + b"\n") for t in spread(T0, 40 * MINUTE, 40 * 60)]
        burst = [(t, _json.dumps({"timestamp": t, "level": "info", "logger": "api",
                                  "event": "password reset for alice@corp.example"}).encode() + b"\n")
                 for t in spread(T0 + 30 * MINUTE, MINUTE, 500)]
        h.live(quiet + burst, T0)
        h.idle(T0 + 50 * MINUTE)
        (event,) = [a for a in h.alerts if a["dimension"] == "event"]
        assert event["key"] == hashed("password reset for alice@corp.example")
        assert "alice" not in _json.dumps(h.events)
