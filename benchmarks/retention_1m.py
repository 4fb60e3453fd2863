"""Retention at scale: expire 10% of a 1,000,000-chunk store with two embed_versions, purge included.

    python benchmarks/retention_1m.py                     # clustered + scattered, 1M chunks
    python benchmarks/retention_1m.py --layouts clustered --chunks 200000

Setup (not measured): a synthetic LanceDB store — documents (100k), chunks (1M, 10 per
document), embeddings_v1 and embeddings_v2 (1M random normalized float32 vectors, 384 dims,
each) — written in time order in ~50k-row fragments, as an append-by-time store grows.
Uploads span 200 days; the run's clock is set so exactly 10% of the documents are past
180 days, 5 of them under legal hold (sidecar flag).

Layouts: `clustered` — the expired documents are the oldest, so they sit in the first
fragments (the real case: data is appended by time); `scattered` — upload dates are
shuffled, so every fragment holds expired rows (worst case: every fragment is rewritten).

The measurement runs `run_retention` in a fresh process (peak RSS is the run's own, imports
included) and verifies the exact remaining row counts and that no fragment keeps a
deletion file.
"""

from __future__ import annotations

import argparse
import json
import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parent))
from _common import peak_rss_mib  # noqa: E402
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

CHUNKS_PER_DOC = 10
FRAGMENT_ROWS = 50_000
SPAN_DAYS = 200
HELD = 5
AS_OF = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def _settings(root: Path):
    from aisg_pipelines.settings import Settings

    return Settings(
        data_dir=root, lancedb_uri=str(root / "lancedb"), ledger_url=f"sqlite:///{root / 'ledger.db'}",
        landing_dir=root / "landing", quarantine_dir=root / "quarantine", logs_dir=root / "logs", metrics_dir=root / "metrics",
        exports_dir=root / "exports", erasure_inbox=root / "inbox", secrets_dir=root / "secrets",
    )


def build(root: Path, n_chunks: int, dims: int, layout: str, seed: int = 11) -> dict:
    import numpy as np
    import pyarrow as pa

    from aisg_pipelines.governance.ledger import Ledger
    from aisg_pipelines.governance.store import CHUNKS, CHUNKS_SCHEMA, DOCUMENTS, DOCUMENTS_SCHEMA, LanceStore, embeddings_schema

    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    Ledger(f"sqlite:///{root / 'ledger.db'}")
    rng = np.random.default_rng(seed)
    store = LanceStore(str(root / "lancedb"))
    n_docs = n_chunks // CHUNKS_PER_DOC
    start = AS_OF - timedelta(days=SPAN_DAYS)
    # doc i (in write order) is uploaded at start + i * span / n_docs: the oldest 10% are > 180 days old
    step_us = SPAN_DAYS * 86400 * 1_000_000 // n_docs
    order = np.arange(n_docs) if layout == "clustered" else rng.permutation(n_docs)
    up_us = int(start.timestamp() * 1_000_000) + order.astype(np.int64) * step_us + 1
    cutoff_us = int((AS_OF - timedelta(days=180)).timestamp() * 1_000_000)
    expired = np.flatnonzero(up_us < cutoff_us)
    held = set(rng.choice(expired, HELD, replace=False).tolist())
    doc_ids = [f"doc-{i:07d}" for i in range(n_docs)]
    days = (up_us // (86400 * 1_000_000)).astype(np.int64)
    day_str = {d: datetime.fromtimestamp(int(d) * 86400, timezone.utc).strftime("%Y%m%d") for d in np.unique(days)}
    batch = [f"{day_str[d]}-{d % 0xFFFFFFFF:08x}" for d in days.tolist()]
    ts = pa.array(up_us, pa.timestamp("us", tz="UTC"))
    now = pa.array(np.full(n_docs, int(AS_OF.timestamp() * 1_000_000)), pa.timestamp("us", tz="UTC"))
    docs = pa.table({
        "doc_id": doc_ids, "subject_id": [f"subj-{i % 20000:05d}" for i in range(n_docs)], "batch_id": batch,
        "category": ["user_content"] * n_docs, "source": ["bench"] * n_docs, "uploaded_at": ts,
        "legal_hold": [i in held for i in range(n_docs)], "file_path": pa.nulls(n_docs, pa.string()),
        "file_sha256": [""] * n_docs, "media_type": ["text/plain"] * n_docs,
        "text": [f"synthetic document {d} scrubbed text " + "lorem ipsum " * 20 for d in doc_ids],
        "text_sha256": [""] * n_docs, "n_chars": pa.array(np.full(n_docs, 260), pa.int32()), "pii_counts": ["{}"] * n_docs,
        "pii_total": pa.array(np.zeros(n_docs), pa.int32()), "ingested_at": now,
    }).cast(DOCUMENTS_SCHEMA)
    for off in range(0, n_docs, FRAGMENT_ROWS // CHUNKS_PER_DOC * 2):
        store.append(DOCUMENTS, DOCUMENTS_SCHEMA, docs.slice(off, FRAGMENT_ROWS // CHUNKS_PER_DOC * 2))
    schema = embeddings_schema(dims)
    docs_per_frag = FRAGMENT_ROWS // CHUNKS_PER_DOC
    for off in range(0, n_docs, docs_per_frag):
        idx = np.arange(off, min(off + docs_per_frag, n_docs))
        rep = np.repeat(idx, CHUNKS_PER_DOC)
        ci = np.tile(np.arange(CHUNKS_PER_DOC), len(idx))
        n = len(rep)
        chunk_ids = [f"{d:07d}{c:03d}".ljust(32, "0") for d, c in zip(rep.tolist(), ci.tolist())]
        d_ids = [doc_ids[d] for d in rep.tolist()]
        b_ids = [batch[d] for d in rep.tolist()]
        chunks = pa.table({
            "chunk_id": chunk_ids, "doc_id": d_ids, "subject_id": [f"subj-{d % 20000:05d}" for d in rep.tolist()], "batch_id": b_ids,
            "chunk_index": pa.array(ci, pa.int32()), "text": [f"chunk {c} of {d}: " + "dolor sit amet " * 12 for c, d in zip(ci.tolist(), d_ids)],
            "content_sha256": chunk_ids, "n_chars": pa.array(np.full(n, 200), pa.int32()),
            "uploaded_at": pa.array(up_us[rep], pa.timestamp("us", tz="UTC")),
        }).cast(CHUNKS_SCHEMA)
        store.append(CHUNKS, CHUNKS_SCHEMA, chunks)
        for v in ("v1", "v2"):
            vec = rng.standard_normal((n, dims), dtype=np.float32)
            vec /= np.linalg.norm(vec, axis=1, keepdims=True)
            store.append(f"embeddings_{v}", schema, pa.table({
                "chunk_id": chunk_ids, "doc_id": d_ids, "batch_id": b_ids, "content_sha256": chunk_ids,
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vec.reshape(-1)), dims),
                "embedded_at": pa.array(np.full(n, int(AS_OF.timestamp() * 1_000_000)), pa.timestamp("us", tz="UTC")),
            }).cast(schema))
    for t in store.table_names():
        store.ensure_indices(t)
    store.purge()  # start from one clean version per table, as a store retention ran on yesterday
    return {"docs": n_docs, "chunks": n_docs * CHUNKS_PER_DOC, "expired_docs": int(len(expired)), "held_docs": HELD,
            "fragments": {t: len(store.dataset(t).get_fragments()) for t in store.table_names()},
            "bytes": store.table_sizes()}


def measure(root: Path) -> dict:
    from aisg_pipelines.governance.retention import run_retention
    from aisg_pipelines.governance.store import LanceStore

    store = LanceStore(str(root / "lancedb"))
    before = {t: store.count(t) for t in store.table_names()}
    size_before = sum(store.table_sizes().values())
    t0 = time.perf_counter()
    res = run_retention(_settings(root), now=AS_OF)
    seconds = time.perf_counter() - t0
    store = LanceStore(str(root / "lancedb"))
    after = {t: store.count(t) for t in store.table_names()}
    dirty = [t for t in store.table_names() if any(f.deletion_file() is not None for f in store.dataset(t).get_fragments()) or len(store.dataset(t).versions()) > 1]
    uc = res.categories["user_content"]
    return {
        "seconds": round(seconds, 2), "before": before, "after": after, "deleted_docs": uc.deleted, "held_docs": uc.held,
        "rows_deleted": uc.rows_deleted, "bytes_reclaimed": uc.bytes_reclaimed, "disk_before": size_before,
        "disk_after": sum(store.table_sizes().values()), "dirty_tables": dirty,
        "fragments_rewritten": {t: e.get("fragments_rewritten") for t, e in res.purge.items()},
        "peak_rss_mb": round(peak_rss_mib(), 1),  # VmHWM of this measuring process (not the parent's)
    }


def machine() -> str:
    import lance
    import lancedb

    from _common import machine as base_machine

    return f"{base_machine()}, lancedb {lancedb.__version__}, pylance {lance.__version__}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=1_000_000)
    ap.add_argument("--dims", type=int, default=384)
    ap.add_argument("--layouts", default="clustered,scattered")
    ap.add_argument("--dir", default="/tmp/aisg_retention_bench")
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure))))
        return
    rows = []
    for layout in args.layouts.split(","):
        root = Path(args.dir) / layout
        t0 = time.perf_counter()
        info = build(root, args.chunks, args.dims, layout)
        setup_s = time.perf_counter() - t0
        out = subprocess.run([sys.executable, __file__, "--measure", str(root)], capture_output=True, text=True)
        if out.returncode:
            sys.exit(out.stderr[-3000:])
        m = json.loads(out.stdout.strip().splitlines()[-1])
        exp_chunks = args.chunks - (info["expired_docs"] - HELD) * CHUNKS_PER_DOC
        ok = (m["after"]["chunks"] == exp_chunks and m["after"]["embeddings_v1"] == exp_chunks and m["after"]["embeddings_v2"] == exp_chunks
              and m["after"]["documents"] == info["docs"] - info["expired_docs"] + HELD and not m["dirty_tables"])
        rows.append((layout, info, setup_s, m, ok))
        print(f"# {layout}: setup {setup_s:.1f}s, measure {json.dumps(m)}", file=sys.stderr)
        shutil.rmtree(root, ignore_errors=True)
    print("| layout | chunks | docs expired (held) | rows deleted (chunks + 2×vectors + docs) | fragments rewritten (chunks/v1/v2) | time incl. purge | bytes reclaimed | peak RSS | exact counts |")
    print("|---|---|---|---|---|---|---|---|---|")
    for layout, info, setup_s, m, ok in rows:
        rd = m["rows_deleted"]
        fr = m["fragments_rewritten"]
        print(f"| {layout} | {info['chunks']:,} | {info['expired_docs']:,} ({HELD}) | {rd['chunks'] + rd['embeddings_v1'] + rd['embeddings_v2'] + rd['documents']:,} | "
              f"{fr.get('chunks')}/{fr.get('embeddings_v1')}/{fr.get('embeddings_v2')} of {info['fragments']['chunks']} | **{m['seconds']:.1f} s** | "
              f"{m['bytes_reclaimed'] / 2**20:,.0f} MiB ({m['disk_before'] / 2**20:,.0f} → {m['disk_after'] / 2**20:,.0f} MiB) | {m['peak_rss_mb']:,.0f} MB | {'yes' if ok else 'NO'} |")
    print(f"\nMachine: {machine()}")


if __name__ == "__main__":
    main()
