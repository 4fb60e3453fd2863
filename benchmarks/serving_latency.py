"""Reader latency: `Retriever` (the reader API) vs a bare LanceDB search on the same table.

    python benchmarks/serving_latency.py [--rows 50000] [--queries 400] [--k 10]

Builds a store with one active version (`embeddings_v1`, random unit vectors, 384 dims) and
its chunks, then, interleaved in one process, times per query:
- bare: `lancedb.connect(uri).open_table("embeddings_v1").search(v).metric("cosine").limit(k)`;
- reader, vectors only: `Retriever.search_vector(v, k, with_text=False)` (pointer check,
  one snapshot, the same search);
- reader with texts: `Retriever.search_vector(v, k)` (plus the chunk texts, and no hit whose
  chunk is gone).
Query embedding is excluded from all three and measured on its own (the v1 encoder).
Prints the machine, a markdown table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from _common import machine  # noqa: E402


def _build(root: Path, rows: int, dims: int = 384):
    from aisg_pipelines.governance.ledger import Ledger
    from aisg_pipelines.governance.store import CHUNKS, CHUNKS_SCHEMA, LanceStore, embeddings_schema
    from aisg_pipelines.governance.versions import VersionRegistry, ensure_bootstrap_version
    from aisg_pipelines.settings import bundled_model_path

    uri, ledger_url = str(root / "lancedb"), f"sqlite:///{root / 'ledger.db'}"
    store = LanceStore(uri)
    v1 = ensure_bootstrap_version(VersionRegistry(Ledger(ledger_url)), bundled_model_path())
    rng = np.random.default_rng(7)
    vecs = rng.standard_normal((rows, dims)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = [f"c{i:08d}" for i in range(rows)]
    now = datetime.now(timezone.utc)
    emb = pa.table({"chunk_id": ids, "doc_id": [f"d{i // 5:07d}" for i in range(rows)], "batch_id": ["b"] * rows,
                    "content_sha256": ["0" * 64] * rows,
                    "vector": pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1)), dims),
                    "embedded_at": [now] * rows}, schema=embeddings_schema(dims))
    store.db.create_table(v1.table, emb)
    chunks = pa.table({"chunk_id": ids, "doc_id": [f"d{i // 5:07d}" for i in range(rows)], "subject_id": ["s"] * rows,
                       "batch_id": ["b"] * rows, "chunk_index": [i % 5 for i in range(rows)],
                       "text": [f"chunk {i} text" for i in range(rows)], "content_sha256": ["0" * 64] * rows,
                       "n_chars": [12] * rows, "uploaded_at": [now] * rows}, schema=CHUNKS_SCHEMA)
    store.db.create_table(CHUNKS, chunks)
    store.ensure_indices(CHUNKS)
    return uri, ledger_url, v1


def _pct(xs: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1000, p))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--queries", type=int, default=400)
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    print(f"machine: {machine()}")
    import lancedb

    from aisg_pipelines.serving import Retriever

    with tempfile.TemporaryDirectory() as tmp:
        uri, ledger_url, v1 = _build(Path(tmp), args.rows)
        rng = np.random.default_rng(11)
        queries = rng.standard_normal((args.queries, 384)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        bare_tbl = lancedb.connect(uri).open_table(v1.table)
        retriever = Retriever(uri, ledger_url)  # default refresh bound (5 s)

        def bare(v):
            return bare_tbl.search(v).metric("cosine").limit(args.k).select(["chunk_id", "doc_id", "_distance"]).to_list()

        def reader_vec(v):
            return retriever.search_vector(v, args.k, with_text=False).hits

        def reader_text(v):
            return retriever.search_vector(v, args.k).hits

        runs = {"bare LanceDB search": bare, "Retriever.search_vector, vectors only": reader_vec,
                "Retriever.search_vector, with texts": reader_text}
        for fn in runs.values():  # warm-up
            for v in queries[:20]:
                fn(v)
        times: dict[str, list[float]] = {name: [] for name in runs}
        for v in queries:  # interleaved: the machine's load hits every row alike
            for name, fn in runs.items():
                t0 = time.perf_counter()
                out = fn(v)
                times[name].append(time.perf_counter() - t0)
                assert len(out) == args.k
        enc = retriever.current().encoder
        texts = [f"환불 규정과 계좌 변경 문의 {i}" for i in range(50)]
        enc.encode(texts[:2])  # load
        t0 = time.perf_counter()
        for t in texts:
            enc.encode([t])
        embed_ms = (time.perf_counter() - t0) / len(texts) * 1000

    base = _pct(times["bare LanceDB search"], 50)
    print(f"\n{args.rows:,} rows, k={args.k}, {args.queries} queries each, interleaved\n")
    print("| path | p50 ms | p99 ms | queries/s | p50 × bare |\n|---|---:|---:|---:|---:|")
    result = {}
    for name, ts in times.items():
        p50, p99, qps = _pct(ts, 50), _pct(ts, 99), len(ts) / sum(ts)
        result[name] = {"p50_ms": round(p50, 3), "p99_ms": round(p99, 3), "qps": round(qps, 1), "p50_ratio": round(p50 / base, 3)}
        print(f"| {name} | {p50:.2f} | {p99:.2f} | {qps:.0f} | {p50 / base:.2f} |")
    print(f"\nquery embedding (v1 encoder, one query per call): {embed_ms:.1f} ms mean")
    print(json.dumps({"rows": args.rows, "k": args.k, "queries": args.queries, "paths": result, "embed_ms": round(embed_ms, 2),
                      "machine": machine()}))


if __name__ == "__main__":
    main()
