"""Parallel backfill of a new embed_version into one table: 1, 2 and 4 concurrent runs, on a
local directory and on S3 (moto's S3-compatible server on 127.0.0.1) (issue 16).

    python benchmarks/parallel_backfill.py [--subjects 8] [--docs 2] [--runs 1,2,4] [--no-s3] [--mode processes|dagster]

--mode dagster: the same backfill as real Dagster runs (`dagster job backfill` of embed_batch,
queued by the QueuedRunCoordinator with max_concurrent_runs = N, each run its own process via
the code server; the BackfillStack of aisg_pipelines_tests/test_parallel_backfill.py). Reported
per row: wall seconds from the first run's start to the last run's end, vectors/s, the most runs
seen at once, commit retries (the runs' `commit_retries` metadata) and the exact check.

One store is ingested once per backend (v1). For each N in --runs, a new version `pb<N>` is
backfilled over every batch partition by N worker processes (spawned, each one run: load the
model, then embed its share of the partitions with `pipeline.embed_batch`, one partition at a
time as a Dagster run would), all released together by a barrier after the model load.
Reported per row: wall seconds from the barrier to the last worker's end, vectors/s,
vectors per worker-second, commit retries (`LanceStore.commit_retries`), and the exact check:
vectors == chunks of the batches, no duplicate chunk_id.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from aisg_pipelines.governance.store import CHUNKS, LanceStore  # noqa: E402
from aisg_pipelines.settings import Settings  # noqa: E402

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def _settings(root: Path, uri: str | None, options: dict | None) -> Settings:
    d = root / "var"
    return Settings(data_dir=d, lancedb_uri=uri or str(d / "lancedb"), ledger_url=f"sqlite:///{d / 'ledger.db'}",
                    landing_dir=d / "landing", quarantine_dir=d / "quarantine", logs_dir=d / "incoming" / "logs",
                    metrics_dir=d / "incoming" / "metrics", exports_dir=d / "exports", erasure_inbox=d / "erasure_inbox",
                    secrets_dir=d / "secrets", max_file_bytes=200_000, landing_settle_seconds=0,
                    lancedb_storage_options=options or {})


def _worker(uri, options, ledger_url, version, batches, barrier, out):
    from aisg_pipelines.governance.embedding import encode
    from aisg_pipelines.governance.ledger import Ledger
    from aisg_pipelines.governance.pipeline import embed_batch
    from aisg_pipelines.governance.versions import VersionRegistry

    store = LanceStore(uri, options or None)
    ver = replace(VersionRegistry(Ledger(ledger_url)).get("v1"), name=version)
    encode(ver.model, ["warm up"])
    barrier.wait(timeout=600)
    t0 = time.perf_counter()
    n = 0
    for b in batches:
        n += embed_batch(store, ver, b).embedded
    out.put((n, store.commit_retries, time.perf_counter() - t0, time.time()))


def _run(uri, options, ledger_url, version, batches, n):
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(n + 1), ctx.Queue()
    shares = [batches[i::n] for i in range(n)]
    procs = [ctx.Process(target=_worker, args=(uri, options, ledger_url, version, sh, barrier, out)) for sh in shares]
    for p in procs:
        p.start()
    barrier.wait(timeout=600)
    t0 = time.time()
    res = [out.get(timeout=3600) for _ in procs]
    for p in procs:
        p.join()
    wall = max(r[3] for r in res) - t0
    store = LanceStore(uri, options or None)
    want = sorted(c["chunk_id"] for c in store.scan(CHUNKS, ["chunk_id"]).to_pylist())
    got = store.scan(f"embeddings_{version}", ["chunk_id"])["chunk_id"].to_pylist()
    vectors = sum(r[0] for r in res)
    return {"runs": n, "vectors": vectors, "wall_s": round(wall, 2), "vectors_per_s": round(vectors / wall, 1),
            "per_worker_vectors_per_s": round(vectors / sum(r[2] for r in res), 1),
            "commit_retries": sum(r[1] for r in res),
            "exact": sorted(got) == want and not [k for k, c in Counter(got).items() if c > 1]}


def _moto():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/", timeout=1).read()
            return proc, url
        except Exception:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("moto server did not start")


def _exact(store: LanceStore, version: str) -> bool:
    want = sorted(c["chunk_id"] for c in store.scan(CHUNKS, ["chunk_id"]).to_pylist())
    got = store.scan(f"embeddings_{version}", ["chunk_id"])["chunk_id"].to_pylist()
    return sorted(got) == want and not [k for k, c in Counter(got).items() if c > 1]


def dagster_mode(a, runs: list[int]) -> list[dict]:
    """Both backends in one Dagster instance: code servers bench_local and bench_s3 (the local
    store uploaded to a bucket), a daemon per backfill with max_concurrent_runs = N."""
    from dataclasses import replace as _replace

    import boto3

    from aisg_pipelines.governance.ledger import Ledger
    from aisg_pipelines.governance.pipeline import ingest_all
    from aisg_pipelines.sample_data import generate_landing_zone
    from aisg_pipelines.governance.versions import EmbedVersionSpec, VersionRegistry
    from aisg_pipelines_tests.test_parallel_backfill import BackfillStack, _upload_dir, max_overlap

    root = Path(tempfile.mkdtemp(prefix="pb_dagster_"))
    s = _settings(root, None, None)
    generate_landing_zone(s.landing_dir, now=NOW, n_subjects=a.subjects, docs_per_subject=a.docs, max_file_bytes=s.max_file_bytes)
    ingest_all(s, now=NOW)
    locations = {"bench_local": s}
    moto = None
    if not a.no_s3:
        moto, url = _moto()
        options = {"aws_endpoint": url, "allow_http": "true", "aws_access_key_id": "x", "aws_secret_access_key": "x", "region": "us-east-1"}
        c = boto3.client("s3", endpoint_url=url, aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1")
        c.create_bucket(Bucket="bench")
        _upload_dir(c, "bench", "rag", Path(s.lancedb_uri))
        locations["bench_s3"] = _replace(s, lancedb_uri="s3://bench/rag", lancedb_storage_options=options)
    reg = VersionRegistry(Ledger(s.ledger_url))
    model_path = reg.require("v1").model_path
    versions = [f"pbd{n}" for n in runs]
    for v in versions:
        reg.register(EmbedVersionSpec(name=v, model_path=model_path, max_seq_length=128))
    batches = sorted({r["batch_id"] for r in LanceStore(s.lancedb_uri).scan(CHUNKS, ["batch_id"]).to_pylist()})
    stack = BackfillStack(root, locations, batches, versions)
    rows = []
    try:
        stack.start()
        for loc, ls in locations.items():
            for n in runs:
                bf = stack.backfill(loc, f"pbd{n}", max_runs=n)
                recs = bf["records"]
                meta = stack.run_metadata(recs)
                vectors = sum(m["embedded"] for m in meta.values())
                wall = max(r.end_time for r in recs) - min(r.start_time for r in recs)
                ok = all(r.dagster_run.status.value == "SUCCESS" for r in recs)
                row = {"backend": "local" if loc == "bench_local" else "s3", "mode": "dagster", "runs": n, "batches": len(batches),
                       "vectors": vectors, "wall_s": round(wall, 2), "vectors_per_s": round(vectors / wall, 2),
                       "run_seconds_mean": round(sum(r.end_time - r.start_time for r in recs) / len(recs), 2),
                       "max_at_once": max_overlap(recs), "commit_retries": sum(m["commit_retries"] for m in meta.values()),
                       "all_succeeded": ok, "exact": _exact(LanceStore(ls.lancedb_uri, ls.lancedb_storage_options or None), f"pbd{n}")}
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        stack.stop()
        if moto is not None:
            moto.terminate()
            moto.wait()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subjects", type=int, default=8)
    ap.add_argument("--docs", type=int, default=2)
    ap.add_argument("--runs", default="1,2,4")
    ap.add_argument("--no-s3", action="store_true")
    ap.add_argument("--mode", choices=("processes", "dagster"), default="processes")
    a = ap.parse_args()
    if a.mode == "dagster":
        from benchmarks._common import machine

        rows = dagster_mode(a, [int(x) for x in a.runs.split(",")])
        print(json.dumps({"machine": machine(), "rows": rows}, indent=1))
        return
    from aisg_pipelines.governance.pipeline import ingest_all
    from aisg_pipelines.sample_data import generate_landing_zone

    runs = [int(x) for x in a.runs.split(",")]
    rows = []
    moto = None
    backends = ["local"] + ([] if a.no_s3 else ["s3"])
    try:
        for backend in backends:
            root = Path(tempfile.mkdtemp(prefix=f"pb_{backend}_"))
            uri, options = None, None
            if backend == "s3":
                import boto3

                moto, url = _moto()
                options = {"aws_endpoint": url, "allow_http": "true", "aws_access_key_id": "x", "aws_secret_access_key": "x", "region": "us-east-1"}
                boto3.client("s3", endpoint_url=url, aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1").create_bucket(Bucket="bench")
                uri = "s3://bench/rag"
            s = _settings(root, uri, options)
            generate_landing_zone(s.landing_dir, now=NOW, n_subjects=a.subjects, docs_per_subject=a.docs, max_file_bytes=s.max_file_bytes)
            ingest_all(s, now=NOW)
            store = LanceStore(s.lancedb_uri, options)
            batches = sorted({r["batch_id"] for r in store.scan(CHUNKS, ["batch_id"]).to_pylist()})
            for n in runs:
                r = _run(s.lancedb_uri, options, s.ledger_url, f"pb{n}", batches, n)
                r.update(backend=backend, batches=len(batches))
                rows.append(r)
                print(json.dumps(r), flush=True)
    finally:
        if moto is not None:
            moto.terminate()
            moto.wait()
    print(json.dumps({"machine": {"cpus": os.cpu_count()}, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
