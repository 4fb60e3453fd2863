"""Orphan detection and safe cleanup across documents, chunks, every embed_version,
the landing zone and the `ingest_batches` dynamic partitions.

Plain module (no Dagster). It compares the stores themselves (LanceDB tables, the
landing-zone listing, the list of partition keys), never a ledger of what should be
there. Only id, hash and batch columns are read, streamed with `store.scan_batches`;
chunks are kept as compact fixed-width keys (numpy), and every kind is a vectorised
anti- or semi-join (sorted 64-bit keys confirmed on the full bytes, so exact). Vectors
and text are never read; subject_id only when the erasure denylist is not empty.

Kinds (each counted separately; see `KINDS`):

cleanable (cleanup fixes them; the asset check fails while any is non-zero)
  chunk_without_document          chunks row whose doc_id is not in documents -> deleted
  vector_of_orphan_chunk          vector (any version) of such a chunk -> deleted (the cascade)
  vector_without_chunk            vector (any version, retired included) whose chunk_id is not in chunks -> deleted
  vector_stale                    vector whose content_sha256 differs from its chunk's -> deleted
                                  (re-running embed_batch for the batch re-embeds the chunk)
  landing_never_ingested          data file in the landing zone, older than the grace period,
                                  that no document references and that is not quarantined ->
                                  moved to quarantine with reason `never_ingested` (not deleted:
                                  it is an upload; dropping it again re-ingests it)
  partition_without_data          ingest_batches key with no document and no surviving chunk ->
                                  instance.delete_dynamic_partition
  data_without_partition          surviving row whose batch_id is not a partition key -> the key
                                  is re-added (non-destructive: the data becomes visible to
                                  Dagster, retention and erasure again)

reported only (never changed by cleanup)
  document_without_chunks         a failed or partial ingest: re-chunking is the fix, and
                                  deleting the document would lose the only scrubbed copy
  document_without_active_vector  embedding is pending or failed: re-embedding is the fix
  document_landing_missing        the document's landing file or sidecar is gone
  denylisted_subject_data         rows of a subject on the erasure denylist (documents, chunks,
                                  vectors): removing them is an erasure, with its certificate
                                  and legal-hold checks, so the report points to `aisg erase`

"Surviving" means not deleted by this cleanup, so the report states exactly what a
cleanup will do and a second report after it is empty for every cleanable kind.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import events
from .ids import BATCH_ID_RE, in_filter, subject_hash
from .keyhash import mix64_words
from .landing import REASON_SUFFIX, SIDECAR_SUFFIX, Rejected, quarantine
from .markdown import md_table
from .store import CHUNKS, DOCUMENTS, LanceStore

LANDING = "landing"
PARTITIONS = "dagster:ingest_batches"
DEFAULT_GRACE_SECONDS = 3600.0
NEVER_INGESTED = "never_ingested"
SCAN_BATCH_ROWS = 65536  # rows per streamed batch (id/hash/batch columns only)
SCAN_OPTIONS = {"batch_readahead": 2, "fragment_readahead": 1, "io_buffer_size": 16 * 2**20}


@dataclass(frozen=True)
class KindInfo:
    name: str
    reported_only: bool
    description: str
    remedy: str


KINDS: dict[str, KindInfo] = {
    k.name: k
    for k in [
        KindInfo("chunk_without_document", False, "chunks whose document no longer exists", "deleted with their vectors in every version"),
        KindInfo("vector_of_orphan_chunk", False, "vectors (any version) of a chunk whose document is gone", "deleted (cascade of chunk_without_document)"),
        KindInfo("vector_without_chunk", False, "vectors (any version, retired included) whose chunk no longer exists", "deleted"),
        KindInfo("vector_stale", False, "vectors whose content hash differs from their chunk's", "deleted; re-embed the batch to restore"),
        KindInfo("landing_never_ingested", False, "landing files older than the grace period that no document references", "moved to quarantine (reason never_ingested)"),
        KindInfo("partition_without_data", False, "ingest_batches partition keys with no document and no chunk", "dynamic partition deleted"),
        KindInfo("data_without_partition", False, "rows whose batch_id is not an ingest_batches partition key", "partition key re-added"),
        KindInfo("document_without_chunks", True, "documents with no chunks (failed or partial ingest)", "reported only: re-materialise chunks for the batch"),
        KindInfo("document_without_active_vector", True, "documents with no valid vector in the active version", "reported only: embed the batch under the active version"),
        KindInfo("document_landing_missing", True, "documents whose landing file or sidecar is gone", "reported only: never auto-deleted"),
        KindInfo("denylisted_subject_data", True, "rows of a subject on the erasure denylist", "reported only: run `aisg erase` (an erasure, not orphan cleanup)"),
    ]
}
CLEANABLE = [k for k, v in KINDS.items() if not v.reported_only]
REPORTED_ONLY = [k for k, v in KINDS.items() if v.reported_only]


class PartitionOps(Protocol):
    """The Dagster side of partitions, given by the caller (plain code never imports Dagster)."""

    def delete(self, key: str) -> None: ...

    def add(self, keys: Sequence[str]) -> None: ...


@dataclass
class OrphanScope:
    """Where to look. Build it with `from_settings` (a Settings or the runtime context)."""

    store: LanceStore
    landing_dir: Path
    quarantine_dir: Path
    exports_dir: Path
    active_version: str | None = None
    denylisted_hashes: set[str] = field(default_factory=set)
    salt_loader: Callable[[], bytes] | None = None
    grace_seconds: float = DEFAULT_GRACE_SECONDS

    @classmethod
    def from_settings(cls, settings, *, ledger=None, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> OrphanScope:
        """`settings`: a Settings or the runtime context (`Governance`), whose store, ledger
        and salt (read only when the denylist is not empty) are used."""
        from .context import as_governance
        from .versions import VersionRegistry

        gov = as_governance(settings)
        led = ledger or gov.ledger
        active = VersionRegistry(led).active()

        return cls(
            store=gov.store,
            landing_dir=Path(settings.landing_dir),
            quarantine_dir=Path(settings.quarantine_dir),
            exports_dir=Path(settings.exports_dir),
            active_version=active.name if active else None,
            denylisted_hashes=led.denylisted_subject_hashes(),
            salt_loader=lambda: gov.salt,
            grace_seconds=grace_seconds,
        )


@dataclass
class OrphanReport:
    """Exact orphans per kind: {kind: {table or store: sorted ids}}."""

    items: dict[str, dict[str, list[str]]]
    checked: dict[str, bool]
    active_version: str | None
    embedding_tables: list[str]
    generated_at: str
    seconds: float
    rows_scanned: dict[str, int] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        return {k: sum(len(v) for v in self.items.get(k, {}).values()) for k in KINDS}

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def cleanable_total(self) -> int:
        c = self.counts
        return sum(c[k] for k in CLEANABLE)

    def ids(self, kind: str, where: str | None = None) -> list[str]:
        by = self.items.get(kind, {})
        if where is not None:
            return list(by.get(where, []))
        return sorted({i for v in by.values() for i in v})

    def samples(self, n: int = 5) -> dict[str, list[str]]:
        return {k: [f"{w}:{i}" for w, ids in sorted(by.items()) for i in ids][:n] for k, by in self.items.items() if any(by.values())}

    def rows(self) -> Iterable[tuple[str, str, str, str]]:
        """(kind, store, table, id) for every orphan, in a stable order."""
        for kind in KINDS:
            for where, ids in sorted(self.items.get(kind, {}).items()):
                store = "landing" if where == LANDING else "dagster" if where == PARTITIONS else "lancedb"
                for i in ids:
                    yield kind, store, where, i

    def markdown(self) -> str:
        c = self.counts
        rows = []
        for k, info in KINDS.items():
            where = ", ".join(f"{w}: {len(ids)}" for w, ids in sorted(self.items.get(k, {}).items()) if ids) or "-"
            shown = str(c[k]) if self.checked.get(k, True) else "not checked"
            rows.append((k, shown, "reported only" if info.reported_only else info.remedy, where))
        return md_table(["kind", "count", "cleanup", "where"], rows)

    def write_csv(self, exports_dir: Path) -> Path:
        out_dir = Path(exports_dir) / "orphans"
        out_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        path = out_dir / f"{stamp}.csv"
        tmp = path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["kind", "store", "table", "id"])
            w.writerows(self.rows())
        os.replace(tmp, path)
        return path


# -- reading the stores ------------------------------------------------------------------
def _batches(store: LanceStore, name: str, columns: Sequence[str], ds=None) -> Iterator[pa.RecordBatch]:
    """Only `columns` (id/hash/batch) of `name`, streamed from a fresh lance dataset handle
    (as `store.scan_batches` does) with a short read-ahead: the scanner's default read-ahead
    (several fragments, 16 batches) holds ~40 MiB more and is no faster on 2 cores."""
    if ds is None:
        if not store.has_table(name):
            return iter(())
        ds = store.dataset(name)
    return ds.to_batches(columns=list(columns), batch_size=SCAN_BATCH_ROWS, **SCAN_OPTIONS)


def _read_small(store: LanceStore, name: str, columns: Sequence[str]) -> pa.Table:
    """A whole (small) table's id columns, e.g. documents: one row per document, not per chunk."""
    schema = pa.schema([(c, pa.string()) for c in columns])
    batches = [b.select(list(columns)) for b in _batches(store, name, columns) if b.num_rows]
    if not batches:
        return schema.empty_table()
    return pa.Table.from_batches(batches).combine_chunks()


def scan_landing(landing_dir: Path) -> pa.Table:
    """Every file in the landing zone: rel_path, is_sidecar, mtime_ns (one scandir walk)."""
    paths: list[str] = []
    sidecar: list[bool] = []
    mtimes: list[int] = []
    root = Path(landing_dir)
    if root.exists():
        stack = [(str(root), "")]
        while stack:
            d, prefix = stack.pop()
            try:
                it = os.scandir(d)
            except FileNotFoundError:
                continue
            with it:
                for e in it:
                    rel = prefix + e.name
                    if e.is_dir(follow_symlinks=False):
                        stack.append((e.path, rel + "/"))
                        continue
                    name = e.name
                    if name.startswith(".") or name.endswith(REASON_SUFFIX):
                        continue
                    try:
                        m = e.stat(follow_symlinks=False).st_mtime_ns
                    except FileNotFoundError:
                        continue
                    paths.append(rel)
                    sidecar.append(name.endswith(SIDECAR_SUFFIX))
                    mtimes.append(m)
    return pa.table({"rel_path": pa.array(paths, pa.string()), "is_sidecar": pa.array(sidecar, pa.bool_()), "mtime_ns": pa.array(mtimes, pa.int64())})


# -- compact exact keys --------------------------------------------------------------------
# Ids and hashes are fixed-width ASCII in practice (chunk_id: 32 hex chars, content_sha256:
# 64), so a column is kept as a numpy `S<width>` array that is a plain copy of the Arrow
# data buffer (no per-string offsets or objects), and looked up through a sorted 64-bit
# mix of those bytes. Every hit is confirmed by comparing the full bytes, and equal 64-bit
# keys are walked one by one, so results are exact; the 64-bit key only makes it fast.
# Columns that are not fixed-width (nulls, mixed lengths) take an exact Arrow/Python path.


def _fixed(arr: pa.Array) -> np.ndarray | None:
    """`arr` as a zero-copy numpy `S<w>` view when every value is non-null and w bytes long."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    n = len(arr)
    if n == 0 or arr.null_count or not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) or pa.types.is_binary(arr.type)):
        return None
    off_t = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(arr.buffers()[1], dtype=off_t, count=arr.offset + n + 1)[arr.offset :]
    width = int(offsets[1] - offsets[0])
    if width == 0 or int(offsets[-1] - offsets[0]) != width * n or not np.all(np.diff(offsets) == width):
        return None
    start = int(offsets[0])
    return np.frombuffer(arr.buffers()[2], dtype=np.uint8, count=start + width * n)[start:].view(f"S{width}")


def _pybytes(arr) -> list:
    """Exact fallback representation: bytes (or None) per value."""
    if isinstance(arr, list):  # already converted
        return arr
    if isinstance(arr, np.ndarray):
        return [bytes(x) for x in arr] if arr.dtype.kind == "S" else list(arr)
    return [None if s is None else (s.encode() if isinstance(s, str) else bytes(s)) for s in arr.to_pylist()]


def _mix64(fixed: np.ndarray) -> np.ndarray:
    """A 64-bit mix of each fixed-width value (a lookup key, never trusted alone)."""
    n, width = len(fixed), fixed.dtype.itemsize
    words = -(-width // 8)
    raw = np.zeros((n, words * 8), dtype=np.uint8)
    raw[:, :width] = fixed.view(np.uint8).reshape(n, width)
    cols = raw.view("<u8")
    return mix64_words([cols[:, j] for j in range(words)], width)


class _Keys:
    """Exact position lookup of string values in a column (first position of equal values)."""

    def __init__(self, parts: list[np.ndarray | list]):
        widths = {p.dtype for p in parts if isinstance(p, np.ndarray)}
        self.n = sum(len(p) for p in parts)
        if all(isinstance(p, np.ndarray) for p in parts) and len(widths) <= 1:
            self.dtype = widths.pop() if widths else np.dtype("S1")
            vals = parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.empty(0, self.dtype)
            h = _mix64(vals)
            self.order = np.argsort(h, kind="stable")
            self.h = h[self.order]
            self.vals = vals[self.order]
            del vals, h
            self.dup = bool(len(self.h) > 1 and np.any(self.h[1:] == self.h[:-1]))
            self.pos: dict | None = None
        else:
            self.dtype = None
            self.pos = {}
            i = 0
            for p in parts:
                for v in _pybytes(p):
                    if v is not None:
                        self.pos.setdefault(v, i)
                    i += 1

    def lookup(self, arr: pa.Array) -> np.ndarray:
        """int64 position of each value of `arr` in the column, -1 when absent (or null)."""
        if self.n == 0:
            return np.full(len(arr), -1, np.int64)
        q = _fixed(arr)
        if self.pos is not None:
            return np.fromiter((self.pos.get(v, -1) if v is not None else -1 for v in _pybytes(q if q is not None else arr)), np.int64, len(arr))
        if q is None or q.dtype != self.dtype:
            # not this column's width: only the values of exactly that width can be present
            vals = _pybytes(arr)
            width = self.dtype.itemsize
            out = np.full(len(vals), -1, np.int64)
            sel = [i for i, v in enumerate(vals) if v is not None and len(v) == width]
            if sel:
                out[sel] = self.lookup(pa.array([vals[i] for i in sel], pa.binary()))
            return out
        out = np.full(len(q), -1, np.int64)
        if self.n == 0:
            return out
        qh = _mix64(q)
        p = np.minimum(np.searchsorted(self.h, qh), self.n - 1)
        same_key = self.h[p] == qh
        hit = same_key & (self.vals[p] == q)
        out[hit] = self.order[p[hit]]
        if self.dup:  # equal 64-bit keys of different values: walk the run (practically never)
            for i in np.flatnonzero(same_key & ~hit):
                j = int(p[i]) + 1
                while j < self.n and self.h[j] == qh[i]:
                    if self.vals[j] == q[i]:
                        out[i] = self.order[j]
                        break
                    j += 1
        return out


class _Column:
    """A per-row column kept compactly: one `S<w>` array, or bytes objects as the fallback."""

    def __init__(self, parts: list[np.ndarray | list]):
        dtypes = {p.dtype for p in parts if isinstance(p, np.ndarray)}
        if all(isinstance(p, np.ndarray) for p in parts) and len(dtypes) <= 1:
            self.values = parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.empty(0, "S1")
        else:
            self.values = np.array([v for p in parts for v in _pybytes(p)] or [], dtype=object)

    def differs(self, pos: np.ndarray, arr: pa.Array) -> np.ndarray:
        """Row-wise `self[pos] IS DISTINCT FROM arr` (null equals null)."""
        mine = self.values[pos]
        q = _fixed(arr)
        if q is not None and mine.dtype == q.dtype:
            return mine != q
        theirs = _pybytes(q if q is not None else arr)
        return np.fromiter((a != b for a, b in zip(_pybytes(mine), theirs)), bool, len(theirs))


def _part(arr: pa.Array) -> np.ndarray | list:
    """One batch of a column, copied out of the Arrow batch (so the batch can be freed)."""
    f = _fixed(arr)
    return f.copy() if f is not None else _pybytes(arr)


class _Filler:
    """Collects a streamed column into one array allocated up front for `n` rows (no
    per-batch parts to concatenate, so no second copy); falls back to bytes objects when a
    batch is not fixed-width or not the same width."""

    def __init__(self, n: int):
        self.n, self.i = n, 0
        self.arr: np.ndarray | None = None
        self.fallback: list | None = None

    def add(self, arr: pa.Array) -> None:
        f, m = _fixed(arr), len(arr)
        if self.fallback is None and f is not None and (self.arr is None or f.dtype == self.arr.dtype) and self.i + m <= self.n:
            if self.arr is None:
                self.arr = np.empty(self.n, f.dtype)
            self.arr[self.i : self.i + m] = f
        else:
            if self.fallback is None:
                self.fallback = _pybytes(self.arr[: self.i]) if self.arr is not None else [None] * self.i
                self.arr = None
            self.fallback += _pybytes(f if f is not None else arr)
        self.i += m

    def parts(self) -> list:
        if self.fallback is not None:
            return [self.fallback]
        return [self.arr[: self.i]] if self.arr is not None else []


def _as_ids(arr: pa.Array, mask: np.ndarray) -> list[str]:
    if not mask.any():
        return []
    return [i for i in arr.filter(pa.array(mask)).to_pylist() if i is not None]


def _not_in(arr: pa.Array, values: pa.Array) -> np.ndarray:
    """Rows whose value is null or not in `values` (SQL `x IS NULL OR x NOT IN values`)."""
    return ~pc.fill_null(pc.is_in(arr, value_set=values), False).to_numpy(zero_copy_only=False)


def _release() -> None:
    pa.default_memory_pool().release_unused()


def detect_orphans(scope: OrphanScope, partition_keys: Sequence[str] | None = None, *, now: datetime | None = None) -> OrphanReport:
    """Find every orphan kind. `partition_keys` = the ingest_batches dynamic partition keys
    (from the Dagster instance); None skips the two partition kinds.

    Memory: documents are read whole (one row per document); chunks are streamed and only
    compact per-chunk state is kept (chunk_id and content_sha256 as fixed-width bytes, the
    row's document position, two flags, a sorted 64-bit key); vectors are streamed and
    joined against that state batch by batch. subject_id is read only when the erasure
    denylist is not empty.
    """
    t0 = time.perf_counter()
    store = scope.store
    now_ns = int((now or datetime.now(timezone.utc)).timestamp() * 1e9)
    items: dict[str, dict[str, list[str]]] = {k: {} for k in KINDS}
    scanned: dict[str, int] = {}
    check_deny = bool(scope.denylisted_hashes)
    salt: bytes | None = None
    if check_deny:
        salt = scope.salt_loader() if scope.salt_loader else None
        if salt is None:
            raise RuntimeError("the erasure denylist is not empty but no salt is available to hash subject ids")
    subj_col = ["subject_id"] if check_deny else []

    # denylisted subjects: each distinct subject id is hashed once with the salt
    subject_denied: dict[str, bool] = {}

    def denied_mask(subjects: pa.Array) -> np.ndarray:
        for s in pc.unique(subjects).to_pylist():
            if s is not None and s not in subject_denied:
                subject_denied[s] = subject_hash(s, salt) in scope.denylisted_hashes
        deny = pa.array(sorted(s for s, d in subject_denied.items() if d), pa.string())
        return pc.fill_null(pc.is_in(subjects, value_set=deny), False).to_numpy(zero_copy_only=False)

    parts = pa.array(sorted(set(partition_keys)), pa.string()) if partition_keys is not None else None
    denied: dict[str, list[str]] = {}
    nopart: dict[str, list[str]] = {}

    # documents: small (one row per document), read whole
    docs = _read_small(store, DOCUMENTS, ["doc_id", "batch_id", "file_path"] + subj_col)
    n_docs = scanned[DOCUMENTS] = docs.num_rows
    doc_keys = docs.column("doc_id").combine_chunks()
    doc_index = _Keys([_part(doc_keys)] if n_docs else [])
    doc_first = doc_index.lookup(doc_keys)  # a repeated doc_id is judged by its first row
    doc_first = np.where(doc_first < 0, np.arange(n_docs), doc_first)
    if check_deny:
        denied[DOCUMENTS] = _as_ids(doc_keys, denied_mask(docs.column("subject_id").combine_chunks()))
    if parts is not None:
        nopart[DOCUMENTS] = _as_ids(doc_keys, _not_in(docs.column("batch_id").combine_chunks(), parts))

    # chunks: streamed; kept per chunk row: chunk_id, content_sha256, document position, flags
    chunks_ds = store.dataset(CHUNKS) if store.has_table(CHUNKS) else None
    expect = chunks_ds.count_rows() if chunks_ds is not None else 0  # same version as the scan
    ids_in, sha_in = _Filler(expect), _Filler(expect)
    doc_pos_parts: list[np.ndarray] = []
    deny_parts: list[np.ndarray] = []
    doc_has_chunk = np.zeros(n_docs, bool)
    live_batches: set[str] = set()
    orphan_chunks: list[str] = []
    denied_chunks: list[str] = []
    nopart_chunks: list[str] = []
    n_chunks = 0
    for b in _batches(store, CHUNKS, ["chunk_id", "doc_id", "batch_id", "content_sha256"] + subj_col, chunks_ds) if chunks_ds is not None else ():
        if not b.num_rows:
            continue
        n_chunks += b.num_rows
        cid = b.column("chunk_id")
        dpos = doc_index.lookup(b.column("doc_id"))
        orphan = dpos < 0
        doc_has_chunk[dpos[~orphan]] = True
        orphan_chunks += _as_ids(cid, orphan)
        live = pa.array(~orphan)
        live_batches.update(pc.unique(b.column("batch_id").filter(live)).to_pylist())
        if parts is not None:
            nopart_chunks += _as_ids(cid, ~orphan & _not_in(b.column("batch_id"), parts))
        if check_deny:
            dm = denied_mask(b.column("subject_id"))
            denied_chunks += _as_ids(cid, dm)
            deny_parts.append(dm)
        ids_in.add(cid)
        sha_in.add(b.column("content_sha256"))
        doc_pos_parts.append(dpos.astype(np.int32))
        del b, cid, live
    scanned[CHUNKS] = n_chunks
    chunk_index = _Keys(ids_in.parts())
    del ids_in
    chunk_sha = _Column(sha_in.parts())
    del sha_in
    chunk_doc = np.concatenate(doc_pos_parts) if doc_pos_parts else np.empty(0, np.int32)
    chunk_denied = np.concatenate(deny_parts) if deny_parts else np.zeros(n_chunks, bool)
    del doc_pos_parts, deny_parts
    _release()
    items["chunk_without_document"] = {CHUNKS: orphan_chunks}
    items["document_without_chunks"] = {DOCUMENTS: _as_ids(doc_keys, ~doc_has_chunk[doc_first])}
    if check_deny:
        denied[CHUNKS] = denied_chunks
    if parts is not None:
        nopart[CHUNKS] = nopart_chunks
        present = live_batches | set(docs.column("batch_id").to_pylist())
        items["partition_without_data"] = {PARTITIONS: [k for k in parts.to_pylist() if k not in present]}

    # every embeddings table, retired versions included: id/hash/batch columns, streamed
    emb_tables = store.embedding_tables()
    active_table = emb_tables.get(scope.active_version) if scope.active_version else None
    doc_has_active = np.zeros(n_docs, bool)
    for version, table in sorted(emb_tables.items()):
        n_vec = 0
        found: dict[str, list[str]] = {"vector_without_chunk": [], "vector_of_orphan_chunk": [], "vector_stale": []}
        for b in _batches(store, table, ["chunk_id", "content_sha256", "batch_id"]):
            if not b.num_rows:
                continue
            n_vec += b.num_rows
            cid = b.column("chunk_id")
            pos = chunk_index.lookup(cid)
            missing = pos < 0
            at = np.where(missing, 0, pos)
            dpos = chunk_doc[at] if n_chunks else np.full(len(pos), -1, np.int32)
            of_orphan = ~missing & (dpos < 0)
            stale = ~missing & ~of_orphan
            if stale.any():
                stale[stale] = chunk_sha.differs(pos[stale], b.column("content_sha256").filter(pa.array(stale)))
            valid = ~missing & ~of_orphan & ~stale
            found["vector_without_chunk"] += _as_ids(cid, missing)
            found["vector_of_orphan_chunk"] += _as_ids(cid, of_orphan)
            found["vector_stale"] += _as_ids(cid, stale)
            if parts is not None:
                nopart.setdefault(table, []).extend(_as_ids(cid, valid & _not_in(b.column("batch_id"), parts)))
            if check_deny and n_chunks:
                denied.setdefault(table, []).extend(_as_ids(cid, ~missing & chunk_denied[at]))
            if table == active_table:
                doc_has_active[dpos[valid]] = True
            del b, cid
        scanned[table] = n_vec
        for kind, ids in found.items():
            items[kind][table] = ids
        _release()
    del chunk_index, chunk_sha, chunk_doc, chunk_denied
    items["document_without_active_vector"] = {DOCUMENTS: _as_ids(doc_keys, ~doc_has_active[doc_first])}
    items["data_without_partition"] = nopart
    items["denylisted_subject_data"] = denied

    # landing zone: the directory listing against documents.file_path
    land = scan_landing(scope.landing_dir)
    scanned[LANDING] = land.num_rows
    cutoff = now_ns - int(scope.grace_seconds * 1e9)
    file_path = docs.column("file_path").combine_chunks()
    referenced = pc.drop_null(file_path)
    is_sidecar = land.column("is_sidecar").to_numpy()
    rel = land.column("rel_path").combine_chunks()
    old = (land.column("mtime_ns").to_numpy() < cutoff) if land.num_rows else np.zeros(0, bool)
    cand = _as_ids(rel, ~is_sidecar & old & _not_in(rel, referenced))
    # a file with a reason file in quarantine was quarantined (a killed move left a copy)
    items["landing_never_ingested"] = {LANDING: [p for p in cand if not (scope.quarantine_dir / (p + REASON_SUFFIX)).exists()]}
    data_files = rel.filter(pa.array(~is_sidecar))
    sidecars = rel.filter(pa.array(is_sidecar))
    with_suffix = pc.binary_join_element_wise(file_path, pa.scalar(SIDECAR_SUFFIX), "")
    items["document_landing_missing"] = {DOCUMENTS: _as_ids(doc_keys, _not_in(file_path, data_files) | _not_in(with_suffix, sidecars))}

    checked = {k: True for k in KINDS}
    if partition_keys is None:
        checked["partition_without_data"] = checked["data_without_partition"] = False
    items = {k: {w: sorted(set(ids)) for w, ids in v.items() if ids} for k, v in items.items()}
    return OrphanReport(
        items=items, checked=checked, active_version=scope.active_version, embedding_tables=sorted(emb_tables.values()),
        generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), seconds=time.perf_counter() - t0, rows_scanned=scanned,
    )


# -- cleanup ------------------------------------------------------------------------------
CLEANUP_STEPS = ("vectors", "chunks", "landing", "purge", "partitions", "audit")


@dataclass
class CleanupResult:
    dry_run: bool
    report: OrphanReport
    deleted: dict[str, int] = field(default_factory=dict)  # per cleanable kind: done (or would be, on a dry run)
    rows_deleted: dict[str, int] = field(default_factory=dict)  # per LanceDB table, measured
    skipped: dict[str, int] = field(default_factory=dict)  # candidates re-checked and kept
    purge: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.deleted.values())

    def markdown(self) -> str:
        verb = "would clean" if self.dry_run else "cleaned"
        return md_table(["kind", verb], [(k, self.deleted.get(k, 0)) for k in CLEANABLE])


def _still_orphan_chunks(store: LanceStore, chunk_ids: Sequence[str]) -> list[str]:
    """Re-check just before deleting: keep only chunks whose document is still missing
    (a document re-ingested since the report keeps its chunks). Filters hold our hex ids."""
    from .ids import batched

    out: list[str] = []
    for part in batched(sorted(chunk_ids), 1000):
        rows = store.scan(CHUNKS, ["chunk_id", "doc_id"], filter=in_filter("chunk_id", part)).to_pylist()
        doc_ids = sorted({r["doc_id"] for r in rows if r["doc_id"] is not None})
        present: set[str] = set()
        for dpart in batched(doc_ids, 1000):
            present |= set(store.scan(DOCUMENTS, ["doc_id"], filter=in_filter("doc_id", dpart))["doc_id"].to_pylist())
        out += [r["chunk_id"] for r in rows if r["doc_id"] not in present]
    return out


def cleanup_orphans(
    scope: OrphanScope,
    report: OrphanReport,
    *,
    dry_run: bool = True,
    partitions: PartitionOps | None = None,
    ledger=None,
    actor: str = "aisg_pipelines",
    on_step: Callable[[str], None] | None = None,
) -> CleanupResult:
    """Clean the cleanable kinds of `report` (reported-only kinds are never touched).

    Steps, each idempotent, so a killed run re-detects and converges: vectors (every
    version) -> chunks -> landing files to quarantine -> the shared physical purge of the
    touched tables -> partitions (delete empty keys, re-add missing ones) -> one audit
    event `orphans.cleanup` per kind. A dry run only counts.
    """
    t0 = time.perf_counter()
    store = scope.store
    res = CleanupResult(dry_run=dry_run, report=report)
    counts = report.counts
    res.deleted = {k: counts[k] for k in CLEANABLE}
    step = on_step or (lambda _name: None)
    if not dry_run:
        if ledger is None:
            raise ValueError("cleanup_orphans deletes through the cascade, which records its intent and result in the ledger: pass ledger=")
        from . import cascade

        # a cleanup killed inside its cascade left an open intent: complete it first
        for done in cascade.resume_open(store, ledger, causes=["orphan_cleanup"]):
            for t, n in done.rows.items():
                res.rows_deleted[t] = res.rows_deleted.get(t, 0) + n
        step("vectors")
        vectors: dict[str, dict[str, list[str]]] = {}
        for table in report.embedding_tables:
            ids = sorted(
                set(report.ids("vector_without_chunk", table)) | set(report.ids("vector_of_orphan_chunk", table)) | set(report.ids("vector_stale", table))
            )
            if ids:
                vectors[table] = {"chunk_id": ids}
        step("chunks")
        keep: list[str] = []
        cands = report.ids("chunk_without_document", CHUNKS)
        if cands:
            keep = _still_orphan_chunks(store, cands)
            res.skipped["chunk_without_document"] = len(cands) - len(keep)
            res.deleted["chunk_without_document"] = len(keep)
        # one cascade: the orphan chunks with their vectors in every version, and the listed
        # vectors of each version (a stale vector of v2 is not a reason to touch v1)
        plan = cascade.plan_cascade(store, chunk_ids=keep, tables=vectors)
        touched: set[str] = set()
        if not plan.is_empty():
            cres = cascade.run_cascade(store, ledger, plan, cause="orphan_cleanup", actor=actor, purge=False)
            for t, n in cres.rows.items():
                if t in vectors or t == CHUNKS or n:
                    res.rows_deleted[t] = res.rows_deleted.get(t, 0) + n
                    touched.add(t)
        step("landing")
        moved = 0
        for rel in report.ids("landing_never_ingested", LANDING):
            src = scope.landing_dir / rel
            if not src.exists() and (scope.quarantine_dir / rel).exists():
                moved += 1  # moved by a killed previous run
                continue
            if not src.exists():
                continue
            quarantine(
                scope.landing_dir, scope.quarantine_dir, rel,
                Rejected(NEVER_INGESTED, f"in the landing zone for more than {scope.grace_seconds:.0f}s and no document references it; drop it again to ingest it"),
                batch_id="orphan-cleanup",
            )
            moved += 1
        res.deleted["landing_never_ingested"] = moved
        step("purge")
        if touched:
            pst = cascade.purge_tables(store, touched, include_dirty=False)
            res.purge = {"bytes_reclaimed": pst["bytes_reclaimed"], "versions_removed": pst["versions_removed"], "tables": sorted(pst["tables"])}
        step("partitions")
        if partitions is not None:
            for key in report.ids("partition_without_data", PARTITIONS):
                partitions.delete(key)
            missing = sorted(_missing_batches(store, report))
            if missing:
                partitions.add(missing)
        else:
            res.deleted["partition_without_data"] = res.deleted["data_without_partition"] = 0
    step("audit")
    if ledger is not None:
        for k in CLEANABLE:
            events.record(ledger, events.OrphansCleanup(kind=k, deleted=0 if dry_run else res.deleted[k], found=counts[k], dry_run=dry_run), actor=actor)
    res.seconds = time.perf_counter() - t0
    return res


def _missing_batches(store: LanceStore, report: OrphanReport) -> set[str]:
    """Valid batch ids of the data_without_partition rows (read back by our hex/doc ids)."""
    from .ids import batched

    out: set[str] = set()
    for where, ids in report.items.get("data_without_partition", {}).items():
        col = "doc_id" if where == DOCUMENTS else "chunk_id"
        for part in batched(ids, 1000):
            out |= {b for b in store.scan(where, ["batch_id"], filter=in_filter(col, part))["batch_id"].to_pylist() if b}
    return {b for b in out if BATCH_ID_RE.fullmatch(b)}


def audit_report(ledger, report: OrphanReport, csv_path: Path | None = None, actor: str = "aisg_pipelines") -> None:
    """`orphans.report` with the count per kind (the compliance report plots the trend)."""
    events.record(ledger, events.OrphansReport(
        counts=report.counts, total=report.total, cleanable_total=report.cleanable_total,
        checked={k: v for k, v in report.checked.items() if not v}, active_version=report.active_version,
        csv=csv_path.name if csv_path else None, seconds=round(report.seconds, 3),
    ), actor=actor)
