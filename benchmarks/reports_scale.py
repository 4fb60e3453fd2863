"""Benchmark: building one compliance report over a large ledger and a 1M-chunk store.

    .venv/bin/python benchmarks/reports_scale.py [--events 200000] [--chunks 1000000] [--dir /tmp/aisg_bench_reports]

Setup (not timed): a sqlite ledger with `--events` hash-chained audit events spread over one
year (ingest, retention, orphans, erasure, embed_version) and 2,000 erasure_requests rows; a
LanceDB store with `--chunks` rows in `chunks` and in `embeddings_v1` (8-dim vectors: coverage
reads the id columns only, so the vector width does not change what is timed).

Timed: `collect_report` for one week and for one month (ledger queries, full hash-chain
verification, erasure table, coverage by pyarrow `is_in` over the chunk ids), and the
rendering (4 charts, HTML, PDF, CSVs). Prints a markdown table and the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--chunks", type=int, default=1_000_000)
    ap.add_argument("--dir", default="/tmp/aisg_bench_reports")
    a = ap.parse_args()

    import numpy as np
    import pyarrow as pa

    from aisg_pipelines.governance import ledger as L
    from aisg_pipelines.governance.ids import sha256_hex
    from aisg_pipelines.governance.report_render import write_exports
    from aisg_pipelines.governance.reports import collect_report, month_period, week_period
    from aisg_pipelines.governance.store import CHUNKS, CHUNKS_SCHEMA, LanceStore, embeddings_schema, embeddings_table
    from aisg_pipelines.governance.versions import VersionRegistry
    from aisg_pipelines.settings import Settings

    root = Path(a.dir)
    if root.exists():
        shutil.rmtree(root)
    data = root / "var"
    s = Settings(data_dir=data, lancedb_uri=str(data / "lancedb"), ledger_url=f"sqlite:///{data / 'ledger.db'}",
                 landing_dir=data / "landing", quarantine_dir=data / "quarantine", logs_dir=data / "logs",
                 metrics_dir=data / "metrics", exports_dir=data / "exports", erasure_inbox=data / "inbox", secrets_dir=data / "secrets")
    t0 = time.perf_counter()
    led = L.Ledger(s.ledger_url)
    rng = random.Random(7)
    start = datetime(2025, 11, 20, tzinfo=timezone.utc)
    times = sorted(start + timedelta(seconds=rng.randrange(365 * 86400)) for _ in range(a.events))
    kinds = ["ingest.documents"] * 6 + ["retention.purge", "orphans.report", "orphans.cleanup", "erasure.received"]
    with led.begin() as conn:
        for t in times:
            k = rng.choice(kinds)
            d = {"ingest.documents": {"batch_id": "x", "documents": 10, "pii_removed": {"EMAIL_ADDRESS": 2, "KR_RRN": 1}, "quarantined_by_reason": {"binary": 1}, "missing": 0},
                 "retention.purge": {"category": rng.choice(["user_content", "system_logs", "metrics"]), "expired": 10, "deleted": 10, "deleted_rows": 40, "held": 0, "bytes_reclaimed": 4096, "dry_run": False, "oldest_remaining_age_days": 170.0},
                 "orphans.report": {"counts": {"chunk_without_document": rng.randrange(5), "vector_without_chunk": rng.randrange(5)}},
                 "orphans.cleanup": {"kind": "chunk_without_document", "deleted": 2, "dry_run": False},
                 "erasure.received": {"request_id": "r"}}[k]
            led.append_event(k, d, conn=conn, occurred_at=t.isoformat())
        for i in range(2000):
            req = start + timedelta(seconds=rng.randrange(365 * 86400))
            cert = req + timedelta(days=rng.uniform(0.1, 40)) if rng.random() < 0.9 else None
            conn.execute(L.erasure_requests.insert().values(
                request_id=f"req-{i:05d}", subject_hash=sha256_hex(str(i)), status="certified" if cert else "in_progress",
                requested_at=L.iso(req), received_at=L.iso(req), certified_at=L.iso(cert) if cert else None,
                certificate_id=f"cert-{i:05d}" if cert else None, certificate_path=None, source="cli", progress="{}"))
    # a registered-and-active v1 without loading a model: insert the registry row directly
    with led.begin() as conn:
        conn.execute(L.embed_versions.insert().values(
            name="v1", model_path="-", model_name="bench", weights_fingerprint="0" * 64, dims=8, normalize=True, max_seq_length=256,
            chunk_size=500, chunk_overlap=100, params_hash="0" * 64, status="active", registered_at=L.iso(start), activated_at=L.iso(start)))
    store = LanceStore(s.lancedb_uri)
    step = 200_000
    ts = pa.array([start] * step, pa.timestamp("us", tz="UTC"))
    for off in range(0, a.chunks, step):
        n = min(step, a.chunks - off)
        ids = pa.array([f"{i:032x}" for i in range(off, off + n)])
        store.append(CHUNKS, CHUNKS_SCHEMA, pa.table({
            "chunk_id": ids, "doc_id": pa.array([f"doc-{i // 10}" for i in range(off, off + n)]), "subject_id": pa.array(["s"] * n),
            "batch_id": pa.array(["20260101-00000000"] * n), "chunk_index": pa.array([i % 10 for i in range(off, off + n)], pa.int32()),
            "text": pa.array(["t"] * n), "content_sha256": pa.array(["0"] * n), "n_chars": pa.array([1] * n, pa.int32()), "uploaded_at": ts.slice(0, n)}))
        keep = n if off + n < a.chunks else n - 1000  # the last 1000 chunks have no vector
        vec = pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(keep * 8, np.float32)), 8)
        store.append(embeddings_table("v1"), embeddings_schema(8), pa.table({
            "chunk_id": ids.slice(0, keep), "doc_id": pa.array(["d"] * keep), "batch_id": pa.array(["b"] * keep),
            "content_sha256": pa.array(["0"] * keep), "vector": vec, "embedded_at": ts.slice(0, keep)}))
    setup = time.perf_counter() - t0
    assert VersionRegistry(led).active().name == "v1"

    now = datetime(2026, 11, 20, 12, tzinfo=timezone.utc)
    rows = []
    for period in (week_period("2026-W20", "Asia/Seoul"), month_period("2026-05", "Asia/Seoul")):
        t = time.perf_counter()
        summary = collect_report(s, period, now=now, check_results=[])
        t_collect = time.perf_counter() - t
        t = time.perf_counter()
        paths = write_exports(summary, s.exports_dir / "compliance" / period.label)
        t_render = time.perf_counter() - t
        cov = summary["embeddings"]["coverage"]
        rows.append((period.label, summary["ledger"]["events_in_period"], summary["ledger"]["events_total"], cov["chunks"], cov["missing"],
                     f"{t_collect:.2f}", f"{t_render:.2f}", f"{paths['pdf'].stat().st_size / 1024:.0f} KiB"))
    print(f"\nmachine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; setup (not timed) {setup:.0f}s\n")
    print("| period | events in period | ledger events | chunks | chunks without vector | collect (s) | render (s) | PDF |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")


if __name__ == "__main__":
    main()
