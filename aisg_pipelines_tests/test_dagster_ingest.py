"""The Dagster layer over real stores: landing sensor cursor/run_key, runs, checks, metadata."""

from __future__ import annotations

import hashlib
import json
import os
import time

import dagster as dg
import pytest

from aisg_pipelines.governance.landing import plan_batches
from aisg_pipelines.sample_data import generate_landing_zone
from aisg_pipelines.governance.store import CHUNKS, DOCUMENTS, LanceStore
from aisg_pipelines.local_runner import tick_sensor

from .conftest import FIXED_NOW, fresh_defs


def _evaluate(defs, instance, name, cursor=None):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, sensor_name=name, definitions=defs, resources=dict(defs.resources))
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        return defs.get_repository_def().get_sensor_def(name).evaluate_tick(ctx)


@pytest.fixture
def small_landing(settings, code_location_env):
    manifest = generate_landing_zone(settings.landing_dir, now=FIXED_NOW, n_subjects=2, docs_per_subject=2, span_days=10, include_bad_inputs=True, max_file_bytes=settings.max_file_bytes)
    code_location_env(settings)
    with dg.instance_for_test() as instance:
        yield settings, manifest, instance


def test_landing_sensor_cursor_and_run_keys(small_landing):
    s, manifest, instance = small_landing
    defs = fresh_defs()
    first = _evaluate(defs, instance, "landing_zone_sensor")
    # the batches of a tick go into one run over their partition range (run shape of issue 20)
    (request,) = first.run_requests
    batches = request.tags["aisg/batches"].split(",")
    assert len(batches) > 1 and batches == instance.get_dynamic_partitions("ingest_batches")
    digest = hashlib.sha256(",".join(batches).encode()).hexdigest()[:8]
    assert request.run_key == f"ingest:{batches[0]}..{batches[-1]}:{digest}"
    assert (request.tags["dagster/asset_partition_range_start"], request.tags["dagster/asset_partition_range_end"]) == (batches[0], batches[-1])
    assert instance.get_dynamic_partitions("embed_versions") == ["v1"]
    # every landed file is in exactly one batch manifest
    from aisg_pipelines.governance.ledger import Ledger

    ledger = Ledger(s.ledger_url)
    all_files = sorted(f for b in batches for f in ledger.batch_files(b))
    expected = sorted([d["path"] for d in manifest["documents"]] + [b["path"] for b in manifest["bad_inputs"]])
    assert all_files == expected
    cursor = json.loads(first.cursor)
    # the same tick again (cursor not advanced, e.g. after a failed tick) asks for the same runs
    again = _evaluate(defs, instance, "landing_zone_sensor")
    assert sorted(r.run_key for r in again.run_requests) == sorted(r.run_key for r in first.run_requests)
    # with the advanced cursor there is nothing new
    nothing = _evaluate(defs, instance, "landing_zone_sensor", first.cursor)
    assert not nothing.run_requests and "no new uploads" in nothing.skip_message
    # a new upload becomes exactly one new batch
    new = s.landing_dir / "new" / "late.txt"
    new.parent.mkdir()
    new.write_text("A late upload. It has two sentences.", encoding="utf-8")
    new.with_name("late.txt.meta.json").write_text(json.dumps({"doc_id": "doc-late", "subject_id": "subj-x", "uploaded_at": "2026-11-20T00:00:00+00:00", "category": "user_content", "source": "aisg-web"}))
    later = _evaluate(defs, instance, "landing_zone_sensor", first.cursor)
    assert len(later.run_requests) == 1
    assert ledger.batch_files(later.run_requests[0].partition_key) == ["new/late.txt"]
    assert json.loads(later.cursor)["path"] == "new/late.txt" and cursor != json.loads(later.cursor)


def test_file_without_sidecar_waits_for_settle_time(settings):
    d = settings.landing_dir / "x"
    d.mkdir(parents=True)
    (d / "a.txt").write_text("first")
    (d / "a.txt.meta.json").write_text("{}")
    os.utime(d / "a.txt", (time.time() - 100, time.time() - 100))
    (d / "b.txt").write_text("sidecar not uploaded yet")
    scan = plan_batches(settings.landing_dir, None, now_ns=time.time_ns(), settle_seconds=60)
    assert scan.deferred == 1
    assert [f for fs in scan.batches.values() for f in fs] == ["x/a.txt"]
    assert scan.new_cursor[1] == "x/a.txt"
    # once old enough, it goes through (and the run will quarantine it as no_sidecar)
    later = plan_batches(settings.landing_dir, scan.new_cursor, now_ns=time.time_ns() + int(120e9), settle_seconds=60)
    assert [f for fs in later.batches.values() for f in fs] == ["x/b.txt"]


def test_sensor_runs_materialise_all_assets_with_checks(small_landing):
    s, manifest, instance = small_landing
    defs = fresh_defs()
    ingest = tick_sensor(defs, instance, "landing_zone_sensor")
    assert len(ingest.launched) == 1 and ingest.all_succeeded  # one run for every batch of the tick
    batches = instance.get_dynamic_partitions("ingest_batches")
    assert len(batches) > 1
    # the ingest run embedded its batches under the active version: the embed sensor has nothing to do
    embed = tick_sensor(defs, instance, "embed_new_batches_sensor")
    assert embed.launched == [] and "every ingested batch is embedded under v1" in embed.skip_reason
    for key in ("documents", "chunks"):
        assert sorted(instance.get_materialized_partitions(dg.AssetKey(key))) == sorted(batches)
    assert sorted(instance.get_materialized_partitions(dg.AssetKey("embeddings"))) == sorted(f"{b}|v1" for b in batches)

    store = LanceStore(s.lancedb_uri)
    assert store.count(DOCUMENTS) == len(manifest["documents"])
    assert store.count("embeddings_v1") == store.count(CHUNKS) > 0

    rows = 0
    quarantined = 0
    for batch in instance.get_dynamic_partitions("ingest_batches"):
        ev = instance.get_latest_materialization_event(dg.AssetKey("documents"))
        assert ev is not None
        rec = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey("documents"), asset_partitions=[batch]), limit=1).records[0]
        md = rec.asset_materialization.metadata
        rows += md["dagster/row_count"].value
        quarantined += md["quarantined"].value
        assert "summary" in md and "pii_removed_by_type" in md
    assert rows == len(manifest["documents"]) and quarantined == len(manifest["bad_inputs"])

    # every check evaluation of these runs passed
    evaluations = []
    for run in ingest.launched + embed.launched:
        evaluations += [e for e in instance.all_logs(run.run_id) if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION]
    assert evaluations and all(e.dagster_event.event_specific_data.passed for e in evaluations)
    assert {e.dagster_event.event_specific_data.check_name for e in evaluations} == {"documents_valid", "documents_pii_free", "chunks_valid", "embeddings_valid"}

    # nothing left to do: the run_keys are recorded, re-ticks launch nothing
    assert tick_sensor(defs, instance, "landing_zone_sensor").launched == []
    assert tick_sensor(defs, instance, "embed_new_batches_sensor").launched == []


def test_sensor_runs_refuse_links_and_replace_changed_documents(small_landing):
    """Through the sensors and real runs: a symlink to the signing key is removed unread; an
    overwritten upload replaces its document (old chunks and vectors gone through the cascade),
    and the batch it left empty loses its partition."""
    from aisg_pipelines.governance.ledger import Ledger
    from aisg_pipelines.governance.secrets import load_or_create_signing_key

    s, manifest, instance = small_landing
    defs = fresh_defs()
    assert tick_sensor(defs, instance, "landing_zone_sensor").all_succeeded
    assert tick_sensor(defs, instance, "embed_new_batches_sensor").all_succeeded
    store, ledger = LanceStore(s.lancedb_uri), Ledger(s.ledger_url)
    docs = store.scan(DOCUMENTS, ["doc_id", "batch_id", "file_path"]).to_pylist()
    per_batch: dict[str, list] = {}
    for d in docs:
        per_batch.setdefault(d["batch_id"], []).append(d)
    doc = next(ds[0] for b, ds in sorted(per_batch.items()) if len(ds) == 1)
    old_batch = doc["batch_id"]
    old_chunk_texts = set(store.scan(CHUNKS, ["text"], filter=f"doc_id = '{doc['doc_id']}'")["text"].to_pylist())
    new_text = "The replacement text: the orchestra tour is postponed until the spring season."
    (s.landing_dir / doc["file_path"]).write_text(new_text, encoding="utf-8")
    load_or_create_signing_key(s)
    key = next(p for p in s.secrets_dir.iterdir() if p.name.endswith(".pem") and not p.name.endswith(".pub.pem"))
    (s.landing_dir / "evil").mkdir()
    (s.landing_dir / "evil" / "key.txt").symlink_to(key)
    (s.landing_dir / "evil" / "key.txt.meta.json").write_text(json.dumps({"doc_id": "doc-key", "subject_id": "subj-x", "uploaded_at": "2026-11-20T00:00:00+00:00", "category": "user_content", "source": "aisg-web"}))

    tick = tick_sensor(defs, instance, "landing_zone_sensor")
    assert len(tick.launched) == 1 and tick.all_succeeded
    new_batch = tick.launched[0].tags["aisg/batch"]
    assert tick_sensor(defs, instance, "embed_new_batches_sensor").all_succeeded
    md = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey("documents"), asset_partitions=[new_batch]), limit=1).records[0].asset_materialization.metadata
    assert md["dagster/row_count"].value == 1 and md["replaced_documents"].value == 1
    assert md["quarantined_by_reason"].value == {"symlink": 1}
    assert md["emptied_batches_deleted"].value == [old_batch]
    assert old_batch not in instance.get_dynamic_partitions("ingest_batches")
    assert not os.path.lexists(s.landing_dir / "evil" / "key.txt") and key.exists()
    assert store.count(DOCUMENTS) == len(manifest["documents"])
    assert store.scan(DOCUMENTS, ["batch_id"], filter=f"doc_id = '{doc['doc_id']}'")["batch_id"].to_pylist() == [new_batch]
    chunk_ids = store.scan(CHUNKS, ["chunk_id"])["chunk_id"].to_pylist()
    assert sorted(store.scan("embeddings_v1", ["chunk_id"])["chunk_id"].to_pylist()) == sorted(chunk_ids) and len(set(chunk_ids)) == len(chunk_ids)
    assert not old_chunk_texts & set(store.scan(CHUNKS, ["text"])["text"].to_pylist())
    assert not any(b"PRIVATE KEY" in p.read_bytes() for p in s.data_dir.joinpath("lancedb").rglob("*") if p.is_file())
    assert [e.details["cause"] for e in ledger.events("cascade.result")] == ["ingest.replace"]
