"""The production path against the CLI: sensor-driven ingest + embedding under the real daemon.

    .venv/bin/python benchmarks/daemon_ingest.py [--subjects 20] [--docs 5] [--days 10] [--interval 5]

On a fresh instance (sqlite under a temp DAGSTER_HOME with the project's dagster.yaml, fresh
data dir) it starts `dagster api grpc -m aisg_pipelines.definitions` and
`dagster-daemon run`, waits until the landing sensor has ticked once, moves N sample uploads
(spread over `--days` upload days, sidecars first) into the landing zone and measures the time
until every document has chunks and every chunk has a vector in the active embed_version. In the
same run, `aisg ingest` (one process, runs executed in it) ingests identical files into another
data dir. Prints both times, the ratio, the runs launched and the overhead per run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent

from benchmarks._common import machine  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(data: Path, home: Path, interval: int, extra: dict | None = None) -> dict:
    env = {
        **os.environ,
        "AISG_DATA_DIR": str(data),
        "AISG_LANCEDB_URI": str(data / "lancedb"),
        "AISG_LEDGER_URL": f"sqlite:///{data / 'ledger.db'}",
        "AISG_LANDING_DIR": str(data / "landing"),
        "AISG_QUARANTINE_DIR": str(data / "quarantine"),
        "AISG_LOGS_DIR": str(data / "incoming" / "logs"),
        "AISG_METRICS_DIR": str(data / "incoming" / "metrics"),
        "AISG_EXPORTS_DIR": str(data / "exports"),
        "AISG_ERASURE_INBOX": str(data / "erasure_inbox"),
        "AISG_SECRETS_DIR": str(data / "secrets"),
        "AISG_SENSOR_INTERVAL_SECONDS": str(interval),
        "DAGSTER_HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(REPO),  # this checkout's code, also when run from a copy of the repo
    }
    env.update(extra or {})
    return env


def fresh_home(root: Path) -> Path:
    home = root / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    return home


def staged_uploads(staging: Path, subjects: int, docs: int, days: int) -> dict:
    from aisg_pipelines.sample_data import generate_landing_zone

    return generate_landing_zone(
        staging, now=datetime.now(timezone.utc), n_subjects=subjects, docs_per_subject=docs, span_days=days,
        include_bad_inputs=False,
    )


def move_in(staging: Path, landing: Path) -> None:
    """Sidecars first, then the files (renames keep the uploaded_at mtimes): the sensor never
    sees a data file without its sidecar."""
    files = sorted((p for p in staging.rglob("*") if p.is_file()), key=lambda p: not p.name.endswith(".meta.json"))
    for f in files:
        target = landing / f.relative_to(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(f, target)


def embedded_fully(data: Path, n_docs: int) -> tuple[bool, int, int]:
    """(every document has chunks and every chunk a vector in the active version, chunks, vectors)."""
    from aisg_pipelines.governance.ledger import Ledger
    from aisg_pipelines.governance.store import CHUNKS, DOCUMENTS, LanceStore
    from aisg_pipelines.governance.versions import VersionRegistry

    store = LanceStore(str(data / "lancedb"))
    if not (store.has_table(DOCUMENTS) and store.has_table(CHUNKS)):
        return False, 0, 0
    docs = set(store.scan(DOCUMENTS, ["doc_id"])["doc_id"].to_pylist())
    chunks = store.scan(CHUNKS, ["chunk_id", "doc_id"])
    if len(docs) < n_docs or set(chunks["doc_id"].to_pylist()) != docs:
        return False, chunks.num_rows, 0
    led = Ledger(f"sqlite:///{data / 'ledger.db'}")
    try:
        active = VersionRegistry(led).active()
    finally:
        led.engine.dispose()
    if active is None or not store.has_table(active.table):
        return False, chunks.num_rows, 0
    vecs = store.scan(active.table, ["chunk_id"])["chunk_id"].to_pylist()
    return set(vecs) == set(chunks["chunk_id"].to_pylist()), chunks.num_rows, len(vecs)


def wait(what: str, cond, timeout: float, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def daemon_path(root: Path, staging: Path, n_docs: int, interval: int, timeout: float, on_drop=None) -> dict:
    data = root / "data"
    (data / "landing").mkdir(parents=True)
    home = fresh_home(root)
    port = free_port()
    workspace = root / "workspace.yaml"
    workspace.write_text(f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: {port}\n      location_name: aisg_pipelines\n")
    env = env_for(data, home, interval)
    logs = root / "logs"
    logs.mkdir()
    procs = []

    def start(name, cmd):
        fh = open(logs / f"{name}.log", "wb")
        procs.append((name, subprocess.Popen(cmd, env=env, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)))

    os.environ["DAGSTER_HOME"] = str(home)
    import dagster as dg

    try:
        start("grpc", [str(BIN / "dagster"), "api", "grpc", "-m", "aisg_pipelines.definitions", "-h", "127.0.0.1", "-p", str(port)])
        from dagster._grpc.client import DagsterGrpcClient

        def grpc_up():
            try:
                return DagsterGrpcClient(port=port, host="127.0.0.1").ping("up") is not None
            except Exception:
                return False

        wait("the code server", grpc_up, 180)
        start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)])
        instance = dg.DagsterInstance.get()

        def ticked():
            return any(
                st.instigator_name == "landing_zone_sensor" and instance.get_ticks(st.instigator_origin_id, st.selector_id, limit=1)
                for st in instance.all_instigator_state()
            )

        wait("the landing sensor's first tick", ticked, 180)
        t0 = time.monotonic()
        if on_drop is not None:
            on_drop()
        move_in(staging, data / "landing")
        chunks = vectors = 0

        def done():
            nonlocal chunks, vectors
            ok, chunks, vectors = embedded_fully(data, n_docs)
            return ok

        wait("every chunk to have a vector", done, timeout)
        elapsed = time.monotonic() - t0
        # the runs still finish their last checks: wait for them, so the run figures are complete
        in_flight = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
        wait("the runs to finish", lambda: not instance.get_runs(filters=dg.RunsFilter(statuses=in_flight)), timeout)
        finished = time.monotonic() - t0
        runs = [r for r in instance.get_runs() if r.tags.get("dagster/sensor_name")]
        records = {r.dagster_run.run_id: r for r in instance.get_run_records(dg.RunsFilter(run_ids=[r.run_id for r in runs]))}
        per_run = []
        for r in runs:
            rec = records[r.run_id]
            if rec.start_time and rec.end_time:
                per_run.append({"job": r.job_name, "status": r.status.value, "queued_s": round(rec.start_time - rec.create_timestamp.timestamp(), 1),
                                "run_s": round(rec.end_time - rec.start_time, 1), "partitions": _partitions(r)})
        return {"seconds": elapsed, "finished_s": finished, "chunks": chunks, "vectors": vectors, "runs": len(runs), "per_run": per_run,
                "jobs": sorted({r.job_name for r in runs})}
    finally:
        for name, p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for name, p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def _partitions(run) -> str:
    t = run.tags
    if "dagster/asset_partition_range_start" in t:
        return f"{t['dagster/asset_partition_range_start']}..{t['dagster/asset_partition_range_end']}"
    return t.get("dagster/partition", "")


class CliRun:
    """`aisg ingest` on a copy of the same files, in its own data dir and instance."""

    def __init__(self, root: Path, landing_src: Path, n_docs: int, interval: int):
        self.data = root / "data"
        self.data.mkdir(parents=True)
        shutil.copytree(landing_src, self.data / "landing")  # copy2: same mtimes, so the same batches
        self.env = env_for(self.data, fresh_home(root), interval)
        self.n_docs = n_docs

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen([str(BIN / "aisg"), "ingest"], env=self.env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def finish(self) -> dict:
        stdout, stderr = self.proc.communicate()
        elapsed = time.monotonic() - self.t0
        if self.proc.returncode != 0:
            raise RuntimeError(f"aisg ingest failed:\n{stdout[-3000:]}\n{stderr[-3000:]}")
        ok, chunks, vectors = embedded_fully(self.data, self.n_docs)
        if not ok:
            raise RuntimeError(f"aisg ingest left chunks without vectors: {chunks} chunks, {vectors} vectors\n{stdout}")
        return {"seconds": elapsed, "chunks": chunks, "vectors": vectors, "stdout": stdout.strip()}


COLD_COSTS = {
    # what a fresh run process pays before its first batch; an embedding service would save only "model"
    "dagster + code location": "import aisg_pipelines.definitions",
    "model (sentence-transformers import + load)": (
        "from aisg_pipelines.governance.embedding import ModelSpec, load_model; from aisg_pipelines.settings import bundled_model_path; "
        "load_model(ModelSpec(bundled_model_path()))"
    ),
    "presidio scrubber": "from aisg_pipelines.governance.pii import get_scrubber; get_scrubber().scrub('kim@example.com 010-1234-5678')",
    "GX context": "from aisg_pipelines.governance.quality import _context; _context()",
}


def cold_costs() -> dict[str, float]:
    """Seconds each heavy part takes in a fresh process (minus a bare interpreter's start)."""
    def run(code: str) -> float:
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True)
        return time.monotonic() - t0

    bare = run("pass")
    return {name: round(run(code) - bare, 1) for name, code in COLD_COSTS.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=20)
    ap.add_argument("--docs", type=int, default=5, help="documents per subject (N = subjects x docs)")
    ap.add_argument("--days", type=int, default=10, help="upload days the documents are spread over")
    ap.add_argument("--interval", type=int, default=5, help="AISG_SENSOR_INTERVAL_SECONDS for both paths")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (process logs, instance)")
    ap.add_argument("--concurrent", action="store_true",
                    help="start `aisg ingest` at the moment of the drop, so both paths see the same background load (a shared machine)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: stop the daemon and code server
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    n = args.subjects * args.docs
    root = Path(tempfile.mkdtemp(prefix="aisg_daemon_bench_"))
    print(f"machine: {machine()}", flush=True)
    print(f"N={n} uploads ({args.subjects} subjects x {args.docs}) over {args.days} days; sensor interval {args.interval}s; "
          f"AISG_RUN_EXECUTOR={os.environ.get('AISG_RUN_EXECUTOR', '(unset)')}; {'concurrent' if args.concurrent else 'sequential'}; work dir {root}")
    try:
        staging = root / "staging"
        staged_uploads(staging, args.subjects, args.docs, args.days)
        pristine = root / "pristine"
        shutil.copytree(staging, pristine)
        cli = CliRun(root / "cli", pristine, n, args.interval)
        d = daemon_path(root / "daemon", staging, n, args.interval, args.timeout, on_drop=cli.start if args.concurrent else None)
        print(f"daemon path: {d['seconds']:.1f}s until {d['vectors']} vectors for {d['chunks']} chunks ({d['finished_s']:.1f}s until its runs ended); "
              f"{d['runs']} runs launched ({', '.join(d['jobs'])})")
        for r in d["per_run"]:
            print(f"  {r['job']:<14} {r['status']:<8} queued {r['queued_s']:>5}s run {r['run_s']:>6}s  {r['partitions']}", flush=True)
        if not args.concurrent:
            cli.start()
        c = cli.finish()
        print(f"aisg ingest: {c['seconds']:.1f}s ({c['stdout']}); {c['vectors']} vectors for {c['chunks']} chunks", flush=True)
        ratio = d["seconds"] / c["seconds"]
        # per run: the daemon path's time outside run execution (sensor tick, queue, worker start)
        in_runs = sum(r["run_s"] for r in d["per_run"])
        overhead = (d["finished_s"] - in_runs) / max(d["runs"], 1)
        print(f"ratio daemon/CLI: {ratio:.2f}x ({d['finished_s'] / c['seconds']:.2f}x to the end of the runs); "
              f"overhead per run (time outside run execution): {overhead:.1f}s ({d['runs']} runs)", flush=True)
        costs = cold_costs()
        print("cold start of a run process: " + ", ".join(f"{k} {v}s" for k, v in costs.items()), flush=True)
        print(f"load after: {os.getloadavg()[0]:.1f}", flush=True)
        print("RESULT " + json.dumps({"n": n, "daemon_s": round(d["seconds"], 1), "cli_s": round(c["seconds"], 1), "ratio": round(ratio, 2), "ratio_runs_ended": round(d["finished_s"] / c["seconds"], 2),
                                      "runs": d["runs"], "overhead_per_run_s": round(overhead, 1), "chunks": d["chunks"], "cold_costs_s": costs}))
    finally:
        proc = getattr(locals().get("cli"), "proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if args.keep:
            print(f"kept {root}", flush=True)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
