"""The deletion cascade on a real store (LanceDB in a tmp dir, the real ledger): exact counts,
leaf-first order, ledger intent before and result after, resume of a killed cascade."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from aisg_pipelines.governance import cascade
from aisg_pipelines.governance.ledger import Ledger
from aisg_pipelines.governance.store import CHUNKS, DOCUMENTS, LanceStore


def _rows(store: LanceStore) -> dict[str, list[tuple]]:
    out = {DOCUMENTS: sorted((r["doc_id"], r["subject_id"]) for r in store.scan(DOCUMENTS, ["doc_id", "subject_id"]).to_pylist()),
           CHUNKS: sorted((r["chunk_id"], r["doc_id"]) for r in store.scan(CHUNKS, ["chunk_id", "doc_id"]).to_pylist())}
    for t in store.embedding_tables().values():
        out[t] = sorted((r["chunk_id"], r["doc_id"]) for r in store.scan(t, ["chunk_id", "doc_id"]).to_pylist())
    return out


class Parts:
    def __init__(self, keys):
        self.keys = list(keys)
        self.deleted: list[str] = []

    def delete(self, key):
        self.deleted.append(key)
        self.keys.remove(key)


def test_delete_documents_removes_exactly_the_documents_everywhere(populated_settings):
    s, _ = populated_settings
    store, led = LanceStore(s.lancedb_uri), Ledger(s.ledger_url)
    before = _rows(store)
    docs = {r["doc_id"]: r for r in store.scan(DOCUMENTS, ["doc_id", "batch_id", "file_path"]).to_pylist()}
    victim = sorted(docs)[0]
    batch = docs[victim]["batch_id"]
    same_batch = [d for d, r in docs.items() if r["batch_id"] == batch]
    n_chunks = sum(1 for c in before[CHUNKS] if c[1] == victim)
    assert n_chunks > 0
    landing = s.landing_dir / docs[victim]["file_path"]
    assert landing.exists() and Path(str(landing) + ".meta.json").exists()
    other_files = {p: p.read_bytes() for p in s.landing_dir.rglob("*") if p.is_file() and not str(p).startswith(str(landing))}
    parts = Parts(led.batch_ids())
    assert led.already_batched([(docs[victim]["file_path"], landing.stat().st_mtime_ns)])

    res = cascade.delete_documents(store, led, [victim], cause="test", actor="pytest", landing_dir=s.landing_dir, partitions=parts)

    emb = sorted(store.embedding_tables().values())
    assert res.rows == {**{t: n_chunks for t in emb}, CHUNKS: n_chunks, DOCUMENTS: 1}
    assert res.planned == {**{t: n_chunks for t in emb}, CHUNKS: n_chunks, DOCUMENTS: 1, "landing_files": 2}
    assert res.landing_files_removed == 2 and not landing.exists()
    after = _rows(store)
    assert after[DOCUMENTS] == [d for d in before[DOCUMENTS] if d[0] != victim]
    for t in [CHUNKS, *emb]:
        assert after[t] == [c for c in before[t] if c[1] != victim], t
    # every other landing file is byte-identical
    assert {p: p.read_bytes() for p in other_files} == other_files
    # batch-file records of the removed file are gone; the partition goes only if the batch is empty
    assert led.already_batched([(docs[victim]["file_path"], landing.stat().st_mtime_ns if landing.exists() else 0)]) == {}
    assert docs[victim]["file_path"] not in json.dumps([led.batch_files(b) for b in led.batch_ids()])
    if same_batch == [victim]:
        assert parts.deleted == [batch] and batch not in led.batch_ids()
    else:
        assert parts.deleted == []
    # intent before, result after, nothing open; purge left one version per table
    ev = [e for e in led.events("cascade.")]
    assert [e.action for e in ev] == ["cascade.intent", "cascade.result"]
    assert ev[0].details["planned"] == res.planned and ev[1].details["rows"] == res.rows
    assert ev[1].details["cascade_id"] == ev[0].details["cascade_id"] == res.cascade_id
    assert victim not in json.dumps([e.details for e in ev])  # counts and a digest, never the ids
    assert cascade.open_intents(led) == []
    assert all(len(store.dataset(t).versions()) == 1 for t in store.table_names())
    assert led.verify_chain().ok


def test_chunk_ids_delete_only_those_chunks_and_keep_the_document(populated_settings):
    s, _ = populated_settings
    store, led = LanceStore(s.lancedb_uri), Ledger(s.ledger_url)
    before = _rows(store)
    doc = before[DOCUMENTS][0][0]
    mine = sorted(c[0] for c in before[CHUNKS] if c[1] == doc)
    assert len(mine) >= 2
    drop = mine[:1]
    res = cascade.delete_documents(store, led, [doc], cause="replacement", actor="pytest", chunk_ids=drop, purge=False)
    emb = sorted(store.embedding_tables().values())
    assert res.rows == {**{t: 1 for t in emb}, CHUNKS: 1}
    after = _rows(store)
    assert after[DOCUMENTS] == before[DOCUMENTS]
    for t in [CHUNKS, *emb]:
        assert after[t] == [c for c in before[t] if c[0] not in drop]
    file_path = store.scan(DOCUMENTS, ["doc_id", "file_path"]).to_pylist()
    assert all((s.landing_dir / r["file_path"]).exists() for r in file_path)
    # a chunk of another document is refused before anything is deleted
    other = next(c[0] for c in before[CHUNKS] if c[1] != doc)
    with pytest.raises(ValueError):
        cascade.delete_documents(store, led, [doc], cause="replacement", actor="pytest", chunk_ids=[other])
    assert _rows(store) == after


@pytest.mark.parametrize("kill_at", ["delete:embeddings_v1", "delete:chunks", "delete:landing", "delete:documents", "delete:ledger_paths", "purge"])
def test_killed_cascade_leaves_an_open_intent_that_resume_completes(populated_settings, kill_at):
    s, _ = populated_settings
    store, led = LanceStore(s.lancedb_uri), Ledger(s.ledger_url)
    before = _rows(store)
    victims = sorted({d[0] for d in before[DOCUMENTS]})[:2]
    n_chunks = sum(1 for c in before[CHUNKS] if c[1] in victims)

    class Killed(Exception):
        pass

    def hook(step):
        if step == kill_at:
            raise Killed(step)

    with pytest.raises(Killed):
        cascade.delete_documents(store, led, victims, cause="test", actor="pytest", landing_dir=s.landing_dir, on_step=hook)
    intents = [e.details for e in led.events("cascade.intent")]
    assert len(intents) == 1 and intents[0]["planned"][CHUNKS] == n_chunks and intents[0]["planned"][DOCUMENTS] == 2
    if kill_at == "purge":  # the result is recorded before the purge
        assert cascade.open_intents(led) == [] and len(led.events("cascade.result")) == 1
    else:
        (row,) = cascade.open_intents(led)
        assert row["cascade_id"] == intents[0]["cascade_id"] and led.events("cascade.result") == []
        (done,) = cascade.resume_open(store, led, purge=True)
        assert done.resumed and done.cascade_id == row["cascade_id"]
        (result,) = [e.details for e in led.events("cascade.result")]
        assert result["cascade_id"] == row["cascade_id"] and result["resumed"] is True
        assert cascade.open_intents(led) == []
        assert cascade.resume_open(store, led) == []
    after = _rows(store)
    assert after[DOCUMENTS] == [d for d in before[DOCUMENTS] if d[0] not in victims]
    for t in after:
        if t != DOCUMENTS:
            assert after[t] == [c for c in before[t] if c[1] not in victims], t
    assert led.verify_chain().ok


def test_erased_before_is_the_certified_erasure_time(populated_settings):
    from aisg_pipelines.governance import erasure as er

    s, _ = populated_settings
    led = Ledger(s.ledger_url)
    assert er.erased_before(led, "subj-en-002", s) is None
    intake, res = er.erase_subject(s, "subj-en-002", requested_by="dpo", request_id="req-eb")
    assert res.outcomes[0].status == "certified", res.outcomes[0].failure
    row = er.get_request(led, "req-eb")
    from datetime import datetime

    assert er.erased_before(led, "subj-en-002", s) == datetime.fromisoformat(row["certified_at"])
    assert er.erased_before(led, "subj-ko-001", s) is None


def test_steps_run_leaf_first_and_hostile_ids_match_nothing(populated_settings):
    s, _ = populated_settings
    store, led = LanceStore(s.lancedb_uri), Ledger(s.ledger_url)
    before = _rows(store)
    # an id that would match every row if it reached a filter unescaped deletes nothing
    res = cascade.delete_documents(store, led, [], cause="test", actor="pytest", chunk_ids=["x' OR '1'='1", "%"], purge=False)
    assert res.total_rows == 0 and _rows(store) == before
    from aisg_pipelines.governance.ids import InvalidIdentifier

    with pytest.raises(InvalidIdentifier):
        cascade.delete_documents(store, led, ["doc' OR '1'='1"], cause="test", actor="pytest")
    steps: list[str] = []
    victim = before[DOCUMENTS][0][0]
    cascade.delete_documents(store, led, [victim], cause="test", actor="pytest", landing_dir=s.landing_dir, on_step=steps.append,
                             partitions=Parts(led.batch_ids()))
    emb = [f"delete:{t}" for t in sorted(store.embedding_tables().values())]
    assert steps[: len(emb) + 1] == [*emb, "delete:chunks"]
    assert steps[len(emb) + 1:] in (["delete:landing", "delete:documents", "delete:ledger_paths", "partitions", "purge"],
                                     ["delete:landing", "delete:documents", "delete:ledger_paths", "purge"])


@pytest.fixture
def pg_ledger_url():
    """A fresh database on the real PostgreSQL server (.ci/run sets AISG_TEST_PG_URL)."""
    import secrets

    from .conftest import PG_URL, pg_admin_connect

    if not PG_URL:
        pytest.skip("AISG_TEST_PG_URL is unset: no PostgreSQL server (.ci/run starts one and sets it)")
    name = f"aisg_cascade_{secrets.token_hex(4)}"
    admin = pg_admin_connect()
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_killed_cascade_resumes_with_the_ledger_on_postgresql(populated_settings, pg_ledger_url):
    s, _ = populated_settings
    store, led = LanceStore(s.lancedb_uri), Ledger(pg_ledger_url)
    docs = store.scan(DOCUMENTS, ["doc_id", "batch_id", "file_path"]).to_pylist()
    victim = docs[0]
    led.record_batch(victim["batch_id"], [victim["file_path"], "other/file.txt"], {victim["file_path"]: 1, "other/file.txt": 2})
    before = _rows(store)

    class Killed(Exception):
        pass

    def hook(step):
        if step == "delete:chunks":
            raise Killed(step)

    with pytest.raises(Killed):
        cascade.delete_documents(store, led, [victim["doc_id"]], cause="test", actor="pytest", landing_dir=s.landing_dir, on_step=hook)
    assert len(cascade.open_intents(led)) == 1
    (done,) = cascade.resume_open(store, led, purge=True)
    assert done.rows[DOCUMENTS] == 1 and done.ledger_paths_removed == 1
    assert led.batch_files(victim["batch_id"]) == ["other/file.txt"]
    assert cascade.open_intents(led) == [] and led.verify_chain().ok
    assert _rows(store)[DOCUMENTS] == [d for d in before[DOCUMENTS] if d[0] != victim["doc_id"]]


def test_a_duplicated_vector_is_planned_deleted_and_counted_as_rows(populated_settings):
    """The active version can hold a vector twice (a bug this issue fixes on the ingest side):
    the cascade deletes both rows and its intent and result count rows, not ids."""
    s, _ = populated_settings
    store, led = LanceStore(s.lancedb_uri), Ledger(s.ledger_url)
    t = sorted(store.embedding_tables().values())[0]
    doc = store.scan(DOCUMENTS, ["doc_id"])["doc_id"].to_pylist()[0]
    mine = [r for r in store.scan(t, store.dataset(t).schema.names).to_pylist() if r["doc_id"] == doc]
    store.append(t, store.dataset(t).schema, pa.Table.from_pylist(mine[:1], schema=store.dataset(t).schema))
    res = cascade.delete_documents(store, led, [doc], cause="test", actor="pytest", purge=False)
    assert res.planned[t] == res.rows[t] == len(mine) + 1
    assert store.count(t, f"doc_id = '{doc}'") == 0
