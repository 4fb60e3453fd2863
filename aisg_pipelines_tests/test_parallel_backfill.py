"""Parallel backfill into one table (issue 16): 4 worker processes, each embedding one batch
partition of a new embed_version into the same Lance table at the same moment (a barrier
releases them together), on a local directory and on S3 (moto). Exact counts: every chunk of
every batch has exactly one vector, none lost, none duplicated."""

from __future__ import annotations

import multiprocessing as mp
from collections import Counter
from dataclasses import replace

import pytest

from aisg_pipelines.governance.store import CHUNKS, LanceStore

from .test_object_storage import _world, s3_endpoint  # noqa: F401  (module fixture: the moto server)

NEW = "v9"


def _worker(uri, options, ledger_url, batch_id, barrier, out):
    from aisg_pipelines.governance.ledger import Ledger
    from aisg_pipelines.governance.pipeline import embed_batch
    from aisg_pipelines.governance.versions import VersionRegistry

    try:
        store = LanceStore(uri, options or None)
        ver = replace(VersionRegistry(Ledger(ledger_url)).get("v1"), name=NEW)
        from aisg_pipelines.governance.embedding import encode

        encode(ver.model, ["warm up"])  # model loaded before the barrier: the writes overlap
        barrier.wait(timeout=300)
        r = embed_batch(store, ver, batch_id)
        out.put((batch_id, r.embedded, None))
    except BaseException as e:  # noqa: BLE001
        out.put((batch_id, 0, repr(e)))


def _backfill(uri, options, ledger_url, batches):
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(len(batches)), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(uri, options, ledger_url, b, barrier, out)) for b in batches]
    for p in procs:
        p.start()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert [r for r in results if r[2]] == []
    return {b: n for b, n, _ in results}


def _check(store: LanceStore, batches):
    chunks = store.scan(CHUNKS, ["chunk_id", "batch_id"]).to_pylist()
    want = sorted(c["chunk_id"] for c in chunks if c["batch_id"] in batches)
    got = store.scan(f"embeddings_{NEW}", ["chunk_id"])["chunk_id"].to_pylist()
    dups = [k for k, n in Counter(got).items() if n > 1]
    assert dups == [] and sorted(got) == want
    return len(want)


def _batches(store: LanceStore):
    batches = sorted({r["batch_id"] for r in store.scan(CHUNKS, ["batch_id"]).to_pylist()})
    assert len(batches) >= 4
    return batches[:4]


def test_four_parallel_runs_into_one_local_table(populated_settings):
    s, _ = populated_settings
    store = LanceStore(s.lancedb_uri)
    batches = _batches(store)
    done = _backfill(s.lancedb_uri, None, s.ledger_url, batches)
    n = _check(store, batches)
    assert sum(done.values()) == n


def test_four_parallel_runs_into_one_s3_table(tmp_path, s3_endpoint):  # noqa: F811
    s, _, _, _ = _world(tmp_path, s3_endpoint, n_subjects=2)
    store = LanceStore(s.lancedb_uri, s.lancedb_storage_options)
    batches = _batches(store)
    done = _backfill(s.lancedb_uri, s.lancedb_storage_options, s.ledger_url, batches)
    n = _check(store, batches)
    assert sum(done.values()) == n
