"""Orphan detection and cleanup on a real populated store (real LanceDB, real ledger, real Dagster).

The golden store holds 6 documents, one per batch (doc-0001..doc-0006), embedded under v1,
plus one batch whose uploads were all quarantined. Each test plants orphans of every kind
in its own copy and asserts the exact ids found and removed.
"""

from __future__ import annotations

import csv
import os
import time
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from aisg_pipelines.governance import orphans as O
from aisg_pipelines.governance.ids import sha256_hex, subject_hash
from aisg_pipelines.governance.ledger import Ledger
from aisg_pipelines.governance.store import CHUNKS, CHUNKS_SCHEMA, DOCUMENTS, LanceStore, embeddings_table

from .conftest import fresh_defs

V1, V2 = embeddings_table("v1"), embeddings_table("v2")
EXTRA_KEY = "20260101-deadbeef"
NOW = datetime.now(timezone.utc)


def _store(s) -> LanceStore:
    return LanceStore(s.lancedb_uri)


def _add_v2(store: LanceStore) -> None:
    """A second (retired-like) version: the v1 vectors copied through the store API."""
    rows = store.scan(V1, store.dataset(V1).schema.names)
    store.append(V2, rows.schema, rows)


def _docs(store):
    return {r["doc_id"]: r for r in store.scan(DOCUMENTS, ["doc_id", "subject_id", "batch_id", "file_path"]).to_pylist()}


def _chunks(store, doc_id=None):
    rows = store.scan(CHUNKS, ["chunk_id", "doc_id", "chunk_index", "content_sha256", "batch_id"]).to_pylist()
    return sorted((r for r in rows if doc_id is None or r["doc_id"] == doc_id), key=lambda r: (r["doc_id"], r["chunk_index"]))


def _vec_ids(store, table, chunk_ids=None):
    ids = store.scan(table, ["chunk_id"])["chunk_id"].to_pylist()
    return sorted(i for i in ids if chunk_ids is None or i in set(chunk_ids))


def _table_ids(store) -> dict[str, list[str]]:
    return {
        DOCUMENTS: sorted(store.scan(DOCUMENTS, ["doc_id"])["doc_id"].to_pylist()),
        CHUNKS: sorted(store.scan(CHUNKS, ["chunk_id"])["chunk_id"].to_pylist()),
        V1: sorted(store.scan(V1, ["chunk_id"])["chunk_id"].to_pylist()),
        V2: sorted(store.scan(V2, ["chunk_id"])["chunk_id"].to_pylist()),
    }


def plant(s) -> tuple[dict[str, dict[str, list[str]]], list[str]]:
    """Plant orphans of every kind; returns (expected items, partition keys to use)."""
    store, led = _store(s), Ledger(s.ledger_url)
    _add_v2(store)
    docs = _docs(store)
    keys = led.batch_ids()
    all_quarantined = sorted(set(keys) - {d["batch_id"] for d in docs.values()})
    assert len(all_quarantined) == 1  # the batch of bad inputs only

    # A: document row deleted -> its chunks, their vectors in v1 and v2, its landing file, its (now empty) partition
    a_chunks = [c["chunk_id"] for c in _chunks(store, "doc-0001")]
    store.delete_ids(DOCUMENTS, "doc_id", ["doc-0001"])
    # B: one chunk row deleted -> one vector without chunk per version
    b0 = _chunks(store, "doc-0002")[0]["chunk_id"]
    store.delete_ids(CHUNKS, "chunk_id", [b0])
    # C: one chunk's text and hash changed -> its vector is stale in both versions
    c0 = store.scan(CHUNKS, CHUNKS_SCHEMA.names).filter(pc.equal(pc.field("doc_id"), "doc-0003")).sort_by("chunk_index").slice(0, 1)
    new_text = "changed text of the chunk"
    c0 = c0.set_column(c0.schema.get_field_index("text"), "text", pa.array([new_text]))
    c0 = c0.set_column(c0.schema.get_field_index("content_sha256"), "content_sha256", pa.array([sha256_hex(new_text)]))
    store.upsert(CHUNKS, CHUNKS_SCHEMA, "chunk_id", c0)
    c0_id = c0["chunk_id"][0].as_py()
    # D: all chunks deleted -> document without chunks (and without active vector); 2 vectors without chunk per version
    d_chunks = [c["chunk_id"] for c in _chunks(store, "doc-0004")]
    store.delete_ids(CHUNKS, "chunk_id", d_chunks)
    # E: its v1 (active) vectors deleted -> document without active vector; its batch key removed -> data without partition
    e_chunks = [c["chunk_id"] for c in _chunks(store, "doc-0005")]
    store.delete_ids(V1, "chunk_id", e_chunks)
    keys = [k for k in keys if k != docs["doc-0005"]["batch_id"]] + [EXTRA_KEY]
    # F: sidecar gone -> landing missing; its subject (also doc-0003's) on the erasure denylist
    (s.landing_dir / (docs["doc-0006"]["file_path"] + ".meta.json")).unlink()
    from aisg_pipelines.governance.secrets import load_or_create_salt

    led.add_to_denylist(subject_hash("subj-ko-003", load_or_create_salt(s)), "req-test")
    # landing: an old unregistered file (orphan) and a fresh one (pending, within the grace period)
    stray = s.landing_dir / "2026-01-01" / "stray.txt"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_text("never ingested")
    old = time.time() - 2 * 86400
    os.utime(stray, (old, old))
    (s.landing_dir / "fresh.txt").write_text("just dropped")

    denied_chunks = sorted(c["chunk_id"] for c in _chunks(store) if c["doc_id"] in ("doc-0003", "doc-0006"))
    assert docs["doc-0003"]["subject_id"] == docs["doc-0006"]["subject_id"] == "subj-ko-003"
    e_batch_chunks = sorted(e_chunks)
    expected = {
        "chunk_without_document": {CHUNKS: sorted(a_chunks)},
        "vector_of_orphan_chunk": {V1: sorted(a_chunks), V2: sorted(a_chunks)},
        "vector_without_chunk": {V1: sorted([b0, *d_chunks]), V2: sorted([b0, *d_chunks])},
        "vector_stale": {V1: [c0_id], V2: [c0_id]},
        "landing_never_ingested": {O.LANDING: sorted([docs["doc-0001"]["file_path"], "2026-01-01/stray.txt"])},
        "partition_without_data": {O.PARTITIONS: sorted([docs["doc-0001"]["batch_id"], EXTRA_KEY, *all_quarantined])},
        "data_without_partition": {DOCUMENTS: ["doc-0005"], CHUNKS: e_batch_chunks, V2: e_batch_chunks},
        "document_without_chunks": {DOCUMENTS: ["doc-0004"]},
        "document_without_active_vector": {DOCUMENTS: ["doc-0004", "doc-0005"]},
        "document_landing_missing": {DOCUMENTS: ["doc-0006"]},
        "denylisted_subject_data": {DOCUMENTS: ["doc-0003", "doc-0006"], CHUNKS: denied_chunks, V1: denied_chunks, V2: denied_chunks},
    }
    return expected, keys


def _scope(s, grace=3600.0):
    return O.OrphanScope.from_settings(s, grace_seconds=grace)


def test_clean_store_has_no_false_positives(populated_settings):
    s, _ = populated_settings
    store, led = _store(s), Ledger(s.ledger_url)
    _add_v2(store)
    r = O.detect_orphans(_scope(s), led.batch_ids(), now=NOW)
    docs = _docs(store)
    only_quarantined = sorted(set(led.batch_ids()) - {d["batch_id"] for d in docs.values()})
    # the one batch whose uploads were all quarantined has no data: its partition key is reported, nothing else
    assert {k: v for k, v in r.items.items() if v} == {"partition_without_data": {O.PARTITIONS: only_quarantined}}
    n_files = sum(1 for p in s.landing_dir.rglob("*") if p.is_file())
    assert r.cleanable_total == 1 and r.rows_scanned == {DOCUMENTS: 6, CHUNKS: store.count(CHUNKS), V1: store.count(CHUNKS), V2: store.count(CHUNKS), O.LANDING: n_files}
    assert O.detect_orphans(_scope(s), None, now=NOW).total == 0


def test_planted_orphans_found_exactly_and_csv(populated_settings):
    s, _ = populated_settings
    expected, keys = plant(s)
    r = O.detect_orphans(_scope(s), keys, now=NOW)
    assert r.items == expected
    assert r.counts == {k: sum(len(v) for v in expected[k].values()) for k in O.KINDS}
    assert r.counts["landing_never_ingested"] == 2  # fresh.txt is pending, not an orphan
    # a grace period longer than the stray's age makes it pending too
    longer = O.detect_orphans(_scope(s, grace=3 * 86400), keys, now=NOW)
    assert longer.ids("landing_never_ingested") == [p for p in expected["landing_never_ingested"][O.LANDING] if p != "2026-01-01/stray.txt"]
    path = r.write_csv(s.exports_dir)
    assert path.parent == s.exports_dir / "orphans"
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == r.total
    assert {(x["kind"], x["table"], x["id"]) for x in rows} == {(k, w, i) for k, by in expected.items() for w, ids in by.items() for i in ids}


class FakeInstancePartitions:
    """Records partition ops like the Dagster instance would (the Dagster test below uses the real one)."""

    def __init__(self, keys):
        self.keys = list(keys)

    def delete(self, key):
        if key in self.keys:
            self.keys.remove(key)

    def add(self, keys):
        self.keys += [k for k in keys if k not in self.keys]


def test_dry_run_deletes_nothing_and_cleanup_deletes_exactly_the_reported_ids(populated_settings):
    s, _ = populated_settings
    expected, keys = plant(s)
    store, led = _store(s), Ledger(s.ledger_url)
    before = _table_ids(store)
    landing_before = sorted(p.relative_to(s.landing_dir).as_posix() for p in s.landing_dir.rglob("*") if p.is_file())
    parts = FakeInstancePartitions(keys)

    dry = O.cleanup_orphans(_scope(s), O.detect_orphans(_scope(s), parts.keys, now=NOW), dry_run=True, partitions=parts, ledger=led)
    assert _table_ids(store) == before and parts.keys == keys
    assert sorted(p.relative_to(s.landing_dir).as_posix() for p in s.landing_dir.rglob("*") if p.is_file()) == landing_before
    assert dry.deleted == {k: sum(len(v) for v in expected[k].values()) for k in O.CLEANABLE}
    assert [e.details for e in led.events("orphans.cleanup")] == [
        {"kind": k, "deleted": 0, "found": dry.deleted[k], "dry_run": True} for k in O.CLEANABLE
    ]

    report = O.detect_orphans(_scope(s), parts.keys, now=NOW)
    res = O.cleanup_orphans(_scope(s), report, dry_run=False, partitions=parts, ledger=led)
    assert res.deleted == dry.deleted
    after = _table_ids(store)
    gone_v1 = set(expected["vector_of_orphan_chunk"][V1]) | set(expected["vector_without_chunk"][V1]) | set(expected["vector_stale"][V1])
    gone_v2 = set(expected["vector_of_orphan_chunk"][V2]) | set(expected["vector_without_chunk"][V2]) | set(expected["vector_stale"][V2])
    assert after[DOCUMENTS] == before[DOCUMENTS]  # documents are never deleted by orphan cleanup
    assert after[CHUNKS] == sorted(set(before[CHUNKS]) - set(expected["chunk_without_document"][CHUNKS]))
    assert after[V1] == sorted(set(before[V1]) - gone_v1)
    assert after[V2] == sorted(set(before[V2]) - gone_v2)
    assert res.rows_deleted == {CHUNKS: 2, V1: len(gone_v1), V2: len(gone_v2)}
    # landing: the two never-ingested files moved to quarantine with a reason; nothing else moved
    for rel in expected["landing_never_ingested"][O.LANDING]:
        assert not (s.landing_dir / rel).exists() and (s.quarantine_dir / rel).exists()
        assert (s.quarantine_dir / (rel + ".reason.txt")).read_text().startswith("reason: never_ingested")
    assert (s.landing_dir / "fresh.txt").exists()
    # partitions: empty ones deleted, doc-0005's key re-added
    assert sorted(parts.keys) == sorted({d["batch_id"] for d in _docs(store).values()})
    # the physical purge ran on exactly the touched tables: no deletion files, one version left
    assert res.purge["tables"] == sorted([CHUNKS, V1, V2])
    for t in (CHUNKS, V1, V2):
        ds = store.dataset(t)
        assert all(f.deletion_file() is None for f in ds.get_fragments()) and len(ds.versions()) == 1

    # second run finds nothing cleanable; reported-only kinds are untouched
    again = O.detect_orphans(_scope(s), parts.keys, now=NOW)
    assert again.cleanable_total == 0
    assert again.items["document_without_chunks"] == expected["document_without_chunks"]
    assert again.items["document_landing_missing"] == expected["document_landing_missing"]
    assert again.ids("denylisted_subject_data", DOCUMENTS) == ["doc-0003", "doc-0006"]
    # doc-0003's stale vector is gone, so only its valid vectors remain under the denylist
    second = O.cleanup_orphans(_scope(s), again, dry_run=False, partitions=parts, ledger=led)
    assert second.total == 0 and _table_ids(store) == after
    events = [e.details for e in led.events("orphans.cleanup")]
    assert len(events) == 3 * len(O.CLEANABLE)
    assert events[len(O.CLEANABLE):2 * len(O.CLEANABLE)] == [{"kind": k, "deleted": res.deleted[k], "found": res.deleted[k], "dry_run": False} for k in O.CLEANABLE]


@pytest.mark.parametrize("kill_at", ["chunks", "landing", "purge", "partitions"])
def test_cleanup_killed_midway_converges(populated_settings, kill_at):
    s, _ = populated_settings
    expected, keys = plant(s)
    store, led = _store(s), Ledger(s.ledger_url)
    parts = FakeInstancePartitions(keys)
    v2_before = store.count(V2)

    class Killed(Exception):
        pass

    def hook(step):
        if step == kill_at:
            raise Killed(step)

    with pytest.raises(Killed):
        O.cleanup_orphans(_scope(s), O.detect_orphans(_scope(s), parts.keys, now=NOW), dry_run=False, partitions=parts, ledger=led, on_step=hook)
    assert led.events("orphans.cleanup") == []  # audited only when a run completes
    res = O.cleanup_orphans(_scope(s), O.detect_orphans(_scope(s), parts.keys, now=NOW), dry_run=False, partitions=parts, ledger=led)
    final = O.detect_orphans(_scope(s), parts.keys, now=NOW)
    assert final.cleanable_total == 0
    after = _table_ids(store)
    assert after[CHUNKS] == sorted(c["chunk_id"] for c in _chunks(store) if c["doc_id"] != "doc-0001")
    gone = set(expected["vector_of_orphan_chunk"][V2]) | set(expected["vector_without_chunk"][V2]) | set(expected["vector_stale"][V2])
    assert len(after[V2]) == v2_before - len(gone)
    assert sorted(parts.keys) == sorted({d["batch_id"] for d in _docs(store).values()})
    assert all(not (s.landing_dir / rel).exists() for rel in expected["landing_never_ingested"][O.LANDING])


def test_dagster_asset_check_and_job(populated_settings, code_location_env):
    import dagster as dg

    from aisg_pipelines.local_runner import run_job

    s, _ = populated_settings
    code_location_env(s)
    expected, keys = plant(s)
    defs = fresh_defs()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("ingest_batches", keys)
        res = run_job(defs, instance, "orphan_report_job")
        assert res.success
        mat = res.asset_materializations_for_node("orphan_report")[0]
        md = mat.metadata
        counts = {k: sum(len(v) for v in expected[k].values()) for k in O.KINDS}
        assert md["dagster/row_count"].value == sum(counts.values())
        assert {k: md[f"orphans/{k}"].value for k in O.KINDS} == counts
        assert os.path.exists(md["csv_export"].value)
        assert "| chunk_without_document | 2 |" in md["summary"].value
        checks = res.get_asset_check_evaluations()
        assert len(checks) == 1 and not checks[0].passed
        led = Ledger(s.ledger_url)
        assert led.events("orphans.report")[-1].details["counts"] == counts

        dry = run_job(defs, instance, "orphan_cleanup")
        assert dry.success and dry.output_for_node("clean_orphans")["dry_run"] is True
        assert sorted(instance.get_dynamic_partitions("ingest_batches")) == sorted(keys)
        real = run_job(defs, instance, "orphan_cleanup", run_config={"ops": {"clean_orphans": {"config": {"dry_run": False}}}})
        out = real.output_for_node("clean_orphans")
        assert out["deleted"] == {k: counts[k] for k in O.CLEANABLE}
        assert sorted(instance.get_dynamic_partitions("ingest_batches")) == sorted({d["batch_id"] for d in _docs(_store(s)).values()})

        res2 = run_job(defs, instance, "orphan_report_job")
        assert res2.get_asset_check_evaluations()[0].passed
        md2 = res2.asset_materializations_for_node("orphan_report")[0].metadata
        assert all(md2[f"orphans/{k}"].value == 0 for k in O.CLEANABLE)
    # no fixed time that could fall inside the 03:30 retention purge: it runs after retention succeeds
    after = defs.resolve_sensor_def("orphan_report_after_retention")
    assert after.job_name == "orphan_report_job" and "orphan_report_daily" not in {s.name for s in defs.get_repository_def().schedule_defs}


def test_compact_keys_are_exact_on_collisions_nulls_and_mixed_widths(monkeypatch):
    """The 64-bit keys only speed lookups up: equal keys of different values, nulls, mixed
    widths and a column that stops being fixed-width mid-scan all give exact answers."""
    ids = [sha256_hex(str(i))[:32] for i in range(50)]
    col = pa.array(ids)
    probe = pa.array([ids[7], "f" * 32, None, ids[7][:31], ids[49], ids[0].upper(), ids[7] + "0"])
    want = [7, -1, -1, -1, 49, -1, -1]
    assert O._Keys([O._part(col)]).lookup(probe).tolist() == want
    # every value gets the same 64-bit key: the run of equal keys is walked, still exact
    monkeypatch.setattr(O, "_mix64", lambda f: np.zeros(len(f), np.uint64))
    collided = O._Keys([O._part(col)])
    assert collided.dup and collided.lookup(probe).tolist() == want
    assert collided.lookup(col).tolist() == list(range(50))
    monkeypatch.undo()
    # mixed widths and a null in the column: exact fallback; a repeated value -> first row
    mixed = pa.array(["a", "bb", None, "bb", ids[3]])
    k = O._Keys([O._part(mixed)])
    assert k.pos is not None and k.lookup(pa.array(["bb", "a", None, "c", ids[3]])).tolist() == [1, 0, -1, -1, 4]
    # a streamed column that turns variable-width after the first batch
    f = O._Filler(6)
    f.add(pa.array(ids[:3]))
    f.add(pa.array(["x", None, ids[4]]))
    (part,) = f.parts()
    assert isinstance(part, list) and O._Keys(f.parts()).lookup(pa.array([ids[1], "x", ids[4]])).tolist() == [1, 3, 5]
    # content hash comparison: IS DISTINCT FROM (null equals null), fixed and fallback paths
    sha = O._Column([O._part(pa.array(["a" * 64, "b" * 64, "c" * 64]))])
    assert sha.differs(np.array([0, 1, 2]), pa.array(["a" * 64, "x" * 64, "c" * 64])).tolist() == [False, True, False]
    assert sha.differs(np.array([0, 1]), pa.array(["a" * 64, None])).tolist() == [False, True]
    nulls = O._Column([[b"a" * 64, None]])
    assert nulls.differs(np.array([0, 1, 1]), pa.array(["a" * 64, None, "z"])).tolist() == [False, False, True]
