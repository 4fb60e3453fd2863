"""Hostile and careless uploads (issue 12, findings 2, 3, 4, 7 and 8 on the ingest side).

Real LanceDB, model and presidio throughout. Each test states exact counts and contents:
- links (symbolic, hard), special files and paths out of the landing root are removed
  unread and quarantined with a reason; nothing of their targets reaches any store;
- a doc_id of another subject is refused and the victim's rows stay byte-identical;
- a file changing while it is read is neither stored nor quarantined, and the next tick
  ingests what it became;
- a changed document replaces its old chunks and vectors in every version;
- a replay of an erased subject's upload is dropped, a newer upload is accepted;
- reason files name no raw subject id.
"""

from __future__ import annotations

import json
import os
import stat
import time
from datetime import timedelta
from pathlib import Path

import pyarrow.compute as pc
import pytest

from aisg_pipelines.governance.chunking import chunk_text
from aisg_pipelines.governance.ids import subject_hash
from aisg_pipelines.governance.landing import plan_batches, quarantine_reason
from aisg_pipelines.governance.ledger import Ledger
from aisg_pipelines.governance.pii import get_scrubber
from aisg_pipelines.governance.pipeline import ingest_all, ingest_documents, search
from aisg_pipelines.governance.secrets import load_or_create_salt
from aisg_pipelines.governance.store import CHUNKS, CHUNKS_SCHEMA, DOCUMENTS, DOCUMENTS_SCHEMA, LanceStore
from aisg_pipelines.governance.versions import VersionRegistry

DAY = "2026-11-25"


def _sidecar(doc_id: str, subject_id: str, uploaded_at: str = f"{DAY}T09:00:00+00:00") -> str:
    return json.dumps({"doc_id": doc_id, "subject_id": subject_id, "uploaded_at": uploaded_at,
                       "category": "user_content", "source": "aisg-web"})


def _upload(landing: Path, rel: str, text: str, doc_id: str, subject_id: str, **kw) -> Path:
    p = landing / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    (p.parent / (p.name + ".meta.json")).write_text(_sidecar(doc_id, subject_id, **kw), encoding="utf-8")
    return p


def _files_under(root: Path):
    for dirpath, dirnames, filenames in os.walk(root):
        for n in filenames + dirnames:
            yield Path(dirpath) / n


def _bytes_found(root: Path, needle: bytes) -> list[str]:
    hits = []
    for p in _files_under(root):
        st = os.lstat(p)
        if stat.S_ISREG(st.st_mode) and needle in p.read_bytes():
            hits.append(str(p.relative_to(root)))
    return hits


def _snapshot(store: LanceStore, active) -> dict:
    return {
        "documents": store.scan(DOCUMENTS, DOCUMENTS_SCHEMA.names).sort_by("doc_id"),
        "chunks": store.scan(CHUNKS, CHUNKS_SCHEMA.names).sort_by("chunk_id"),
        "vectors": store.scan(active.table, ["chunk_id", "doc_id", "batch_id", "content_sha256", "vector", "embedded_at"]).sort_by("chunk_id"),
    }


def _one_vector_per_chunk(store: LanceStore, table: str) -> None:
    chunk_ids = store.scan(CHUNKS, ["chunk_id"])["chunk_id"].to_pylist()
    vec_ids = store.scan(table, ["chunk_id"])["chunk_id"].to_pylist()
    assert len(chunk_ids) == len(set(chunk_ids)), "duplicate chunk ids"
    assert sorted(vec_ids) == sorted(chunk_ids), f"{table}: not exactly one vector per chunk"


# -- finding 2: links, special files, paths out of the landing root -----------------------
def test_links_and_special_files_are_removed_unread_and_never_stored(populated_settings, tmp_path):
    from aisg_pipelines.governance.secrets import load_or_create_signing_key

    s, manifest = populated_settings
    store, ledger = LanceStore(s.lancedb_uri), Ledger(s.ledger_url)
    active = VersionRegistry(ledger).active()
    before = _snapshot(store, active)
    load_or_create_signing_key(s)  # the erasure signing key: what an attacker would link to
    key_file = next(p for p in Path(s.secrets_dir).iterdir() if p.name.endswith(".pem") and not p.name.endswith(".pub.pem"))
    key_bytes = key_file.read_bytes()
    assert b"BEGIN PRIVATE KEY" in key_bytes
    passwd = Path("/etc/passwd")
    passwd_bytes = passwd.read_bytes()
    passwd_needle = passwd_bytes.splitlines()[0]  # e.g. b"root:x:0:0:root:/root:/bin/bash"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "leak.txt").write_text("Outside the landing zone: the merger plan for next quarter.", encoding="utf-8")
    (outside / "leak.txt.meta.json").write_text(_sidecar("doc-outside", "subj-ko-001"), encoding="utf-8")
    (outside / "side.json").write_text(_sidecar("doc-note", "subj-ko-001"), encoding="utf-8")

    day = s.landing_dir / DAY
    day.mkdir(parents=True)
    (day / "key.txt").symlink_to(key_file)
    (day / "key.txt.meta.json").write_text(_sidecar("doc-key", "subj-ko-001"), encoding="utf-8")
    (day / "passwd.txt").symlink_to(passwd)
    (day / "passwd.txt.meta.json").write_text(_sidecar("doc-passwd", "subj-ko-001"), encoding="utf-8")
    (day / "note.txt").write_text("A harmless note about the train timetable.", encoding="utf-8")
    (day / "note.txt.meta.json").symlink_to(outside / "side.json")  # symlinked sidecar
    (s.landing_dir / "linked").symlink_to(outside, target_is_directory=True)  # symlinked folder
    os.link(key_file, day / "hard.txt")  # a second name of the key file
    (day / "hard.txt.meta.json").write_text(_sidecar("doc-hard", "subj-ko-001"), encoding="utf-8")

    res = ingest_all(s)
    assert (res.documents, res.quarantined) == (0, 5)
    expected = {f"{DAY}/key.txt": "symlink", f"{DAY}/passwd.txt": "symlink", f"{DAY}/note.txt": "symlink",
                "linked": "symlink", f"{DAY}/hard.txt": "hard_link"}
    assert {rel: quarantine_reason(s.quarantine_dir, rel) for rel in expected} == expected
    reason = (s.quarantine_dir / f"{DAY}/note.txt.reason.txt").read_text(encoding="utf-8")
    assert "detail: the sidecar is a symbolic link" in reason and "removed_without_keeping: sidecar (symlink, not read)" in reason
    assert "removed_without_keeping: file (hard link, not read)" in (s.quarantine_dir / f"{DAY}/hard.txt.reason.txt").read_text(encoding="utf-8")

    # the links are gone from the landing zone; their targets are untouched
    for rel in expected:
        assert not os.path.lexists(s.landing_dir / rel), rel
    assert not os.path.lexists(day / "note.txt.meta.json")
    assert key_file.read_bytes() == key_bytes and os.stat(key_file).st_nlink == 1
    assert passwd.read_bytes() == passwd_bytes
    assert sorted(p.name for p in outside.iterdir()) == ["leak.txt", "leak.txt.meta.json", "side.json"]
    # the quarantine keeps no link and no byte of a target; only the harmless note moved there
    q_entries = {p.relative_to(s.quarantine_dir).as_posix() for p in _files_under(s.quarantine_dir) if os.path.isfile(p) or os.path.islink(p)}
    q_new = {e for e in q_entries if e.startswith(DAY) or e.startswith("linked")}
    assert q_new == {f"{DAY}/{n}" for n in ("key.txt.meta.json", "key.txt.reason.txt", "passwd.txt.meta.json", "passwd.txt.reason.txt",
                                            "note.txt", "note.txt.reason.txt", "hard.txt.meta.json", "hard.txt.reason.txt")} | {"linked.reason.txt"}
    assert not any(os.path.islink(p) for p in _files_under(s.quarantine_dir))
    for needle in (b"BEGIN PRIVATE KEY", passwd_needle, b"merger plan"):
        assert _bytes_found(s.quarantine_dir, needle) == []
        assert _bytes_found(Path(s.lancedb_uri), needle) == []
    # nothing stored: every table is exactly what it was
    after = _snapshot(store, active)
    for k in before:
        assert after[k].equals(before[k]), k
    for query, bad in (("BEGIN PRIVATE KEY", "PRIVATE KEY"), (passwd_needle.decode(), "root:"), ("merger plan for next quarter", "merger")):
        hits = search(store, active, query, k=10)
        assert len(hits) == 10 and not any(bad in h["text"] for h in hits)


def test_fifo_in_the_landing_zone_is_refused_without_blocking(settings):
    """Careless: a FIFO named like an upload. A plain open() blocks until a writer comes."""
    _upload(settings.landing_dir, f"{DAY}/ok.txt", "An ordinary letter about the bus timetable.", "doc-ok", "u1")
    os.mkfifo(settings.landing_dir / DAY / "pipe.txt")
    (settings.landing_dir / DAY / "pipe.txt.meta.json").write_text(_sidecar("doc-pipe", "u1"), encoding="utf-8")
    res = ingest_all(settings)
    assert (res.documents, res.quarantined) == (1, 1)
    assert quarantine_reason(settings.quarantine_dir, f"{DAY}/pipe.txt") == "not_regular_file"
    assert not os.path.lexists(settings.landing_dir / DAY / "pipe.txt")
    assert (settings.quarantine_dir / DAY / "pipe.txt.meta.json").exists() and not os.path.lexists(settings.quarantine_dir / DAY / "pipe.txt")
    assert LanceStore(settings.lancedb_uri).scan(DOCUMENTS, ["doc_id"])["doc_id"].to_pylist() == ["doc-ok"]


def test_path_leaving_the_landing_root_is_refused_without_touching_it(settings):
    outside = settings.data_dir / "outside"
    _upload(outside, "evil.txt", "Text that lives outside the landing zone entirely.", "doc-evil", "u1")
    settings.landing_dir.mkdir(parents=True)
    store, ledger = LanceStore(settings.lancedb_uri), Ledger(settings.ledger_url)
    rel = "../outside/evil.txt"
    ledger.record_batch("20261125-00000001", [rel])
    res = ingest_documents(store, ledger, landing_dir=settings.landing_dir, quarantine_dir=settings.quarantine_dir,
                           batch_id="20261125-00000001", files=[rel], max_file_bytes=10_000, scrubber=get_scrubber())
    assert store.count(DOCUMENTS) == 0
    assert res.documents == 0 and [q.code for q in res.quarantined] == ["outside_landing"]
    assert (outside / "evil.txt").read_text(encoding="utf-8") == "Text that lives outside the landing zone entirely."
    assert sorted(p.name for p in outside.iterdir()) == ["evil.txt", "evil.txt.meta.json"]  # not even a reason file written there
    [reason] = list((settings.quarantine_dir / "outside_landing").iterdir())
    assert reason.read_text(encoding="utf-8").startswith("reason: outside_landing\n")


# -- finding 3: a doc_id of another subject -------------------------------------------------
def test_doc_id_of_another_subject_is_quarantined_and_the_victim_is_untouched(populated_settings):
    s, manifest = populated_settings
    store, ledger = LanceStore(s.lancedb_uri), Ledger(s.ledger_url)
    active = VersionRegistry(ledger).active()
    victim = manifest["documents"][0]
    attacker = next(x["subject_id"] for x in manifest["subjects"] if x["subject_id"] != victim["subject_id"])
    before = _snapshot(store, active)
    n_victim_chunks = store.count(CHUNKS, f"doc_id = '{victim['doc_id']}'")
    assert n_victim_chunks >= 1
    rel = f"{DAY}/takeover.txt"
    _upload(s.landing_dir, rel, "Attacker text replacing the victim's document. Wire the money to account 12.", victim["doc_id"], attacker)

    res = ingest_all(s)
    assert (res.documents, res.quarantined, res.chunks, res.embedded) == (0, 1, 0, 0)
    assert quarantine_reason(s.quarantine_dir, rel) == "doc_id_conflict"
    after = _snapshot(store, active)
    for k in before:
        assert after[k].equals(before[k]), k  # the victim's document, chunks and vectors: byte-identical
    assert store.count(CHUNKS, f"doc_id = '{victim['doc_id']}'") == n_victim_chunks
    _one_vector_per_chunk(store, active.table)
    assert not any("Attacker" in h["text"] for h in search(store, active, "Attacker text replacing the victim's document", k=10))
    # the reason file names neither subject, only the uploader's salted hash
    reason = (s.quarantine_dir / (rel + ".reason.txt")).read_text(encoding="utf-8")
    assert victim["subject_id"] not in reason and attacker not in reason
    assert f"subject_hash: {subject_hash(attacker, load_or_create_salt(s))}\n" in reason
    assert reason.splitlines()[0] == "reason: doc_id_conflict"


# -- finding 4: files changing while read; changed files are replacements ------------------
class _ChangingScrubber:
    """The real scrubber; while it works on the text containing `marker`, `change()` runs
    once: the file changes between being read and being stored."""

    def __init__(self, marker: str, change):
        self.inner = get_scrubber()
        self.entity_types = getattr(self.inner, "entity_types", ())
        self.marker, self.change, self.done = marker, change, False

    def scrub(self, text: str):
        out = self.inner.scrub(text)
        if self.marker in text and not self.done:
            self.done = True
            self.change()
        return out


def _append(p: Path) -> None:
    with open(p, "a", encoding="utf-8") as f:
        f.write(" Appended while it was being read.")


def _touch(p: Path) -> None:
    st = os.stat(p)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))


def _same_size_same_mtime(p: Path) -> None:
    st = os.stat(p)
    p.write_text(p.read_text(encoding="utf-8").replace("original", "modified"), encoding="utf-8")
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(p).st_size == st.st_size and os.stat(p).st_mtime_ns == st.st_mtime_ns


def _sidecar_rewritten(p: Path) -> None:
    side = p.with_name(p.name + ".meta.json")
    meta = json.loads(side.read_text(encoding="utf-8"))
    side.write_text(json.dumps({**meta, "source": "aisg-api"}), encoding="utf-8")


@pytest.mark.parametrize("change, final_marker", [(_append, "Appended while"), (_touch, "Bravo original"), (_same_size_same_mtime, "Bravo modified"),
                                                  (_sidecar_rewritten, "Bravo original")],
                         ids=["size", "mtime", "content-hash", "sidecar"])
def test_file_changing_while_read_is_left_for_the_next_tick(settings, change, final_marker):
    landing = settings.landing_dir
    _upload(landing, f"{DAY}/a.txt", "Alpha letter about the library opening hours.", "doc-a", "u1")
    b = _upload(landing, f"{DAY}/b.txt", "Bravo original letter about the swimming pool.", "doc-b", "u2")
    store, ledger = LanceStore(settings.lancedb_uri), Ledger(settings.ledger_url)
    scan = plan_batches(landing, None, now_ns=time.time_ns(), settle_seconds=0, already_batched=ledger.already_batched)
    [(batch, files)] = scan.batches.items()
    ledger.record_batch(batch, files, scan.mtimes_ns)
    res = ingest_documents(store, ledger, landing_dir=landing, quarantine_dir=settings.quarantine_dir, batch_id=batch, files=files,
                           max_file_bytes=10_000, scrubber=_ChangingScrubber("Bravo", lambda: change(b)))
    assert store.scan(DOCUMENTS, ["doc_id"])["doc_id"].to_pylist() == ["doc-a"]
    assert res.documents == 1 and res.deferred == [f"{DAY}/b.txt"] and res.quarantined == [] and res.missing == []
    assert b.exists() and (landing / f"{DAY}/b.txt.meta.json").exists()
    assert not settings.quarantine_dir.exists() or list(_files_under(settings.quarantine_dir)) == []
    # the next sensor tick (cursor past everything it took) plans it again, and it is ingested as it is now
    nxt = plan_batches(landing, scan.new_cursor, now_ns=time.time_ns(), settle_seconds=0, already_batched=ledger.already_batched)
    [(batch2, files2)] = nxt.batches.items()
    assert files2 == [f"{DAY}/b.txt"] and batch2 != batch
    ledger.record_batch(batch2, files2, nxt.mtimes_ns)
    res2 = ingest_documents(store, ledger, landing_dir=landing, quarantine_dir=settings.quarantine_dir, batch_id=batch2, files=files2,
                            max_file_bytes=10_000, scrubber=get_scrubber())
    assert res2.documents == 1 and res2.deferred == [] and res2.replaced == []
    docs = {r["doc_id"]: r for r in store.scan(DOCUMENTS, ["doc_id", "batch_id", "text"]).to_pylist()}
    assert sorted(docs) == ["doc-a", "doc-b"] and docs["doc-b"]["batch_id"] == batch2
    assert final_marker in docs["doc-b"]["text"]


def test_changed_file_replaces_old_chunks_and_vectors_in_every_version(populated_settings, model_path):
    from aisg_pipelines.governance.pipeline import embed_batch
    from aisg_pipelines.governance.reindex import reindex
    from aisg_pipelines.governance.versions import EmbedVersionSpec

    s, manifest = populated_settings
    store, ledger = LanceStore(s.lancedb_uri), Ledger(s.ledger_url)
    reindex(store, ledger, EmbedVersionSpec(name="v2", model_path=model_path, max_seq_length=128), activate=False, sample_size=10)
    reg = VersionRegistry(ledger)
    v1, v2 = reg.active(), reg.get("v2")
    assert v1.name == "v1"
    for t in (v1.table, v2.table):
        _one_vector_per_chunk(store, t)
    doc = max((d for d in manifest["documents"] if d["path"].endswith(".txt")),
              key=lambda d: store.count(CHUNKS, f"doc_id = '{d['doc_id']}'"))
    old_doc = store.scan(DOCUMENTS, ["batch_id", "text"], filter=f"doc_id = '{doc['doc_id']}'").to_pylist()[0]
    old_chunks = store.scan(CHUNKS, ["chunk_id", "text"], filter=f"doc_id = '{doc['doc_id']}'").to_pylist()
    others = store.scan(DOCUMENTS, ["text"], filter=f"doc_id != '{doc['doc_id']}'")["text"].to_pylist()
    needle = next(old_doc["text"][i:i + 40] for i in range(0, len(old_doc["text"]) - 40)
                  if not any(old_doc["text"][i:i + 40] in t for t in others) and "<" not in old_doc["text"][i:i + 40])
    n_docs, n_chunks_other = store.count(DOCUMENTS), store.count(CHUNKS) - len(old_chunks)
    new_text = " ".join(f"Revised statement number {i} about the harbour ferry timetable and its winter changes." for i in range(30))
    (s.landing_dir / doc["path"]).write_text(new_text, encoding="utf-8")  # the same path, a new mtime: the next batch

    res = ingest_all(s)
    assert (res.documents, res.quarantined) == (1, 0)
    [new_batch] = res.batches
    embed_batch(store, v2, new_batch)  # v2 is complete again
    assert store.count(DOCUMENTS) == n_docs
    row = store.scan(DOCUMENTS, ["batch_id", "text"], filter=f"doc_id = '{doc['doc_id']}'").to_pylist()
    assert len(row) == 1 and row[0]["batch_id"] == new_batch and row[0]["text"] == new_text
    new_chunks = store.scan(CHUNKS, ["chunk_id", "batch_id", "text"], filter=f"doc_id = '{doc['doc_id']}'").to_pylist()
    assert sorted(c["text"] for c in new_chunks) == sorted(chunk_text(new_text, v1.spec.chunker))
    assert {c["batch_id"] for c in new_chunks} == {new_batch}
    assert store.count(CHUNKS) == n_chunks_other + len(new_chunks)
    for t in (v1.table, v2.table):
        _one_vector_per_chunk(store, t)
        assert store.count(t, f"batch_id = '{old_doc['batch_id']}' AND doc_id = '{doc['doc_id']}'") == 0
    old_texts = {c["text"] for c in old_chunks}
    assert not old_texts & set(store.scan(CHUNKS, ["text"])["text"].to_pylist())
    for version in (v1, v2):
        hits = search(store, version, old_chunks[0]["text"], k=10)
        assert hits and not any(h["text"] in old_texts for h in hits)
    # the old text left the disk too (cascade purge of chunks and vectors, then documents)
    assert _bytes_found(Path(s.lancedb_uri), needle.encode("utf-8")) == []
    assert res.replaced == 1
    results = [e.details for e in ledger.events("cascade.result") if e.details["cause"] == "ingest.replace"]
    assert len(results) == 1
    assert results[0]["rows"] == {CHUNKS: len(old_chunks), v1.table: len(old_chunks), v2.table: len(old_chunks)}
    assert ledger.verify_chain().ok


# -- finding 7 (ingest) and 8: replays of an erased subject; no raw subject id -------------
def test_replay_of_an_erased_subject_is_dropped_and_newer_upload_accepted(populated_settings):
    from aisg_pipelines.governance.erasure import erase_subject, erased_before_hash

    s, manifest = populated_settings
    subj = next(x for x in manifest["subjects"] if not x["legal_hold"])["subject_id"]
    intake, run = erase_subject(s, subj, requested_by="dpo@example.com", reason="test")
    assert intake.accepted and run is not None and [o.status for o in run.outcomes] == ["certified"]
    salt = load_or_create_salt(s)
    h = subject_hash(subj, salt)
    erased = erased_before_hash(Ledger(s.ledger_url), h)
    assert erased is not None
    store = LanceStore(s.lancedb_uri)
    n_docs = store.count(DOCUMENTS)
    replay_rel = f"{subj}/replay.txt"  # the uploader named the folder after the subject
    _upload(s.landing_dir, replay_rel, "Replayed letter from before the erasure, marker 7731-QX.", "doc-replay", subj,
            uploaded_at=(erased - timedelta(days=3)).isoformat())
    fresh_at = (erased + timedelta(seconds=1)).isoformat()
    _upload(s.landing_dir, f"{DAY}/fresh.txt", "A fresh letter written after the erasure, marker 9924-ZK.", "doc-fresh", subj, uploaded_at=fresh_at)

    res = ingest_all(s)
    assert (res.documents, res.quarantined) == (1, 1)
    # the replay: gone from the landing zone, nothing of it kept anywhere under the data directory
    assert not os.path.lexists(s.landing_dir / replay_rel) and not os.path.lexists(s.landing_dir / (replay_rel + ".meta.json"))
    assert not (s.quarantine_dir / replay_rel).exists()
    assert _bytes_found(s.data_dir, b"7731-QX") == []
    # its reason file names the subject only by its salted hash, path included
    shown = f"subject:{h[:16]}/replay.txt"
    assert quarantine_reason(s.quarantine_dir, shown) == "erased_subject_replay"
    reason = (s.quarantine_dir / (shown + ".reason.txt")).read_text(encoding="utf-8")
    assert subj not in reason and f"subject_hash: {h}\n" in reason and "removed_without_keeping: file, sidecar" in reason
    assert not any(subj in p.name for p in _files_under(s.quarantine_dir))
    # nor its path in the ledger's batch manifests
    led = Ledger(s.ledger_url)
    assert not any(replay_rel in led.batch_files(b) for b in led.batch_ids())
    assert not any(subj in f for b in led.batch_ids() for f in led.batch_files(b))
    # no raw subject id in the ingest events either
    assert not any(subj in json.dumps(e.details) for e in Ledger(s.ledger_url).events("ingest."))
    # the newer upload is new data: stored
    assert store.count(DOCUMENTS) == n_docs + 1
    rows = store.scan(DOCUMENTS, ["doc_id", "subject_id", "text"], filter="doc_id = 'doc-fresh'").to_pylist()
    assert len(rows) == 1 and rows[0]["subject_id"] == subj and "9924-ZK" in rows[0]["text"]
    assert pc.sum(pc.equal(store.scan(CHUNKS, ["doc_id"])["doc_id"], "doc-fresh")).as_py() >= 1


def test_reason_files_name_no_raw_subject_id(settings):
    """Any refusal after the sidecar named a subject: the reason file shows its salted hash."""
    subj = "kim.minsu@example.com"
    bad = settings.landing_dir / subj / "letter.txt"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\xff\xfe not UTF-8 at all")
    (bad.parent / "letter.txt.meta.json").write_text(_sidecar("doc-bad", subj), encoding="utf-8")
    res = ingest_all(settings)
    assert (res.documents, res.quarantined) == (0, 1)
    rel = f"{subj}/letter.txt"
    assert quarantine_reason(settings.quarantine_dir, rel) == "not_utf8"
    reason = (settings.quarantine_dir / (rel + ".reason.txt")).read_text(encoding="utf-8")
    h = subject_hash(subj, load_or_create_salt(settings))
    assert subj not in reason
    assert f"original_path: subject:{h[:16]}/letter.txt\n" in reason and f"subject_hash: {h}\n" in reason


def test_replacement_killed_inside_its_cascade_is_completed_by_the_rerun(populated_settings):
    """The replacement's cascade dies after the vectors went and before the chunks: the
    re-run completes that intent first (ledger result recorded), then replaces the document."""
    from aisg_pipelines.governance import cascade
    from aisg_pipelines.governance.pipeline import chunk_documents, embed_batch

    s, manifest = populated_settings
    store, ledger = LanceStore(s.lancedb_uri), Ledger(s.ledger_url)
    active = VersionRegistry(ledger).active()
    doc = next(d for d in manifest["documents"] if d["path"].endswith(".txt"))
    batch = next(b for b in ledger.batch_ids() if doc["path"] in ledger.batch_files(b))
    old_ids = store.scan(CHUNKS, ["chunk_id"], filter=f"doc_id = '{doc['doc_id']}'")["chunk_id"].to_pylist()
    new_text = "Entirely rewritten: the choir rehearsal moves to Thursday evening at the community hall."
    (s.landing_dir / doc["path"]).write_text(new_text, encoding="utf-8")

    class Killed(Exception):
        pass

    def die(step: str) -> None:
        if step == f"delete:{CHUNKS}":
            raise Killed(step)

    with pytest.raises(Killed):  # what the killed run had done: intent recorded, vectors deleted
        cascade.delete_documents(store, ledger, [doc["doc_id"]], cause="ingest.replace", actor="ingest", chunk_ids=old_ids, on_step=die)
    assert len(cascade.open_intents(ledger)) == 1
    assert store.count(active.table, f"doc_id = '{doc['doc_id']}'") == 0 and store.count(CHUNKS, f"doc_id = '{doc['doc_id']}'") == len(old_ids)

    res = ingest_documents(store, ledger, landing_dir=s.landing_dir, quarantine_dir=s.quarantine_dir, batch_id=batch,
                           files=ledger.batch_files(batch), max_file_bytes=s.max_file_bytes, scrubber=get_scrubber(),
                           subject_salt=load_or_create_salt(s))
    assert cascade.open_intents(ledger) == []
    assert res.replaced == [doc["doc_id"]]
    chunk_documents(store, batch, active.spec.chunker)
    embed_batch(store, active, batch)
    chunks = store.scan(CHUNKS, ["chunk_id", "text"], filter=f"doc_id = '{doc['doc_id']}'").to_pylist()
    assert [c["text"] for c in chunks] == chunk_text(new_text, active.spec.chunker)
    _one_vector_per_chunk(store, active.table)
    results = [e.details for e in ledger.events("cascade.result") if e.details["cause"] == "ingest.replace"]
    assert [r["resumed"] for r in results][:1] == [True]
    assert results[0]["rows"][CHUNKS] == len(old_ids)
    assert ledger.verify_chain().ok


def test_doc_id_of_orphaned_chunks_of_another_subject_is_refused(populated_settings):
    """Chunks that outlived their document still belong to their subject: a new upload of
    another subject with that doc_id is refused and does not touch them."""
    s, manifest = populated_settings
    store, ledger = LanceStore(s.lancedb_uri), Ledger(s.ledger_url)
    victim = manifest["documents"][0]
    other = next(x["subject_id"] for x in manifest["subjects"] if x["subject_id"] != victim["subject_id"])
    store.delete_ids(DOCUMENTS, "doc_id", [victim["doc_id"]])  # the document row went, its chunks did not
    chunks_before = store.scan(CHUNKS, CHUNKS_SCHEMA.names, filter=f"doc_id = '{victim['doc_id']}'").sort_by("chunk_id")
    assert chunks_before.num_rows >= 1
    rel = f"{DAY}/claim.txt"
    _upload(s.landing_dir, rel, "Claiming an orphaned document id for someone else.", victim["doc_id"], other)
    res = ingest_all(s)
    assert (res.documents, res.quarantined) == (0, 1)
    assert quarantine_reason(s.quarantine_dir, rel) == "doc_id_conflict"
    assert store.scan(CHUNKS, CHUNKS_SCHEMA.names, filter=f"doc_id = '{victim['doc_id']}'").sort_by("chunk_id").equals(chunks_before)
    assert store.count(DOCUMENTS, f"doc_id = '{victim['doc_id']}'") == 0


def test_rerun_drops_a_document_whose_file_is_gone_through_the_cascade(populated_settings):
    """Re-materialising a batch after one of its files left the landing zone: that document
    goes with its chunks and vectors at once, accounted in the ledger; the rest is untouched."""
    s, manifest = populated_settings
    store, ledger = LanceStore(s.lancedb_uri), Ledger(s.ledger_url)
    active = VersionRegistry(ledger).active()
    docs = store.scan(DOCUMENTS, ["doc_id", "batch_id", "file_path"]).to_pylist()
    by_batch: dict[str, list] = {}
    for d in docs:
        by_batch.setdefault(d["batch_id"], []).append(d)
    batch, members = max(by_batch.items(), key=lambda kv: len(kv[1]))
    gone = members[0]
    n_chunks = store.count(CHUNKS, f"doc_id = '{gone['doc_id']}'")
    assert n_chunks >= 1
    others_before = {k: t.filter(pc.invert(pc.equal(t["doc_id"], gone["doc_id"]))) for k, t in _snapshot(store, active).items()}
    (s.landing_dir / gone["file_path"]).unlink()
    (s.landing_dir / (gone["file_path"] + ".meta.json")).unlink()
    res = ingest_documents(store, ledger, landing_dir=s.landing_dir, quarantine_dir=s.quarantine_dir, batch_id=batch,
                           files=ledger.batch_files(batch), max_file_bytes=s.max_file_bytes, scrubber=get_scrubber(),
                           subject_salt=load_or_create_salt(s))
    assert gone["file_path"] in res.missing
    for t in (DOCUMENTS, CHUNKS, active.table):
        assert store.count(t, f"doc_id = '{gone['doc_id']}'") == 0, t
    after = _snapshot(store, active)
    for k in ("chunks", "vectors"):
        assert after[k].equals(others_before[k]), k
    assert sorted(after["documents"]["doc_id"].to_pylist()) == sorted(others_before["documents"]["doc_id"].to_pylist())
    results = [e.details for e in ledger.events("cascade.result") if e.details["cause"] == "ingest.drop"]
    assert len(results) == 1 and results[0]["rows"] == {DOCUMENTS: 1, CHUNKS: n_chunks, active.table: n_chunks}


def test_reupload_at_another_path_supersedes_the_old_file(populated_settings):
    """The same document (doc_id, subject) uploaded again under another name: the old file and
    its sidecar leave the landing zone and the ledger's manifests in the same cascade, so a
    re-run of the old batch cannot bring the old content back."""
    s, manifest = populated_settings
    store, ledger = LanceStore(s.lancedb_uri), Ledger(s.ledger_url)
    active = VersionRegistry(ledger).active()
    doc = next(d for d in manifest["documents"] if d["path"].endswith(".txt"))
    old_batch = next(b for b in ledger.batch_ids() if doc["path"] in ledger.batch_files(b))
    n_old = store.count(CHUNKS, f"doc_id = '{doc['doc_id']}'")
    new_rel = f"{DAY}/renamed.txt"
    new_text = "Second edition of the letter: the library now opens at nine on Saturdays."
    _upload(s.landing_dir, new_rel, new_text, doc["doc_id"], doc["subject_id"])
    res = ingest_all(s)
    assert (res.documents, res.replaced, res.quarantined) == (1, 1, 0)
    assert not (s.landing_dir / doc["path"]).exists() and not (s.landing_dir / (doc["path"] + ".meta.json")).exists()
    assert not any(doc["path"] in ledger.batch_files(b) for b in ledger.batch_ids())
    row = store.scan(DOCUMENTS, ["file_path", "text"], filter=f"doc_id = '{doc['doc_id']}'").to_pylist()
    assert row == [{"file_path": new_rel, "text": new_text}]
    _one_vector_per_chunk(store, active.table)
    [result] = [e.details for e in ledger.events("cascade.result") if e.details["cause"] == "ingest.replace"]
    assert result["landing_files_removed"] == 2 and result["rows"] == {CHUNKS: n_old, active.table: n_old}
    # re-running the old batch now finds nothing to bring back
    if old_batch in ledger.batch_ids():
        again = ingest_documents(store, ledger, landing_dir=s.landing_dir, quarantine_dir=s.quarantine_dir, batch_id=old_batch,
                                 files=ledger.batch_files(old_batch), max_file_bytes=s.max_file_bytes, scrubber=get_scrubber(),
                                 subject_salt=load_or_create_salt(s))
        assert doc["doc_id"] not in {r["doc_id"] for r in store.batch_rows(DOCUMENTS, old_batch, ["doc_id"]).to_pylist()}
        assert again.replaced == []
    assert store.scan(DOCUMENTS, ["text"], filter=f"doc_id = '{doc['doc_id']}'")["text"].to_pylist() == [new_text]
