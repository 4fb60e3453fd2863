"""The deletion cascade: THE one place that deletes governed data.

Plain module (no Dagster). Erasure, retention, orphan cleanup and re-ingest (replacement of a
changed file) only choose *which of our ids* to delete; this module then deletes them, leaf
first, everywhere they are stored:

    every embeddings_<version> table (retired versions included)
      -> chunks -> other tables by our row ids (system_logs, metrics, ...)
      -> telemetry source lines (by row id) and other line files (by line hash)
      -> landing file + sidecar, extra files (quarantine uploads, reason files)
      -> documents
      -> ledger path records (batch-file records of removed files)
      -> Dagster dynamic partitions left empty (through a callback: no Dagster import here)
      -> the shared physical purge (`LanceStore.purge`)

Accounting and resumability. Before anything is deleted the resolved plan (our ids, paths,
planned counts) is stored in the ledger table `cascade_intents` and a `cascade.intent`
event (planned counts and a digest of the ids, never the ids themselves) is appended to the
hash chain. After the deletions a `cascade.result` event records the exact counts, in the
same transaction that closes the intent and wipes its id list. A run killed at any point
therefore leaves an open intent: `resume_open` (called by every caller before its own
work) completes it and records its result. Every step is idempotent (deleting ids that are
gone deletes nothing, a removed line is not found again).

Identifiers never reach a LanceDB filter unescaped: every delete goes through
`LanceStore.delete_ids` (`ids.in_filter`); lookups are pyarrow `isin` expressions (no SQL text).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from . import events
from .ids import DOC_ID_RE, batched, require, sha256_hex
from .ledger import Ledger, canonical_json, ingest_batch_files, ingest_batches, iso, metadata
from .store import CHUNKS, DOCUMENTS, EMBEDDINGS_PREFIX, METRICS, SYSTEM_LOGS, LanceStore

SIDECAR_SUFFIX = ".meta.json"  # same as landing.SIDECAR_SUFFIX (not imported: landing is the ingest side's)
TELEMETRY_TABLES = {"system_logs": SYSTEM_LOGS, "metrics": METRICS}
INTENT_ACTION = events.CascadeIntent.ACTION
RESULT_ACTION = events.CascadeResult.ACTION

# Open intents: the resolved plan of a cascade that has started and not yet recorded its
# result. The id list lives here only while the intent is open (it is wiped on completion,
# with SQLite's secure_delete so the freed page is zeroed); the hash-chained events carry
# counts and a digest only.
cascade_intents = sa.Table(
    "cascade_intents",
    metadata,
    sa.Column("cascade_id", sa.String(36), primary_key=True),
    sa.Column("cause", sa.String(64), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # open | done
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("completed_at", sa.String(32)),
    sa.Column("subject_hash", sa.String(64)),
    sa.Column("plan", sa.Text, nullable=False),
    sa.Column("intent_event_id", sa.String(36)),
)
sa.Index("ix_cascade_intents_status", cascade_intents.c.status)


class PartitionSink(Protocol):
    """The Dagster side: delete one dynamic partition key (given by the caller)."""

    def delete(self, key: str) -> None: ...


Step = Callable[[str], None]


@dataclass
class CascadePlan:
    """Everything one cascade deletes, resolved before the intent is recorded (JSON-able)."""

    doc_ids: list[str] = field(default_factory=list)  # documents deleted with all their chunks and vectors
    chunk_ids: list[str] = field(default_factory=list)  # chunks (and their vectors) deleted, documents kept
    vectors: dict[str, list[str]] = field(default_factory=dict)  # embeddings table -> chunk ids of its rows that go (resolved)
    tables: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # other tables: table -> id column -> ids
    telemetry: dict[str, list[str]] = field(default_factory=dict)  # kind -> row ids (table rows + source lines)
    source_dirs: dict[str, str] = field(default_factory=dict)  # kind -> directory of its source files
    source_files: dict[str, list[str]] = field(default_factory=dict)  # kind -> relative files that may hold those lines
    lines: dict[str, list[str]] = field(default_factory=dict)  # absolute path -> sha256 of lines to drop
    files: list[str] = field(default_factory=list)  # absolute paths removed (quarantined uploads, reason files, ...)
    landing_dir: str | None = None
    landing: list[str] = field(default_factory=list)  # landing-relative paths: file + sidecar removed
    ledger_paths: list[str] = field(default_factory=list)  # landing-relative paths whose batch-file records go
    batches: list[str] = field(default_factory=list)  # batch ids that may be left empty
    drop_tables: list[str] = field(default_factory=list)  # whole embeddings_<v> tables (a retired version) dropped first
    planned: dict[str, int] = field(default_factory=dict)  # rows/items present when planned

    def is_empty(self) -> bool:
        return not (self.doc_ids or self.chunk_ids or self.drop_tables or any(self.vectors.values()) or any(self.tables.values()) or any(self.telemetry.values())
                    or any(self.lines.values()) or self.files or self.landing or self.ledger_paths)

    def digest(self, body: dict | None = None) -> str:
        body = {k: v for k, v in (body or asdict(self)).items() if k != "planned"}
        return sha256_hex(canonical_json(body))

    def to_json(self, body: dict | None = None) -> str:
        return canonical_json(body or asdict(self))

    @classmethod
    def from_json(cls, raw: str) -> CascadePlan:
        return cls(**json.loads(raw))


@dataclass
class CascadeResult:
    """Exact counts of one cascade (`rows` per LanceDB table, files and lines, partitions)."""

    cascade_id: str
    cause: str
    rows: dict[str, int] = field(default_factory=dict)  # LanceDB table -> rows deleted
    landing_files_removed: int = 0  # data files + sidecars
    files_removed: int = 0  # extra files, and line files left with no line
    files_rewritten: int = 0
    lines_removed: int = 0
    source_lines_removed: dict[str, int] = field(default_factory=dict)  # telemetry kind -> lines
    bytes_removed: int = 0  # of files and lines (LanceDB bytes are in `purge`)
    ledger_paths_removed: int = 0  # batch-file records
    ledger_batches_removed: list[str] = field(default_factory=list)
    tables_dropped: list[str] = field(default_factory=list)
    partitions_deleted: list[str] = field(default_factory=list)
    batches_emptied: list[str] = field(default_factory=list)
    planned: dict[str, int] = field(default_factory=dict)
    purge: dict[str, Any] = field(default_factory=dict)
    resumed: bool = False

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def counts(self) -> dict[str, Any]:
        return {
            "rows": dict(sorted(self.rows.items())), "landing_files_removed": self.landing_files_removed,
            "files_removed": self.files_removed, "files_rewritten": self.files_rewritten, "lines_removed": self.lines_removed,
            "source_lines_removed": dict(sorted(self.source_lines_removed.items())), "bytes_removed": self.bytes_removed,
            "ledger_paths_removed": self.ledger_paths_removed, "ledger_batches_removed": len(self.ledger_batches_removed),
            "partitions_deleted": len(self.partitions_deleted), "tables_dropped": list(self.tables_dropped),
        }


def _ensure_table(ledger: Ledger) -> None:
    if not getattr(ledger, "_cascade_table_ok", False):
        metadata.create_all(ledger.engine, tables=[cascade_intents])
        ledger._cascade_table_ok = True


# -- planning ---------------------------------------------------------------------------
def _fetch(store: LanceStore, table: str, columns: list[str], column: str, ids: Iterable[str]) -> pa.Table:
    """Rows whose `column` (one of our id columns) is in `ids`: a pyarrow expression, never SQL text."""
    ids = list(ids)
    if not ids or not store.has_table(table):
        return pa.table({c: pa.array([], pa.string()) for c in columns})
    out = [store.dataset(table).to_table(columns=columns, filter=pc.field(column).isin(pa.array(part, pa.string())))
           for part in batched(ids, 20_000)]
    return pa.concat_tables(out) if len(out) > 1 else out[0]


def _fetch_either(store: LanceStore, table: str, columns: list[str], by: dict[str, Sequence[str]]) -> pa.Table:
    """Rows whose column is in the ids given for it, for any of the columns: one scan."""
    expr = None
    for col, ids in by.items():
        if ids:
            e = pc.field(col).isin(pa.array(list(ids), pa.string()))
            expr = e if expr is None else (expr | e)
    if expr is None or not store.has_table(table):
        return pa.table({c: pa.array([], pa.string()) for c in columns})
    return store.dataset(table).to_table(columns=columns, filter=expr)


def _count_in(store: LanceStore, table: str, column: str, ids: Sequence[str]) -> int:
    if not ids or not store.has_table(table) or column not in store.dataset(table).schema.names:
        return 0
    return sum(store.dataset(table).count_rows(filter=pc.field(column).isin(pa.array(part, pa.string())))
               for part in batched(list(ids), 20_000))


def plan_cascade(
    store: LanceStore,
    *,
    doc_ids: Sequence[str] = (),
    chunk_ids: Sequence[str] = (),
    tables: dict[str, dict[str, Sequence[str]]] | None = None,
    telemetry: dict[str, Sequence[str]] | None = None,
    source_dirs: dict[str, str | Path] | None = None,
    source_files: dict[str, Sequence[str]] | None = None,
    lines: dict[str | Path, Sequence[str]] | None = None,
    files: Sequence[str | Path] = (),
    landing_dir: str | Path | None = None,
    batches: Sequence[str] = (),
    drop_tables: Sequence[str] = (),
    vectors_by_doc: bool = True,
    keep_chunk_ids: Sequence[str] = (),
) -> CascadePlan:
    """Resolve what the ids mean in every store (chunks of the documents, their files and
    batches, the source files of telemetry rows) and count what is there now.

    `vectors_by_doc=False`: the caller already found every vector to delete (erasure's
    discovery scans each version for the chunk and doc ids): vectors go by the chunk ids
    given, counted through the chunk_id index instead of one more scan per version.
    `keep_chunk_ids`: chunks (and their vectors) that stay although their doc_id is deleted
    (another subject's chunks under a taken-over doc_id: erasure never deletes them)."""
    doc_ids = sorted({require(DOC_ID_RE, d, "doc_id") for d in doc_ids})
    plan = CascadePlan(doc_ids=doc_ids, landing_dir=str(landing_dir) if landing_dir is not None else None)
    batch_set = set(batches)
    chunk_set = set(chunk_ids)
    keep = set(keep_chunk_ids)
    n_docs = n_chunks = 0
    if doc_ids:
        docs = _fetch(store, DOCUMENTS, ["doc_id", "batch_id", "file_path"], "doc_id", doc_ids)
        n_docs = docs.num_rows
        batch_set |= {b for b in docs.column("batch_id").to_pylist() if b}
        if landing_dir is not None:
            paths = sorted({p for p in docs.column("file_path").to_pylist() if p})
            plan.landing = paths
            plan.ledger_paths = paths
    if doc_ids or chunk_set:
        # one scan of chunks: the documents' chunks and the chunks named
        ch = _fetch_either(store, CHUNKS, ["chunk_id", "batch_id"], {"doc_id": doc_ids, "chunk_id": sorted(chunk_set)})
        ids = [c for c in ch.column("chunk_id").to_pylist() if c not in keep]
        n_chunks = len(ids)
        chunk_set |= set(ch.column("chunk_id").to_pylist())
        batch_set |= {b for b in ch.column("batch_id").to_pylist() if b}
    plan.chunk_ids = sorted(chunk_set - keep)
    plan.tables = {t: {c: sorted(set(v)) for c, v in cols.items() if v} for t, cols in (tables or {}).items()}
    plan.tables = {t: cols for t, cols in plan.tables.items() if cols}
    plan.telemetry = {k: sorted(set(v)) for k, v in (telemetry or {}).items() if v}
    plan.source_dirs = {k: str(v) for k, v in (source_dirs or {}).items()}
    sf: dict[str, set[str]] = {k: set(v) for k, v in (source_files or {}).items()}
    for kind, rids in plan.telemetry.items():
        rows = _fetch(store, TELEMETRY_TABLES[kind], ["row_id", "source_file"], "row_id", rids)
        sf.setdefault(kind, set()).update(f for f in rows.column("source_file").to_pylist() if f)
    plan.source_files = {k: sorted(v) for k, v in sf.items() if v}
    plan.lines = {str(p): sorted(set(v)) for p, v in (lines or {}).items() if v}
    plan.files = sorted({str(p) for p in files})
    plan.batches = sorted(batch_set)
    for t in drop_tables:
        if not t.startswith(EMBEDDINGS_PREFIX):
            raise ValueError(f"only embeddings_<version> tables are dropped whole, not {t!r}")
    plan.drop_tables = sorted(set(drop_tables))
    # planned counts: what is there now (the result must account for exactly these)
    planned: dict[str, int] = {t: store.count(t) for t in plan.drop_tables if store.has_table(t)}
    for version, table in sorted(store.embedding_tables().items()):
        if table in plan.drop_tables:
            continue
        extra = plan.tables.get(table, {}).get("chunk_id", [])
        rows = _planned_vectors(store, table, plan, extra) if vectors_by_doc else _present(store, table, sorted(set(plan.chunk_ids) | set(extra)))
        rows = [c for c in rows if c not in keep] if keep else rows
        if rows:
            plan.vectors[table] = sorted(set(rows))
            planned[table] = len(rows)  # rows, not ids: a duplicated vector is deleted (and counted) twice
    if plan.chunk_ids:
        planned[CHUNKS] = n_chunks
    if doc_ids:
        planned[DOCUMENTS] = n_docs
    for kind, rids in plan.telemetry.items():
        planned[TELEMETRY_TABLES[kind]] = planned.get(TELEMETRY_TABLES[kind], 0) + _count_in(store, TELEMETRY_TABLES[kind], "row_id", rids)
    for t, cols in plan.tables.items():
        for c, ids in cols.items():
            if t.startswith(EMBEDDINGS_PREFIX) and c == "chunk_id":
                continue  # counted with the version's other vectors above (a row is counted once)
            planned[t] = planned.get(t, 0) + _count_in(store, t, c, ids)
    if plan.landing and landing_dir is not None:
        planned["landing_files"] = sum(1 for p in _landing_paths(Path(landing_dir), plan.landing) if p.is_file())
    planned["files"] = sum(1 for f in plan.files if Path(f).is_file())
    plan.planned = {k: v for k, v in planned.items() if v}
    return plan


def _present(store: LanceStore, table: str, chunk_ids: list[str]) -> list[str]:
    """The chunk id of every row of `table` whose chunk id is in `chunk_ids` (one pyarrow
    `isin` scan of the chunk_id column)."""
    return _fetch(store, table, ["chunk_id"], "chunk_id", chunk_ids).column("chunk_id").to_pylist() if chunk_ids else []


def _planned_vectors(store: LanceStore, table: str, plan: CascadePlan, extra_chunk_ids: Sequence[str] = ()) -> list[str]:
    """Chunk id of every vector row of `table` the plan deletes (by chunk id, listed for this
    version or in general, or by doc id): one scan at plan time, then the deletion goes by
    chunk id (BTREE-indexed in every version table)."""
    chunk_ids = sorted(set(plan.chunk_ids) | set(extra_chunk_ids))
    if not (chunk_ids or plan.doc_ids):
        return []
    ds = store.dataset(table)
    expr = None
    if chunk_ids:
        expr = pc.field("chunk_id").isin(pa.array(chunk_ids, pa.string()))
    if plan.doc_ids:
        e2 = pc.field("doc_id").isin(pa.array(plan.doc_ids, pa.string()))
        expr = e2 if expr is None else (expr | e2)
    return ds.to_table(columns=["chunk_id"], filter=expr).column("chunk_id").to_pylist()


def _landing_paths(landing: Path, rels: Iterable[str]) -> Iterable[Path]:
    """Data file and sidecar of each landing-relative path; never a path out of the landing zone."""
    root = landing.resolve()
    for rel in rels:
        p = (landing / rel)
        try:
            rp = p.parent.resolve() / p.name  # the file itself is not followed (it may be a symlink)
        except OSError:
            continue
        if not rp.is_relative_to(root):
            continue
        yield rp
        yield rp.with_name(rp.name + SIDECAR_SUFFIX)


# -- running ----------------------------------------------------------------------------
def run_cascade(
    store: LanceStore,
    ledger: Ledger,
    plan: CascadePlan,
    *,
    cause: str,
    actor: str,
    subject_hash: str | None = None,
    partitions: PartitionSink | None = None,
    on_step: Step | None = None,
    purge: bool = True,
    details: dict[str, Any] | None = None,
) -> CascadeResult:
    """Record the intent, delete leaf-first, record the result (then purge, if asked).
    `details` (no personal data: e.g. request ids) are added to the intent event."""
    _ensure_table(ledger)
    cid = str(uuid.uuid4())
    body = asdict(plan)
    with ledger.begin() as conn:
        ev = events.record(ledger, events.CascadeIntent(cascade_id=cid, cause=cause, planned=plan.planned, ids_sha256=plan.digest(body),
                                                        documents=len(plan.doc_ids), chunks=len(plan.chunk_ids), details=dict(details or {})),
                           actor=actor, subject_hash=subject_hash, conn=conn)
        conn.execute(cascade_intents.insert().values(cascade_id=cid, cause=cause[:64], actor=actor[:128], status="open", created_at=iso(),
                                                     subject_hash=subject_hash, plan=plan.to_json(body), intent_event_id=ev.event_id))
    return _execute(store, ledger, cid, plan, cause=cause, actor=actor, subject_hash=subject_hash, partitions=partitions,
                    on_step=on_step, purge=purge, resumed=False)


def open_intents(ledger: Ledger) -> list[dict]:
    _ensure_table(ledger)
    with ledger.engine.connect() as conn:
        rows = conn.execute(sa.select(cascade_intents).where(cascade_intents.c.status == "open").order_by(cascade_intents.c.created_at)).all()
    return [dict(r._mapping) for r in rows]


def resume_open(store: LanceStore, ledger: Ledger, *, causes: Iterable[str] | None = None, partitions: PartitionSink | None = None,
                on_step: Step | None = None, purge: bool = False) -> list[CascadeResult]:
    """Complete every open intent (of the given causes, default all): what a killed cascade left."""
    wanted = set(causes) if causes is not None else None
    out = []
    for row in open_intents(ledger):
        if wanted is not None and row["cause"] not in wanted:
            continue
        plan = CascadePlan.from_json(row["plan"])
        out.append(_execute(store, ledger, row["cascade_id"], plan, cause=row["cause"], actor=row["actor"], subject_hash=row["subject_hash"],
                            partitions=partitions, on_step=on_step, purge=purge, resumed=True))
    return out


def _execute(store, ledger, cid, plan: CascadePlan, *, cause, actor, subject_hash, partitions, on_step, purge, resumed) -> CascadeResult:
    step = on_step or (lambda _s: None)
    res = CascadeResult(cascade_id=cid, cause=cause, planned=dict(plan.planned), resumed=resumed)
    touched: set[str] = set()

    # 0. whole version tables (a retired embed_version): the directory leaves the disk
    for table in plan.drop_tables:
        step(f"drop:{table}")
        if store.has_table(table):
            rows = store.count(table)
            root = store.local_root()
            store.drop_table(table)
            d = root / f"{table}.lance" if root is not None else None
            if d is not None and d.exists():  # drop_table removes the directory (checked); verify anyway
                import shutil

                shutil.rmtree(d)
            res.rows[table] = rows
            res.tables_dropped.append(table)
    # 1. vectors in every version: the chunk ids resolved at plan time (by chunk id and by doc
    #    id); a version table created since the plan loses the vectors of the planned chunks
    for table in sorted(store.embedding_tables().values()):
        ids = plan.vectors[table] if table in plan.vectors else plan.chunk_ids
        if not ids:
            continue
        step(f"delete:{table}")
        res.rows[table] = store.delete_ids(table, "chunk_id", ids)
        touched.add(table)
    # 2. chunks (those of the documents were resolved into chunk_ids at plan time)
    if plan.chunk_ids or plan.doc_ids:
        step(f"delete:{CHUNKS}")
        res.rows[CHUNKS] = store.delete_ids(CHUNKS, "chunk_id", plan.chunk_ids)
        touched.add(CHUNKS)
    # 3. other tables by our row ids; telemetry rows
    for table, cols in sorted(plan.tables.items()):
        cols = {c: ids for c, ids in cols.items() if not (table in plan.vectors and c == "chunk_id")}  # done in step 1
        if not cols:
            continue
        step(f"delete:{table}")
        res.rows[table] = res.rows.get(table, 0) + sum(_delete_col(store, table, c, ids) for c, ids in sorted(cols.items()))
        touched.add(table)
    for kind, rids in sorted(plan.telemetry.items()):
        table = TELEMETRY_TABLES[kind]
        step(f"delete:{table}")
        res.rows[table] = res.rows.get(table, 0) + store.delete_ids(table, "row_id", rids)
        touched.add(table)
    # 4. source lines of those telemetry rows, then other line files
    if plan.telemetry or plan.lines:
        step("delete:lines")
    for kind, rids in sorted(plan.telemetry.items()):
        base = Path(plan.source_dirs[kind]) if kind in plan.source_dirs else None
        if base is None:
            continue
        wanted = set(rids)
        removed = 0
        for rel in plan.source_files.get(kind, []):
            removed += _drop_lines(base / rel, res, lambda raw, rel=rel: _row_id(kind, rel, raw) in wanted)
        res.source_lines_removed[kind] = removed
    for path, hashes in sorted(plan.lines.items()):
        wanted_h = set(hashes)
        _drop_lines(Path(path), res, lambda raw: line_hash(raw) in wanted_h)
    # 5. files: landing file + sidecar, extra files
    if plan.landing or plan.files:
        step("delete:landing")
    if plan.landing and plan.landing_dir is not None:
        for p in _landing_paths(Path(plan.landing_dir), plan.landing):
            if p.is_file() or p.is_symlink():
                res.bytes_removed += p.lstat().st_size
                p.unlink(missing_ok=True)
                res.landing_files_removed += 1
    for f in plan.files:
        p = Path(f)
        if p.is_file() or p.is_symlink():
            res.bytes_removed += p.lstat().st_size
            p.unlink(missing_ok=True)
            res.files_removed += 1
    # 6. documents (the expiry/ownership source goes last: a killed run is re-planned from it)
    if plan.doc_ids:
        step(f"delete:{DOCUMENTS}")
        res.rows[DOCUMENTS] = store.delete_ids(DOCUMENTS, "doc_id", plan.doc_ids)
        touched.add(DOCUMENTS)
    # 7. ledger path records of removed files; batch manifests left with no file
    if plan.ledger_paths:
        step("delete:ledger_paths")
        n, gone = remove_ledger_paths(ledger, plan.ledger_paths)
        res.ledger_paths_removed, res.ledger_batches_removed = n, gone
    # 8. batches left empty: dynamic partitions deleted through the caller's callback
    if plan.batches:
        res.batches_emptied = empty_batches(store, plan.batches)
        if partitions is not None and res.batches_emptied:
            step("partitions")
            for key in res.batches_emptied:
                partitions.delete(key)
            res.partitions_deleted = list(res.batches_emptied)
    # 9. the result, in the same transaction that closes the intent and wipes its ids
    _close(ledger, cid, res, actor=actor, subject_hash=subject_hash)
    # 10. the shared physical purge
    if purge:
        step("purge")
        res.purge = purge_tables(store, touched)
    return res


def _delete_col(store: LanceStore, table: str, column: str, ids: Sequence[str]) -> int:
    if column == "_rowid":
        if not store.has_table(table) or not ids:
            return 0
        tbl = store.open(table)
        before = tbl.count_rows()
        for part in batched(sorted(ids, key=int), 1000):
            tbl.delete(f"_rowid IN ({', '.join(str(int(i)) for i in part)})")
        return before - tbl.count_rows()
    return store.delete_ids(table, column, ids)


def _row_id(kind: str, rel: str, raw: bytes) -> str:
    from .telemetry import row_id_for

    return row_id_for(kind, rel, raw)


def line_hash(raw: bytes) -> str:
    """How a line of a line file is named in a plan (no trailing CR/LF)."""
    return hashlib.sha256(raw.rstrip(b"\r\n")).hexdigest()


def _drop_lines(path: Path, res: CascadeResult, drop: Callable[[bytes], bool]) -> int:
    """Remove the matching lines of one file (atomic replace); the file goes when no line is left."""
    try:
        if path.is_symlink() or not path.is_file():
            return 0
        data = path.read_bytes()
    except OSError:
        return 0
    parts = data.split(b"\n")
    keep, removed = [], 0
    for raw in parts:
        if raw.strip() and drop(raw):
            removed += 1
            res.bytes_removed += len(raw) + 1
        else:
            keep.append(raw)
    if not removed:
        return 0
    res.lines_removed += removed
    if not any(x.strip() for x in keep):
        path.unlink(missing_ok=True)
        res.files_removed += 1
        return removed
    tmp = path.with_name("." + path.name + ".cascade.tmp")
    st = path.stat()
    tmp.write_bytes(b"\n".join(keep))
    os.chmod(tmp, st.st_mode & 0o777)
    os.replace(tmp, path)
    res.files_rewritten += 1
    return removed


def remove_ledger_paths(ledger: Ledger, rel_paths: Sequence[str]) -> tuple[int, list[str]]:
    """Drop the batch-file records (`ingest_batch_files`, and the path in `ingest_batches.files`)
    of removed files; a batch manifest left with no file goes. Returns (records removed, batches removed)."""
    paths = sorted(set(rel_paths))
    if not paths:
        return 0, []
    removed, gone = 0, []
    with ledger.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA secure_delete=ON")
        batch_ids: set[str] = set()
        for i in range(0, len(paths), 500):
            part = paths[i:i + 500]
            batch_ids |= {r[0] for r in conn.execute(sa.select(ingest_batch_files.c.batch_id).where(ingest_batch_files.c.rel_path.in_(part)))}
            removed += conn.execute(ingest_batch_files.delete().where(ingest_batch_files.c.rel_path.in_(part))).rowcount or 0
        want = set(paths)
        rows = conn.execute(sa.select(ingest_batches.c.batch_id, ingest_batches.c.files)).all()
        for bid, files_json in rows:
            files = json.loads(files_json)
            kept = [f for f in files if f not in want]
            if len(kept) == len(files):
                continue
            if bid not in batch_ids:
                removed += len(files) - len(kept)  # manifest without file records (older ledgers)
            if kept:
                conn.execute(ingest_batches.update().where(ingest_batches.c.batch_id == bid).values(files=json.dumps(kept)))
            else:
                conn.execute(ingest_batches.delete().where(ingest_batches.c.batch_id == bid))
                gone.append(bid)
    return removed, sorted(gone)


def empty_batches(store: LanceStore, batch_ids: Sequence[str]) -> list[str]:
    """The batch ids with no document and no chunk left (what orphan detection calls
    partition_without_data): one scan of the batch_id column per table."""
    wanted = sorted(set(batch_ids))
    if not wanted:
        return []
    left: set[str] = set()
    for table in (DOCUMENTS, CHUNKS):
        left |= set(_fetch(store, table, ["batch_id"], "batch_id", wanted).column("batch_id").to_pylist())
    return [b for b in wanted if b not in left]


def _close(ledger: Ledger, cid: str, res: CascadeResult, *, actor: str, subject_hash: str | None) -> None:
    with ledger.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA secure_delete=ON")
        upd = conn.execute(cascade_intents.update().where(cascade_intents.c.cascade_id == cid, cascade_intents.c.status == "open")
                           .values(status="done", completed_at=iso(), plan="{}"))
        if upd.rowcount != 1:
            return  # completed concurrently by another resume: its result is recorded
        events.record(ledger, events.CascadeResult(cascade_id=cid, cause=res.cause, resumed=res.resumed, planned=res.planned, **res.counts()),
                      actor=actor, subject_hash=subject_hash, conn=conn)


# -- physical purge ---------------------------------------------------------------------
def dirty_tables(store: LanceStore) -> list[str]:
    """Tables with deletion files, or files no version references (a killed run or write left
    them): their bytes may still hold deleted rows."""
    out = []
    for n in store.table_names():
        try:
            ds = store.dataset(n)
            if any(f.deletion_file() is not None for f in ds.get_fragments()) or store.unreferenced_files(n):
                out.append(n)
        except Exception:
            continue
    return out


def purge_tables(store: LanceStore, tables: Iterable[str], *, include_dirty: bool = True) -> dict[str, Any]:
    """The shared physical purge (`LanceStore.purge`) of the given tables and every dirty one."""
    names = set(t for t in tables if store.has_table(t))
    if include_dirty:
        names |= set(dirty_tables(store))
    if not names:
        return {"tables": {}, "bytes_reclaimed": 0, "versions_removed": 0}
    stats = store.purge(sorted(names))
    return {"tables": stats.tables, "bytes_reclaimed": stats.bytes_reclaimed, "versions_removed": stats.versions_removed}


# -- the public entry points ------------------------------------------------------------
def delete_documents(
    store: LanceStore,
    ledger: Ledger,
    doc_ids: Sequence[str],
    *,
    cause: str,
    actor: str,
    landing_dir: Path | None = None,
    chunk_ids: Sequence[str] | None = None,
    purge: bool = True,
    partitions: PartitionSink | None = None,
    on_step: Step | None = None,
    subject_hash: str | None = None,
) -> CascadeResult:
    """Delete the given documents with their chunks and their vectors in every version, leaf
    first, with `cascade.intent` / `cascade.result` ledger events.

    With `chunk_ids`, only those chunks (of these documents) and their vectors in every
    version go; the document rows, files and partitions are kept (a replacement: the new
    content's chunks are written by the caller). The landing file and its sidecar (and the
    ledger's batch-file records of that path) are removed only when `landing_dir` is given.
    Emptied batches are passed to `partitions.delete` when given.
    """
    if chunk_ids is not None:
        plan = plan_cascade(store, chunk_ids=list(chunk_ids))
        if doc_ids:
            allowed = set(doc_ids)
            owned = _fetch(store, CHUNKS, ["chunk_id", "doc_id"], "chunk_id", plan.chunk_ids)
            foreign = sorted(c for c, d in zip(owned.column("chunk_id").to_pylist(), owned.column("doc_id").to_pylist()) if d not in allowed)
            if foreign:
                raise ValueError(f"{len(foreign)} of the chunk_ids belong to other documents than {sorted(allowed)[:5]}")
    else:
        plan = plan_cascade(store, doc_ids=list(doc_ids), landing_dir=landing_dir)
    return run_cascade(store, ledger, plan, cause=cause, actor=actor, subject_hash=subject_hash, partitions=partitions,
                       on_step=on_step, purge=purge)
