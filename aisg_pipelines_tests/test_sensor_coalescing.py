"""Issue 20: one landing-sensor tick -> one run over all its batches, which also embeds them;
a run killed mid-way is relaunched by the next tick and converges without duplicates.

Real instance (sqlite under a temp DAGSTER_HOME), real LanceDB, model, presidio and GX, tiny data.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import dagster as dg
import pytest

from aisg_pipelines.governance.chunking import ChunkerParams, chunk_text
from aisg_pipelines.sample_data import generate_landing_zone
from aisg_pipelines.governance.store import CHUNKS, DOCUMENTS, LanceStore
from aisg_pipelines.local_runner import RUN_KEY_TAG, SENSOR_NAME_TAG, tick_sensor

from .conftest import FIXED_NOW, fresh_defs

SENSOR = "landing_zone_sensor"


@pytest.fixture
def landed(settings, code_location_env):
    manifest = generate_landing_zone(
        settings.landing_dir, now=FIXED_NOW, n_subjects=2, docs_per_subject=2, span_days=4, include_bad_inputs=False,
        max_file_bytes=settings.max_file_bytes,
    )
    code_location_env(settings)
    with dg.DagsterInstance.get() as instance:  # on disk: a child process can run against it too
        yield settings, manifest, instance


def expected_chunks(s, store: LanceStore) -> int:
    """Chunks the store must hold: the active version's chunker over every stored (scrubbed) document."""
    from aisg_pipelines.governance.ledger import Ledger
    from aisg_pipelines.governance.versions import VersionRegistry

    active = VersionRegistry(Ledger(s.ledger_url)).active()
    params = ChunkerParams(active.chunk_size, active.chunk_overlap)
    return sum(len(chunk_text(t, params)) for t in store.scan(DOCUMENTS, ["text"])["text"].to_pylist())


def assert_converged(s, manifest, instance, batches: list[str]) -> None:
    store = LanceStore(s.lancedb_uri)
    docs = store.scan(DOCUMENTS, ["doc_id"])["doc_id"].to_pylist()
    assert sorted(docs) == sorted(d["doc_id"] for d in manifest["documents"])
    chunk_ids = store.scan(CHUNKS, ["chunk_id"])["chunk_id"].to_pylist()
    vec_ids = store.scan("embeddings_v1", ["chunk_id"])["chunk_id"].to_pylist()
    assert len(chunk_ids) == len(set(chunk_ids)) == expected_chunks(s, store) > 0
    assert len(vec_ids) == len(set(vec_ids)) and sorted(vec_ids) == sorted(chunk_ids)
    for key in ("documents", "chunks"):
        assert sorted(instance.get_materialized_partitions(dg.AssetKey(key))) == sorted(batches)
    assert sorted(instance.get_materialized_partitions(dg.AssetKey("embeddings"))) == sorted(f"{b}|v1" for b in batches)


def test_one_tick_with_k_batches_launches_one_run_of_k_partitions(landed):
    s, manifest, instance = landed
    defs = fresh_defs()
    tick = tick_sensor(defs, instance, SENSOR)
    (run,) = tick.launched
    assert run.is_success
    batches = instance.get_dynamic_partitions("ingest_batches")
    k = len(batches)
    assert k >= 3 and run.tags["aisg/batches"].split(",") == batches
    assert (run.tags["dagster/asset_partition_range_start"], run.tags["dagster/asset_partition_range_end"]) == (batches[0], batches[-1])
    # one materialization per batch partition, each from this run, with the batch's own metadata
    per_asset: dict[str, list[str]] = {}
    for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        m = e.dagster_event.event_specific_data.materialization
        per_asset.setdefault(m.asset_key.to_user_string(), []).append(m.partition)
        if m.asset_key == dg.AssetKey("documents"):
            assert m.metadata["dagster/row_count"].value == sum(1 for d in manifest["documents"] if d["path"] in _files(s, m.partition))
    assert {a: sorted(p) for a, p in per_asset.items()} == {
        "documents": sorted(batches), "chunks": sorted(batches), "embeddings": sorted(f"{b}|v1" for b in batches),
    }
    checks = [e.dagster_event.event_specific_data for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)]
    assert sorted((c.check_name, c.partition) for c in checks if c.passed) == sorted(
        [(n, b) for n in ("documents_valid", "documents_pii_free", "chunks_valid") for b in batches]
        + [("embeddings_valid", f"{b}|v1") for b in batches]
    )
    assert_converged(s, manifest, instance, batches)
    # nothing left: the embed sensor finds every batch embedded, a second tick launches nothing
    assert tick_sensor(defs, instance, "embed_new_batches_sensor").launched == []
    assert tick_sensor(defs, instance, SENSOR, cursor=tick.cursor).launched == []


def _files(s, batch: str) -> set[str]:
    from aisg_pipelines.governance.ledger import Ledger

    return set(Ledger(s.ledger_url).batch_files(batch))


CHILD = """
import json, sys
import dagster as dg
from aisg_pipelines.definitions import build_defs
with dg.DagsterInstance.get() as instance:
    build_defs().resolve_job_def("ingest_batch").execute_in_process(instance=instance, tags=json.loads(sys.argv[1]))
"""


def test_run_killed_mid_way_is_relaunched_by_the_next_tick_and_converges(landed):
    s, manifest, instance = landed
    defs = fresh_defs()
    ctx = dg.build_sensor_context(instance=instance, sensor_name=SENSOR, definitions=defs, resources=dict(defs.resources))
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        data = defs.get_repository_def().get_sensor_def(SENSOR).evaluate_tick(ctx)
    (req,) = data.run_requests
    batches = req.tags["aisg/batches"].split(",")
    tags = {**req.tags, RUN_KEY_TAG: req.run_key, SENSOR_NAME_TAG: SENSOR}
    # the run in a real worker process, SIGKILLed once its first batch is chunked (before embedding)
    child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(tags)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        run = None
        while time.monotonic() < deadline:
            assert child.poll() is None, f"the run ended before it could be killed:\n{child.stderr.read().decode()[-3000:]}"
            runs = instance.get_runs(filters=dg.RunsFilter(tags={RUN_KEY_TAG: req.run_key}))
            if runs and instance.get_materialized_partitions(dg.AssetKey("chunks")):
                run = runs[0]
                break
            time.sleep(0.2)
        assert run is not None, "the run chunked nothing within 300 s"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED  # as the killed worker left it
    assert not instance.get_materialized_partitions(dg.AssetKey("embeddings"))

    # the next tick: no new uploads, but the run's worker is gone -> failed, its batches relaunched once
    tick = tick_sensor(defs, instance, SENSOR, cursor=data.cursor)
    assert len(tick.launched) == 1, {k: v for k, v in instance.get_run_by_id(run.run_id).tags.items() if k.startswith("aisg")}
    (relaunch,) = tick.launched
    assert relaunch.is_success and relaunch.tags["aisg/batches"].split(",") == batches
    assert relaunch.tags[RUN_KEY_TAG].startswith(f"ingest-relaunch:{run.run_id}:")
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    assert_converged(s, manifest, instance, batches)
    assert tick_sensor(defs, instance, SENSOR, cursor=tick.cursor).launched == []
    assert tick_sensor(defs, instance, "embed_new_batches_sensor").launched == []
