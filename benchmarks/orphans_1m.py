"""Orphan detection at scale: 1,000,000 chunks with vectors in two embed_versions.

    python benchmarks/orphans_1m.py            # 100k and 1M chunks, prints a markdown table
    python benchmarks/orphans_1m.py --sizes 1000000 --dims 384

Setup (not measured): a synthetic LanceDB store (documents, chunks, embeddings_v1 and
embeddings_v2 with random float32 vectors), a landing zone with one file + sidecar per
document, and planted orphans of every kind with known ids. The measurement runs
`detect_orphans` in a fresh process (so peak RSS is the detector's own, imports included)
and checks that it finds exactly the planted orphans.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import peak_rss_mib  # noqa: E402  (VmHWM: ru_maxrss in a child carries the parent's peak)

CHUNKS_PER_DOC = 50
DOCS_PER_BATCH = 100
SALT = b"\x01" * 32


def _hex(rng, n: int, nbytes: int) -> list[str]:
    raw = rng.bytes(n * nbytes)
    return [raw[i * nbytes : (i + 1) * nbytes].hex() for i in range(n)]


def build(root: Path, n_chunks: int, dims: int, seed: int = 7) -> dict:
    import numpy as np
    import pyarrow as pa

    from aisg_pipelines.governance.ids import subject_hash
    from aisg_pipelines.governance.store import CHUNKS, CHUNKS_SCHEMA, DOCUMENTS, DOCUMENTS_SCHEMA, LanceStore, embeddings_schema

    rng = np.random.default_rng(seed)
    if root.exists():
        shutil.rmtree(root)
    landing = root / "landing"
    store = LanceStore(str(root / "lancedb"))
    n_docs = n_chunks // CHUNKS_PER_DOC + 10  # + the 10 planted documents without chunks
    # planted sets, by document index
    deleted_docs = list(range(0, 10))  # document rows deleted -> chunk_without_document + cascade + landing orphan
    no_chunk_docs = list(range(10, 20))  # documents without chunks
    no_v1_docs = list(range(20, 30))  # no vector in the active version (v1)
    no_sidecar_docs = list(range(30, 40))  # landing sidecar gone
    nopart_docs = list(range(40, 45))  # batch id that is not a partition key
    denied_subjects = ["subj-000001", "subj-000002", "subj-000003"]

    doc_ids = [f"doc-{i:07d}" for i in range(n_docs)]
    subj = [f"subj-{i % (n_docs // 5):06d}" for i in range(n_docs)]
    batch = [f"20260101-{(i // DOCS_PER_BATCH):08x}" for i in range(n_docs)]
    for i in nopart_docs:
        batch[i] = "20991231-0000beef"
    paths = [f"{batch[i][:8]}/{(i // DOCS_PER_BATCH):05d}/{doc_ids[i]}.txt" for i in range(n_docs)]
    keys = sorted({b for b in batch if b != "20991231-0000beef"}) + ["20260102-00e1e1e1", "20260102-00e2e2e2", "20260102-00e3e3e3"]

    # landing zone: file + sidecar per document (old mtime), plus strays
    old = time.time() - 7 * 86400
    for i in range(n_docs):
        p = landing / paths[i]
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x")
        os.utime(p, (old, old))
        if i not in no_sidecar_docs:
            sc = p.with_name(p.name + ".meta.json")
            sc.write_text("{}")
    strays = [f"strays/stray-{k:03d}.txt" for k in range(20)]
    for s in strays:
        p = landing / s
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x")
        os.utime(p, (old, old))
    pending = landing / "strays" / "just-dropped.txt"
    pending.write_text("x")  # fresh: pending, not an orphan

    now = datetime.now(timezone.utc)
    keep_docs = [i for i in range(n_docs) if i not in deleted_docs]
    store.append(
        DOCUMENTS, DOCUMENTS_SCHEMA,
        pa.table({
            "doc_id": [doc_ids[i] for i in keep_docs], "subject_id": [subj[i] for i in keep_docs], "batch_id": [batch[i] for i in keep_docs],
            "category": ["user_content"] * len(keep_docs), "source": ["bench"] * len(keep_docs), "uploaded_at": [now] * len(keep_docs),
            "legal_hold": [False] * len(keep_docs), "file_path": [paths[i] for i in keep_docs], "file_sha256": ["0" * 64] * len(keep_docs),
            "media_type": ["text/plain"] * len(keep_docs), "text": ["x"] * len(keep_docs), "text_sha256": ["0" * 64] * len(keep_docs),
            "n_chars": [1] * len(keep_docs), "pii_counts": ["{}"] * len(keep_docs), "pii_total": [0] * len(keep_docs), "ingested_at": [now] * len(keep_docs),
        }),
    )

    chunk_docs = [i for i in range(n_docs) if i not in no_chunk_docs]
    total_chunks = len(chunk_docs) * CHUNKS_PER_DOC
    chunk_ids = _hex(rng, total_chunks, 16)
    shas = _hex(rng, total_chunks, 32)
    cdoc = np.repeat(np.array(chunk_docs), CHUNKS_PER_DOC)
    step = 100_000
    for s in range(0, total_chunks, step):
        e = min(s + step, total_chunks)
        d = cdoc[s:e]
        store.append(
            CHUNKS, CHUNKS_SCHEMA,
            pa.table({
                "chunk_id": chunk_ids[s:e], "doc_id": [doc_ids[i] for i in d], "subject_id": [subj[i] for i in d], "batch_id": [batch[i] for i in d],
                "chunk_index": pa.array(np.tile(np.arange(CHUNKS_PER_DOC), (e - s) // CHUNKS_PER_DOC), pa.int32()),
                "text": ["x"] * (e - s), "content_sha256": shas[s:e], "n_chars": pa.array(np.ones(e - s), pa.int32()), "uploaded_at": [now] * (e - s),
            }),
        )
    # vectors: every chunk in v2; in v1 except no_v1_docs; 100 stale + 100 without chunk per table
    stale_idx = set(range(total_chunks // 2, total_chunks // 2 + 100))
    ghost = {t: _hex(rng, 100, 16) for t in ("v1", "v2")}
    no_v1 = {doc_ids[i] for i in no_v1_docs}
    for v in ("v1", "v2"):
        table = f"embeddings_{v}"
        schema = embeddings_schema(dims)
        for s in range(0, total_chunks, step):
            e = min(s + step, total_chunks)
            idx = [k for k in range(s, e) if not (v == "v1" and doc_ids[cdoc[k]] in no_v1)]
            ids = [chunk_ids[k] for k in idx]
            sh = [("f" * 64 if k in stale_idx else shas[k]) for k in idx]
            bt = [batch[cdoc[k]] for k in idx]
            dd = [doc_ids[cdoc[k]] for k in idx]
            if e == total_chunks:
                ids += ghost[v]
                sh += ["0" * 64] * 100
                bt += [keys[0]] * 100
                dd += ["doc-ghost"] * 100
            n = len(ids)
            vec = rng.standard_normal((n, dims), dtype=np.float32)
            store.append(table, schema, pa.table({
                "chunk_id": ids, "doc_id": dd, "batch_id": bt, "content_sha256": sh,
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vec.reshape(-1)), dims), "embedded_at": [now] * n,
            }))
    for t in store.table_names():
        store.ensure_indices(t)

    # expected (exact) orphans
    deleted_chunks = sorted(chunk_ids[k] for k in range(total_chunks) if cdoc[k] in set(deleted_docs))
    stale_chunks = sorted(chunk_ids[k] for k in stale_idx)
    denied_doc_idx = [i for i in range(n_docs) if subj[i] in denied_subjects]
    live_denied_docs = [i for i in denied_doc_idx if i not in deleted_docs]
    denied_chunk_n = sum(1 for i in denied_doc_idx if i not in no_chunk_docs) * CHUNKS_PER_DOC
    denied_v1 = sum(1 for i in denied_doc_idx if i not in no_chunk_docs and i not in no_v1_docs) * CHUNKS_PER_DOC
    nopart_chunks = sum(1 for i in nopart_docs if i not in no_chunk_docs) * CHUNKS_PER_DOC
    stale_per_doc: dict[int, int] = {}
    for k in stale_idx:
        stale_per_doc[int(cdoc[k])] = stale_per_doc.get(int(cdoc[k]), 0) + 1
    all_stale_docs = [d for d, n in stale_per_doc.items() if n == CHUNKS_PER_DOC and d not in no_v1_docs and d not in deleted_docs]
    expected = {
        "chunk_without_document": len(deleted_chunks),
        "vector_of_orphan_chunk": 2 * len(deleted_chunks),
        "vector_without_chunk": 200,
        "vector_stale": 200,
        "landing_never_ingested": len(deleted_docs) + len(strays),
        "partition_without_data": 3,
        "data_without_partition": len(nopart_docs) + 3 * nopart_chunks,
        "document_without_chunks": len(no_chunk_docs),
        # no valid v1 vector: no chunks, no v1 vectors, or every v1 vector stale (the stale range covers whole documents)
        "document_without_active_vector": len(no_chunk_docs) + len(no_v1_docs) + len(all_stale_docs),
        "document_landing_missing": len(no_sidecar_docs),
        "denylisted_subject_data": len(live_denied_docs) + denied_chunk_n + denied_v1 + denied_chunk_n,
    }
    spec = {
        "root": str(root), "keys": keys, "expected": expected, "n_chunks": total_chunks, "n_docs": n_docs, "dims": dims,
        "denylist": sorted(subject_hash(s, SALT) for s in denied_subjects),
        "ids": {"chunk_without_document": deleted_chunks, "vector_stale": stale_chunks, "vector_without_chunk": sorted(ghost["v1"] + ghost["v2"]),
                "landing_never_ingested": sorted([paths[i] for i in deleted_docs] + strays)},
    }
    (root / "spec.json").write_text(json.dumps(spec))
    return spec


def detect(root: Path) -> dict:
    """Runs in its own process: the measured part."""
    spec = json.loads((root / "spec.json").read_text())
    t_import = time.perf_counter()
    import lance  # noqa: F401  (the detector's own imports, timed separately; RSS includes them)
    import lancedb  # noqa: F401

    from aisg_pipelines.governance.orphans import OrphanScope, detect_orphans
    from aisg_pipelines.governance.store import LanceStore

    import_s = time.perf_counter() - t_import
    scope = OrphanScope(
        store=LanceStore(str(root / "lancedb")), landing_dir=root / "landing", quarantine_dir=root / "quarantine",
        exports_dir=root / "exports", active_version="v1", denylisted_hashes=set(spec["denylist"]), salt_loader=lambda: SALT,
    )
    t0 = time.perf_counter()
    report = detect_orphans(scope, spec["keys"])
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    csv_path = report.write_csv(scope.exports_dir)
    csv_s = time.perf_counter() - t1
    ok = report.counts == spec["expected"]
    for kind, ids in spec["ids"].items():
        ok = ok and report.ids(kind) == sorted(set(ids))
    return {
        "seconds": seconds, "csv_seconds": csv_s, "import_seconds": import_s, "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "peak_rss_mib": peak_rss_mib(),
        "counts": report.counts, "expected": spec["expected"], "exact": ok, "rows_scanned": report.rows_scanned, "csv_rows": report.total, "csv": str(csv_path),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--dims", type=int, default=384)
    ap.add_argument("--root", default="/tmp/aisg_orphans_bench")
    ap.add_argument("--detect", help=argparse.SUPPRESS)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if args.detect:
        print(json.dumps(detect(Path(args.detect))))
        return 0
    rows = []
    for n in [int(x) for x in args.sizes.split(",")]:
        root = Path(args.root) / f"n{n}"
        t0 = time.perf_counter()
        spec = build(root, n, args.dims)
        setup = time.perf_counter() - t0
        runs = []
        for _ in range(args.runs):
            out = subprocess.run([sys.executable, __file__, "--detect", str(root)], check=True, capture_output=True, text=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        best = min(runs, key=lambda r: r["seconds"])
        rows.append((n, spec, setup, runs, best))
        print(f"n={n}: setup {setup:.1f}s; detect " + ", ".join(f"{r['seconds']:.2f}s" for r in runs) + f"; peak RSS (VmHWM) {max(r['peak_rss_mib'] for r in runs):.0f} MiB; ru_maxrss incl. parent at fork {max(r['ru_maxrss_mib'] for r in runs):.0f} MiB; exact={all(r['exact'] for r in runs)}", file=sys.stderr)
        if not all(r["exact"] for r in runs):
            print(json.dumps({"counts": best["counts"], "expected": best["expected"]}, indent=1), file=sys.stderr)
    print(f"\nMachine: {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPU cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM; vectors {args.dims} dims float32; runs per size: {args.runs}\n")
    print("| chunks | documents | vectors (v1+v2) | landing files | orphans found (= planted) | exact | detect s (median) | detect s (best) | CSV s | peak RSS MiB (detector process, VmHWM) | ru_maxrss MiB (incl. parent at fork) | imports s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n, spec, setup, runs, best in rows:
        med = sorted(r["seconds"] for r in runs)[len(runs) // 2]
        vecs = best["rows_scanned"]["embeddings_v1"] + best["rows_scanned"]["embeddings_v2"]
        print(f"| {spec['n_chunks']:,} | {spec['n_docs']:,} | {vecs:,} | {best['rows_scanned']['landing']:,} | {sum(best['counts'].values()):,} | "
              f"{all(r['exact'] for r in runs)} | {med:.2f} | {best['seconds']:.2f} | {best['csv_seconds']:.2f} | {max(r['peak_rss_mib'] for r in runs):.0f} | {max(r['ru_maxrss_mib'] for r in runs):.0f} | {best['import_seconds']:.2f} |")
    if len(rows) == 2:
        (n0, _, _, r0, _), (n1, _, _, r1, _) = rows
        m0 = sorted(r["seconds"] for r in r0)[len(r0) // 2]
        m1 = sorted(r["seconds"] for r in r1)[len(r1) // 2]
        print(f"\nScaling {n0:,} -> {n1:,} chunks ({n1 / n0:.0f}x data): detect time x{m1 / m0:.1f}")
    print("\nPlanted per kind: " + json.dumps(rows[-1][1]["expected"]))
    return 0 if all(r["exact"] for *_, runs, _ in rows for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
