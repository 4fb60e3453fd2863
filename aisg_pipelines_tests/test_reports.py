"""Compliance reports (issue 7): exact figures for a period from a fixed-clock ledger, the
exports (HTML charts, PDF, CSV, JSON), no personal data in any export, backfilled periods,
the Prometheus textfile, the CLI and the Dagster weekly asset / schedules."""

from __future__ import annotations

import csv
import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from aisg_pipelines_tests.conftest import FIXED_NOW, env_for, fresh_defs

W45 = "2026-W45"  # Asia/Seoul: 2026-11-02 00:00 to 2026-11-09 00:00 = UTC 2026-11-01T15:00 to 2026-11-08T15:00


def _utc(s: str) -> str:
    return datetime.fromisoformat(s).replace(tzinfo=timezone.utc).isoformat()


def _events(ledger, rows):
    for at, action, details in rows:
        ledger.append_event(action, details, occurred_at=_utc(at))


@pytest.fixture
def report_store(populated_settings):
    """The populated store plus known governance events and erasure requests around 2026-W45."""
    from aisg_pipelines.governance import certificates
    from aisg_pipelines.governance.ids import subject_hash
    from aisg_pipelines.governance.ledger import Ledger, erasure_requests
    from aisg_pipelines.governance.secrets import load_or_create_salt, load_or_create_signing_key

    s, manifest = populated_settings
    led = Ledger(s.ledger_url)
    in_w45 = [
        ("2026-11-01T15:00:00", "ingest.documents", {"batch_id": "20261101-aaaaaaaa", "documents": 1, "pii_removed": {"URL": 1}, "quarantined_by_reason": {}, "missing": 0}),
        ("2026-11-03T01:00:00", "retention.purge", {"category": "user_content", "expired": 5, "deleted": 4, "deleted_rows": 20, "held": 1, "bytes_reclaimed": 1000, "dry_run": False, "oldest_remaining_age_days": 179.5, "unit": "documents"}),
        ("2026-11-03T02:00:00", "retention.purge", {"category": "user_content", "expired": 9, "deleted": 0, "deleted_rows": 999, "held": 0, "bytes_reclaimed": 0, "dry_run": True, "oldest_remaining_age_days": 1.0}),
        ("2026-11-05T01:00:00", "retention.purge", {"category": "system_logs", "expired": 100, "deleted": 100, "deleted_rows": 100, "held": 0, "bytes_reclaimed": 5000, "dry_run": False, "oldest_remaining_age_days": 89.0}),
        ("2026-11-03T03:00:00", "orphans.report", {"counts": {"chunk_without_document": 3, "vector_without_chunk": 2}, "total": 5}),
        ("2026-11-04T03:00:00", "orphans.cleanup", {"kind": "chunk_without_document", "deleted": 3, "found": 3, "dry_run": False}),
        ("2026-11-04T03:30:00", "orphans.cleanup", {"kind": "vector_without_chunk", "deleted": 0, "found": 2, "dry_run": True}),
        ("2026-11-06T03:00:00", "orphans.report", {"counts": {"chunk_without_document": 0, "vector_without_chunk": 1}, "total": 1}),
        ("2026-11-04T05:00:00", "embed_version.activate", {"name": "v2", "previous": "v1"}),
        ("2026-11-05T05:00:00", "embed_version.rollback", {"name": "v1", "previous": "v2"}),
        ("2026-11-02T00:00:01", "erasure.received", {"request_id": "req-0001"}),
        ("2026-11-03T06:00:00", "ingest.documents", {"batch_id": "20261103-bbbbbbbb", "documents": 4, "pii_removed": {"EMAIL_ADDRESS": 2, "KR_RRN": 1}, "quarantined_by_reason": {"binary": 1, "too_large": 2}, "missing": 0}),
    ]
    outside = [
        ("2026-10-28T01:00:00", "retention.purge", {"category": "user_content", "expired": 7, "deleted": 7, "deleted_rows": 7, "held": 0, "bytes_reclaimed": 70, "dry_run": False, "oldest_remaining_age_days": 180.0}),
        ("2026-10-28T02:00:00", "ingest.documents", {"batch_id": "20261028-cccccccc", "documents": 2, "pii_removed": {"EMAIL_ADDRESS": 5}, "quarantined_by_reason": {}, "missing": 0}),
        ("2026-11-08T15:00:00", "ingest.documents", {"batch_id": "20261108-dddddddd", "documents": 3, "pii_removed": {"EMAIL_ADDRESS": 9}, "quarantined_by_reason": {"empty": 1}, "missing": 0}),
        ("2026-11-10T03:00:00", "orphans.report", {"counts": {"chunk_without_document": 0, "vector_without_chunk": 4}, "total": 4}),
    ]
    _events(led, in_w45 + outside)

    salt = load_or_create_salt(s)
    raw_subjects = [x["subject_id"] for x in manifest["subjects"]]
    h = [subject_hash(x, salt) for x in raw_subjects]
    key, _pub = load_or_create_signing_key(s)
    cert_dir = s.exports_dir / "certificates"

    def cert(request_id, cert_id, subject, certified_at, tamper=False):
        c = certificates.sign({"certificate_id": cert_id, "request_id": request_id, "subject_hash": subject, "certified_at": certified_at}, key)
        path = certificates.write_json(c, cert_dir / f"{cert_id}.json")
        if tamper:
            data = json.loads(path.read_text())
            data["subject_hash"] = "0" * 64
            path.write_bytes(certificates.canonical(data))
        return str(path)

    def req(rid, subject, status, requested, certified=None, failed=None, cert_id=None, tamper=False):
        row = {"request_id": rid, "subject_hash": subject, "status": status, "requested_at": _utc(requested), "received_at": _utc(requested), "source": "cli", "progress": "{}"}
        if certified:
            row.update(certified_at=_utc(certified), certificate_id=cert_id, certificate_path=cert(rid, cert_id, subject, _utc(certified), tamper))
        if failed:
            row.update(failed_at=_utc(failed), failure="test")
        return row

    rows = [
        req("req-0001", h[0], "certified", "2026-11-02T00:00:00", certified="2026-11-06T00:00:00", cert_id="cert-0001"),  # 4 days, valid
        req("req-0002", h[1], "certified", "2026-10-01T00:00:00", certified="2026-11-05T00:00:00", cert_id="cert-0002", tamper=True),  # 35 days, tampered
        req("req-0003", h[2], "in_progress", "2026-10-03T00:00:00"),  # open and overdue at the end of W45 (36.625 d)
        req("req-0004", h[0], "failed", "2026-11-07T00:00:00", failed="2026-11-07T06:00:00"),
        req("req-0005", h[1], "received", "2026-11-12T00:00:00"),  # W46: not in W45
    ]
    with led.engine.begin() as conn:
        for row in rows:
            conn.execute(erasure_requests.insert().values(**row))
    checks = [
        {"asset": "documents", "check": "documents_valid", "passed": True, "occurred_at": _utc("2026-11-03T06:01:00")},
        {"asset": "documents", "check": "documents_valid", "passed": True, "occurred_at": _utc("2026-11-04T06:01:00")},
        {"asset": "documents", "check": "documents_pii_free", "passed": True, "occurred_at": _utc("2026-11-03T06:01:00")},
        {"asset": "documents", "check": "documents_pii_free", "passed": False, "occurred_at": _utc("2026-11-04T06:01:00")},
        {"asset": "chunks", "check": "chunks_valid", "passed": True, "occurred_at": _utc("2026-11-03T06:02:00")},
        {"asset": "chunks", "check": "chunks_valid", "passed": True, "occurred_at": _utc("2026-11-04T06:02:00")},
        {"asset": "chunks", "check": "chunks_valid", "passed": False, "occurred_at": _utc("2026-10-28T06:02:00")},  # W44
    ]
    return s, manifest, {"hashes": h, "raw_subjects": raw_subjects, "checks": checks, "in_w45": len(in_w45)}


def test_periods_are_calendar_periods_in_the_report_timezone():
    from aisg_pipelines.governance.reports import month_period, period_for_partition, week_containing, week_period

    w = week_period("2026-W47", "Asia/Seoul")
    assert (w.start.isoformat(), w.end.isoformat()) == ("2026-11-16T00:00:00+09:00", "2026-11-23T00:00:00+09:00")
    assert w.start_utc.startswith("2026-11-15T15:00:00") and w.end_utc.startswith("2026-11-22T15:00:00")
    m = month_period("2026-12", "Asia/Seoul")
    assert (m.start.isoformat(), m.end.isoformat()) == ("2026-12-01T00:00:00+09:00", "2027-01-01T00:00:00+09:00")
    assert week_containing(FIXED_NOW, "Asia/Seoul").label == "2026-W47"
    assert period_for_partition("week", "2026-11-16", "Asia/Seoul").label == "2026-W47"
    assert period_for_partition("month", "2026-11-01", "Asia/Seoul").label == "2026-11"
    for bad in ("2026-47", "2026-W54", "x' OR '1'='1"):
        with pytest.raises(ValueError):
            week_period(bad)
    with pytest.raises(ValueError):
        month_period("2026-13")


def test_report_json_holds_exactly_the_known_figures(report_store):
    from aisg_pipelines.governance.ledger import Ledger
    from aisg_pipelines.governance.reports import build_report, week_period
    from aisg_pipelines.governance.store import CHUNKS, LanceStore

    s, _, known = report_store
    res = build_report(s, week_period(W45, "Asia/Seoul"), now=FIXED_NOW, check_results=known["checks"])
    out = s.exports_dir / "compliance" / W45
    assert res.out_dir == out
    j = json.loads((out / "summary.json").read_text())

    ret = {r["category"]: r for r in j["retention"]["categories"]}
    assert [r["category"] for r in j["retention"]["categories"]] == ["user_content", "system_logs", "metrics", "audit_ledger", "retired_embed_versions"]
    assert {c: r["policy_days"] for c, r in ret.items()} == {"user_content": 180, "system_logs": 90, "metrics": 30, "audit_ledger": 2557, "retired_embed_versions": 30}
    uc = ret["user_content"]
    assert (uc["runs_in_period"], uc["deleted_rows"], uc["deleted_items"], uc["bytes_reclaimed"]) == (1, 20, 4, 1000)  # dry run ignored
    assert (uc["remaining_past_period"], uc["held"], uc["unexplained_past_period"], uc["oldest_remaining_age_days"]) == (1, 1, 0, 179.5)
    assert uc["status"] == "ok" and uc["remaining_basis"].startswith("last purge run 2026-11-03T01:00")
    sl = ret["system_logs"]
    assert (sl["deleted_rows"], sl["bytes_reclaimed"], sl["remaining_past_period"], sl["unexplained_past_period"]) == (100, 5000, 0, 0)
    assert ret["metrics"]["deleted_rows"] == 0 and ret["metrics"]["remaining_basis"] == "no purge run recorded"
    assert j["retention"]["deleted_rows_total"] == 120 and j["retention"]["bytes_reclaimed_total"] == 6000
    assert j["retention"]["deletions_by_day"] == [
        {"date": "2026-11-03", "category": "user_content", "rows": 20},
        {"date": "2026-11-05", "category": "system_logs", "rows": 100},
    ]

    er = j["erasure"]
    assert er["available"] is True and er["events_in_period"] == {"received": 1}
    assert (er["received"], er["certified"], er["failed"], er["open"], er["overdue_open"]) == (2, 2, 1, 1, 1)
    assert er["time_to_certification_days"] == {"count": 2, "median": 19.5, "max": 35.0, "over_deadline": 1}
    assert er["oldest_open_age_days"] == 36.62  # 2026-10-03T00:00Z to the period end 2026-11-08T15:00Z
    assert {c["certificate_id"]: c["verification"].split(":")[0] for c in er["certificates"]} == {"cert-0001": "verified", "cert-0002": "INVALID"}
    assert {c["certificate_id"]: c["subject_hash"] for c in er["certificates"]} == {"cert-0001": known["hashes"][0], "cert-0002": known["hashes"][1]}
    assert {r["request_id"]: sorted(r["in_period"]) for r in er["requests"]} == {
        "req-0001": ["certified", "received"], "req-0002": ["certified"], "req-0003": ["open"], "req-0004": ["failed", "received"],
    }

    pii = j["pii"]
    assert pii["entities_removed_by_type"] == {"EMAIL_ADDRESS": 2, "KR_RRN": 1, "URL": 1}  # incl. the event at the period start
    assert (pii["documents_ingested"], pii["batches"], pii["quarantined_total"]) == (5, 2, 3)
    assert pii["quarantined_by_reason"] == {"binary": 1, "too_large": 2}

    orph = j["orphans"]
    assert [t["counts"] for t in orph["trend"]] == [{"chunk_without_document": 3, "vector_without_chunk": 2}, {"chunk_without_document": 0, "vector_without_chunk": 1}]
    assert orph["latest_counts"] == {"chunk_without_document": 0, "vector_without_chunk": 1} and orph["latest_total"] == 1
    assert [(c["kind"], c["deleted"]) for c in orph["cleanups"]] == [("chunk_without_document", 3)]  # dry run ignored

    emb = j["embeddings"]
    assert [(c["action"], c["name"], c["previous"]) for c in emb["changes"]] == [("activate", "v2", "v1"), ("rollback", "v1", "v2")]
    assert (emb["activations"], emb["rollbacks"], emb["active_version"], emb["active_at_period_end"]) == (1, 1, "v1", "v1")
    n_chunks = LanceStore(s.lancedb_uri).count(CHUNKS)
    assert n_chunks > 0 and emb["coverage"] == {"version": "v1", "chunks": n_chunks, "embedded": n_chunks, "missing": 0, "ratio": 1.0}

    dq = j["data_quality"]
    assert dq["per_asset"] == [{"asset": "chunks", "passed": 2, "failed": 0}, {"asset": "documents", "passed": 3, "failed": 1}]
    assert (dq["passed"], dq["failed"]) == (5, 1)
    assert dq["failing_at_period_end"] == [{"asset": "documents", "check": "documents_pii_free"}] and dq["resolved_in_period"] == []

    led = j["ledger"]
    total_before = Ledger(s.ledger_url).verify_chain().events - 1  # build_report appended report.exported afterwards
    assert led["chain_ok"] is True and led["events_in_period"] == known["in_w45"] and led["events_total"] == total_before
    assert Ledger(s.ledger_url).events("report.exported")[-1].details["period"] == W45

    st = j["storage"]
    assert set(st["lancedb_tables"]) >= {"documents", "chunks", "embeddings_v1"} and all(v > 0 for v in st["lancedb_tables"].values())
    assert st["directories"]["landing"] > 0

    assert j["within_policy"] is False
    assert len(j["findings"]) == 5, j["findings"]  # overdue open, certified late, failed, invalid certificate, failed check
    assert j["key_figures"]["erasure_overdue_open"] == 1 and j["key_figures"]["checks_failed"] == 1

    # CSV: one per section, with the same figures
    assert sorted(p.name for p in out.glob("*.csv")) == sorted(f"{x}.csv" for x in ("retention", "erasure", "pii", "orphans", "embeddings", "data_quality", "ledger", "storage"))
    rows = list(csv.DictReader((out / "retention.csv").open()))
    assert {r["category"]: int(r["deleted_rows"]) for r in rows}["user_content"] == 20
    assert len(list(csv.DictReader((out / "erasure.csv").open()))) == 4


def test_html_has_charts_and_pdf_opens_with_pages(report_store):
    from .pdf_text import pdf_page_count, pdf_text
    from aisg_pipelines.governance.reports import build_report, week_period

    s, _, known = report_store
    res = build_report(s, week_period(W45, "Asia/Seoul"), now=FIXED_NOW, check_results=known["checks"])
    html = res.paths["html"].read_text()
    imgs = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert len(imgs) >= 3
    import base64

    assert all(base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n" for b in imgs)
    for alt in ("Retention deletions over time", "Erasure time to certification", "Orphan trend"):
        assert f"alt='{alt}'" in html
    assert "<link" not in html and "<script" not in html  # self-contained
    pdf = res.paths["pdf"].read_bytes()
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert pdf_page_count(pdf) >= 2
    text = pdf_text(pdf)
    for needle in ("AISG compliance report 2026-W45", "1. Retention", "2. Erasure requests", "7. Audit ledger integrity", "cert-0001", "NOT WITHIN POLICY"):
        assert needle in text, needle
    assert pdf.count(b"/Subtype /Image") >= 3


def test_exports_hold_no_personal_data(report_store):
    from aisg_pipelines.governance.pii import get_scrubber
    from .pdf_text import pdf_text
    from aisg_pipelines.governance.reports import build_report, month_period, week_period

    s, manifest, known = report_store
    scrubber = get_scrubber()
    results = [
        build_report(s, week_period(W45, "Asia/Seoul"), now=FIXED_NOW, check_results=known["checks"]),
        build_report(s, month_period("2026-11", "Asia/Seoul"), now=FIXED_NOW, check_results=known["checks"]),
    ]
    raw = set(known["raw_subjects"]) | {d["subject_id"] for d in manifest["documents"]}
    # the sample data's raw documents (with their PII) are in the landing zone; none of their values may leak
    assert raw
    scanned = 0
    for res in results:
        files = sorted(res.out_dir.iterdir())
        assert len(files) == 11
        for f in files:
            data = f.read_bytes()
            text = pdf_text(data) if f.suffix == ".pdf" else data.decode("utf-8")
            # not content: the chart bytes (drawn from the same figures as the tables) and the static stylesheet
            text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)
            text = re.sub(r"<style>.*?</style>", "", text, flags=re.S)
            # hex digests and uuids (salted subject hashes, chain hashes, certificate ids) are
            # pseudonymous by design; presidio's Korean number recognizers match digit runs
            # inside them (a random salted hash held "...f142990197778a..." in one CI run)
            text = re.sub(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b|\b[0-9a-f]{16,}\b", "<hex>", text)
            assert len(text) > 50
            found = scrubber.detect(text)
            assert found == [], (f.name, [(x.entity_type, text[x.start:x.end]) for x in found])
            for r in raw:
                assert r not in text and r.encode() not in data, (f.name, r)
            scanned += 1
        assert known["hashes"][0] in (res.out_dir / "summary.json").read_text()  # subjects appear as salted hashes
    assert scanned == 22
    prom = results[0].prometheus_path.read_text()
    assert scrubber.detect(prom) == [] and not any(r in prom for r in raw)


def test_backfilled_past_periods_report_only_their_own_events(report_store):
    from aisg_pipelines.governance.reports import build_report, month_period, week_period

    s, _, known = report_store
    w44 = build_report(s, week_period("2026-W44", "Asia/Seoul"), now=FIXED_NOW, check_results=known["checks"]).summary
    assert w44["retention"]["deleted_rows_total"] == 7 and w44["retention"]["bytes_reclaimed_total"] == 70
    assert w44["pii"]["entities_removed_by_type"] == {"EMAIL_ADDRESS": 5} and w44["pii"]["documents_ingested"] == 2
    assert w44["orphans"]["trend"] == [] and w44["orphans"]["cleanups"] == [] and w44["embeddings"]["changes"] == []
    assert w44["data_quality"]["per_asset"] == [{"asset": "chunks", "passed": 0, "failed": 1}]
    assert (w44["erasure"]["received"], w44["erasure"]["certified"], w44["erasure"]["open"]) == (0, 0, 2)  # req-0002, req-0003 open then
    assert w44["ledger"]["events_in_period"] == 2
    assert (s.exports_dir / "compliance" / "2026-W44" / "report.pdf").exists()

    w46 = build_report(s, week_period("2026-W46", "Asia/Seoul"), now=FIXED_NOW, check_results=known["checks"]).summary
    assert w46["pii"]["entities_removed_by_type"] == {"EMAIL_ADDRESS": 9}  # the event at exactly W45's end belongs to W46
    assert w46["pii"]["quarantined_by_reason"] == {"empty": 1}
    assert w46["retention"]["deleted_rows_total"] == 0 and w46["erasure"]["received"] == 1
    assert w46["orphans"]["latest_counts"] == {"chunk_without_document": 0, "vector_without_chunk": 4}

    nov = build_report(s, month_period("2026-11", "Asia/Seoul"), now=FIXED_NOW, check_results=known["checks"]).summary
    assert nov["pii"]["entities_removed_by_type"]["EMAIL_ADDRESS"] >= 2 + 9
    assert nov["erasure"]["received"] == 3 and nov["erasure"]["certified"] == 2
    assert (s.exports_dir / "compliance" / "2026-11" / "summary.json").exists()


def test_prometheus_textfile_gauges(report_store):
    from aisg_pipelines.governance.reports import write_prometheus_textfile

    s, _, _ = report_store
    path = write_prometheus_textfile(s, now=FIXED_NOW)
    assert path == s.exports_dir / "metrics" / "aisg_governance.prom"
    text = path.read_text()
    # values as Prometheus reads them (prometheus_client writes 2.0, 2.592e+06)
    samples = {k: float(v) for k, v in (line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))}
    assert samples["aisg_erasure_open_requests"] == 2  # req-0003 in progress, req-0005 received
    assert samples["aisg_erasure_oldest_open_request_age_seconds"] == int((FIXED_NOW - datetime(2026, 10, 3, tzinfo=timezone.utc)).total_seconds())
    assert samples['aisg_orphans{kind="vector_without_chunk"}'] == 4 and samples['aisg_orphans{kind="chunk_without_document"}'] == 0
    assert samples['aisg_embed_version_active_info{version="v1"}'] == 1
    assert {k for k in samples if k.startswith("aisg_retention_overdue_items")} == {
        f'aisg_retention_overdue_items{{category="{c}"}}' for c in ("user_content", "system_logs", "metrics", "audit_ledger", "retired_embed_versions")
    }
    assert samples['aisg_retention_overdue_items{category="user_content"}'] == 0  # one document past 180 d, under legal hold
    assert not list(path.parent.glob(".*tmp"))


def test_cli_exports_a_week_and_a_month(report_store, monkeypatch):
    from click.testing import CliRunner

    from aisg_pipelines.cli import main

    s, _, _ = report_store
    env = {**env_for(s), "AISG_REPORT_TIMEZONE": "Asia/Seoul", "DAGSTER_HOME": str(s.data_dir / "no_dagster_home")}
    r = CliRunner().invoke(main, ["report", "--period", W45, "--no-checks"], env=env)
    assert r.exit_code == 0, r.output
    assert str(s.exports_dir / "compliance" / W45 / "report.pdf") in r.output and "prometheus textfile:" in r.output
    r = CliRunner().invoke(main, ["report", "--month", "2026-10", "--no-checks"], env=env)
    assert r.exit_code == 0, r.output
    assert (s.exports_dir / "compliance" / "2026-10" / "report.html").exists()
    r = CliRunner().invoke(main, ["report", "--period", "2026-47"], env=env)
    assert r.exit_code != 0 and "YYYY-Www" in r.output


def test_weekly_asset_materializes_a_partition_and_schedules_are_in_seoul(report_store, code_location_env):
    import dagster as dg

    s, _, _ = report_store
    code_location_env(s)
    defs = fresh_defs()
    job = defs.resolve_job_def("compliance_report_weekly_job")
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance, partition_key="2026-11-02")
        assert result.success
        mats = result.asset_materializations_for_node("compliance_report_weekly")
        md = mats[0].metadata
        assert md["period"].value == W45
        assert md["erasure_received"].value == 2 and md["retention_deleted_rows"].value == 120
        assert md["checks_passed"].value == 0  # no checks ran in this fresh instance during W45
        assert Path(md["report_pdf"].value).exists() and Path(md["report_html"].value).parent == s.exports_dir / "compliance" / W45
        assert "NOT within policy" in md["summary"].value
    repo = defs.get_repository_def()
    weekly = repo.get_schedule_def("compliance_report_weekly_schedule")
    monthly = repo.get_schedule_def("compliance_report_monthly_schedule")
    assert (weekly.cron_schedule, weekly.execution_timezone) == ("0 6 * * 1", "Asia/Seoul")
    assert (monthly.cron_schedule, monthly.execution_timezone) == ("0 6 1 * *", "Asia/Seoul")
    from zoneinfo import ZoneInfo

    with dg.instance_for_test() as instance:  # each tick reports the period that just ended
        for sd, at, expected in ((weekly, datetime(2026, 11, 23, 6, 0, tzinfo=ZoneInfo("Asia/Seoul")), "2026-11-16"),
                                 (monthly, datetime(2026, 12, 1, 6, 0, tzinfo=ZoneInfo("Asia/Seoul")), "2026-11-01")):
            tick = sd.evaluate_tick(dg.build_schedule_context(instance=instance, scheduled_execution_time=at, repository_def=repo))
            assert [r.partition_key for r in tick.run_requests] == [expected]
    pdef = repo.assets_defs_by_key[dg.AssetKey("compliance_report_weekly")].partitions_def
    with dg.instance_for_test() as instance:
        with dg.partition_loading_context(dynamic_partitions_store=instance):
            w = pdef.time_window_for_partition_key("2026-11-02")
    assert (w.start.isoformat(), w.end.isoformat()) == ("2026-11-02T00:00:00+09:00", "2026-11-09T00:00:00+09:00")


def test_a_check_that_failed_then_passed_is_resolved_not_a_finding():
    from aisg_pipelines.governance.reports import _data_quality, _findings, week_period

    period = week_period(W45, "Asia/Seoul")
    runs = [
        {"asset": "orphan_report", "check": "no_orphans", "passed": False, "occurred_at": _utc("2026-11-04T06:00:00")},
        {"asset": "orphan_report", "check": "no_orphans", "passed": True, "occurred_at": _utc("2026-11-04T07:00:00")},
        {"asset": "embeddings", "check": "embeddings_valid", "passed": True, "occurred_at": _utc("2026-11-04T06:00:00")},
        {"asset": "embeddings", "check": "embeddings_valid", "passed": False, "occurred_at": _utc("2026-11-05T06:00:00")},
    ]
    dq = _data_quality(runs, period)
    assert (dq["passed"], dq["failed"]) == (2, 2)
    assert dq["failing_at_period_end"] == [{"asset": "embeddings", "check": "embeddings_valid"}]
    assert dq["resolved_in_period"] == [{"asset": "orphan_report", "check": "no_orphans", "failed": 1}]
    summary = {"retention": {"categories": []}, "data_quality": dq, "ledger": {"chain_ok": True}, "embeddings": {"coverage": {}},
               "erasure": {"overdue_open": 0, "time_to_certification_days": {"over_deadline": 0}, "failed": 0}}
    assert _findings(summary) == ["Data quality: 1 asset check(s) failing at their last execution in the period (embeddings/embeddings_valid)."]
    dq_ok = _data_quality(runs[:3], period)
    summary["data_quality"] = dq_ok
    assert dq_ok["failing_at_period_end"] == [] and _findings(summary) == []
