"""Benchmark: GDPR erasure (verification included) on a store of 1,000,000 chunks in two embed_versions.

    .venv/bin/python benchmarks/erasure_1m.py [--chunks 1000000] [--dir /tmp/aisg_bench_erasure] [--batch 100]

Setup (not timed): a synthetic store written with the real schemas through `LanceStore`:
100,000 documents of 10,000 subjects, 10 chunks each (random words and numbers), and random
normalised 384-dim vectors for every chunk in `embeddings_v1` and `embeddings_v2`. Documents
are uploaded over time, so a subject's documents are spread over the table: rows are
appended in fragments of 10,000 rows (as ingest batches would), and erasure's purge only
rewrites the fragments it touched.

Timed: `erase_subject` for one subject (discovery, deletion, purge, API + byte-level
verification, certificate), then one run with 100 subjects. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aisg_pipelines.governance import erasure as er  # noqa: E402
from aisg_pipelines.governance.ids import chunk_id_for, sha256_hex  # noqa: E402
from aisg_pipelines.governance.store import CHUNKS, CHUNKS_SCHEMA, DOCUMENTS, DOCUMENTS_SCHEMA, LanceStore, embeddings_schema  # noqa: E402
from aisg_pipelines.settings import Settings  # noqa: E402

DIMS = 384
FRAGMENT_ROWS = 10_000
CHUNKS_PER_DOC = 10
DOCS_PER_SUBJECT = 10


def settings_for(root: Path) -> Settings:
    d = root / "var"
    return Settings(
        data_dir=d, lancedb_uri=str(d / "lancedb"), ledger_url=f"sqlite:///{d / 'ledger.db'}", landing_dir=d / "landing",
        quarantine_dir=d / "quarantine", logs_dir=d / "incoming" / "logs", metrics_dir=d / "incoming" / "metrics",
        exports_dir=d / "exports", erasure_inbox=d / "erasure_inbox", secrets_dir=d / "secrets",
    )


def build(s: Settings, n_chunks: int, seed: int = 11) -> dict:
    rng = np.random.default_rng(seed)
    n_docs = n_chunks // CHUNKS_PER_DOC
    n_subjects = max(1, n_docs // DOCS_PER_SUBJECT)
    store = LanceStore(s.lancedb_uri)
    words = np.array(["data", "model", "order", "quarter", "shipping", "invoice", "meeting", "project", "report", "refund",
                      "account", "delivery", "contract", "schedule", "support", "update", "review", "payment", "team", "plan"])
    doc_subject = rng.permutation(np.repeat(np.arange(n_subjects), DOCS_PER_SUBJECT)[:n_docs])  # spread over time
    ts = pa.array([datetime(2026, 1, 1, tzinfo=timezone.utc)] * FRAGMENT_ROWS, pa.timestamp("us", tz="UTC"))
    t0 = time.perf_counter()
    docs_per_frag = FRAGMENT_ROWS // CHUNKS_PER_DOC
    for start in range(0, n_docs, docs_per_frag):
        end = min(n_docs, start + docs_per_frag)
        doc_ids, subjects, doc_texts, chunk_rows = [], [], [], {k: [] for k in ("chunk_id", "doc_id", "subject_id", "chunk_index", "text", "content_sha256")}
        for d in range(start, end):
            did = f"doc-{d:07d}"
            sid = f"user-{doc_subject[d]:06d}"
            w = rng.integers(0, len(words), size=(CHUNKS_PER_DOC, 40))
            nums = rng.integers(0, 10**9, size=(CHUNKS_PER_DOC, 4))
            texts = [" ".join(words[w[i]].tolist()) + f" ref {nums[i, 0]} amount {nums[i, 1]} id {nums[i, 2]}-{nums[i, 3]}" for i in range(CHUNKS_PER_DOC)]
            doc_ids.append(did)
            subjects.append(sid)
            doc_texts.append("\n\n".join(texts))
            for i, t in enumerate(texts):
                chunk_rows["chunk_id"].append(chunk_id_for(did, i))
                chunk_rows["doc_id"].append(did)
                chunk_rows["subject_id"].append(sid)
                chunk_rows["chunk_index"].append(i)
                chunk_rows["text"].append(t)
                chunk_rows["content_sha256"].append(sha256_hex(t))
        nd = len(doc_ids)
        batch_id = f"20260101-{start // docs_per_frag:08x}"
        store.append(DOCUMENTS, DOCUMENTS_SCHEMA, pa.table({
            "doc_id": doc_ids, "subject_id": subjects, "batch_id": [batch_id] * nd, "category": ["user_content"] * nd,
            "source": ["bench"] * nd, "uploaded_at": ts[:nd], "legal_hold": [False] * nd, "file_path": [None] * nd,
            "file_sha256": [None] * nd, "media_type": ["text/plain"] * nd, "text": doc_texts,
            "text_sha256": [sha256_hex(t) for t in doc_texts], "n_chars": [len(t) for t in doc_texts], "pii_counts": ["{}"] * nd,
            "pii_total": [0] * nd, "ingested_at": ts[:nd],
        }))
        nc = len(chunk_rows["chunk_id"])
        store.append(CHUNKS, CHUNKS_SCHEMA, pa.table({**chunk_rows, "batch_id": [batch_id] * nc, "n_chars": [len(t) for t in chunk_rows["text"]],
                                                      "uploaded_at": ts[:nc]}))
        for version in ("v1", "v2"):
            vec = rng.standard_normal((nc, DIMS), dtype=np.float32)
            vec /= np.linalg.norm(vec, axis=1, keepdims=True)
            store.append(f"embeddings_{version}", embeddings_schema(DIMS), pa.table({
                "chunk_id": chunk_rows["chunk_id"], "doc_id": chunk_rows["doc_id"], "batch_id": [batch_id] * nc,
                "content_sha256": chunk_rows["content_sha256"],
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vec.reshape(-1)), DIMS), "embedded_at": ts[:nc],
            }))
    for name in store.table_names():
        store.ensure_indices(name)
    return {"documents": n_docs, "chunks": n_chunks, "subjects": n_subjects, "seconds": time.perf_counter() - t0,
            "fragments": len(store.dataset(CHUNKS).get_fragments()), "bytes": sum(store.table_sizes().values())}


def run_one(s: Settings, subjects: list[str], label: str) -> dict:
    for i, subj in enumerate(subjects):
        er.erase_subject(s, subj, requested_by="bench", request_id=f"{label}-{i:04d}", run=False)
    t0 = time.perf_counter()
    res = er.process_requests(s, [f"{label}-{i:04d}" for i in range(len(subjects))])
    total = time.perf_counter() - t0
    bad = [o for o in res.outcomes if o.status != "certified"]
    if bad:
        raise SystemExit(f"{label}: {len(bad)} requests not certified: {bad[0].failure}")
    items = sum(sum(c.get("items", 0) for c in o.counts.values()) for o in res.outcomes)
    rewritten = sum(e.get("fragments_rewritten", 0) for e in res.purge.values())
    return {"label": label, "subjects": len(subjects), "total": total, "items": items, "rows_deleted": sum(res.rows_deleted.values()),
            "fragments_rewritten": rewritten, **{k: res.timings.get(k, 0.0) for k in ("discovery", "deletion", "files", "purge", "verify_api", "scan", "certify")},
            "bytes_scanned": res.scan["bytes_scanned"], "decoded": res.scan["decoded_bytes_scanned"], "files_scanned": res.scan["files_scanned"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=1_000_000)
    ap.add_argument("--dir", default="/tmp/aisg_bench_erasure")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--reuse", action="store_true", help="reuse a store built by an earlier run (not re-generated)")
    args = ap.parse_args()
    root = Path(args.dir)
    s = settings_for(root)
    if not (args.reuse and (root / "var" / "lancedb").exists()):
        shutil.rmtree(root, ignore_errors=True)
        info = build(s, args.chunks)
        print(f"setup: {info['documents']:,} documents, {info['chunks']:,} chunks x 2 versions, {info['subjects']:,} subjects, "
              f"{info['fragments']} fragments/table, {info['bytes'] / 1e9:.2f} GB, built in {info['seconds']:.0f}s", flush=True)
        os.sync()  # flush the 3.5 GB just written, so its writeback does not land in the timed runs
    print(f"load average before the timed runs: {' '.join(open('/proc/loadavg').read().split()[:3])}", flush=True)
    n_subjects = args.chunks // CHUNKS_PER_DOC // DOCS_PER_SUBJECT
    rng = np.random.default_rng(5)
    picks = [f"user-{i:06d}" for i in rng.choice(n_subjects, size=args.batch + 1, replace=False)]
    one = run_one(s, picks[:1], "one")
    print(f"one subject: {one['total']:.2f}s", flush=True)
    many = run_one(s, picks[1:], "batch")
    print(f"{args.batch} subjects: {many['total']:.2f}s", flush=True)
    cols = ["subjects", "total", "discovery", "deletion", "files", "purge", "verify_api", "scan", "certify"]
    print()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}")
    print(f"store: {args.chunks:,} chunks in 2 embed_versions ({DIMS}-d), fragments of {FRAGMENT_ROWS:,} rows")
    print()
    print("| run | " + " | ".join(c if c == "subjects" else f"{c} (s)" for c in cols) + " | rows deleted | fragments rewritten | scanned (raw + decoded) |")
    print("|---|" + "---|" * (len(cols) + 3))
    for r in (one, many):
        vals = [str(r["subjects"])] + [f"{r[c]:.2f}" for c in cols[1:]]
        print(f"| {r['label']} | " + " | ".join(vals) + f" | {r['rows_deleted']:,} | {r['fragments_rewritten']} | "
              f"{r['files_scanned']} files, {r['bytes_scanned'] / 1e9:.2f} GB + {r['decoded'] / 1e9:.2f} GB |")
    print()
    print(f"goal one subject <= 15 s: {'met' if one['total'] <= 15 else 'NOT met'} ({one['total']:.1f} s); "
          f"batch of {args.batch} / one = {many['total'] / one['total']:.2f}x (goal <= 3x: {'met' if many['total'] <= 3 * one['total'] else 'NOT met'})")


if __name__ == "__main__":
    main()
