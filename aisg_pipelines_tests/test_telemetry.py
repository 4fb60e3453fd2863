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


def test_camelcase_wide_events_are_ingested_with_every_id_kept(settings):
    """AISG's WideEvents (camelCase, nested or dotted error.code) next to the snake_case format (issue 13)."""
    import shutil
    from pathlib import Path

    from aisg_pipelines.governance.store import LanceStore
    from aisg_pipelines.governance.telemetry import ingest_days

    sample = Path(__file__).parent / "data" / "aisg-2026-11-20.wide_events.jsonl"
    settings.logs_dir.mkdir(parents=True)
    shutil.copy(sample, settings.logs_dir / sample.name)
    store = LanceStore(settings.lancedb_uri)
    [res] = ingest_days(store, "system_logs", settings.logs_dir, settings.quarantine_dir, ["2026-11-20"])
    assert res.rows == 5 and res.malformed == 0
    rows = {r["request_id"]: r for r in store.open("system_logs").to_arrow().to_pylist()}
    assert sorted(rows) == ["req-7f3a", "req-7f3b", "req-7f3c", "req-7f3d", "req-legacy"]
    a = rows["req-7f3a"]
    assert (a["trace_id"], a["span_id"], a["correlation_id"], a["user_id"], a["duration_ms"], a["service"]) == (
        "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "corr-1001", "u-1001", 42.5, "rag-api")
    b = rows["req-7f3b"]
    assert (b["correlation_id"], b["job_id"], b["error_code"], b["service"], b["duration_ms"]) == ("corr-1002", "job-77", "EMBED_TIMEOUT", "rag-worker", 1500.0)
    assert "kim@naver.com" not in b["message"]  # free text still scrubbed
    c = rows["req-7f3c"]
    assert (c["correlation_id"], c["error_code"], c["service"], c["level"]) == ("corr-1003", "RATE_LIMITED", "analytics", "warn")
    assert "010-1234-5678" not in c["message"] and c["message"].startswith("erase requested by")
    d = rows["req-7f3d"]
    assert d["message"] == "connection reset" and d["error_code"] == "E_DB"  # no message: the error's
    legacy = rows["req-legacy"]
    assert (legacy["trace_id"], legacy["user_id"], legacy["correlation_id"]) == ("t-legacy", "u-1004", None)
    ids = {r["correlation_id"] for r in rows.values()} - {None}
    assert ids == {"corr-1001", "corr-1002", "corr-1003", "corr-1004"}


def test_wide_event_columns_are_added_to_an_existing_table(settings):
    import pyarrow as pa

    from aisg_pipelines.governance.store import LanceStore
    from aisg_pipelines.governance.telemetry import SYSTEM_LOGS_SCHEMA, ingest_days

    old = pa.schema([f for f in SYSTEM_LOGS_SCHEMA if f.name not in ("correlation_id", "span_id", "error_code")])
    store = LanceStore(settings.lancedb_uri)
    store.ensure_table("system_logs", old)
    settings.logs_dir.mkdir(parents=True)
    (settings.logs_dir / "aisg-2026-11-21.jsonl").write_text('{"timestamp":"2026-11-21T00:00:00Z","level":"info","message":"m","correlationId":"c-9"}\n')
    ingest_days(store, "system_logs", settings.logs_dir, settings.quarantine_dir, ["2026-11-21"])
    assert store.open("system_logs").to_arrow().to_pylist()[0]["correlation_id"] == "c-9"
