"""The compliance report: aggregates from an archive, the page built from them, and the CLI."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from logshield_agent.cli import main
from logshield_agent.commands._common import parse_when
from logshield_agent.report import VerificationView, collect, render_report

from .report_archive import START, build


@pytest.fixture
def archive(tmp_path):
    return build(tmp_path / "archive")


class TestCollect:
    def test_counts_records_redactions_and_audit(self, archive):
        """Every record in the window is counted once; redactions, withheld records and audit outcomes add up."""
        s = collect(archive, START, START + timedelta(hours=4))
        assert s.records == 27 + 17 and s.objects == 2 and s.non_json_records == 1
        assert s.redactions == {"CREDIT_CARD": 6, "EMAIL_ADDRESS": 2} and s.records_redacted == 7
        assert s.withheld == 1 and s.sealed == 10 and s.chain_kinds == {"hmac-sha256": 1}
        assert s.audit_by_actor["alice"] == {"success": 3}
        assert s.audit_by_actor["<script>bob</script>"] == {"success": 1, "failure": 1}
        assert [f["resource"] for f in s.audit_failures] == ["invoice/4"]
        assert s.errors_by_hour == {START: 1} and [a["id"] for a in s.alerts] == ["a1"]

    def test_window_excludes_records_outside(self, archive):
        """Records and alerts outside [since, until) are not counted; an object with none in it is not either."""
        s = collect(archive, START + timedelta(hours=1), START + timedelta(hours=4))
        assert s.records == 17 and s.objects == 1 and s.redactions == {} and s.alerts == []

    def test_empty_hours_are_buckets_too(self, archive):
        """The volume chart has a bucket for every hour, including the silent one between the two objects."""
        s = collect(archive, START, START + timedelta(hours=3))
        assert s.buckets() == [START, START + timedelta(hours=1), START + timedelta(hours=2)]
        assert s.per_bucket(s.records_by_hour).get(START + timedelta(hours=1), 0) == 0

    def test_long_periods_use_coarser_buckets(self, archive):
        """A 30-day report draws one bar per day, not 720 hair-thin hourly bars."""
        s = collect(archive, START - timedelta(days=29), START + timedelta(days=1))
        assert s.bucket_hours() == 24 and len(s.buckets()) in (30, 31)
        assert sum(s.per_bucket(s.records_by_hour).values()) == s.records

    def test_unreadable_object_is_reported_not_fatal(self, archive, tmp_path):
        """A corrupt object is listed as unreadable and the rest of the archive is still summarised."""
        (victim,) = [i.key for i in archive.list("service=") if "0000000000000000-" in i.key]
        path = tmp_path / "archive" / victim
        path.write_bytes(b"not zstd")
        s = collect(archive, START, START + timedelta(hours=4))
        assert s.records == 17 and len(s.unreadable_objects) == 1 and victim in s.unreadable_objects[0]


class TestRender:
    def test_page_is_self_contained_and_escaped(self, archive):
        """No script, no external reference; actor names are escaped, never markup."""
        s = collect(archive, START, START + timedelta(hours=4))
        page = render_report(s, VerificationView("intact", "4 objects, 2 digests"), archive="file:///a")
        assert "<script>" not in page and "&lt;script&gt;bob&lt;/script&gt;" in page
        assert not re.search(r"""(?:src|href)=["']?(?:https?:)?//""", page)
        assert "Archive intact" in page and "CREDIT_CARD" in page and "invoice/4" in page

    def test_problems_are_listed(self, archive):
        """A failed verification shows as such, with its findings."""
        s = collect(archive, START, START + timedelta(hours=4))
        view = VerificationView("problems", counts={"modified": 1},
                                findings=[{"kind": "modified", "key": "service=x/y", "detail": "sha256 differs"}])
        page = render_report(s, view, archive="file:///a")
        assert "Integrity problems found" in page and "sha256 differs" in page and "service=x/y" in page


class TestParseWhen:
    def test_relative_and_absolute(self):
        """7d, 24h, 30m and 2w count back from now; ISO dates are UTC unless they carry an offset."""
        now = datetime(2026, 11, 24, 12, tzinfo=timezone.utc)
        assert parse_when("7d", now) == now - timedelta(days=7)
        assert parse_when("30m", now) == now - timedelta(minutes=30)
        assert parse_when("2w", now) == now - timedelta(weeks=2)
        assert parse_when("2026-11-01", now) == datetime(2026, 11, 1, tzinfo=timezone.utc)
        assert parse_when("2026-11-01T12:00+02:00", now) == datetime(2026, 11, 1, 10, tzinfo=timezone.utc)

    def test_nonsense_names_the_forms(self):
        """An unparseable time says which forms are accepted."""
        with pytest.raises(ValueError, match="7d, 24h"):
            parse_when("last tuesday", datetime.now(timezone.utc))


class TestReportCommand:
    def test_writes_the_page(self, archive, tmp_path, capsys):
        """`logshield-agent report URL --since --until --out` writes the HTML and says what it counted."""
        out = tmp_path / "r.html"
        code = main(["report", f"file://{tmp_path / 'archive'}", "--since", "2026-11-20T08:00Z",
                     "--until", "2026-11-20T12:00Z", "--out", str(out), "--no-verify"])
        assert code == 0 and "44 records" in capsys.readouterr().out
        assert out.read_text().startswith("<!DOCTYPE html>")

    def test_archive_without_digests_does_not_verify(self, archive, tmp_path, capsys):
        """This archive has no digests: the page is written, verification fails and the command exits 1."""
        out = tmp_path / "r.html"
        code = main(["report", f"file://{tmp_path / 'archive'}", "--since", "2026-11-20T08:00Z",
                     "--until", "2026-11-20T12:00Z", "--out", str(out)])
        assert code == 1 and "verification: problems" in capsys.readouterr().out
        assert "no-digests" in out.read_text()

    def test_bad_period_is_a_usage_error(self, archive, tmp_path, capsys):
        """--since after --until exits 2 and names both options."""
        code = main(["report", f"file://{tmp_path / 'archive'}", "--since", "2026-11-21", "--until", "2026-11-20"])
        assert code == 2 and "--since" in capsys.readouterr().err

    @pytest.mark.parametrize("command", ["report", "verify", "session"])
    def test_empty_window_is_a_usage_error_for_every_command(self, command, archive, tmp_path, capsys):
        """report, verify and session refuse a window whose --since is not before --until (nothing would be read)."""
        extra = ["--session-id", "s1"] if command == "session" else []
        code = main([command, f"file://{tmp_path / 'archive'}", "--since", "2026-11-21", "--until", "2026-11-20",
                     *extra])
        assert code == 2 and "must be before --until" in capsys.readouterr().err

    def test_bad_url_names_the_url(self, tmp_path, capsys):
        """An unsupported archive URL is a usage error that names the URL argument."""
        assert main(["report", "ftp://x/y"]) == 2
        assert "URL" in capsys.readouterr().err


class TestReportVerification:
    @pytest.fixture
    def digested(self, tmp_path):
        """A real archive with digests (the agent's pipeline over library records), and its public key."""
        from .test_digests import T0, Clock, app_logs, ship, writer

        (tmp_path / "logs").mkdir()
        app_logs(tmp_path / "logs", 120)
        ship(tmp_path, writer(tmp_path, Clock(T0 + 10)))
        return tmp_path / "store", tmp_path / "state" / "digest-public-key.pem", T0

    def _report(self, store, pem, t0, out, *extra):
        since = datetime.fromtimestamp(t0 - 3600, timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
        until = datetime.fromtimestamp(t0 + 3600, timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
        return main(["report", f"file://{store}", "--since", since, "--until", until, "--out", str(out),
                     "--public-key", str(pem), *extra])

    def test_failed_verification_exits_1_and_still_writes_the_page(self, digested, tmp_path, capsys):
        """An object deleted: the page says so, and the command exits 1 like verify."""
        store, pem, t0 = digested
        assert self._report(store, pem, t0, tmp_path / "ok.html") == 0
        victim = sorted(store.glob("service=*/**/*.ndjson.zst"))[1]
        victim.unlink()
        out = tmp_path / "r.html"
        assert self._report(store, pem, t0, out) == 1
        page = out.read_text()
        assert "Integrity problems found" in page and "object-missing" in page
        assert "verification: problems" in capsys.readouterr().out

    def test_footer_reproduces_the_verification(self, digested, tmp_path):
        """The footer's command names the pinned key, the window and the expected hosts used."""
        store, pem, t0 = digested
        out = tmp_path / "r.html"
        assert self._report(store, pem, t0, out, "--expect-host", "testhost") == 0
        footer = out.read_text().split("<footer>", 1)[1]
        assert f"--public-key {pem}" in footer and "--expect-host testhost" in footer
        since, until = (datetime.fromtimestamp(t0 + d, timezone.utc).strftime("%Y-%m-%dT%H:%M:00Z")
                        for d in (-3600, 3600))
        assert f"--since {since}" in footer and f"--until {until}" in footer

    def test_signers_and_warnings_are_shown(self, digested, tmp_path):
        """The verification section lists who signed the digests and the verifier's warnings."""
        store, pem, t0 = digested
        out = tmp_path / "r.html"
        assert self._report(store, pem, t0, out) == 0
        page = out.read_text()
        assert "Signed by" in page and "pinned" in page and "host-stopped" in page
