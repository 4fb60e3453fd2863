"""Blue-green reindex, validation gate, rollback and resumability on a real store and model."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pytest

from aisg_pipelines.governance.ledger import Ledger
from aisg_pipelines.governance.pipeline import search
from aisg_pipelines.governance.reindex import ValidationFailed, reindex, resolve_spec, rollback, validate_version
from aisg_pipelines.governance.store import CHUNKS, LanceStore
from aisg_pipelines.governance.versions import EmbedVersionSpec, VersionConflict, VersionRegistry

from .conftest import FIXED_NOW, env_for


def _open(s):
    return LanceStore(s.lancedb_uri), Ledger(s.ledger_url)


def _v2(model_path: str) -> EmbedVersionSpec:
    return EmbedVersionSpec(name="v2", model_path=model_path, max_seq_length=128)


def _chunk_keys(store, batch_id=None):
    t = store.batch_rows(CHUNKS, batch_id, ["chunk_id", "content_sha256", "doc_id"]) if batch_id else store.scan(CHUNKS, ["chunk_id", "content_sha256", "doc_id"])
    return {(r["chunk_id"], r["content_sha256"]): r["doc_id"] for r in t.to_pylist()}


def _vec_ids(store, table):
    return store.scan(table, ["chunk_id"])["chunk_id"].to_pylist()


def test_reindex_blue_green_activation_search_and_rollback(populated_settings, model_path):
    s, _ = populated_settings
    store, ledger = _open(s)
    reg = VersionRegistry(ledger)
    n_chunks = store.count(CHUNKS)
    batches = sorted(set(store.scan(CHUNKS, ["batch_id"])["batch_id"].to_pylist()))
    assert n_chunks > 0 and len(batches) >= 2
    v1_rows_before = store.count("embeddings_v1")
    v1_version_before = store.dataset("embeddings_v1").version
    query = store.scan(CHUNKS, ["text"])["text"][0].as_py()

    seen = []

    def during(p, r):  # v1 serves search for the whole build
        active = reg.active()
        seen.append((p.batch_id, active.name, reg.require("v2").status))
        assert search(store, active, query, k=1)[0]["embed_version"] == "v1"

    res = reindex(store, ledger, _v2(model_path), on_batch=during, sample_size=20)
    assert [b for b, _, _ in seen] == batches
    assert {(a, st) for _, a, st in seen} == {("v1", "building")}
    assert res.activated and res.previous_active == "v1" and res.status == "active"
    assert (res.batches, res.chunks, res.embedded, res.skipped, res.stale_removed) == (len(batches), n_chunks, n_chunks, 0, 0)
    assert res.validation.passed and res.validation.self_top1 >= 0.99 and res.validation.sample_size == min(20, n_chunks)

    assert reg.active().name == "v2" and reg.require("v1").status == "retired"
    v2 = reg.require("v2")
    assert all(getattr(v2, f) for f in ("building_at", "validated_at", "activated_at"))
    assert store.count("embeddings_v2") == n_chunks
    assert sorted(_vec_ids(store, "embeddings_v2")) == sorted(store.scan(CHUNKS, ["chunk_id"])["chunk_id"].to_pylist())
    # v1's table was not touched by the build
    assert store.count("embeddings_v1") == v1_rows_before and store.dataset("embeddings_v1").version == v1_version_before
    hits = search(store, reg.active(), query, k=3)
    assert hits and {h["embed_version"] for h in hits} == {"v2"} and hits[0]["text"] == query
    # max_seq_length 128 is a different meaning: long chunks get different vectors
    a = {r["chunk_id"]: r["vector"] for r in store.scan("embeddings_v1", ["chunk_id", "vector"]).to_pylist()}
    b = {r["chunk_id"]: r["vector"] for r in store.scan("embeddings_v2", ["chunk_id", "vector"]).to_pylist()}
    assert any(not np.allclose(a[k], b[k], atol=1e-4) for k in a)

    actions = [e.action for e in ledger.events("embed_version.")]
    assert actions[-4:] == ["embed_version.building", "embed_version.validated", "embed_version.activate", "embed_version.reindex"]
    ev = ledger.events("embed_version.reindex")[-1].details
    assert (ev["name"], ev["previous"], ev["embedded"], ev["chunks"]) == ("v2", "v1", n_chunks, n_chunks)
    assert ev["gate_reused"] is False and ev["gate_state"]["table_version"] == store.dataset("embeddings_v2").version

    # A re-run with nothing changed writes nothing and reuses the gate that passed on this exact state.
    rerun = reindex(store, ledger, "v2", sample_size=20)
    assert (rerun.embedded, rerun.skipped, rerun.gate_reused, rerun.activated, rerun.status) == (0, n_chunks, True, False, "active")
    assert (rerun.validation.vectors, rerun.validation.self_top1) == (n_chunks, res.validation.self_top1)
    assert "nothing changed since it last passed" in rerun.summary_markdown()
    # other gate parameters are another gate: it runs
    assert reindex(store, ledger, "v2", sample_size=10).gate_reused is False

    rb = rollback(store, ledger)
    assert (rb.version, rb.previous, rb.embedded) == ("v1", "v2", 0)
    assert reg.active().name == "v1" and reg.require("v2").status == "retired"
    assert store.count("embeddings_v2") == n_chunks  # kept for a roll-forward
    assert search(store, reg.active(), query, k=1)[0]["embed_version"] == "v1"
    assert ledger.events("embed_version.rollback")[-1].details == {"name": "v1", "previous": "v2"}
    assert ledger.verify_chain().ok

    # Rolling forward again needs no embedding at all.
    again = reindex(store, ledger, "v2", sample_size=20)
    assert (again.embedded, again.skipped, again.activated) == (0, n_chunks, True)
    assert again.gate_reused is False  # a rollback happened since: the gate runs again


def test_validation_failure_blocks_activation(populated_settings, model_path):
    s, _ = populated_settings
    store, ledger = _open(s)
    reg = VersionRegistry(ledger)
    n = store.count(CHUNKS)
    res = reindex(store, ledger, _v2(model_path), activate=False, sample_size=10)
    assert res.status == "validated" and reg.active().name == "v1"
    v2 = reg.require("v2")

    # 1) corrupt one vector to NaN: its key is present, so the re-run does not heal it; the gate refuses
    victim = store.scan("embeddings_v2", ["chunk_id", "doc_id", "batch_id", "content_sha256", "vector", "embedded_at"]).slice(0, 1)
    bad_vec = pa.FixedSizeListArray.from_arrays(pa.array(np.full(v2.dims, np.nan, np.float32)), v2.dims)
    corrupted = victim.set_column(victim.schema.get_field_index("vector"), "vector", bad_vec)
    store.delete_ids("embeddings_v2", "chunk_id", victim["chunk_id"].to_pylist())
    import lance  # LanceDB's add() refuses NaN vectors; corruption on disk would not ask, so write below it

    lance.write_dataset(corrupted.cast(store.dataset("embeddings_v2").schema), store.dataset("embeddings_v2").uri, mode="append")
    with pytest.raises(ValidationFailed) as exc:
        reindex(store, ledger, "v2", sample_size=10)
    msg = str(exc.value)
    assert "no NaN FAILED" in msg and victim["chunk_id"][0].as_py() in msg
    assert reg.active().name == "v1" and reg.require("v2").status == "building"
    with pytest.raises(VersionConflict):
        reg.activate("v2")  # a building version cannot be switched on by hand either
    assert ledger.events("embed_version.validation_failed")[-1].details["name"] == "v2"

    # 2) drop one row: the gate reports the batch's parity
    store.delete_ids("embeddings_v2", "chunk_id", victim["chunk_id"].to_pylist())
    rep = validate_version(store, reg.require("v2"), sample_size=10)
    batch = victim["batch_id"][0].as_py()
    assert not rep.passed and rep.vectors == n - 1
    assert any(r.startswith("row parity with chunks per batch FAILED") and f"batch {batch}:" in r for r in rep.reasons)
    # ...and the resumable reindex heals exactly that row, then activates
    healed = reindex(store, ledger, "v2", sample_size=10)
    assert (healed.embedded, healed.activated, store.count("embeddings_v2")) == (1, True, n)


def test_changed_chunker_refused(populated_settings, model_path):
    s, _ = populated_settings
    store, ledger = _open(s)
    with pytest.raises(VersionConflict, match="chunker"):
        reindex(store, ledger, EmbedVersionSpec(name="v3", model_path=model_path, chunk_size=300, chunk_overlap=50))
    assert VersionRegistry(ledger).active().name == "v1"
    assert not store.has_table("embeddings_v3")


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from aisg_pipelines.governance.ledger import Ledger
    from aisg_pipelines.governance.reindex import reindex
    from aisg_pipelines.governance.store import LanceStore
    from aisg_pipelines.governance.versions import EmbedVersionSpec
    from aisg_pipelines.settings import Settings, bundled_model_path

    s = Settings.from_env()
    kill_at = int(sys.argv[1])
    calls = 0

    def progress(done, total, elapsed):
        global calls
        calls += 1
        if calls == kill_at:  # mid-batch: some groups of this batch are written, the rest are not
            os.kill(os.getpid(), signal.SIGKILL)

    reindex(LanceStore(s.lancedb_uri), Ledger(s.ledger_url), EmbedVersionSpec(name="v2", model_path=bundled_model_path(), max_seq_length=128),
            write_rows=4, embed_progress=progress)
    print("NOT KILLED")
    """
)


def test_sigkilled_reindex_resumes_exactly(populated_settings, tmp_path):
    s, _ = populated_settings
    store, ledger = _open(s)
    reg = VersionRegistry(ledger)
    n = store.count(CHUNKS)
    first_batch = sorted(set(store.scan(CHUNKS, ["batch_id"])["batch_id"].to_pylist()))[0]
    groups_first = -(-store.count(CHUNKS, f"batch_id = '{first_batch}'") // 4)
    v1_version = store.dataset("embeddings_v1").version
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    env = {**os.environ, **env_for(s), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(script), str(groups_first + 2)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stdout + proc.stderr
    assert "NOT KILLED" not in proc.stdout

    # Killed mid-reindex: v1 still active and untouched, v2 half-built.
    assert reg.active().name == "v1" and reg.require("v2").status == "building"
    assert store.dataset("embeddings_v1").version == v1_version
    before = _vec_ids(store, "embeddings_v2")
    assert len(before) == len(set(before)) and groups_first * 0 < len(before) < n
    assert len(before) >= store.count(CHUNKS, f"batch_id = '{first_batch}'")  # the first batch completed

    batches_done = []
    res = reindex(store, ledger, "v2", sample_size=10, on_batch=lambda p, r: batches_done.append((p.batch_id, r.embedded)))
    assert res.embedded == n - len(before) and res.skipped == len(before)
    assert dict(batches_done)[first_batch] == 0  # completed batch not re-embedded
    after = _vec_ids(store, "embeddings_v2")
    assert len(after) == n == len(set(after))
    assert res.activated and reg.active().name == "v2"

    # An incremental re-run embeds nothing.
    again = reindex(store, ledger, "v2", sample_size=10)
    assert (again.embedded, again.skipped, again.stale_removed, again.activated) == (0, n, 0, False)
    assert store.count("embeddings_v2") == n


def test_changed_document_reembeds_exactly_its_chunks(populated_settings, model_path):
    from aisg_pipelines.governance.pii import get_scrubber
    from aisg_pipelines.governance.pipeline import chunk_documents, embed_batch, ingest_documents

    s, manifest = populated_settings
    store, ledger = _open(s)
    reindex(store, ledger, _v2(model_path), sample_size=10)
    v2 = VersionRegistry(ledger).active()
    assert v2.name == "v2"
    doc = sorted(manifest["documents"], key=lambda d: d["doc_id"])[0]
    rel = doc["path"]  # landing-relative
    batch_id = next(b for b in ledger.batch_ids() if rel in ledger.batch_files(b))
    path = s.landing_dir / rel
    assert path.exists(), rel
    if path.suffix == ".json":
        import json

        body = json.loads(path.read_text(encoding="utf-8"))
        body["body"] = "Revised notice. " + body["body"]
        path.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
    else:
        path.write_text("Revised notice.\n\n" + path.read_text(encoding="utf-8"), encoding="utf-8")

    old = _chunk_keys(store, batch_id)
    ingest_documents(store, ledger, landing_dir=s.landing_dir, quarantine_dir=s.quarantine_dir, batch_id=batch_id,
                     files=ledger.batch_files(batch_id), max_file_bytes=s.max_file_bytes, scrubber=get_scrubber(), now=FIXED_NOW)
    chunk_documents(store, batch_id, v2.spec.chunker)
    new = _chunk_keys(store, batch_id)
    added = set(new) - set(old)
    removed_ids = {c for c, _ in set(old) - set(new)} - {c for c, _ in new}
    assert added and {new[k] for k in added} == {doc["doc_id"]}
    changed_ids = {c for c, _ in added}

    before_all = {r["chunk_id"]: r["embedded_at"] for r in store.scan("embeddings_v2", ["chunk_id", "embedded_at"]).to_pylist()}
    before = {r["chunk_id"]: r["embedded_at"] for r in store.batch_rows("embeddings_v2", batch_id, ["chunk_id", "embedded_at"]).to_pylist()}
    r = embed_batch(store, v2, batch_id)
    assert r.embedded == len(added) and r.chunks == len(new)
    assert r.stale_removed == len(changed_ids & set(before)) + len(removed_ids)
    rows = {x["chunk_id"]: x for x in store.batch_rows("embeddings_v2", batch_id, ["chunk_id", "content_sha256", "embedded_at"]).to_pylist()}
    assert {(c, x["content_sha256"]) for c, x in rows.items()} == set(new)
    after_all = {r["chunk_id"]: r["embedded_at"] for r in store.scan("embeddings_v2", ["chunk_id", "embedded_at"]).to_pylist()}
    untouched = set(after_all) - changed_ids
    assert untouched == set(before_all) - changed_ids - removed_ids  # every other vector is still there...
    assert all(after_all[c] == before_all[c] for c in untouched)  # ...and was not re-embedded
    assert {c for c in after_all if c not in before_all or after_all[c] != before_all[c]} == changed_ids
    assert validate_version(store, v2, sample_size=10).passed
    # a changed document is a replacement in every version: v1 (retired) lost the vectors of the
    # replaced chunks (no vector of old content is left); its other vectors are untouched
    old_ids = {c for c, _ in old}
    assert store.count("embeddings_v1") == len(old) - len(changed_ids & old_ids) - len(removed_ids) + (store.count(CHUNKS) - len(new))
    assert not set(_vec_ids(store, "embeddings_v1")) & (changed_ids | removed_ids)


def test_resolve_spec_from_versions_file(tmp_path, monkeypatch, model_path):
    f = tmp_path / "versions.yaml"
    f.write_text("versions:\n  v7:\n    model_path: bundled\n    max_seq_length: 64\n")
    monkeypatch.setenv("AISG_EMBED_VERSIONS_FILE", str(f))
    spec = resolve_spec("v7")
    assert (spec.model_path, spec.max_seq_length, spec.chunk_size) == (model_path, 64, 500)
    assert resolve_spec("v7", {"max_seq_length": 96, "normalize": None}).max_seq_length == 96
    with pytest.raises(KeyError, match="not declared"):
        resolve_spec("v8")
    f.write_text("versions:\n  v7:\n    model: x\n")
    with pytest.raises(ValueError, match="unknown keys"):
        resolve_spec("v7")


def test_windowed_embedding_spans_batches_writes_per_batch_and_resumes(populated_settings, model_path):
    """Windows smaller than a batch and spanning batches: exact rows, same vectors, batch order, resumable."""
    from aisg_pipelines.governance.embedding import encode
    from aisg_pipelines.governance.pipeline import embed_batches

    s, _ = populated_settings
    store, ledger = _open(s)
    reg = VersionRegistry(ledger)
    v2, _ = reg.register(_v2(model_path))
    chunks = store.scan(CHUNKS, ["chunk_id", "batch_id", "text"])
    batches = sorted(set(chunks["batch_id"].to_pylist()))
    per_batch = {b: chunks["batch_id"].to_pylist().count(b) for b in batches}
    n = chunks.num_rows
    assert len(batches) >= 2 and max(per_batch.values()) > 3

    # Kill after the first batch is reported: it is on disk, nothing after the second batch is.
    seen: list[tuple[str, int]] = []

    class Stop(Exception):
        pass

    def stop_after_first(r):
        seen.append((r.batch_id, r.embedded))
        raise Stop

    with pytest.raises(Stop):
        embed_batches(store, v2, batches, window=3, write_rows=2, on_batch=stop_after_first)
    assert seen == [(batches[0], per_batch[batches[0]])]
    written = store.scan(v2.table, ["chunk_id", "batch_id"])
    ids = written["chunk_id"].to_pylist()
    assert len(ids) == len(set(ids)) and per_batch[batches[0]] <= len(ids) < n
    assert set(written["batch_id"].to_pylist()) <= set(batches[:2])

    # Resume with a window that splits batches: in batch order, only what is missing, no duplicate.
    progress: list[tuple[int, int]] = []
    res = embed_batches(store, v2, batches, window=3, write_rows=2, progress=lambda d, t, e: progress.append((d, t)))
    assert [r.batch_id for r in res] == batches
    assert sum(r.embedded for r in res) == n - len(ids) and sum(r.skipped for r in res) == len(ids)
    assert all(r.chunks == per_batch[r.batch_id] for r in res)
    assert all(0 < d <= t for d, t in progress)
    got = {r["chunk_id"]: np.asarray(r["vector"]) for r in store.scan(v2.table, ["chunk_id", "vector"]).to_pylist()}
    assert len(got) == n == store.count(v2.table)
    want = encode(v2.model, chunks["text"].to_pylist())  # one call, other mini-batches: same vectors
    for cid, w in zip(chunks["chunk_id"].to_pylist(), want):
        assert np.allclose(got[cid], w, atol=1e-5)
    assert all(r.embedded == 0 for r in embed_batches(store, v2, batches, window=3))


def test_encode_sorts_by_tokens_and_keeps_order(model_path):
    from aisg_pipelines.governance.embedding import ModelSpec, encode, load_model, token_lengths

    spec = ModelSpec(model_path, 128, True)
    texts = [("짧은 문장 " * (i % 7 + 1)) + ("short text " * (i % 5)) for i in range(45)]
    lens = token_lengths(spec, texts)
    assert lens.max() <= 128 and len(set(lens.tolist())) > 5
    calls: list[int] = []
    vecs = encode(spec, texts, batch_size=8, on_step=lambda: calls.append(1))
    assert vecs.shape == (45, 384) and vecs.dtype == np.float32 and len(calls) == 6
    ref = load_model(spec).encode(texts, batch_size=8, normalize_embeddings=True, convert_to_numpy=True)
    assert np.allclose(vecs, ref, atol=1e-5)
