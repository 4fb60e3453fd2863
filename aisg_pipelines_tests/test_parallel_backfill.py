"""Parallel backfill as real Dagster runs (issue 16): a backfill of `embeddings` for a new
embed_version over its batch partitions, submitted with `dagster job backfill` to the
QueuedRunCoordinator (max_concurrent_runs 4) of a real `dagster-daemon`, which launches each
run in its own process (DefaultRunLauncher through the code server), on a local directory (6
partitions: 4 run, 2 wait in the queue) and on S3 (moto_server on 127.0.0.1; 4 partitions, one
round). All runs of a backfill write the same Lance table `embeddings_v2`.

Asserted: every run succeeded in its own process, 4 of them ran at once (and never more: the
queue limit), every chunk of the backfilled batches has exactly one v2 vector (none lost, none duplicated), and each
run reports the commits it retried after a conflict (`commit_retries` metadata, summed and
printed). Waits are on run statuses with generous deadlines (a loaded 2-core machine), never
fixed sleeps.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import uuid
from collections import Counter
from dataclasses import replace
from pathlib import Path

import dagster as dg
import pytest

from aisg_pipelines.governance.ledger import Ledger
from aisg_pipelines.governance.store import CHUNKS, LanceStore
from aisg_pipelines.governance.versions import EmbedVersionSpec, VersionRegistry

from .conftest import env_for, settings_for
from .test_object_storage import _client, _options, s3_endpoint  # noqa: F401  (module fixture: the moto server)
from .test_operations_e2e import BIN, FINISHED, Proc, free_port, wait_for

pytestmark = [pytest.mark.integration]

NEW = "v2"
MAX_RUNS = 4
RUN_DEADLINE = 900  # seconds for a whole backfill on a loaded 2-core machine


def _upload_dir(c, bucket: str, prefix: str, root: Path) -> None:
    """A local Lance store copied to the bucket (Lance paths are relative: the copy is a store)."""
    for p in sorted(root.rglob("*")):
        if p.is_file():
            c.upload_file(str(p), bucket, f"{prefix}/{p.relative_to(root)}")


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class BackfillStack:
    """A Dagster instance (sqlite) with a QueuedRunCoordinator and the default run launcher, one
    code server (`dagster api grpc`) per location, each with its own store settings, and a
    `dagster-daemon` started per backfill. Also used by benchmarks/parallel_backfill.py."""

    def __init__(self, root: Path, locations: dict, batches: list[str], versions: list[str]):
        self.root, self.locations, self.batches = root, locations, batches
        self.home = root / "dagster_home"
        self.home.mkdir()
        self.ws = root / "workspace.yaml"
        self.procs: list[Proc] = []
        self._write_config(MAX_RUNS)
        # the instance's sqlite databases created once, before several processes open them
        from dagster._core.instance.ref import InstanceRef

        self.instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(self.home)))
        self.instance.get_runs(limit=1)
        self.instance.all_instigator_state()
        self.instance.add_dynamic_partitions("ingest_batches", batches)
        self.instance.add_dynamic_partitions("embed_versions", versions)
        self.env = {**os.environ, "DAGSTER_HOME": str(self.home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                    "PYTHONUNBUFFERED": "1", "AISG_RUN_EXECUTOR": "in_process", "AISG_SENSOR_INTERVAL_SECONDS": "3600"}

    def _write_config(self, max_runs: int) -> None:
        (self.home / "dagster.yaml").write_text(
            "telemetry:\n  enabled: false\n"
            "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: QueuedRunCoordinator\n"
            f"  config:\n    max_concurrent_runs: {max_runs}\n    dequeue_interval_seconds: 1\n"
            "run_monitoring:\n  enabled: true\n  start_timeout_seconds: 300\n  poll_interval_seconds: 5\n"
        )

    def _spawn(self, name: str, args: list[str], env: dict) -> Proc:
        log = self.root / f"{name}.log"
        with open(log, "ab") as fh:
            p = subprocess.Popen(args, cwd=self.root, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
        proc = Proc(name, p, log)
        self.procs.append(proc)
        return proc

    def start(self) -> None:
        empty_landing = self.root / "no_uploads"  # the landing sensor must find nothing to ingest
        empty_landing.mkdir(exist_ok=True)
        ports, entries = {}, []
        for loc, s in self.locations.items():
            env = {**self.env, **env_for(s), "AISG_LANDING_DIR": str(empty_landing)}
            if s.lancedb_storage_options:
                env["AISG_LANCEDB_STORAGE_OPTIONS"] = json.dumps(s.lancedb_storage_options)
            ports[loc] = port = free_port()
            self._spawn(loc, [str(BIN / "dagster"), "api", "grpc", "-m", "aisg_pipelines.definitions", "-h", "127.0.0.1", "-p", str(port),
                              "--location-name", loc], env)
            entries.append(f"  - grpc_server:\n      host: 127.0.0.1\n      port: {port}\n      location_name: {loc}\n")
        self.ws.write_text("load_from:\n" + "".join(entries))
        for loc, port in ports.items():
            wait_for(f"code server {loc} listening", lambda port=port: _port_open(port), 240, interval=0.5, on_timeout=self.logs)

    def logs(self) -> str:
        return "\n".join(p.tail() for p in self.procs)

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.stop()

    def backfill(self, location: str, version: str, max_runs: int = MAX_RUNS, batches: list[str] | None = None) -> dict:
        """`dagster job backfill` of embed_batch over the batches (default: every batch) under `version`: all runs are
        queued first; then a daemon is started, so its first dequeue launches `max_runs` of them
        together (started earlier, it would launch them one by one as the CLI submits them).
        Returns the backfill id, its run records (all finished) and the partitions."""
        partitions = [str(dg.MultiPartitionKey({"batch": b, "embed_version": version})) for b in (batches or self.batches)]
        out = subprocess.run([str(BIN / "dagster"), "job", "backfill", "-w", str(self.ws), "-l", location, "-j", "embed_batch",
                              "--partitions", ",".join(partitions), "--noprompt"],
                             cwd=self.root, env=self.env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stdout + out.stderr
        backfill_id = re.search(r"Launched backfill job `([^`]+)`", out.stdout).group(1)
        want = len(partitions)
        queued = self.instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        assert len(queued) == want and {r.status for r in queued} == {dg.DagsterRunStatus.QUEUED}

        def finished():
            rs = self.instance.get_run_records(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
            return rs if len(rs) == want and all(r.dagster_run.status in FINISHED for r in rs) else None

        def describe():
            rs = self.instance.get_runs()
            return "runs: " + "; ".join(f"{r.status.value} {r.tags.get('dagster/partition')}" for r in rs) + "\n" + self.logs()

        self._write_config(max_runs)
        daemon = self._spawn("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(self.ws)], self.env)
        try:
            records = wait_for(f"{want} runs of backfill {backfill_id} finished", finished, RUN_DEADLINE, interval=1.0, on_timeout=describe)
        finally:
            daemon.stop()
        return {"id": backfill_id, "records": records, "partitions": partitions}

    def run_metadata(self, records) -> dict[str, dict]:
        """{partition: {"embedded", "commit_retries"}} from each run's one materialization."""
        out = {}
        for r in records:
            (m,) = [e.asset_materialization for e in self.instance.all_logs(r.dagster_run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)]
            out[m.partition] = {k: v.value for k, v in m.metadata.items() if k in ("embedded", "commit_retries")}
        return out


def max_overlap(records) -> int:
    """Most runs executing at the same moment (RUN_START .. RUN_SUCCESS of each run)."""
    edges = sorted([(r.start_time, 1) for r in records] + [(r.end_time, -1) for r in records], key=lambda e: (e[0], e[1]))
    cur = best = 0
    for _, d in edges:
        cur += d
        best = max(best, cur)
    return best


@pytest.fixture(scope="module")
def stack(golden_store, tmp_path_factory, s3_endpoint):  # noqa: F811
    """Code servers `aisg_local` on a copy of the golden store and `aisg_s3` on the same store
    copied to a bucket; v2 registered in the shared ledger, its partitions on the instance."""
    root = tmp_path_factory.mktemp("pb_e2e")
    golden_root, _ = golden_store
    shutil.copytree(golden_root / "var", root / "var")
    s_local = settings_for(root)
    bucket = f"aisg-pb-{uuid.uuid4().hex[:10]}"
    c = _client(s3_endpoint)
    c.create_bucket(Bucket=bucket)
    _upload_dir(c, bucket, "rag/store", Path(s_local.lancedb_uri))
    s_s3 = replace(s_local, lancedb_uri=f"s3://{bucket}/rag/store", lancedb_storage_options=_options(s3_endpoint))

    model_path = VersionRegistry(Ledger(s_local.ledger_url)).require("v1").model_path
    VersionRegistry(Ledger(s_local.ledger_url)).register(EmbedVersionSpec(name=NEW, model_path=model_path, max_seq_length=128))
    batches = sorted({r["batch_id"] for r in LanceStore(s_local.lancedb_uri).scan(CHUNKS, ["batch_id"]).to_pylist()})
    assert len(batches) > MAX_RUNS  # more partitions than run slots: the queue holds the rest

    st = BackfillStack(root, {"aisg_local": s_local, "aisg_s3": s_s3}, batches, [NEW])
    try:
        st.start()
        yield st
    finally:
        st.stop()


def _assert_backfill(stack: BackfillStack, location: str, batches: list[str]) -> None:
    bf = stack.backfill(location, NEW, batches=batches)
    records = bf["records"]
    bad = [(r.dagster_run.tags.get("dagster/partition"), r.dagster_run.status.value) for r in records if r.dagster_run.status != dg.DagsterRunStatus.SUCCESS]
    assert bad == [], stack.logs()
    assert sorted(r.dagster_run.tags["dagster/partition"] for r in records) == sorted(bf["partitions"])
    assert all(r.dagster_run.tags.get("aisg/job") == "embed" for r in records)

    # each run in its own process, launched by the code server for the daemon's queue
    pids = {}
    for r in records:
        msgs = [e.message for e in stack.instance.all_logs(r.dagster_run.run_id) if e.message and "Started process for run (pid:" in e.message]
        assert len(msgs) == 1, msgs
        pids[r.dagster_run.run_id] = int(re.search(r"pid: (\d+)", msgs[0]).group(1))
    assert len(set(pids.values())) == len(records)
    # MAX_RUNS at once, never more (the coordinator's limit)
    assert max_overlap(records) == MAX_RUNS, [(r.start_time, r.end_time) for r in records]

    # exact: every chunk of every batch has one v2 vector; none lost, none duplicated
    s = stack.locations[location]
    store = LanceStore(s.lancedb_uri, s.lancedb_storage_options or None)
    want = sorted(c["chunk_id"] for c in store.scan(CHUNKS, ["chunk_id", "batch_id"]).to_pylist() if c["batch_id"] in batches)
    got = store.scan(f"embeddings_{NEW}", ["chunk_id"])["chunk_id"].to_pylist()
    assert [k for k, n in Counter(got).items() if n > 1] == []
    assert sorted(got) == want
    # per run: the vectors it wrote and the commits it retried after a conflict
    meta = stack.run_metadata(records)
    assert sum(v["embedded"] for v in meta.values()) == len(want)
    assert all(isinstance(v["commit_retries"], int) and v["commit_retries"] >= 0 for v in meta.values())
    retries = sum(v["commit_retries"] for v in meta.values())
    wall = max(r.end_time for r in records) - min(r.start_time for r in records)
    print(f"\n{location}: {len(records)} runs, {len(want)} vectors, max {MAX_RUNS} at once, {wall:.1f} s, commit retries {retries}")


def test_backfill_runs_in_parallel_into_one_local_table(stack):
    _assert_backfill(stack, "aisg_local", stack.batches)  # 6 partitions: 4 run, 2 wait in the queue


def test_backfill_runs_in_parallel_into_one_s3_table(stack):
    _assert_backfill(stack, "aisg_s3", stack.batches[:MAX_RUNS])  # one round of 4 writers on S3 (keeps the suite short)


def test_a_conflicting_commit_is_retried_and_counted(tmp_path):
    """A real lance commit conflict (two writers creating the same index from one version: the
    race parallel runs have on a fresh table) is retried and counted; other errors are not."""
    import lance
    import pyarrow as pa

    uri = str(tmp_path / "t.lance")
    lance.write_dataset(pa.table({"chunk_id": [f"c{i}" for i in range(50)]}), uri)
    stale = lance.dataset(uri)  # the loser's view, taken before the winner commits
    lance.dataset(uri).create_scalar_index("chunk_id", "BTREE")  # the winner
    handles = iter([stale, None])
    store = LanceStore(str(tmp_path))

    def create():
        h = next(handles) or lance.dataset(uri)  # a retry opens the table afresh
        h.create_scalar_index("chunk_id", "BTREE", replace=True)

    store._retry_commit(create)
    assert store.commit_retries == 1
    assert [ix["fields"] for ix in lance.dataset(uri).list_indices()] == [["chunk_id"]]

    def broken():  # "conflict", but not a commit conflict: retrying cannot help
        raise ValueError("schema conflict: field vector has 384 dims, not 768")

    with pytest.raises(ValueError, match="schema conflict"):
        store._retry_commit(broken)
    assert store.commit_retries == 1
