"""The vector store: LanceDB tables for documents, chunks and one table per embed_version.

Plain module (no Dagster). Everything that writes or deletes goes through here, so the
rules hold in one place:
- a batch is replaced atomically (one merge_insert: upsert by id + delete the batch's leftovers);
- deletes are by lists of our own ids through `ids.in_filter`, never raw request values;
- `purge()` is the one physical purge that retention, orphan cleanup and erasure share:
  a LanceDB delete only writes a deletion file, so the bytes stay in data files and old
  versions until compaction materialises deletions and old versions are cleaned up.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from .ids import VERSION_NAME_RE, batched, in_filter, require, sql_literal

DOCUMENTS = "documents"
CHUNKS = "chunks"
SYSTEM_LOGS = "system_logs"
METRICS = "metrics"
EMBEDDINGS_PREFIX = "embeddings_"

# Columns every deletion and join uses; each gets a BTREE scalar index.
ID_COLUMNS: dict[str, tuple[str, ...]] = {
    DOCUMENTS: ("doc_id", "batch_id"),
    CHUNKS: ("chunk_id", "doc_id", "batch_id"),
}
EMBEDDING_ID_COLUMNS = ("chunk_id", "batch_id")

TS = pa.timestamp("us", tz="UTC")

DOCUMENTS_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("subject_id", pa.string()),
        ("batch_id", pa.string()),
        ("category", pa.string()),
        ("source", pa.string()),
        ("uploaded_at", TS),
        ("legal_hold", pa.bool_()),
        ("file_path", pa.string()),  # relative to the landing zone
        ("file_sha256", pa.string()),
        ("media_type", pa.string()),
        ("text", pa.string()),  # PII-scrubbed; raw text never reaches LanceDB
        ("text_sha256", pa.string()),
        ("n_chars", pa.int32()),
        ("pii_counts", pa.string()),  # JSON {entity_type: count}
        ("pii_total", pa.int32()),
        ("ingested_at", TS),
    ]
)

CHUNKS_SCHEMA = pa.schema(
    [
        ("chunk_id", pa.string()),
        ("doc_id", pa.string()),
        ("subject_id", pa.string()),
        ("batch_id", pa.string()),
        ("chunk_index", pa.int32()),
        ("text", pa.string()),
        ("content_sha256", pa.string()),
        ("n_chars", pa.int32()),
        ("uploaded_at", TS),
    ]
)


def embeddings_schema(dims: int, meta: dict[str, str] | None = None) -> pa.Schema:
    return pa.schema(
        [
            ("chunk_id", pa.string()),
            ("doc_id", pa.string()),
            ("batch_id", pa.string()),
            ("content_sha256", pa.string()),
            ("vector", pa.list_(pa.float32(), dims)),
            ("embedded_at", TS),
        ],
        metadata={k.encode(): v.encode() for k, v in (meta or {}).items()},
    )


def embeddings_table(version: str) -> str:
    return EMBEDDINGS_PREFIX + require(VERSION_NAME_RE, version, "embed_version")


@dataclass
class PurgeStats:
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def bytes_reclaimed(self) -> int:
        return sum(t.get("bytes_removed", 0) for t in self.tables.values())

    @property
    def versions_removed(self) -> int:
        return sum(t.get("old_versions", 0) for t in self.tables.values())


# Ids per delete statement: each statement is one commit (a new version); 10,000 ids of a
# batch erasure went in 10 commits per table with 1,000, in 2 with 5,000 (same rows).
DELETE_BATCH_IDS = 5000

# Attempts of one commit that conflicts with concurrent writers (parallel backfill runs).
COMMIT_ATTEMPTS = 8

# A write that has not committed after this long was killed: its files are leftovers.
DEFAULT_UNVERIFIED_GRACE_SECONDS = 900.0


class LanceStore:
    def __init__(self, uri: str, storage_options: dict[str, str] | None = None, *, unverified_grace_seconds: float | None = None):
        self.uri = uri
        self.storage_options = storage_options or None
        self._db = None
        if unverified_grace_seconds is None:
            from ..settings import env_number

            unverified_grace_seconds = env_number("AISG_PURGE_UNVERIFIED_GRACE_SECONDS", DEFAULT_UNVERIFIED_GRACE_SECONDS, kind=float, minimum=0)
        self.unverified_grace_seconds = unverified_grace_seconds
        self.commit_retries = 0  # commits retried after a conflict with another writer (`_retry_commit`)

    # -- connection and tables ---------------------------------------------------------
    @property
    def db(self):
        if self._db is None:
            import lancedb

            if "://" not in self.uri:
                Path(self.uri).mkdir(parents=True, exist_ok=True)
            self._db = lancedb.connect(self.uri, storage_options=self.storage_options)
        return self._db

    def table_names(self) -> list[str]:
        names: list[str] = []
        page_token = None
        while True:
            resp = self.db.list_tables(page_token=page_token)
            names.extend(resp.tables)
            page_token = resp.page_token
            if not page_token:
                return sorted(names)

    def has_table(self, name: str) -> bool:
        return name in self.table_names()

    def open(self, name: str):
        return self.db.open_table(name)

    def ensure_table(self, name: str, schema: pa.Schema):
        if self.has_table(name):
            return self.open(name)
        try:
            return self.db.create_table(name, schema=schema)
        except Exception:
            if self.has_table(name):  # another writer created it first
                return self.open(name)
            raise

    def embedding_tables(self) -> dict[str, str]:
        """{version: table name} for every embed_version with vectors, retired ones included."""
        return {n.removeprefix(EMBEDDINGS_PREFIX): n for n in self.table_names() if n.startswith(EMBEDDINGS_PREFIX)}

    def dataset(self, name: str):
        """A fresh `lance.LanceDataset` at the latest version.

        Purge steps must each use a fresh handle: run through a stale handle, cleanup keeps
        the version that handle has checked out, and with it the old data files.
        """
        import lance

        return lance.dataset(self._table_uri(name), storage_options=self.storage_options)

    def _table_uri(self, name: str) -> str:
        return self.open(name).to_lance().uri

    def count(self, name: str, filter: str | None = None) -> int:
        if not self.has_table(name):
            return 0
        return self.open(name).count_rows(filter)

    # -- reads -------------------------------------------------------------------------
    def scan(self, name: str, columns: Sequence[str], filter: str | None = None) -> pa.Table:
        if not self.has_table(name):
            return pa.table({c: pa.array([], pa.string()) for c in columns})
        return self.dataset(name).to_table(columns=list(columns), filter=filter)

    def scan_batches(self, name: str, columns: Sequence[str], batch_size: int = 131072) -> Iterator[pa.RecordBatch]:
        """Streams only the named columns, so memory stays bounded on large tables."""
        if not self.has_table(name):
            return iter(())
        return self.dataset(name).to_batches(columns=list(columns), batch_size=batch_size)

    def batch_rows(self, name: str, batch_id: str, columns: Sequence[str]) -> pa.Table:
        return self.scan(name, columns, filter=f"batch_id = {sql_literal(batch_id)}")

    # -- writes ------------------------------------------------------------------------
    def replace_batch(self, name: str, schema: pa.Schema, key: str, batch_id: str, rows: pa.Table) -> dict[str, int]:
        """Make the table's rows of `batch_id` exactly `rows`, in one atomic commit.

        Upserts by `key` and deletes the batch's rows that are not in `rows`, so a
        re-materialised partition gives the same rows: no duplicates, no leftovers.
        """
        tbl = self.ensure_table(name, schema)
        rows = rows.select(schema.names).cast(schema)
        batch_filter = f"batch_id = {sql_literal(batch_id)}"
        if rows.num_rows == 0:
            before = tbl.count_rows(batch_filter)
            if before:
                tbl.delete(batch_filter)
            self.ensure_indices(name)
            return {"inserted": 0, "updated": 0, "deleted": before}
        res = (
            tbl.merge_insert(key)
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete(batch_filter)
            .execute(rows)
        )
        self.ensure_indices(name)
        return {"inserted": res.num_inserted_rows, "updated": res.num_updated_rows, "deleted": res.num_deleted_rows}

    def upsert(self, name: str, schema: pa.Schema, key: str, rows: pa.Table) -> dict[str, int]:
        tbl = self.ensure_table(name, schema)
        if rows.num_rows == 0:
            return {"inserted": 0, "updated": 0, "deleted": 0}
        rows = rows.select(schema.names).cast(schema)
        res = tbl.merge_insert(key).when_matched_update_all().when_not_matched_insert_all().execute(rows)
        return {"inserted": res.num_inserted_rows, "updated": res.num_updated_rows, "deleted": 0}

    def append(self, name: str, schema: pa.Schema, rows: pa.Table) -> None:
        tbl = self.ensure_table(name, schema)
        if rows.num_rows:
            data = rows.select(schema.names).cast(schema)
            self._retry_commit(lambda: tbl.add(data))

    def delete_ids(self, name: str, column: str, ids: Sequence[str]) -> int:
        """Delete rows whose `column` is in `ids`; returns the number of rows deleted."""
        if not ids or not self.has_table(name):
            return 0
        tbl = self.open(name)
        before = tbl.count_rows()
        for chunk in batched(sorted(set(ids)), DELETE_BATCH_IDS):
            pred = in_filter(column, chunk)
            self._retry_commit(lambda: tbl.delete(pred))  # idempotent
        return before - tbl.count_rows()

    def _retry_commit(self, fn, attempts: int = COMMIT_ATTEMPTS):
        """Run one table commit; retry it when lance reports a commit conflict with another
        writer (parallel partition runs on one table). Lance already rebases appends and
        non-overlapping deletes onto concurrent commits itself; what it cannot rebase comes
        back as a conflict error and nothing was committed, so a retry is safe. Retries are
        counted in `commit_retries` (benchmarks/parallel_backfill.py reports them)."""
        import random

        for i in range(attempts):
            try:
                return fn()
            except Exception as e:  # lance raises CommitConflictError / OSError / RuntimeError: "Retryable commit conflict ..."
                msg = str(e).lower()
                if i == attempts - 1 or not (type(e).__name__ == "CommitConflictError" or "commit conflict" in msg or "retryable" in msg):
                    raise
                self.commit_retries += 1
                time.sleep(min(2.0, 0.05 * 2 ** i) * (0.5 + random.random()))

    def drop_table(self, name: str) -> None:
        if self.has_table(name):
            self.db.drop_table(name)
            if self.objects is not None:  # a versioned bucket keeps the dropped files as noncurrent versions
                self.objects.delete_noncurrent(f"{name}.lance/")

    # -- indices -----------------------------------------------------------------------
    def _id_columns(self, name: str) -> tuple[str, ...]:
        if name.startswith(EMBEDDINGS_PREFIX):
            return EMBEDDING_ID_COLUMNS
        return ID_COLUMNS.get(name, ())

    def ensure_indices(self, name: str, rebuild: bool = False) -> None:
        """BTREE scalar index on the id columns used by deletes and joins."""
        from lancedb.index import BTree

        cols = self._id_columns(name)
        if not cols:
            return
        tbl = self.open(name)
        if tbl.count_rows() == 0:
            return
        existing = {tuple(ix.columns) for ix in tbl.list_indices()}
        for col in cols:
            if rebuild or (col,) not in existing:
                # parallel partition runs on one table race to create the same index: lance
                # reports the loser's commit as a conflict; retry unless the winner's index is there
                def create(col=col):
                    t = self.open(name)
                    if not rebuild and (col,) in {tuple(ix.columns) for ix in t.list_indices()}:
                        return
                    t.create_index(col, config=BTree(), replace=True)

                self._retry_commit(create)

    # -- physical purge ----------------------------------------------------------------
    def purge(self, names: Sequence[str] | None = None) -> PurgeStats:
        """Physically remove deleted rows: bytes leave the disk, not just the current version.

        1. compaction with materialize_deletions_threshold=0.0 rewrites every fragment
           holding a deleted row (the default 0.1 leaves fragments with <10% deleted);
        2. scalar indices are rebuilt so no index page keeps a deleted id;
        3. tags pointing at older versions are moved to the latest one (a tag pins its
           version's files and blocks cleanup);
        4. cleanup_old_versions(older_than=0, delete_unverified=False) drops old manifests,
           transaction files (which hold delete predicates verbatim), data, deletion and
           index files of every older version;
        5. leftovers of killed writes (files no version references) older than the grace
           period (`AISG_PURGE_UNVERIFIED_GRACE_SECONDS`, 900) are removed; younger ones may
           belong to a commit in progress in another process, so they stay.
        Each step opens a fresh dataset handle (see `dataset`).

        Only the fragments holding a deleted row are rewritten, at their own size: lance's
        default compaction also merges every fragment smaller than 1M rows, i.e. rewrites the
        whole table; excluding untouched fragments keeps the cost proportional to what was
        deleted (and smaller fragments make the next purge cheaper).
        """
        stats = PurgeStats()
        todo = [n for n in (names if names is not None else self.table_names()) if self.has_table(n)]
        if len(todo) > 1:
            # tables are independent: while one is compacted, another's index rebuild and
            # cleanup (I/O and single-threaded steps) proceed
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=2) as pool:
                entries = list(pool.map(self._purge_table, todo))
        else:
            entries = [self._purge_table(n) for n in todo]
        for name, entry in zip(todo, entries):
            stats.tables[name] = entry
        return stats

    def _purge_table(self, name: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        ds = self.dataset(name)
        entry: dict[str, Any] = {"version_before": ds.version}
        seconds: dict[str, float] = {}
        entry["seconds"] = seconds
        if any(f.deletion_file() is not None for f in ds.get_fragments()):
            frags = ds.get_fragments()
            extra: dict[str, Any] = {
                "excluded_fragment_ids": [f.fragment_id for f in frags if f.deletion_file() is None],
                # and do not merge the touched ones into one big fragment (the next purge would rewrite it all)
                "target_rows_per_fragment": max(f.physical_rows for f in frags if f.deletion_file() is not None),
            }
            if self._id_columns(name) and ds.count_rows() > 0:
                extra["defer_index_remap"] = True  # the indices are rebuilt from scratch just below
            # more threads than cores overlap reading, re-encoding and writing (measured at 1M
            # rows: ~2x faster than the defaults); scan batches of 16k rows: 65k was no faster
            # and peaked 1.7 GiB instead of 1.4 in the scattered retention benchmark
            extra["num_threads"] = min(8, max(4, 2 * (os.cpu_count() or 1)))
            extra["batch_size"] = 16384
            m = ds.optimize.compact_files(materialize_deletions_threshold=0.0, **extra)
            entry["fragments_rewritten"] = m.fragments_removed
        else:
            entry["fragments_rewritten"] = 0
        seconds["compact"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        if self.count(name):
            self.ensure_indices(name, rebuild=True)
        seconds["indices"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        ds = self.dataset(name)
        moved = []
        for tag, info in dict(ds.tags.list()).items():
            if info["version"] != ds.version:
                ds.tags.update(tag, ds.version)
                moved.append(tag)
        entry["tags_moved"] = moved
        ds = self.dataset(name)
        # delete_unverified=False: a file no manifest has ever referenced may belong to a
        # write in progress in another process (an ingest committing right now); lance keeps
        # those, which is safe. Every file of an old version is referenced, so it goes.
        c = ds.cleanup_old_versions(older_than=timedelta(0), delete_unverified=False)
        entry.update(
            bytes_removed=c.bytes_removed,
            old_versions=c.old_versions,
            data_files_removed=c.data_files_removed,
            transaction_files_removed=c.transaction_files_removed,
            index_files_removed=c.index_files_removed,
            deletion_files_removed=c.deletion_files_removed,
        )
        seconds["cleanup"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        entry["unverified_files"] = self._sweep_unverified(name)
        seconds["sweep"] = round(time.perf_counter() - t0, 3)
        if self.objects is not None:
            # a versioned bucket keeps what cleanup removed as noncurrent versions, bytes intact
            t0 = time.perf_counter()
            entry["object_versions"] = self.objects.delete_noncurrent(f"{name}.lance/")
            seconds["object_versions"] = round(time.perf_counter() - t0, 3)
        entry["version_after"] = self.dataset(name).version
        entry["versions_left"] = len(self.dataset(name).versions())
        return entry

    def unreferenced_files(self, name: str) -> list[Path]:
        """Data, deletion and index files of a table that the latest version does not
        reference (after a purge's cleanup: leftovers of writes that never committed, or a
        commit in progress). On object storage: their object keys (str)."""
        if not self.has_table(name):
            return []
        ds = self.dataset(name)
        frags = ds.get_fragments()
        referenced = {f"data/{d.path}" for f in frags for d in f.metadata.data_files()}
        referenced |= {f.deletion_file() for f in frags if f.deletion_file() is not None}
        index_dirs = {f"_indices/{i['uuid']}" for i in ds.list_indices()}
        if self.objects is not None:
            base = f"{name}.lance/"
            keys = []
            for o in self.objects.list(base):
                rel = self.objects.rel(o.key)[len(base):]
                sub = rel.split("/", 1)[0]
                if sub in ("data", "_deletions", "_indices") and rel not in referenced and "/".join(rel.split("/")[:2]) not in index_dirs:
                    keys.append(o.key)
            return keys
        if self.local_root() is None:
            return []
        table_dir = Path(ds.uri)
        out: list[Path] = []
        for sub in ("data", "_deletions", "_indices"):
            base = table_dir / sub
            if not base.is_dir():
                continue
            for p in base.rglob("*"):
                rel = p.relative_to(table_dir).as_posix()
                if p.is_file() and rel not in referenced and not (sub == "_indices" and "/".join(rel.split("/")[:2]) in index_dirs):
                    out.append(p)
        return out

    def _sweep_unverified(self, name: str) -> dict[str, Any]:
        """Remove the unreferenced files (`unreferenced_files`: leftovers of a write killed
        before its commit, which can hold rows) once they are older than the grace period.
        Lance itself keeps such files 7 days, or deletes them at any age with
        delete_unverified=True, which can corrupt a table another process is committing to.
        Younger leftovers are kept and counted; the erasure byte scan reports any that still
        hold a subject's data, and a later purge removes them. Local stores only: on object
        storage lance's 7-day rule applies."""
        out: dict[str, Any] = {"grace_seconds": self.unverified_grace_seconds, "removed": 0, "bytes_removed": 0, "kept_in_grace": 0}
        cutoff = time.time() - self.unverified_grace_seconds
        if self.objects is not None:
            leftovers = set(self.unreferenced_files(name))
            for o in self.objects.list(f"{name}.lance/"):
                if o.key not in leftovers:
                    continue
                if o.last_modified is not None and o.last_modified.timestamp() > cutoff:
                    out["kept_in_grace"] += 1
                    continue
                self.objects.delete(o.key)
                out["removed"] += 1
                out["bytes_removed"] += o.size
            return out
        if self.local_root() is None:
            return out
        for p in self.unreferenced_files(name):
            st = p.stat()
            if st.st_mtime > cutoff:
                out["kept_in_grace"] += 1
                continue
            p.unlink(missing_ok=True)
            out["removed"] += 1
            out["bytes_removed"] += st.st_size
        indices = Path(self.dataset(name).uri) / "_indices"
        for d in sorted(indices.glob("*")) if indices.is_dir() else []:
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
        return out

    # -- storage accounting ------------------------------------------------------------
    def local_root(self) -> Path | None:
        return Path(self.uri) if "://" not in self.uri else None

    @property
    def objects(self):
        """The bucket under an s3:// URI (`objectstore.S3Objects`), else None."""
        from .objectstore import S3Objects, parse_s3_uri

        if parse_s3_uri(self.uri) is None:
            return None
        if getattr(self, "_objects", None) is None:
            self._objects = S3Objects(self.uri, self.storage_options)
        return self._objects

    def table_sizes(self) -> dict[str, int]:
        root = self.local_root()
        if root is None:
            objs = self.objects
            return {name: objs.size_under(f"{name}.lance/") for name in self.table_names()} if objs is not None else {}
        out = {}
        for name in self.table_names():
            d = root / f"{name}.lance"
            out[name] = dir_size(d) or 0
        return out


def dir_size(path: Path | str | None) -> int | None:
    """Bytes of every file under the directory `path`; None when it does not exist. The one
    directory-size helper (table sizes, retention's reclaimed bytes, the reports' storage)."""
    if path is None or not Path(path).exists():
        return None
    total = 0
    for f in Path(path).rglob("*"):
        try:
            if f.is_file():
                total += f.stat().st_size
        except OSError:  # removed while we walked
            continue
    return total


def json_counts(counts: dict[str, int]) -> str:
    return json.dumps(counts, sort_keys=True)
