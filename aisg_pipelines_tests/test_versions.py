"""The embed_version registry through its Dagster jobs and CLI (temp instance, real store and model)."""

from __future__ import annotations

import dagster as dg
import pytest
from click.testing import CliRunner

from aisg_pipelines.governance.ledger import Ledger
from aisg_pipelines.governance.store import CHUNKS, LanceStore
from aisg_pipelines.governance.versions import EmbedVersionSpec, VersionConflict, VersionRegistry

from .conftest import fresh_defs


def _cfg(**config):
    return {"ops": {"reindex_all_op": {"config": config}}}


def test_redeclaring_a_changed_version_is_refused(settings, model_path):
    reg = VersionRegistry(Ledger(settings.ledger_url))
    v, created = reg.register(EmbedVersionSpec("v2", model_path, max_seq_length=128))
    assert created and v.status == "registered"
    assert reg.register(EmbedVersionSpec("v2", model_path, max_seq_length=128)) == (v, False)
    with pytest.raises(VersionConflict, match=r"max_seq_length.*128 -> 64"):
        reg.register(EmbedVersionSpec("v2", model_path, max_seq_length=64))
    assert reg.require("v2").max_seq_length == 128


def test_reindex_all_and_rollback_jobs(populated_settings, code_location_env):
    s, _ = populated_settings
    code_location_env(s)
    defs = fresh_defs()
    store, ledger = LanceStore(s.lancedb_uri), Ledger(s.ledger_url)
    reg = VersionRegistry(ledger)
    n = store.count(CHUNKS)
    batches = sorted(set(store.scan(CHUNKS, ["batch_id"])["batch_id"].to_pylist()))
    job = defs.resolve_job_def("reindex_all")
    assert job.tags["aisg/job"] == "reindex" and defs.resolve_job_def("rollback_embed_version").tags["aisg/job"] == "reindex"

    with dg.instance_for_test() as instance:
        # A hand-launched partition of the backfill (as from the UI) for v2, declared in embed_versions.yaml
        from aisg_pipelines.defs.partitions import embeddings_key
        from aisg_pipelines.governance.reindex import register_version, resolve_spec

        register_version(reg, resolve_spec("v2"), lambda name: instance.add_dynamic_partitions("embed_versions", [name]))
        instance.add_dynamic_partitions("ingest_batches", batches)
        first = store.count(CHUNKS, f"batch_id = '{batches[0]}'")
        hand = defs.resolve_job_def("embed_batch").execute_in_process(instance=instance, partition_key=str(embeddings_key("v2", batches[0])))
        assert hand.success and store.count("embeddings_v2") == first and reg.active().name == "v1"

        res = job.execute_in_process(instance=instance, run_config=_cfg(version="v2", retrieval_sample=10))
        assert res.success
        out = res.output_for_node("reindex_all_op")
        assert (out["version"], out["previous_active"], out["status"], out["embedded"], out["chunks"]) == ("v2", "v1", "active", n - first, n)
        assert reg.active().name == "v2" and reg.require("v2").max_seq_length == 128
        assert "v2" in instance.get_dynamic_partitions("embed_versions")
        mats = instance.get_materialized_partitions(dg.AssetKey("embeddings"))
        assert {f"{b}|v2" for b in batches} <= set(mats)
        meta = [e for e in res.all_node_events if e.event_type_value == "STEP_OUTPUT"][0].event_specific_data.metadata
        assert meta["dagster/row_count"].value == n and meta["embedded"].value == n - first and "Validation gate" in meta["summary"].value
        logs = " ".join(e.message for e in instance.all_logs(res.run_id) if e.user_message)
        assert "chunks/s" in logs and "ETA" in logs

        rb = defs.resolve_job_def("rollback_embed_version").execute_in_process(instance=instance)
        assert rb.success and rb.output_for_node("rollback_embed_version_op") == {"version": "v1", "previous": "v2", "embedded": 0}
        assert reg.active().name == "v1" and store.count("embeddings_v2") == n

        # A duplicate row in v2 fails the gate: the job fails, v1 stays active.
        dup = store.scan("embeddings_v2", ["chunk_id", "doc_id", "batch_id", "content_sha256", "vector", "embedded_at"]).slice(0, 1)
        store.append("embeddings_v2", store.open("embeddings_v2").schema, dup)
        bad = job.execute_in_process(instance=instance, run_config=_cfg(version="v2", retrieval_sample=10), raise_on_error=False)
        assert not bad.success
        failure = next(e for e in bad.all_events if e.event_type_value == "STEP_FAILURE")
        msg = failure.event_specific_data.error.message
        assert "activation refused" in msg and "no duplicate chunk_id FAILED" in msg and dup["chunk_id"][0].as_py() in msg
        assert reg.active().name == "v1" and reg.require("v2").status == "building"

        # A conflicting declaration fails with a clear message.
        conflict = job.execute_in_process(instance=instance, run_config=_cfg(version="v2", max_seq_length=64), raise_on_error=False)
        assert not conflict.success
        assert "already registered with different parameters" in next(e for e in conflict.all_events if e.event_type_value == "STEP_FAILURE").event_specific_data.error.message


def test_cli_register_list_and_search(populated_settings, code_location_env):
    from aisg_pipelines.cli import main

    s, _ = populated_settings
    code_location_env(s)
    runner = CliRunner()
    r = runner.invoke(main, ["versions", "register", "v2"])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("registered: v2") and "max_seq_length 128" in r.output
    assert runner.invoke(main, ["versions", "register", "v2"]).output.startswith("already registered: v2")
    r = runner.invoke(main, ["versions", "register", "v2", "--max-seq-length", "64"])
    assert r.exit_code == 1 and "refused" in r.output and "max_seq_length" in r.output
    instance = dg.DagsterInstance.get()
    assert "v2" in instance.get_dynamic_partitions("embed_versions")
    r = runner.invoke(main, ["versions", "list"])
    lines = r.output.splitlines()
    assert r.exit_code == 0 and lines[1].split()[:3] == ["v1", "active", str(LanceStore(s.lancedb_uri).count(CHUNKS))] and lines[2].split()[:3] == ["v2", "registered", "0"]
    query = LanceStore(s.lancedb_uri).scan(CHUNKS, ["text"])["text"][0].as_py()
    r = runner.invoke(main, ["search", query, "-k", "2", "--json"])
    assert r.exit_code == 0, r.output
    import json

    hits = json.loads(r.output)
    assert len(hits) == 2 and {h["embed_version"] for h in hits} == {"v1"} and hits[0]["text"] == query
