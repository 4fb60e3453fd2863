"""Issue 11, end to end: PII that enters through documents or telemetry is scrubbed before
anything is written, everywhere under the data directory.

The only places raw values may stay are the inputs AISG itself writes and that retention
and erasure govern: the landing zone (uploads) and the telemetry landing area
(``incoming/``). A quarantined upload keeps its raw bytes (it is moved, for the user to
fix), so the careless upload here is rejected for its sidecar, and its reason file is
what must stay clean.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa

from aisg_pipelines.governance import pipeline, telemetry
from aisg_pipelines.governance.checks import check_documents_pii_free
from aisg_pipelines.governance.pii import get_scrubber
from aisg_pipelines.governance.store import LanceStore

from .conftest import settings_for

# Issue 11's "Why" strings and the raw values inside them.
WHY = [
    ("제 번호는 010-1234-5678 입니다", "010-1234-5678"),
    ("Reach Kim on 010-9876-5432", "010-9876-5432"),
    ("01012345678 로 문자 주세요", "01012345678"),
    ("+82-10-1234-5678", "+82-10-1234-5678"),
    ("주민번호 900101-1234567", "900101-1234567"),
    ("203.0.113.7에서 접속", "203.0.113.7"),
    ("kim@naver.com으로 보내주세요", "kim@naver.com"),
    ("https://carter.biz/u/kristen", "carter.biz/u/kristen"),
]
RAW = [v for _, v in WHY]
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
INPUTS = ("landing", "incoming")


def _write_inputs(s) -> None:
    day = "2026-11-30"
    up = s.landing_dir / day
    up.mkdir(parents=True)
    body = "\n\n".join(text for text, _ in WHY)
    for i, (name, text) in enumerate((("why.txt", body), ("chat.md", "상담 기록\n\n" + " ".join(t for t, _ in WHY)))):
        (up / name).write_text(text, encoding="utf-8")
        meta = {"doc_id": f"doc-why-{i}", "subject_id": "subj-why", "uploaded_at": "2026-11-30T09:00:00Z",
                "category": "user_content", "source": "aisg-web"}
        (up / (name + ".meta.json")).write_text(json.dumps(meta), encoding="utf-8")
    # A careless upload: the sidecar's category holds an e-mail address; the reason file
    # names the bad category, scrubbed.
    (up / "careless.txt").write_text("본문", encoding="utf-8")
    (up / "careless.txt.meta.json").write_text(json.dumps(
        {"doc_id": "doc-careless", "subject_id": "subj-why", "uploaded_at": "2026-11-30T09:00:00Z",
         "category": "kim@naver.com", "source": "aisg-web"}), encoding="utf-8")
    logs = s.logs_dir / f"aisg-{day}.jsonl"
    logs.parent.mkdir(parents=True)
    lines = [json.dumps({"timestamp": f"{day}T10:00:0{i}Z", "level": "INFO", "service": "rag-api", "message": text,
                         "user_id": "subj-why", "request_id": f"req-{i}"}, ensure_ascii=False)
             for i, (text, _) in enumerate(WHY)]
    # A malformed line (not JSON) that carries PII: it is quarantined, scrubbed.
    lines.append("oops " + " ".join(RAW))
    lines.append(json.dumps({"timestamp": "not a time " + RAW[0], "level": "INFO", "message": "x"}))
    logs.write_text("\n".join(lines) + "\n", encoding="utf-8")
    metrics = s.metrics_dir / f"aisg-{day}.jsonl"
    metrics.parent.mkdir(parents=True)
    metrics.write_text("\n".join(
        json.dumps({"name": "rag_queue_length", "value": i, "timestamp": f"{day}T10:00:00Z",
                    "labels": {"caller": text, "user_id": "subj-why", "host": "worker-1"}}, ensure_ascii=False)
        for i, (text, _) in enumerate(WHY)) + "\n", encoding="utf-8")


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_no_raw_pii_anywhere_outside_the_inputs(tmp_path):
    s = settings_for(tmp_path)
    _write_inputs(s)
    res = pipeline.ingest_all(s, now=NOW)
    assert res.documents == 2 and res.quarantined == 1
    tel = telemetry.ingest_all(s, now=NOW)
    assert {(r.kind, r.rows, r.malformed) for r in tel} == {("system_logs", len(WHY), 2), ("metrics", len(WHY), 0)}

    # The scan can see the values: they are in the inputs (raw bytes, UTF-8).
    inputs = b"".join(p.read_bytes() for d in INPUTS for p in _files(s.data_dir / d))
    assert all(v.encode() in inputs for v in RAW)

    # 1. No raw value in any byte of any file outside the inputs (LanceDB data, manifests,
    #    transactions, the SQLite ledger, quarantine reason / rejected-line files, secrets).
    leaks = []
    for p in _files(s.data_dir):
        if p.relative_to(s.data_dir).parts[0] in INPUTS or p.name.startswith("careless.txt") and not p.name.endswith(".reason.txt"):
            continue  # the inputs, and the quarantined upload itself (moved as it was, for the user to fix)
        data = p.read_bytes()
        leaks += [(str(p.relative_to(s.data_dir)), v) for v in RAW if v.encode() in data]
    assert leaks == []

    # 2. Nor in any decoded value of any LanceDB table (in case a column is compressed).
    store = LanceStore(s.lancedb_uri)
    tables = store.table_names()
    assert {"documents", "chunks", "system_logs", "metrics"} <= set(tables)
    for name in tables:
        tbl = store.open(name).to_arrow()
        for col in tbl.column_names:
            if pa.types.is_string(tbl.schema.field(col).type) or pa.types.is_large_string(tbl.schema.field(col).type):
                text = "\n".join(v for v in tbl[col].to_pylist() if v)
                assert not [v for v in RAW if v in text], (name, col)

    # 3. What was stored is the scrubbed text, and the PII check (the scrubber's own
    #    detector and threshold) passes on it.
    docs = store.scan("documents", ["doc_id", "text", "pii_total"]).to_pylist()
    assert {d["doc_id"]: d["pii_total"] for d in docs} == {"doc-why-0": len(WHY), "doc-why-1": len(WHY)}
    assert "<PHONE_NUMBER>" in docs[0]["text"] and "<KR_RRN>" in docs[0]["text"]
    quality, by_type = check_documents_pii_free(store, None, get_scrubber())
    assert quality.passed and by_type == {}
    logs = store.scan("system_logs", ["message", "user_id"]).to_pylist()
    assert sorted(r["message"] for r in logs) == sorted(get_scrubber().scrub(t).text for t, _ in WHY)
    assert {r["user_id"] for r in logs} == {"subj-why"}  # the subject field is kept: erasure matches on it
    labels = [json.loads(r["labels"]) for r in store.scan("metrics", ["labels"]).to_pylist()]
    assert {lab["host"] for lab in labels} == {"worker-1"} and {lab["user_id"] for lab in labels} == {"subj-why"}
    reason = (s.quarantine_dir / "2026-11-30" / "careless.txt.reason.txt").read_text(encoding="utf-8")
    assert "reason: invalid_fields" in reason and "<EMAIL_ADDRESS>" in reason
    rejected = (s.quarantine_dir / "telemetry" / "system_logs" / "2026-11-30.rejected.jsonl").read_text(encoding="utf-8")
    assert [json.loads(line)["reason"] for line in rejected.splitlines()] == ["not_json", "bad_timestamp"]
