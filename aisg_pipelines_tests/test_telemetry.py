"""System logs and metric samples: JSON-lines -> LanceDB by day, malformed lines quarantined (issue 5)."""

from __future__ import annotations

import json
from datetime import timedelta

from aisg_pipelines.governance.store import LanceStore
from aisg_pipelines.governance.telemetry import (
    generate_sample_telemetry,
    ingest_all,
    ingest_day,
    list_day_files,
    quarantine_file,
)

from .conftest import FIXED_NOW

SUBJECTS = ["subj-ko-001", "subj-en-002", "subj-ko-003"]


def test_sample_spans_200_days_with_subject_user_ids(settings):
    s = settings
    man = generate_sample_telemetry(s.logs_dir, s.metrics_dir, now=FIXED_NOW, subject_ids=SUBJECTS, span_days=200)
    assert len(man["days"]) == 200 and man["days"][0]["age_days"] == 199 and man["days"][-1]["day"] == "2026-11-20"
    assert man["log_rows"] == 200 * 12 and man["metric_rows"] == 200 * 5 * 4
    assert man["malformed_logs"] == 8 * 2 and man["malformed_metrics"] == 8  # ages 0, 25, ..., 175
    assert set(man["log_rows_by_user"]) == set(SUBJECTS) and sum(man["log_rows_by_user"].values()) == 200 * 8
    assert len(list_day_files(s.logs_dir)) == 200 and len(list_day_files(s.metrics_dir)) == 200
    # deterministic
    again = generate_sample_telemetry(s.logs_dir, s.metrics_dir, now=FIXED_NOW, subject_ids=SUBJECTS, span_days=200)
    assert again == man


def test_ingest_counts_quarantines_malformed_lines_and_is_idempotent(settings):
    s = settings
    man = generate_sample_telemetry(s.logs_dir, s.metrics_dir, now=FIXED_NOW, subject_ids=SUBJECTS, span_days=60)
    res = ingest_all(s, now=FIXED_NOW)
    logs = {r.day: r for r in res if r.kind == "system_logs"}
    mets = {r.day: r for r in res if r.kind == "metrics"}
    store = LanceStore(s.lancedb_uri)
    assert store.count("system_logs") == man["log_rows"] == 60 * 12
    assert store.count("metrics") == man["metric_rows"] == 60 * 20
    bad_day = (FIXED_NOW - timedelta(days=25)).strftime("%Y-%m-%d")
    assert logs[bad_day].malformed == 2 and logs[bad_day].malformed_by_reason == {"not_json": 1, "missing_fields": 1}
    assert mets[bad_day].malformed_by_reason == {"bad_value": 1}
    assert sum(r.malformed for r in logs.values()) == man["malformed_logs"] == 3 * 2
    q = [json.loads(line) for line in quarantine_file(s.quarantine_dir, "system_logs", bad_day).read_text().splitlines()]
    assert [(x["reason"], x["line_no"]) for x in q] == [("not_json", 4), ("missing_fields", 14)]
    assert all(x["file"] == f"aisg-{bad_day}.jsonl" for x in q)
    # row content
    rows = store.scan("system_logs", ["day", "user_id", "level", "duration_ms", "timestamp"]).to_pylist()
    assert {r["user_id"] for r in rows} == set(SUBJECTS) | {None}
    assert all(r["timestamp"].strftime("%Y-%m-%d") == r["day"] for r in rows)
    ids = sorted(r["row_id"] for r in store.scan("system_logs", ["row_id"]).to_pylist())
    # a re-ingest of everything changes nothing
    res2 = ingest_all(s, now=FIXED_NOW + timedelta(hours=1))
    assert sorted(r["row_id"] for r in store.scan("system_logs", ["row_id"]).to_pylist()) == ids
    assert all(r.write["inserted"] == 0 for r in res2)
    # appending one line to one day adds exactly one row; removing it again removes it
    f = s.logs_dir / f"aisg-{bad_day}.jsonl"
    original = f.read_bytes()
    f.write_bytes(original + json.dumps({"timestamp": f"{bad_day}T23:00:00Z", "level": "INFO", "message": "late"}).encode() + b"\n")
    r = ingest_day(store, "system_logs", s.logs_dir, s.quarantine_dir, bad_day)
    assert r.write == {"inserted": 1, "updated": 12, "deleted": 0} and store.count("system_logs") == len(ids) + 1
    f.write_bytes(original)
    r = ingest_day(store, "system_logs", s.logs_dir, s.quarantine_dir, bad_day)
    assert r.write["deleted"] == 1 and store.count("system_logs") == len(ids)


def test_garbage_files_never_fail_the_ingest(settings):
    s = settings
    s.logs_dir.mkdir(parents=True)
    day = "2026-11-19"
    (s.logs_dir / f"svc-{day}.jsonl").write_bytes(
        b"\xff\xfe not utf8\n"
        b"[1, 2, 3]\n"
        b'{"timestamp": "yesterday", "level": "INFO", "message": "x"}\n'
        b'{"timestamp": 1790000000, "level": "INFO", "message": "epoch ok", "duration_ms": "slow"}\n'
        b'{"timestamp": 1790000000, "level": "INFO", "message": "epoch ok"}\n'
        b'{"timestamp": 1790000000, "level": "INFO", "message": "epoch ok"}\n'
        b"\n"
        + b'{"timestamp": "2026-11-19T01:00:00Z", "level": "INFO", "message": "' + b"x" * 70_000 + b'"}\n'
    )
    r = ingest_day(LanceStore(s.lancedb_uri), "system_logs", s.logs_dir, s.quarantine_dir, day)
    assert r.rows == 1 and r.duplicates == 1 and r.lines == 7
    assert r.malformed_by_reason == {"not_utf8": 1, "not_object": 1, "bad_timestamp": 1, "bad_value": 1, "too_long": 1}
    reasons = [json.loads(line)["reason"] for line in quarantine_file(s.quarantine_dir, "system_logs", day).read_text().splitlines()]
    assert reasons == ["not_utf8", "not_object", "bad_timestamp", "bad_value", "too_long"]
