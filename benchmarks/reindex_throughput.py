"""Reindex throughput: bare SentenceTransformer.encode vs our embed-and-write and whole reindex vs LangChain index().

    python benchmarks/reindex_throughput.py [--chunks 3000] [--batches 10] [--batch-size 32] [--no-peer]
                                           [--backends torch,onnx,onnx-int8] [--int8-quantization JSON]

In one process, on the same generated chunks (PII-laden Korean/English sample texts cut by
the project chunker) and the same bundled all-MiniLM-L6-v2 with the same batch size:

1. bare `SentenceTransformer.encode` over all chunk texts in one call (the reference: its
   own character-length sort), measured first and again last; the faster of the two is the
   reference (other processes' load varies);
1b. bare `governance.embedding.encode` over all texts in one call: the same model with our
   token-length-sorted mini-batches, no I/O (the ceiling for our pipeline's batching; also
   measured first and last, the faster one is used);
2. `governance.reindex.reindex` of a new embed_version: embed-and-write throughput, i.e. its
   embedding phase (`pipeline.embed_batches`: plan every batch + encode in token-length-sorted
   windows of `--window` texts spanning batches + LanceDB writes per batch on a writer thread
   + scalar index), and the whole reindex
   (register -> building -> every batch -> GX validation gate incl. retrieval sample ->
   activation -> audit event), each as chunks/s and as a ratio to bare;
3. a re-run with nothing changed: every batch re-materialised (`embed_batch`), and the
   whole `reindex` again (which reuses the last gate result when nothing changed), as % of the full run;
4. the peer: LangChain `index()` (langchain-classic SQLRecordManager on SQLite, cleanup
   "incremental") writing to the langchain-community LanceDB vector store, same texts,
   same model object and batch size; full run and no-change re-run;
5. peak RSS (resource.getrusage) after each phase;
6. backends as rows (issue 15): after 2., the store (with `bench` active, torch) is copied
   once per backend and a whole `reindex` of a new version `bench_<backend>` (torch, onnx,
   onnx-int8) runs in a fresh child process on its copy, so each has its own peak RSS
   (VmHWM) and none pays for another's imports. The ONNX exports are built (or found in the
   cache) before, and their build time is reported on its own. The onnx and onnx-int8
   reindexes include the retrieval-parity gate against `bench` (fp32 torch); the parent then
   compares their stored vectors with `bench`'s (cosine).

Other processes may share the CPUs, so the table shows wall time and this process's CPU
time (all threads), plus the load average before and after. Prints the machine, a markdown
table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import pyarrow as pa  # noqa: E402

from _common import cpu_model as _cpu_model, sample_chunks  # noqa: E402
from aisg_pipelines.governance.embedding import encode, load_model  # noqa: E402
from aisg_pipelines.governance.ids import chunk_id_for, sha256_hex  # noqa: E402
from aisg_pipelines.governance.ledger import Ledger  # noqa: E402
from aisg_pipelines.governance.pipeline import embed_batch  # noqa: E402
from aisg_pipelines.governance.reindex import reindex  # noqa: E402
from aisg_pipelines.governance.store import CHUNKS, CHUNKS_SCHEMA, LanceStore  # noqa: E402
from aisg_pipelines.governance.versions import EmbedVersionSpec, VersionRegistry, ensure_bootstrap_version  # noqa: E402
from aisg_pipelines.settings import bundled_model_path  # noqa: E402


def _mem_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Timer:
    def __enter__(self):
        self.w, self.c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.w
        self.cpu = time.process_time() - self.c


def build_chunks(store: LanceStore, n_chunks: int, n_batches: int, seed: int) -> list[str]:
    """n_chunks chunk rows spread over n_batches ingest batches, written to `chunks`."""
    rows = [{"chunk_id": chunk_id_for(f"bench-{k:06d}", i), "doc_id": f"bench-{k:06d}", "subject_id": f"subj-{(k + 1) % 97}", "chunk_index": i,
             "text": text, "content_sha256": sha256_hex(text), "n_chars": len(text), "uploaded_at": None}
            for k, i, text in sample_chunks(n_chunks, seed)]
    per = -(-len(rows) // n_batches)
    from datetime import datetime, timezone

    now = datetime(2026, 11, 1, tzinfo=timezone.utc)
    for b in range(n_batches):
        batch_id = f"202611{b + 1:02d}-{b:08x}"
        part = rows[b * per:(b + 1) * per]
        for r in part:
            r["batch_id"], r["uploaded_at"] = batch_id, now
        store.replace_batch(CHUNKS, CHUNKS_SCHEMA, "chunk_id", batch_id, pa.Table.from_pylist(part, schema=CHUNKS_SCHEMA))
    return [r["text"] for r in rows], [r["doc_id"] for r in rows]


def run_peer(root: Path, texts: list[str], doc_ids: list[str], model, batch_size: int) -> dict:
    """LangChain index() + SQLRecordManager + LanceDB vector store on the same texts and model."""
    import lancedb
    from langchain_classic.indexes import SQLRecordManager
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.indexing import index
    from langchain_community.vectorstores import LanceDB

    class SameModel(Embeddings):
        def embed_documents(self, docs):
            return model.encode(docs, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False).tolist()

        def embed_query(self, text):
            return self.embed_documents([text])[0]

    vs = LanceDB(connection=lancedb.connect(str(root / "lc_lancedb")), embedding=SameModel(), table_name="lc", mode="append")
    rm = SQLRecordManager("lancedb/lc", db_url=f"sqlite:///{root / 'lc_records.db'}")
    rm.create_schema()
    docs = [Document(page_content=t, metadata={"source": d}) for t, d in zip(texts, doc_ids)]
    with Timer() as full:
        r1 = index(docs, rm, vs, cleanup="incremental", source_id_key="source")
    peak_full = _peak_mib()
    with Timer() as again:
        r2 = index(docs, rm, vs, cleanup="incremental", source_id_key="source")
    return {"full": full, "again": again, "first": r1, "second": r2, "rows": vs.get_table().count_rows(), "peak_mib": peak_full}


def child_reindex(root: Path, name: str, backend: str, quantization: str, batch_size: int, sample: int, window: int, cache: str) -> None:
    """One whole reindex in this (fresh) process; prints CHILD_RESULT <json>."""
    from _common import peak_rss_mib

    from aisg_pipelines.governance.reindex import ValidationFailed

    os.environ["AISG_MODEL_CACHE_DIR"] = cache
    store = LanceStore(str(root / "lancedb"))
    ledger = Ledger(f"sqlite:///{root / 'ledger.db'}")
    spec = EmbedVersionSpec(name=name, model_path=bundled_model_path(), max_seq_length=256, backend=backend, quantization=quantization)
    out: dict = {"backend": backend, "rss_before_mib": peak_rss_mib()}
    with Timer() as t:
        try:
            res = reindex(store, ledger, spec, batch_size=batch_size, sample_size=sample, window=window)
            out.update(passed=True, activated=res.activated)
        except ValidationFailed as exc:
            res = None
            out.update(passed=False, activated=False, reasons=exc.report.reasons)
            rep = exc.report
    if res is not None:
        rep = res.validation
        out.update(embedded=res.embedded, embed_s=res.embed_seconds, encode_s=res.encode_seconds, validate_s=res.validate_seconds)
    out.update(wall=t.wall, cpu=t.cpu, self_top1=rep.self_top1, peak_rss_mib=peak_rss_mib(),
               heavy=[m for m in ("torch", "sentence_transformers", "onnxruntime") if m in sys.modules])
    if rep.parity is not None:
        out["parity"] = rep.parity.figures()
    print("CHILD_RESULT " + json.dumps(out), flush=True)


def run_backends(root: Path, backends: list[str], quantization: str, args, n: int) -> list[dict]:
    """Each backend's whole reindex in a child process on its own copy of the store."""
    import subprocess

    from aisg_pipelines.governance.onnx_backend import canonical_quantization, ensure_export

    cache = str(root / "onnx_cache")
    exports = {}
    for b in backends:
        if b != "torch":
            q = canonical_quantization(b, quantization if b == "onnx-int8" else "")
            exports[b] = ensure_export(bundled_model_path(), b, q, cache_dir=Path(cache))
            print(f"export {b}: {'built' if exports[b].built else 'cached'} in {exports[b].seconds:.1f}s ({exports[b].path.stat().st_size / 2**20:.0f} MiB)")
    results = []
    for b in backends:
        copy = root / f"copy_{b}"
        shutil.rmtree(copy, ignore_errors=True)
        copy.mkdir()
        shutil.copytree(root / "lancedb", copy / "lancedb")
        shutil.copy(root / "ledger.db", copy / "ledger.db")
        name = "bench_" + b.replace("-", "_")
        cmd = [sys.executable, __file__, "--child-reindex", str(copy), "--child-version", name, "--child-backend", b,
               "--child-quantization", quantization if b == "onnx-int8" else "", "--child-cache", cache,
               "--batch-size", str(args.batch_size), "--sample", str(args.sample), "--window", str(args.window)]
        p = subprocess.run(cmd, capture_output=True, text=True)
        line = next((l for l in p.stdout.splitlines() if l.startswith("CHILD_RESULT ")), None)
        if line is None:
            raise RuntimeError(f"child {b} failed:\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
        r = json.loads(line.removeprefix("CHILD_RESULT "))
        if b != "torch":
            store = LanceStore(str(copy / "lancedb"))
            import numpy as np

            ref = {x["chunk_id"]: np.asarray(x["vector"], np.float32) for x in store.scan("embeddings_bench", ["chunk_id", "vector"]).to_pylist()}
            got = {x["chunk_id"]: np.asarray(x["vector"], np.float32) for x in store.scan(f"embeddings_{name}", ["chunk_id", "vector"]).to_pylist()}
            cos = np.array([float(got[c] @ ref[c] / (np.linalg.norm(got[c]) * np.linalg.norm(ref[c]))) for c in ref if c in got])
            r.update(cos_mean=float(cos.mean()), cos_min=float(cos.min()), cos_n=len(cos), export_s=exports[b].seconds)
        results.append(r)
        shutil.rmtree(copy, ignore_errors=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=3000)
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--sample", type=int, default=100, help="retrieval-sanity sample of the validation gate")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--window", type=int, default=2048, help="texts per length-sorted encode window of reindex")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temp store")
    ap.add_argument("--backends", default="torch,onnx,onnx-int8", help="whole reindex per backend in child processes ('' = none)")
    ap.add_argument("--int8-quantization", default="", help="onnx-int8 settings as JSON (default: the backend's defaults)")
    ap.add_argument("--child-reindex", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-version", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-backend", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-quantization", default="", help=argparse.SUPPRESS)
    ap.add_argument("--child-cache", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_reindex:
        child_reindex(Path(args.child_reindex), args.child_version, args.child_backend, args.child_quantization, args.batch_size, args.sample, args.window, args.child_cache)
        return

    load0 = os.getloadavg()
    print(f"machine: nproc={os.cpu_count()} cpu={_cpu_model()!r} ram={_mem_gib():.0f}GiB python={platform.python_version()} "
          f"load_avg_start={load0[0]:.2f}")
    root = Path(tempfile.mkdtemp(prefix="reindex_bench_"))
    store = LanceStore(str(root / "lancedb"))
    ledger = Ledger(f"sqlite:///{root / 'ledger.db'}")
    model_path = bundled_model_path()
    ensure_bootstrap_version(VersionRegistry(ledger), model_path)  # v1 active, as in production
    t0 = time.perf_counter()
    texts, doc_ids = build_chunks(store, args.chunks, args.batches, args.seed)
    avg_chars = sum(map(len, texts)) / len(texts)
    print(f"built {len(texts)} chunks in {args.batches} batches (avg {avg_chars:.0f} chars) in {time.perf_counter() - t0:.1f}s")

    spec = EmbedVersionSpec(name="bench", model_path=model_path, max_seq_length=256)
    mspec = spec.model
    model = load_model(mspec)
    encode(mspec, texts[:64], batch_size=args.batch_size)  # warm-up
    rss_model = _peak_mib()

    with Timer() as bare:
        vecs = model.encode(texts, batch_size=args.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    assert vecs.shape == (len(texts), 384)
    del vecs
    rss_bare = _peak_mib()

    with Timer() as sorted_bare:
        vecs = encode(mspec, texts, batch_size=args.batch_size)
    assert vecs.shape == (len(texts), 384)
    del vecs

    with Timer() as ours:
        res = reindex(store, ledger, spec, batch_size=args.batch_size, sample_size=args.sample, window=args.window)
    assert res.activated and res.embedded == len(texts) and store.count("embeddings_bench") == len(texts)
    rss_ours = _peak_mib()
    version = VersionRegistry(ledger).require("bench")

    backends = [b for b in args.backends.split(",") if b]
    backend_rows = run_backends(root, backends, args.int8_quantization, args, len(texts)) if backends else []

    with Timer() as rerun_embed:
        again = [embed_batch(store, version, b, batch_size=args.batch_size) for b in sorted({r["batch_id"] for r in store.scan(CHUNKS, ["batch_id"]).to_pylist()})]
    assert sum(r.embedded for r in again) == 0
    with Timer() as rerun_full:
        res2 = reindex(store, ledger, "bench", batch_size=args.batch_size, sample_size=args.sample, window=args.window)
    assert res2.embedded == 0 and store.count("embeddings_bench") == len(texts)

    peer = None
    peer_note = ""
    if not args.no_peer:
        try:
            peer = run_peer(root, texts, doc_ids, model, args.batch_size)
            assert peer["rows"] == len(texts), peer["rows"]
        except ImportError as exc:
            peer_note = f"peer skipped: {exc} (pip install -e '.[bench]')"
    # Bare again at the end: other processes' load varies, so the ceiling is the faster of the two.
    with Timer() as bare2:
        model.encode(texts, batch_size=args.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    print(f"bare encode wall: first {bare.wall:.2f}s, last {bare2.wall:.2f}s (the faster one is the ceiling)")
    if bare2.wall < bare.wall:
        bare = bare2
    with Timer() as sorted_bare2:
        encode(mspec, texts, batch_size=args.batch_size)
    print(f"bare token-sorted encode wall: first {sorted_bare.wall:.2f}s, last {sorted_bare2.wall:.2f}s (the faster one is used)")
    if sorted_bare2.wall < sorted_bare.wall:
        sorted_bare = sorted_bare2
    load1 = os.getloadavg()

    n = len(texts)
    bare_rate = n / bare.wall
    bare_cpu_rate = n / bare.cpu
    embed_wall = res.embed_seconds
    rows = [
        ("bare SentenceTransformer.encode", bare.wall, bare.cpu, n / bare.wall, n / bare.cpu, 1.0, 1.0, rss_bare),
        ("bare governance.embedding.encode (token-length-sorted mini-batches, no I/O)", sorted_bare.wall, sorted_bare.cpu, n / sorted_bare.wall,
         n / sorted_bare.cpu, (n / sorted_bare.wall) / bare_rate, (n / sorted_bare.cpu) / bare_cpu_rate, rss_bare),
        (f"ours: embed-and-write (reindex's embedding phase: plan + windowed encode + LanceDB writes per batch + index; window {args.window})", embed_wall, None, n / embed_wall, None, (n / embed_wall) / bare_rate, None, rss_ours),
        ("ours: whole reindex (to validated + activated)", ours.wall, ours.cpu, n / ours.wall, n / ours.cpu, (n / ours.wall) / bare_rate, (n / ours.cpu) / bare_cpu_rate, rss_ours),
    ]
    if peer:
        f = peer["full"]
        m = peer["first"]["num_added"]  # index() de-duplicates identical texts, so it embeds m <= n
        rows.append((f"LangChain index() + SQLRecordManager + LanceDB ({m} unique texts)", f.wall, f.cpu, m / f.wall, m / f.cpu, (m / f.wall) / bare_rate, (m / f.cpu) / bare_cpu_rate, peer["peak_mib"]))

    def fmt(v, spec=".2f"):
        return "" if v is None else format(v, spec)

    print()
    print(f"{n} chunks, batch size {args.batch_size}, all-MiniLM-L6-v2 (max_seq_length 256, normalised), {args.batches} ingest batches")
    print()
    print("| pipeline | wall s | CPU s | chunks/s (wall) | chunks/s (CPU) | × bare (wall) | × bare (CPU) | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, w, c, rw, rc, xw, xc, mem in rows:
        print(f"| {name} | {w:.2f} | {fmt(c)} | {rw:.1f} | {fmt(rc, '.1f')} | {xw:.3f} | {fmt(xc, '.3f')} | {mem:.0f} |")
    print()
    print("| no-change re-run | wall s | % of its full run |")
    print("|---|---:|---:|")
    print(f"| ours: re-materialise every batch (embed_batch, 0 embedded) | {rerun_embed.wall:.3f} | {100 * rerun_embed.wall / ours.wall:.2f}% |")
    print(f"| ours: whole reindex again (0 embedded, gate result reused if nothing changed) | {rerun_full.wall:.3f} | {100 * rerun_full.wall / ours.wall:.2f}% |")
    if peer:
        print(f"| LangChain index() again (0 added, {peer['second']['num_skipped']} skipped) | {peer['again'].wall:.3f} | {100 * peer['again'].wall / peer['full'].wall:.2f}% |")
    if backend_rows:
        print()
        print("| backend: whole reindex of a new version, child process | wall s | CPU s | chunks/s (wall) | × bare torch encode (wall) | × bare (CPU) | "
              "encode s | gate s | recall@10 vs fp32 (strict) | cosine to torch mean / min | gate | peak RSS MiB |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
        for r in backend_rows:
            par = r.get("parity") or {}
            rec = f"{par['recall_at_10']:.3f} ({par['recall_at_10_strict']:.3f})" if par else "n/a"
            cos = f"{r['cos_mean']:.5f} / {r['cos_min']:.5f}" if "cos_mean" in r else "(is torch)"
            gate = "passed" if r["passed"] else "REFUSED: " + "; ".join(r.get("reasons", []))[:160]
            print(f"| {r['backend']} | {r['wall']:.2f} | {r['cpu']:.2f} | {n / r['wall']:.1f} | {(n / r['wall']) / bare_rate:.3f} | {(n / r['cpu']) / bare_cpu_rate:.3f} | "
                  f"{r.get('encode_s', float('nan')):.2f} | {r.get('validate_s', float('nan')):.2f} | {rec} | {cos} | {gate} | {r['peak_rss_mib']:.0f} |")
        print("modules loaded by each child: " + "; ".join(f"{r['backend']}: {', '.join(r['heavy']) or 'none'}" for r in backend_rows))
    print()
    print(f"I/O hiding: embed-and-write vs bare token-sorted encode (same batching, no I/O): {sorted_bare.wall / embed_wall:.3f}x")
    print(f"ours, inside the whole reindex: embedding phase {res.embed_seconds:.2f}s (encode {res.encode_seconds:.2f}s), "
          f"validation gate {res.validate_seconds:.2f}s (GX + {res.validation.sample_size} re-encoded samples, self top-1 {res.validation.self_top1:.0%}), "
          f"rest {ours.wall - res.embed_seconds - res.validate_seconds:.2f}s")
    print(f"peak RSS: after model load {rss_model:.0f} MiB, after bare encode {rss_bare:.0f} MiB, after our reindex {rss_ours:.0f} MiB")
    print(f"load average: start {load0[0]:.2f}, end {load1[0]:.2f} (nproc {os.cpu_count()})")
    if peer_note:
        print(peer_note)
    out = {
        "chunks": n, "batch_size": args.batch_size, "bare_cps": bare_rate, "bare_cps_cpu": bare_cpu_rate,
        "sorted_bare_cps": n / sorted_bare.wall, "embed_write_cps": n / embed_wall, "embed_write_x_bare": (n / embed_wall) / bare_rate, "reindex_cps": n / ours.wall, "reindex_x_bare": (n / ours.wall) / bare_rate,
        "reindex_x_bare_cpu": (n / ours.cpu) / bare_cpu_rate, "rerun_embed_pct": 100 * rerun_embed.wall / ours.wall,
        "rerun_reindex_pct": 100 * rerun_full.wall / ours.wall, "validate_s": res.validate_seconds,
        "peak_rss_mib": _peak_mib(), "load_start": load0[0], "load_end": load1[0],
    }
    for r in backend_rows:
        key = r["backend"].replace("-", "_")
        out[f"{key}_reindex_x_bare"] = (n / r["wall"]) / bare_rate
        out[f"{key}_reindex_x_bare_cpu"] = (n / r["cpu"]) / bare_cpu_rate
        out[f"{key}_peak_rss_mib"] = r["peak_rss_mib"]
        out[f"{key}_gate_passed"] = r["passed"]
        if r.get("parity"):
            out[f"{key}_recall_at_10"] = r["parity"]["recall_at_10"]
        if "cos_min" in r:
            out[f"{key}_cos_min"] = r["cos_min"]
    if peer:
        m = peer["first"]["num_added"]
        out.update(peer_cps=m / peer["full"].wall, peer_cps_cpu=m / peer["full"].cpu, peer_rerun_pct=100 * peer["again"].wall / peer["full"].wall)
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}))
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
