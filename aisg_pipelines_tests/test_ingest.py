"""Foundation: landing zone -> documents -> chunks -> embeddings, through real parts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from aisg_pipelines.governance.chunking import ChunkerParams, chunk_text
from aisg_pipelines.governance.ledger import Ledger
from aisg_pipelines.governance.pipeline import chunk_documents, embed_batch, ingest_documents
from aisg_pipelines.governance.pii import get_scrubber
from aisg_pipelines.governance.store import CHUNKS, DOCUMENTS, LanceStore
from aisg_pipelines.governance.versions import VersionRegistry

from .conftest import FIXED_NOW

EMAIL = re.compile(rb"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
RRN = re.compile(rb"\b\d{6}-[1-4]\d{6}\b")


def _valid_rrn(value: bytes) -> bool:
    """Korean RRN checksum, computed here independently of the scrubber under test."""
    digits = [int(c) for c in value.decode().replace("-", "")]
    weights = [2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5]
    return (11 - sum(d * w for d, w in zip(digits, weights)) % 11) % 10 == digits[12]


def _store(s) -> LanceStore:
    return LanceStore(s.lancedb_uri)


def test_sample_flow_exact_counts(populated_settings):
    s, manifest = populated_settings
    store = _store(s)
    docs = store.scan(DOCUMENTS, ["doc_id", "subject_id", "text", "pii_counts", "legal_hold"]).to_pylist()
    expected_ids = sorted(d["doc_id"] for d in manifest["documents"])
    assert sorted(d["doc_id"] for d in docs) == expected_ids
    # every document's per-type PII counts are stored and equal what the generator embedded
    by_id = {d["doc_id"]: d for d in manifest["documents"]}
    for d in docs:
        stored = {k: v for k, v in json.loads(d["pii_counts"]).items() if v}
        assert stored == {k: v for k, v in by_id[d["doc_id"]]["pii"].items() if v}, d["doc_id"]
    # chunks: exactly what the chunker makes of the stored (scrubbed) text
    active = VersionRegistry(Ledger(s.ledger_url)).active()
    params = ChunkerParams(active.chunk_size, active.chunk_overlap)
    assert store.count(CHUNKS) == sum(len(chunk_text(d["text"], params)) for d in docs)
    # one vector per chunk in v1, 384 dims
    assert active.name == "v1" and active.dims == 384
    assert store.count("embeddings_v1") == store.count(CHUNKS)
    chunk_ids = store.scan(CHUNKS, ["chunk_id"])["chunk_id"]
    vec_ids = store.scan("embeddings_v1", ["chunk_id"])["chunk_id"]
    assert pc.all(pc.is_in(chunk_ids, value_set=vec_ids)).as_py()
    assert len(set(vec_ids.to_pylist())) == len(vec_ids)


def test_raw_pii_never_reaches_lancedb(populated_settings):
    s, manifest = populated_settings
    raw_values: set[bytes] = set()
    for d in manifest["documents"]:
        raw = (s.landing_dir / d["path"]).read_bytes()
        raw_values.update(EMAIL.findall(raw))
        raw_values.update(v for v in RRN.findall(raw) if _valid_rrn(v))
    assert len(raw_values) >= 5, "the sample must contain e-mails and RRNs"
    lance_bytes = b"".join(p.read_bytes() for p in Path(s.lancedb_uri).rglob("*") if p.is_file())
    leaked = sorted(v.decode() for v in raw_values if v in lance_bytes)
    assert leaked == []


def test_each_bad_input_is_quarantined_with_a_readable_reason(populated_settings):
    s, manifest = populated_settings
    assert {b["expected_reason"] for b in manifest["bad_inputs"]} == {
        "no_sidecar", "invalid_sidecar_json", "missing_fields", "not_utf8", "binary", "empty", "too_large"
    }
    for bad in manifest["bad_inputs"]:
        assert not (s.landing_dir / bad["path"]).exists(), f"{bad['path']} still in landing"
        moved = s.quarantine_dir / bad["path"]
        assert moved.exists()
        reason = (s.quarantine_dir / (bad["path"] + ".reason.txt")).read_text(encoding="utf-8")
        assert reason.splitlines()[0] == f"reason: {bad['expected_reason']}"
        assert "explanation: " in reason and "original_path: " + bad["path"] in reason
    ledger = Ledger(s.ledger_url)
    by_reason: dict[str, int] = {}
    for e in ledger.events("ingest.documents"):
        for k, v in e.details["quarantined_by_reason"].items():
            by_reason[k] = by_reason.get(k, 0) + v
    assert by_reason == {b["expected_reason"]: 1 for b in manifest["bad_inputs"]}


def test_hostile_sidecar_identifiers_are_quarantined(settings):
    day = settings.landing_dir / "2026-11-01"
    day.mkdir(parents=True)
    (day / "a.txt").write_text("Hello. Some text here.", encoding="utf-8")
    (day / "a.txt.meta.json").write_text(json.dumps({
        "doc_id": "x' OR '1'='1", "subject_id": "u1", "uploaded_at": "2026-11-01T00:00:00+00:00",
        "category": "user_content", "source": "aisg-web"}), encoding="utf-8")
    store, ledger = _store(settings), Ledger(settings.ledger_url)
    ledger.record_batch("20261101-00000000", ["2026-11-01/a.txt"])
    res = ingest_documents(store, ledger, landing_dir=settings.landing_dir, quarantine_dir=settings.quarantine_dir,
                           batch_id="20261101-00000000", files=["2026-11-01/a.txt"], max_file_bytes=10_000, scrubber=get_scrubber())
    assert res.documents == 0 and [q.code for q in res.quarantined] == ["invalid_fields"]
    assert "doc_id" in res.quarantined[0].detail


def test_rematerialising_a_batch_gives_exactly_the_same_rows(populated_settings):
    s, _ = populated_settings
    store, ledger = _store(s), Ledger(s.ledger_url)
    active = VersionRegistry(ledger).active()
    batch = store.scan(DOCUMENTS, ["batch_id"])["batch_id"][0].as_py()
    cols_d = ["doc_id", "subject_id", "text", "text_sha256", "pii_counts"]
    cols_c = ["chunk_id", "doc_id", "text", "content_sha256"]
    before_d = store.scan(DOCUMENTS, cols_d).sort_by("doc_id")
    before_c = store.scan(CHUNKS, cols_c).sort_by("chunk_id")
    before_v = store.count(active.table)
    for _ in range(2):
        res = ingest_documents(store, ledger, landing_dir=s.landing_dir, quarantine_dir=s.quarantine_dir, batch_id=batch,
                               files=ledger.batch_files(batch), max_file_bytes=s.max_file_bytes, scrubber=get_scrubber(), now=FIXED_NOW)
        assert res.write["inserted"] == 0 and res.write["deleted"] == 0
        chunk_documents(store, batch, active.spec.chunker)
        e = embed_batch(store, active, batch)
        assert e.embedded == 0 and e.stale_removed == 0 and e.skipped == e.chunks > 0
    assert store.scan(DOCUMENTS, cols_d).sort_by("doc_id").equals(before_d)
    assert store.scan(CHUNKS, cols_c).sort_by("chunk_id").equals(before_c)
    assert store.count(active.table) == before_v


def test_changed_document_reembeds_exactly_its_chunks(populated_settings):
    """A file changed in place and its batch re-run is a replacement: the chunks the new
    content changed or dropped go, with their vectors, through the deletion cascade (ledger
    intent + result) before the new ones are written; unchanged chunks keep their vectors."""
    s, manifest = populated_settings
    store, ledger = _store(s), Ledger(s.ledger_url)
    active = VersionRegistry(ledger).active()
    doc = next(d for d in manifest["documents"] if d["path"].endswith(".txt"))
    path = s.landing_dir / doc["path"]
    path.write_text(path.read_text(encoding="utf-8") + "\n\nA completely new closing paragraph was added by the author.", encoding="utf-8")
    batch = store.scan(DOCUMENTS, ["doc_id", "batch_id"], filter=f"doc_id = '{doc['doc_id']}'")["batch_id"][0].as_py()
    before = {r["chunk_id"]: r["content_sha256"] for r in store.batch_rows(CHUNKS, batch, ["chunk_id", "content_sha256"]).to_pylist()}
    res = ingest_documents(store, ledger, landing_dir=s.landing_dir, quarantine_dir=s.quarantine_dir, batch_id=batch,
                           files=ledger.batch_files(batch), max_file_bytes=s.max_file_bytes, scrubber=get_scrubber())
    assert res.replaced == [doc["doc_id"]]
    chunk_documents(store, batch, active.spec.chunker)
    after = {r["chunk_id"]: r["content_sha256"] for r in store.batch_rows(CHUNKS, batch, ["chunk_id", "content_sha256"]).to_pylist()}
    changed = {cid for cid, h in after.items() if before.get(cid) != h}
    vanished = set(before) - set(after)
    assert changed, "appending a paragraph must change at least the last chunk"
    gone = len(changed & set(before)) + len(vanished)
    assert res.replacement["chunk_ids"] == gone and res.replacement["rows_deleted"] == {CHUNKS: gone, active.table: gone}
    e = embed_batch(store, active, batch)
    assert e.embedded == len(changed)
    assert e.stale_removed == 0  # the cascade removed them
    assert store.count(active.table, f"batch_id = '{batch}'") == len(after)
    vec_ids = store.scan(active.table, ["chunk_id"])["chunk_id"].to_pylist()
    assert len(vec_ids) == len(set(vec_ids)) == store.count(CHUNKS)
    results = [ev.details for ev in ledger.events("cascade.result") if ev.details["cause"] == "ingest.replace"]
    assert len(results) == 1 and results[0]["rows"] == {CHUNKS: gone, active.table: gone}
    assert ledger.verify_chain().ok


def test_asset_checks_fail_on_corrupted_data(populated_settings):
    import numpy as np

    from aisg_pipelines.governance.checks import check_chunks, check_documents, check_documents_pii_free, check_embeddings
    from aisg_pipelines.governance.store import CHUNKS_SCHEMA, DOCUMENTS_SCHEMA

    s, _ = populated_settings
    store, ledger = _store(s), Ledger(s.ledger_url)
    active = VersionRegistry(ledger).active()
    assert check_documents(store, None).passed
    assert check_chunks(store, None).passed
    assert check_embeddings(store, active, None).passed
    assert check_documents_pii_free(store, None, get_scrubber())[0].passed

    docs = store.scan(DOCUMENTS, DOCUMENTS_SCHEMA.names)
    dup = docs.slice(0, 1)
    nulls = docs.slice(1, 1).set_column(1, "subject_id", pa.array([None], pa.string()))
    nulls = nulls.set_column(0, "doc_id", pa.array(["doc-null-subject"]))
    leaky = docs.slice(2, 1).set_column(0, "doc_id", pa.array(["doc-leaky"]))
    leaky = leaky.set_column(DOCUMENTS_SCHEMA.names.index("text"), "text", pa.array(["Mail me at kim.minsu@example.com today."]))
    store.append(DOCUMENTS, DOCUMENTS_SCHEMA, pa.concat_tables([dup, nulls, leaky]))
    q = check_documents(store, None)
    assert not q.passed
    assert q.outcomes[0].failing_ids == [dup["doc_id"][0].as_py()]
    assert q.outcomes[1].failing_ids == ["doc-null-subject"]
    pq, hits = check_documents_pii_free(store, None, get_scrubber())
    assert not pq.passed and pq.failing_ids == ["doc-leaky"] and hits == {"EMAIL_ADDRESS": 1}

    chunk = store.scan(CHUNKS, CHUNKS_SCHEMA.names).slice(0, 1)
    orphan = chunk.set_column(0, "chunk_id", pa.array(["f" * 32])).set_column(1, "doc_id", pa.array(["doc-gone"]))
    empty = chunk.set_column(0, "chunk_id", pa.array(["e" * 32])).set_column(5, "text", pa.array(["   "]))
    store.append(CHUNKS, CHUNKS_SCHEMA, pa.concat_tables([orphan, empty]))
    cq = check_chunks(store, None)
    assert [o.success for o in cq.outcomes] == [True, False, False]
    assert cq.outcomes[1].failing_ids == ["f" * 32] and cq.outcomes[2].failing_ids == ["e" * 32]

    import lance

    vt = store.scan(active.table, ["chunk_id", "doc_id", "batch_id", "content_sha256", "vector", "embedded_at"])
    nan_id, norm_id = vt["chunk_id"][0].as_py(), vt["chunk_id"][1].as_py()
    store.delete_ids(active.table, "chunk_id", [nan_id, norm_id])
    bad = vt.slice(0, 2)
    vectors = np.stack([np.full(active.dims, np.nan, dtype=np.float32), np.full(active.dims, 0.5, dtype=np.float32)])
    bad = bad.set_column(4, "vector", pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), active.dims))
    # LanceDB's add() refuses NaN vectors; a corrupt file written by another tool would not.
    lance.write_dataset(bad, store.dataset(active.table).uri, mode="append")
    eq = check_embeddings(store, active, None)
    titles = {o.title: o for o in eq.outcomes}
    assert not eq.passed
    assert not titles["no NaN"].success and titles["no NaN"].failing_ids == [nan_id]
    assert not titles["L2 norm ≈ 1"].success and sorted(titles["L2 norm ≈ 1"].failing_ids) == sorted([nan_id, norm_id])
    assert titles["no duplicate chunk_id"].success


def test_rerun_after_interrupted_quarantine_counts_it_once(settings):
    """A run killed after moving a bad file to quarantine: the re-run reports it, loses nothing."""
    from aisg_pipelines.governance.landing import Rejected, quarantine
    from aisg_pipelines.sample_data import generate_landing_zone

    manifest = generate_landing_zone(settings.landing_dir, now=FIXED_NOW, n_subjects=1, docs_per_subject=2, span_days=5, max_file_bytes=settings.max_file_bytes)
    files = sorted([d["path"] for d in manifest["documents"]] + [b["path"] for b in manifest["bad_inputs"]])
    store, ledger = _store(settings), Ledger(settings.ledger_url)
    ledger.record_batch("20261120-0000abcd", files)
    empty = next(b for b in manifest["bad_inputs"] if b["expected_reason"] == "empty")
    quarantine(settings.landing_dir, settings.quarantine_dir, empty["path"], Rejected("empty"), "20261120-0000abcd")
    res = ingest_documents(store, ledger, landing_dir=settings.landing_dir, quarantine_dir=settings.quarantine_dir, batch_id="20261120-0000abcd",
                           files=files, max_file_bytes=settings.max_file_bytes, scrubber=get_scrubber())
    assert res.documents == 2 and res.missing == []
    assert sorted(q.code for q in res.quarantined) == sorted(b["expected_reason"] for b in manifest["bad_inputs"])
    assert store.count(DOCUMENTS) == 2
