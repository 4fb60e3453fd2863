"""The ingest pipeline as plain functions: landing files -> documents -> chunks -> vectors.

The Dagster assets call these; tests and benchmarks call them directly.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .chunking import ChunkerParams, chunk_text
from .ids import batched, chunk_id_for, sha256_hex, sql_literal
from .landing import Quarantined, Rejected, quarantine, quarantine_reason, read_upload
from .ledger import Ledger
from .store import CHUNKS, CHUNKS_SCHEMA, DOCUMENTS, DOCUMENTS_SCHEMA, LanceStore, embeddings_schema
from .versions import EmbedVersion

log = logging.getLogger(__name__)


@dataclass
class IngestResult:
    batch_id: str
    documents: int = 0
    quarantined: list[Quarantined] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the manifest, gone from landing, not quarantined
    deferred: list[str] = field(default_factory=list)  # changed while read: left (re-queued) for the next tick
    replaced: list[str] = field(default_factory=list)  # doc_ids whose earlier content was replaced
    replacement: dict = field(default_factory=dict)  # counts of the replacement cascade
    emptied_batches: list[str] = field(default_factory=list)  # other batches left with no document by a replacement
    dropped: dict = field(default_factory=dict)  # documents of this batch whose file is gone or now refused (cascade counts)
    pii_counts: dict[str, int] = field(default_factory=dict)
    write: dict[str, int] = field(default_factory=dict)

    @property
    def quarantined_by_reason(self) -> dict[str, int]:
        return dict(Counter(q.code for q in self.quarantined))


REPLACE_CAUSE = "ingest.replace"
DROP_CAUSE = "ingest.drop"


def erased_at(ledger: Ledger, subject_hash: str) -> datetime | None:
    """When the subject (by salted hash) was last certified erased (None if never): erasure's
    `erased_before_hash`, i.e. the latest `certified_at`, else the denylist entry's time."""
    from .erasure import erased_before_hash

    return erased_before_hash(ledger, subject_hash)


def _active_chunker(ledger: Ledger | None) -> ChunkerParams | None:
    """The chunker of the active embed_version (every version shares it), if there is one."""
    if ledger is None:
        return None
    from .versions import VersionRegistry

    active = VersionRegistry(ledger).active()
    return active.spec.chunker if active is not None else None


def ingest_documents(
    store: LanceStore,
    ledger: Ledger | None,
    *,
    landing_dir: Path,
    quarantine_dir: Path,
    batch_id: str,
    files: list[str],
    max_file_bytes: int,
    scrubber,
    now: datetime | None = None,
    subject_salt: bytes | None = None,
) -> IngestResult:
    """Read, validate, PII-scrub and store one batch of uploads; quarantine bad input.

    Refused (quarantined with a reason file that names no raw subject id):
    links and special files (`landing.read_upload`: nothing is followed or read), a doc_id
    that already belongs to another subject (that subject's rows stay untouched), and an
    upload of a subject whose erasure was certified after the upload's `uploaded_at` (a
    replay: its content is deleted, not kept). A file that changes while it is read is left
    in place and re-queued for the next tick (neither stored nor quarantined).

    A document already stored under another batch, or with other text, is a replacement:
    its old chunks and their vectors in every embed version go first, through the deletion
    cascade (`cascade.delete_documents`, with a ledger intent and result, and a purge);
    `chunk_documents` then writes the new chunks and the embed step their vectors.
    """
    from .ids import in_filter, subject_hash
    from .landing import Unstable, requeue, sidecar_identity, still_unchanged

    now = now or datetime.now(timezone.utc)
    result = IngestResult(batch_id)
    totals: Counter[str] = Counter()
    seen_doc_ids: set[str] = set()
    hashes: dict[str, str] = {}

    def h(subject_id: str) -> str | None:
        if subject_salt is None:
            return None
        if subject_id not in hashes:
            hashes[subject_id] = subject_hash(subject_id, subject_salt)
        return hashes[subject_id]

    def refuse(rel: str, rej: Rejected, up=None, *, drop_content: bool = False) -> None:
        sid = up.subject_id if up is not None else rej.subject_id
        result.quarantined.append(quarantine(landing_dir, quarantine_dir, rel, rej, batch_id, subject_id=sid,
                                             subject_hash=h(sid) if sid else None, drop_content=drop_content,
                                             scrubber=scrubber))

    def defer(rel: str) -> None:
        result.deferred.append(rel)
        requeue(landing_dir, rel)

    # 0. a replacement cascade killed earlier is completed first: chunk ids are positions of a
    #    document, so its ids must be gone before new content can reuse them
    if ledger is not None:
        from .cascade import resume_open

        resume_open(store, ledger, causes=[REPLACE_CAUSE, DROP_CAUSE])

    # 1. read: links, special files and bad input are refused; a file changing under us waits
    uploads: list = []
    for rel in sorted(files):
        if not os.path.lexists(landing_dir / rel):
            code = quarantine_reason(quarantine_dir, rel)
            if code:  # quarantined by an earlier, interrupted attempt at this batch
                result.quarantined.append(Quarantined(rel, code, "quarantined by an earlier attempt", str(quarantine_dir / rel)))
            else:
                result.missing.append(rel)
            continue
        try:
            up = read_upload(landing_dir, rel, max_file_bytes)
            if up.doc_id in seen_doc_ids:
                raise Rejected("duplicate_doc_id", up.doc_id)
        except Unstable:
            defer(rel)
            continue
        except Rejected as rej:
            refuse(rel, rej)
            continue
        except FileNotFoundError:
            result.missing.append(rel)
            continue
        except OSError as exc:  # unreadable file: quarantine rather than fail the run
            refuse(rel, Rejected("malformed_content", str(exc)[:120]))
            continue
        seen_doc_ids.add(up.doc_id)
        uploads.append(up)

    # 2. erased subjects: an upload older than the subject's certified erasure is a replay
    if ledger is not None and uploads:
        if subject_salt is None and ledger.denylisted_subject_hashes():
            raise ValueError("ingest_documents needs subject_salt to check uploads against the erasure denylist")
        erased: dict[str, datetime | None] = {}
        replays: list[str] = []
        kept = []
        for up in uploads:
            sh = h(up.subject_id)
            if sh is not None and sh not in erased:
                erased[sh] = erased_at(ledger, sh)
            when = erased.get(sh) if sh is not None else None
            if when is not None and up.uploaded_at < when:
                refuse(up.rel_path, Rejected("erased_subject_replay", f"uploaded_at {up.uploaded_at.isoformat()} precedes the certified erasure of {when.isoformat()}"),
                       up, drop_content=True)
                replays.append(up.rel_path)
                continue
            kept.append(up)
        uploads = kept
        if replays:  # nothing of a replay is kept, not even its path in the batch manifest
            from .cascade import remove_ledger_paths

            remove_ledger_paths(ledger, replays)

    # 3. a doc_id of another subject is refused; what is stored for it now
    existing: dict[str, dict] = {}
    old_chunks: dict[str, list[tuple[str, str, str | None]]] = {}  # doc_id -> [(chunk_id, batch_id, content sha of a chunk row)]
    keep_rows: list[dict] = []  # rows of this batch to keep as they are (conflicting or deferred files)
    if uploads and store.has_table(DOCUMENTS):
        ids = [u.doc_id for u in uploads]
        for part in batched(ids, 1000):
            for r in store.scan(DOCUMENTS, ["doc_id", "subject_id", "batch_id", "text_sha256", "file_path"], filter=in_filter("doc_id", part)).to_pylist():
                existing[r["doc_id"]] = r
    chunk_subjects: dict[str, set[str]] = {}  # chunks may outlive their document (orphans): they are owned too
    if uploads and store.has_table(CHUNKS):
        for part in batched([u.doc_id for u in uploads], 1000):
            got = store.scan(CHUNKS, ["doc_id", "subject_id"], filter=in_filter("doc_id", part))
            for d, sid in zip(got["doc_id"].to_pylist(), got["subject_id"].to_pylist()):
                chunk_subjects.setdefault(d, set()).add(sid)
    if uploads:
        kept = []
        for up in uploads:
            ex = existing.get(up.doc_id)
            owners = ({ex["subject_id"]} if ex is not None else set()) | chunk_subjects.get(up.doc_id, set())
            if owners - {up.subject_id}:
                where = f"stored in batch {ex['batch_id']}" if ex is not None else "chunks without their document"
                refuse(up.rel_path, Rejected("doc_id_conflict", f"doc_id {up.doc_id} already belongs to another subject's document ({where})"), up)
                if ex is not None and ex["batch_id"] == batch_id:
                    keep_rows.append(ex)
                continue
            kept.append(up)
        uploads = kept

    # 4. scrub, then make sure nothing changed since it was read
    rows: list[dict] = []
    for up in uploads:
        scrubbed = scrubber.scrub(up.text)
        if not still_unchanged(landing_dir, up):
            defer(up.rel_path)
            continue
        counts = {k: int(v) for k, v in scrubbed.counts.items()}
        totals.update(counts)
        rows.append(
            {
                "doc_id": up.doc_id, "subject_id": up.subject_id, "batch_id": batch_id, "category": up.category,
                "source": up.source, "uploaded_at": up.uploaded_at, "legal_hold": up.legal_hold, "file_path": up.rel_path,
                "file_sha256": up.file_sha256, "media_type": up.media_type, "text": scrubbed.text,
                "text_sha256": sha256_hex(scrubbed.text), "n_chars": len(scrubbed.text),
                "pii_counts": json.dumps(counts, sort_keys=True), "pii_total": sum(counts.values()), "ingested_at": now,
            }
        )

    # 5. replacements: chunks and vectors of the earlier content that the new content does not
    #    have, and everything of a document stored under another batch (its vectors there
    #    would never be matched by this batch's embed plan: duplicates)
    if rows:
        ids = [r["doc_id"] for r in rows]
        params = _active_chunker(ledger)
        owner: dict[str, str] = {}
        if store.has_table(CHUNKS):
            for part in batched(ids, 1000):
                got = store.scan(CHUNKS, ["chunk_id", "doc_id", "batch_id", "content_sha256"], filter=in_filter("doc_id", part))
                for c, d, b, sha in zip(*(got[k].to_pylist() for k in ("chunk_id", "doc_id", "batch_id", "content_sha256"))):
                    old_chunks.setdefault(d, []).append((c, b, sha))
                    owner[c] = d
        for table in store.embedding_tables().values():  # by chunk_id (indexed): a vector filed under another batch
            for part in batched(sorted(owner), 1000):
                got = store.scan(table, ["chunk_id", "batch_id"], filter=in_filter("chunk_id", part))
                for c, b in zip(got["chunk_id"].to_pylist(), got["batch_id"].to_pylist()):
                    old_chunks[owner[c]].append((c, b, None))
        doomed: set[str] = set()
        superseded: list[str] = []  # landing files of the earlier upload at another path
        for r in rows:
            d = r["doc_id"]
            ex = existing.get(d)
            olds = old_chunks.get(d, [])
            moved = ex is not None and ex["batch_id"] != batch_id
            changed = ex is not None and ex["text_sha256"] != r["text_sha256"]
            if moved or changed:
                result.replaced.append(d)
            old_path = ex.get("file_path") if ex is not None else None
            if old_path and old_path != r["file_path"] and sidecar_identity(landing_dir, old_path) == (d, r["subject_id"]):
                superseded.append(old_path)  # left there, a re-run of its batch would bring the old content back
            if ex is None or moved or (changed and params is None):
                doomed |= {c for c, _, _ in olds}  # all of it: the new content is chunked afresh
            else:  # same batch: keep the chunks (and vectors) the new content has unchanged
                keep = {(chunk_id_for(d, i), sha256_hex(t)) for i, t in enumerate(chunk_text(r["text"], params))} if changed else None
                doomed |= {c for c, b, sha in olds if b != batch_id or (keep is not None and sha is not None and (c, sha) not in keep)}
        if doomed or superseded:
            if ledger is None:
                raise ValueError("replacing documents needs the ledger (the deletion cascade records its intent there)")
            from . import cascade

            if superseded:  # one cascade: old chunks, their vectors, the superseded file + sidecar and its ledger path records
                plan = cascade.plan_cascade(store, chunk_ids=sorted(doomed))
                plan.landing_dir, plan.landing, plan.ledger_paths = str(landing_dir), sorted(superseded), sorted(superseded)
                plan.planned["landing_files"] = 2 * len(superseded)
                res = cascade.run_cascade(store, ledger, plan, cause=REPLACE_CAUSE, actor="ingest", purge=True)
            else:
                res = cascade.delete_documents(store, ledger, sorted(ids), cause=REPLACE_CAUSE, actor="ingest", landing_dir=None,
                                               chunk_ids=sorted(doomed), purge=True)
            result.replacement = {"chunk_ids": len(doomed), "rows_deleted": dict(res.rows), "superseded_files": len(superseded),
                                  "cascade_id": res.cascade_id}

    deferred = set(result.deferred)
    stored_here = store.batch_rows(DOCUMENTS, batch_id, ["doc_id", "file_path"]).to_pylist() if store.has_table(DOCUMENTS) else []
    keep_rows += [r for r in stored_here if r["file_path"] in deferred]  # a deferred file keeps what this batch stored for it
    new_ids = {r["doc_id"] for r in rows}
    keep_ids = sorted({r["doc_id"] for r in keep_rows} - new_ids)
    # documents this batch stored before whose file is now gone or refused: the re-run drops
    # them, with their chunks and vectors, through the cascade (accounted in the ledger)
    dropped = sorted({r["doc_id"] for r in stored_here} - new_ids - set(keep_ids))
    if dropped and ledger is not None:
        from . import cascade

        res = cascade.delete_documents(store, ledger, dropped, cause=DROP_CAUSE, actor="ingest", landing_dir=None, purge=True)
        result.dropped = {"documents": len(dropped), "rows_deleted": dict(res.rows), "cascade_id": res.cascade_id}
    table = pa.Table.from_pylist(rows, schema=DOCUMENTS_SCHEMA)
    if keep_ids:
        kept_tbl = store.scan(DOCUMENTS, DOCUMENTS_SCHEMA.names, filter=f"({in_filter('doc_id', keep_ids)}) AND batch_id = {sql_literal(batch_id)}")
        table = pa.concat_tables([table, kept_tbl.select(DOCUMENTS_SCHEMA.names).cast(DOCUMENTS_SCHEMA)])
    result.write = store.replace_batch(DOCUMENTS, DOCUMENTS_SCHEMA, "doc_id", batch_id, table)
    result.documents = len(rows)
    if result.replaced:
        from .cascade import empty_batches

        # the replaced rows' old text stays in older table versions until purged
        store.purge([DOCUMENTS])
        others = {existing[d]["batch_id"] for d in result.replaced} | {b for d in result.replaced for _, b, _ in old_chunks.get(d, [])}
        result.emptied_batches = empty_batches(store, sorted(b for b in others if b and b != batch_id))
    result.pii_counts = {k: totals.get(k, 0) for k in sorted(set(totals) | set(getattr(scrubber, "entity_types", ())))}
    if ledger is not None:
        from .events import IngestDocuments, record

        record(ledger, IngestDocuments(
            batch_id=batch_id, documents=result.documents, pii_removed=result.pii_counts,
            quarantined_by_reason=result.quarantined_by_reason, missing=len(result.missing),
            deferred=len(result.deferred), replaced=len(result.replaced), emptied_batches=result.emptied_batches,
            dropped=result.dropped.get("documents", 0),
        ))
    return result


@dataclass
class ChunkResult:
    batch_id: str
    documents: int
    chunks: int
    write: dict[str, int]


def chunk_documents(store: LanceStore, batch_id: str, params: ChunkerParams) -> ChunkResult:
    docs = store.batch_rows(DOCUMENTS, batch_id, ["doc_id", "subject_id", "text", "uploaded_at"]).to_pylist()
    rows = []
    for d in sorted(docs, key=lambda d: d["doc_id"]):
        for i, text in enumerate(chunk_text(d["text"], params)):
            rows.append(
                {
                    "chunk_id": chunk_id_for(d["doc_id"], i), "doc_id": d["doc_id"], "subject_id": d["subject_id"],
                    "batch_id": batch_id, "chunk_index": i, "text": text, "content_sha256": sha256_hex(text),
                    "n_chars": len(text), "uploaded_at": d["uploaded_at"],
                }
            )
    write = store.replace_batch(CHUNKS, CHUNKS_SCHEMA, "chunk_id", batch_id, pa.Table.from_pylist(rows, schema=CHUNKS_SCHEMA))
    return ChunkResult(batch_id, len(docs), len(rows), write)


@dataclass
class EmbedResult:
    version: str
    batch_id: str
    chunks: int  # chunks of the batch
    embedded: int  # newly embedded now
    skipped: int  # unchanged, already embedded
    stale_removed: int  # vectors of changed or vanished chunks removed
    seconds: float
    encode_seconds: float

    @property
    def chunks_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0


def plan_embedding(store: LanceStore, version: EmbedVersion, batch_id: str) -> tuple[pa.Table, list[str], int]:
    """(chunks that need a vector, ids of stale vectors to drop, chunks in the batch) for one batch.

    Keyed by (embed_version, chunk_id, content_sha256): an unchanged chunk already has its
    vector, a changed one gets a new vector and its old one goes.
    """
    chunks = store.batch_rows(CHUNKS, batch_id, ["chunk_id", "doc_id", "content_sha256", "text"])
    existing = store.batch_rows(version.table, batch_id, ["chunk_id", "content_sha256"]) if store.has_table(version.table) else None
    if existing is None or existing.num_rows == 0:
        return chunks, [], chunks.num_rows
    key = lambda t: pc.binary_join_element_wise(t["chunk_id"], t["content_sha256"], ":")  # noqa: E731
    have = key(existing)
    want = key(chunks)
    todo = chunks.filter(pc.invert(pc.is_in(want, value_set=have)))
    stale = existing.filter(pc.invert(pc.is_in(have, value_set=want)))["chunk_id"].to_pylist()
    return todo, stale, chunks.num_rows


def embed_batch(
    store: LanceStore,
    version: EmbedVersion,
    batch_id: str,
    *,
    batch_size: int = 32,
    write_rows: int = 1024,
    progress=None,
) -> EmbedResult:
    """Embed what is missing for one batch under one version; a re-run with nothing changed embeds nothing.

    One batch of `embed_batches` (the Dagster partition path: one batch per run).
    """
    return embed_batches(store, version, [batch_id], batch_size=batch_size, write_rows=write_rows, progress=progress)[0]


@dataclass
class _BatchState:
    batch_id: str
    t0: float
    total: int
    todo: int
    stale: list[str]
    done: int = 0
    removed: int = 0
    encode_s: float = 0.0


def embed_batches(
    store: LanceStore,
    version: EmbedVersion,
    batch_ids: list[str],
    *,
    batch_size: int = 32,
    write_rows: int = 1024,
    window: int = 2048,
    progress=None,
    on_batch=None,
) -> list[EmbedResult]:
    """Embed what is missing for several batches under one version, in batch order.

    - Plan per batch (`plan_embedding`: chunk_id + content sha256), so a re-run embeds only
      what is missing and a re-run with nothing changed embeds nothing.
    - Encode in windows of at most `window` texts spanning consecutive batches: one
      token-length-sorted stream of `batch_size` mini-batches per window (less padding than
      encoding each batch on its own). Memory stays bounded: at most two windows of texts and
      vectors are held (the one being encoded and the one being written).
    - Write per ingest batch, in batch order, on a writer thread: a window's vectors are
      appended (groups of `write_rows`, never mixing batches) while the model encodes the next
      window, so I/O hides behind the model. Stale vectors of a batch are deleted before its
      new ones are appended. Every table mutation happens on the writer thread, one at a time.
    - The writer runs at most one item ahead of what the caller has been told: `progress(done,
      total, elapsed)` (per batch, after each written group) and `on_batch(EmbedResult)` (once
      the batch's last item is written) are called on the calling thread, and only for writes
      that are on disk. A kill at any point loses at most the window in flight.
    """
    from .embedding import encode

    schema = embeddings_schema(version.dims, {"embed_version": version.name, "model_name": version.model_name, "weights_fingerprint": version.weights_fingerprint})
    store.ensure_table(version.table, schema)
    window = max(int(window), 1)
    write_rows = max(int(write_rows), 1)

    work: queue.Queue = queue.Queue()  # (state index, kind, payload, last item of the batch)
    acks: queue.Queue = queue.Queue()  # (state index, kind, rows, last, error)
    go = threading.Semaphore(0)
    draining = threading.Event()

    failed = threading.Event()

    def writer():
        while (item := work.get()) is not None:
            i, kind, payload, last = item
            if failed.is_set():  # after a failed write nothing else is written (no append without its delete)
                continue
            try:
                n = 0
                if kind == "delete":
                    n = store.delete_ids(version.table, "chunk_id", payload)
                elif kind == "append":
                    store.append(version.table, schema, payload)
                    n = payload.num_rows
                acks.put((i, kind, n, last, None))
            except BaseException as exc:  # surfaced in the calling thread
                acks.put((i, kind, 0, last, exc))
                failed.set()
                draining.set()
            if not draining.is_set():
                go.acquire()  # stay at most one item ahead of the caller
        acks.put(None)

    states: list[_BatchState] = []
    results: list[EmbedResult] = []
    outstanding = 0

    def handle(ack) -> None:
        nonlocal outstanding
        outstanding -= 1
        i, kind, n, last, err = ack
        if err is not None:
            raise err
        st = states[i]
        if kind == "delete":
            st.removed = n
        elif kind == "append":
            st.done += n
            if progress:
                progress(st.done, st.todo, time.perf_counter() - st.t0)
        if last:
            r = EmbedResult(version.name, st.batch_id, st.total, st.todo, st.total - st.todo, st.removed, time.perf_counter() - st.t0, st.encode_s)
            results.append(r)
            if on_batch is not None:
                on_batch(r)

    def pump(block: bool = False) -> None:
        while outstanding > 0:
            try:
                ack = acks.get(block=block)
            except queue.Empty:
                return
            try:
                handle(ack)
            finally:
                if not draining.is_set():
                    go.release()

    def put(item) -> None:
        nonlocal outstanding
        outstanding += 1
        work.put(item)

    # The window being assembled: ordered batch indices, text slices, whether each batch ends here.
    parts: list[tuple[int, pa.Table]] = []
    win_batches: list[int] = []
    ends: set[int] = set()
    win_rows = 0

    def flush() -> None:
        nonlocal parts, win_batches, ends, win_rows
        vecs = None
        if win_rows:
            texts = [t for _, p in parts for t in p["text"].to_pylist()]
            te = time.perf_counter()
            vecs = encode(version.model, texts, batch_size=batch_size, on_step=pump)
            spent = time.perf_counter() - te
            if vecs.shape[1] != version.dims:
                raise ValueError(f"model produced {vecs.shape[1]} dims, version {version.name} declares {version.dims}")
        pump(block=True)  # the previous window is written: at most two windows in memory
        offset = 0
        by_batch: dict[int, list[pa.Table]] = {}
        for i, p in parts:
            v = vecs[offset:offset + p.num_rows]
            offset += p.num_rows
            states[i].encode_s += spent * p.num_rows / win_rows
            now = datetime.now(timezone.utc)
            by_batch.setdefault(i, []).append(
                pa.table(
                    {
                        "chunk_id": p["chunk_id"], "doc_id": p["doc_id"], "batch_id": pa.array([states[i].batch_id] * p.num_rows, pa.string()),
                        "content_sha256": p["content_sha256"],
                        "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1), pa.float32()), version.dims),
                        "embedded_at": pa.array([now] * p.num_rows, pa.timestamp("us", tz="UTC")),
                    }
                )
            )
        for i in win_batches:
            items: list[tuple[str, object]] = []
            if states[i].stale:
                items.append(("delete", states[i].stale))
                states[i].stale = []
            for tbl in by_batch.get(i, []):
                items += [("append", tbl.slice(s, write_rows)) for s in range(0, tbl.num_rows, write_rows)]
            if i in ends:
                items.append(("done", None))
            for k, (kind, payload) in enumerate(items):
                put((i, kind, payload, i in ends and k == len(items) - 1))
        parts, win_batches, ends, win_rows = [], [], set(), 0
        pump()

    th = threading.Thread(target=writer, name=f"embed-writer-{version.name}", daemon=True)
    th.start()
    ok = False
    try:
        for batch_id in batch_ids:
            t_b = time.perf_counter()
            todo, stale, total = plan_embedding(store, version, batch_id)
            states.append(_BatchState(batch_id, t_b, total, todo.num_rows, stale))
            i = len(states) - 1
            todo = todo.select(["chunk_id", "doc_id", "content_sha256", "text"])
            win_batches.append(i)
            offset = 0
            while True:
                take = min(window - win_rows, todo.num_rows - offset)
                if take > 0:
                    parts.append((i, todo.slice(offset, take)))
                    offset += take
                    win_rows += take
                if offset >= todo.num_rows:
                    ends.add(i)
                if win_rows >= window:
                    flush()
                    if offset < todo.num_rows:
                        win_batches.append(i)
                        continue
                break
        flush()
        pump(block=True)
        ok = True
    finally:
        if not ok:
            draining.set()
            go.release()
        work.put(None)
        if ok:
            th.join()
        else:
            th.join(timeout=60)  # finish writing what is already encoded, then give up
    store.ensure_indices(version.table)
    return results


def search(store: LanceStore, version: EmbedVersion, query: str, k: int = 5) -> list[dict]:
    """Nearest chunks to `query` in one version's table only (never scans another version)."""
    from .embedding import encode

    vec = encode(version.model, [query])[0]
    hits = store.open(version.table).search(np.asarray(vec)).metric("cosine" if version.normalize else "l2").limit(k).select(["chunk_id", "doc_id", "_distance"]).to_list()
    if not hits:
        return []
    ids = [h["chunk_id"] for h in hits]
    from .ids import in_filter

    texts = {r["chunk_id"]: r["text"] for r in store.scan(CHUNKS, ["chunk_id", "text"], filter=in_filter("chunk_id", ids)).to_pylist()}
    return [{"chunk_id": h["chunk_id"], "doc_id": h["doc_id"], "distance": float(h["_distance"]), "text": texts.get(h["chunk_id"], ""), "embed_version": version.name} for h in hits]


@dataclass
class IngestAllResult:
    batches: list[str] = field(default_factory=list)
    documents: int = 0
    chunks: int = 0
    embedded: int = 0
    quarantined: int = 0
    deferred: int = 0
    replaced: int = 0


def ingest_all(settings, *, scrubber=None, now: datetime | None = None, embed: bool = True) -> IngestAllResult:
    """Ingest everything pending in the landing zone without Dagster (tests, benchmarks).

    Same plain functions as the assets: batches planned like the sensor, manifest in the
    ledger, documents -> chunks -> vectors under the active version.
    """
    import time as _time

    from .landing import plan_batches
    from .pii import get_scrubber
    from .versions import VersionRegistry, ensure_bootstrap_version
    from ..settings import bundled_model_path

    from .context import as_governance

    gov = as_governance(settings)
    store, ledger = gov.store, gov.ledger
    active = ensure_bootstrap_version(VersionRegistry(ledger), settings.model_path or bundled_model_path())
    scrubber = scrubber or get_scrubber(settings.pii_operators or None)
    salt = gov.salt
    scan = plan_batches(settings.landing_dir, None, now_ns=_time.time_ns(), settle_seconds=0, already_batched=ledger.already_batched)
    out = IngestAllResult()
    for batch_id, files in sorted(scan.batches.items()):
        ledger.record_batch(batch_id, files, scan.mtimes_ns)
        r = ingest_documents(
            store, ledger, landing_dir=settings.landing_dir, quarantine_dir=settings.quarantine_dir, batch_id=batch_id,
            files=files, max_file_bytes=settings.max_file_bytes, scrubber=scrubber, now=now, subject_salt=salt,
        )
        c = chunk_documents(store, batch_id, active.spec.chunker)
        out.batches.append(batch_id)
        out.documents += r.documents
        out.quarantined += len(r.quarantined)
        out.deferred += len(r.deferred)
        out.replaced += len(r.replaced)
        out.chunks += c.chunks
        if embed:
            out.embedded += embed_batch(store, active, batch_id, batch_size=settings.embed_batch_size).embedded
    return out
