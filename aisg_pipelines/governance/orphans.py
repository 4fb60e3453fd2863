"""Orphan detection and safe cleanup across documents, chunks, every embed_version,
the landing zone and the `ingest_batches` dynamic partitions.

Plain module (no Dagster). It compares the stores themselves (LanceDB tables, the
landing-zone listing, the list of partition keys), never a ledger of what should be
there. Only id, hash and batch columns are read, streamed with `store.scan_batches` into
an in-process DuckDB (memory-capped, may spill), where every kind is one vectorised
anti-join. Vectors and text are never read.

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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from .ids import BATCH_ID_RE, in_filter, subject_hash
from .landing import REASON_SUFFIX, SIDECAR_SUFFIX, Rejected, quarantine
from .markdown import md_table
from .store import CHUNKS, DOCUMENTS, LanceStore

LANDING = "landing"
PARTITIONS = "dagster:ingest_batches"
DEFAULT_GRACE_SECONDS = 3600.0
NEVER_INGESTED = "never_ingested"


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
    """Where to look. Build it from Settings or from the Dagster resources."""

    store: LanceStore
    landing_dir: Path
    quarantine_dir: Path
    exports_dir: Path
    active_version: str | None = None
    denylisted_hashes: set[str] = field(default_factory=set)
    salt_loader: Callable[[], bytes] | None = None
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    memory_limit: str = "600MB"

    @classmethod
    def from_settings(cls, settings, *, ledger=None, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> OrphanScope:
        from .ledger import Ledger
        from .versions import VersionRegistry

        led = ledger or Ledger(settings.ledger_url)
        active = VersionRegistry(led).active()

        def salt() -> bytes:
            from .secrets import load_or_create_salt

            return load_or_create_salt(settings)

        return cls(
            store=LanceStore(settings.lancedb_uri, settings.lancedb_storage_options or None),
            landing_dir=Path(settings.landing_dir),
            quarantine_dir=Path(settings.quarantine_dir),
            exports_dir=Path(settings.exports_dir),
            active_version=active.name if active else None,
            denylisted_hashes=led.denylisted_subject_hashes(),
            salt_loader=salt,
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
def _reader(store: LanceStore, name: str, columns: Sequence[str]) -> pa.RecordBatchReader:
    """A streaming reader over only `columns` (id/hash/batch), from `store.scan_batches`."""
    if not store.has_table(name):
        schema = pa.schema([(c, pa.string()) for c in columns])
        return pa.RecordBatchReader.from_batches(schema, iter(()))
    full = store.dataset(name).schema
    schema = pa.schema([full.field(c) for c in columns])
    return pa.RecordBatchReader.from_batches(schema, store.scan_batches(name, columns))


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


def _ids(con, sql: str) -> dict[str, list[str]]:
    """{where: sorted ids} from a query returning (where, id)."""
    out: dict[str, list[str]] = {}
    for where, i in con.execute(sql).fetchall():
        out.setdefault(where, []).append(i)
    return {w: sorted(set(v)) for w, v in out.items()}


def _merge(a: dict[str, list[str]], b: dict[str, list[str]]) -> dict[str, list[str]]:
    out = {k: list(v) for k, v in a.items()}
    for k, v in b.items():
        out[k] = sorted(set(out.get(k, [])) | set(v))
    return out


def detect_orphans(scope: OrphanScope, partition_keys: Sequence[str] | None = None, *, now: datetime | None = None) -> OrphanReport:
    """Find every orphan kind. `partition_keys` = the ingest_batches dynamic partition keys
    (from the Dagster instance); None skips the two partition kinds."""
    import duckdb

    t0 = time.perf_counter()
    store = scope.store
    now_ns = int((now or datetime.now(timezone.utc)).timestamp() * 1e9)
    import tempfile

    spill = tempfile.TemporaryDirectory(prefix="aisg_orphans_")
    con = duckdb.connect(":memory:")
    con.execute(f"SET threads={max(1, min(4, os.cpu_count() or 1))}")
    con.execute(f"SET memory_limit='{scope.memory_limit}'")
    con.execute(f"SET temp_directory='{spill.name}'")  # spill instead of failing on a large store
    con.execute("SET preserve_insertion_order=false")
    items: dict[str, dict[str, list[str]]] = {k: {} for k in KINDS}
    scanned: dict[str, int] = {}
    try:
        docs_r = _reader(store, DOCUMENTS, ["doc_id", "batch_id", "subject_id", "file_path"])
        con.execute("CREATE TABLE docs AS SELECT * FROM docs_r")
        chunks_r = _reader(store, CHUNKS, ["chunk_id", "doc_id", "batch_id", "subject_id", "content_sha256"])
        con.execute("CREATE TABLE ch AS SELECT * FROM chunks_r")
        scanned[DOCUMENTS] = con.execute("SELECT count(*) FROM docs").fetchone()[0]
        scanned[CHUNKS] = con.execute("SELECT count(*) FROM ch").fetchone()[0]

        # chunks whose document is gone; everything else is a surviving chunk
        con.execute("CREATE TABLE orphan_ch AS SELECT chunk_id FROM ch ANTI JOIN docs USING (doc_id)")
        items["chunk_without_document"] = _ids(con, f"SELECT '{CHUNKS}', chunk_id FROM orphan_ch")
        con.execute("CREATE VIEW live_ch AS SELECT * FROM ch ANTI JOIN orphan_ch USING (chunk_id)")
        items["document_without_chunks"] = _ids(con, f"SELECT '{DOCUMENTS}', doc_id FROM docs ANTI JOIN ch USING (doc_id)")

        # denylisted subjects: hash each distinct subject id with the salt (only when needed)
        deny_subjects: list[str] = []
        if scope.denylisted_hashes:
            salt = scope.salt_loader() if scope.salt_loader else None
            if salt is None:
                raise RuntimeError("the erasure denylist is not empty but no salt is available to hash subject ids")
            subjects = [r[0] for r in con.execute("SELECT DISTINCT subject_id FROM (SELECT subject_id FROM docs UNION SELECT subject_id FROM ch) WHERE subject_id IS NOT NULL").fetchall()]
            deny_subjects = [s for s in subjects if subject_hash(s, salt) in scope.denylisted_hashes]
        deny_t = pa.table({"subject_id": pa.array(deny_subjects, pa.string())})
        con.execute("CREATE TABLE deny AS SELECT * FROM deny_t")
        denied = _ids(con, f"SELECT '{DOCUMENTS}', doc_id FROM docs SEMI JOIN deny USING (subject_id)")
        denied = _merge(denied, _ids(con, f"SELECT '{CHUNKS}', chunk_id FROM ch SEMI JOIN deny USING (subject_id)"))
        con.execute("CREATE TABLE deny_ch AS SELECT chunk_id FROM ch SEMI JOIN deny USING (subject_id)")

        if partition_keys is not None:
            parts_t = pa.table({"batch_id": pa.array(sorted(set(partition_keys)), pa.string())})
            con.execute("CREATE TABLE parts AS SELECT * FROM parts_t")
            items["partition_without_data"] = _ids(
                con,
                f"SELECT '{PARTITIONS}', batch_id FROM parts ANTI JOIN "
                "(SELECT batch_id FROM docs UNION SELECT batch_id FROM live_ch) USING (batch_id)",
            )
            nopart = _ids(con, f"SELECT '{DOCUMENTS}', doc_id FROM docs WHERE batch_id IS NULL OR batch_id NOT IN (SELECT batch_id FROM parts)")
            nopart = _merge(nopart, _ids(con, f"SELECT '{CHUNKS}', chunk_id FROM live_ch WHERE batch_id IS NULL OR batch_id NOT IN (SELECT batch_id FROM parts)"))
        else:
            nopart = {}

        # every embeddings table, retired versions included: id/hash/batch columns only
        emb_tables = store.embedding_tables()
        active_table = emb_tables.get(scope.active_version) if scope.active_version else None
        con.execute("CREATE TABLE active_docs (doc_id VARCHAR)")
        for version, table in sorted(emb_tables.items()):
            vec_r = _reader(store, table, ["chunk_id", "content_sha256", "batch_id"])
            con.execute("DROP TABLE IF EXISTS vec")
            con.execute(
                "CREATE TABLE vec AS SELECT v.chunk_id, v.batch_id, "
                "CASE WHEN c.chunk_id IS NULL THEN 'vector_without_chunk' "
                "     WHEN o.chunk_id IS NOT NULL THEN 'vector_of_orphan_chunk' "
                "     WHEN c.content_sha256 IS DISTINCT FROM v.content_sha256 THEN 'vector_stale' "
                "     ELSE NULL END AS kind, c.doc_id AS doc_id "
                "FROM vec_r v LEFT JOIN ch c ON v.chunk_id = c.chunk_id LEFT JOIN orphan_ch o ON v.chunk_id = o.chunk_id"
            )
            scanned[table] = con.execute("SELECT count(*) FROM vec").fetchone()[0]
            lit = table.replace("'", "''")
            for kind, ids in _ids(con, "SELECT kind, chunk_id FROM vec WHERE kind IS NOT NULL").items():
                items[kind][table] = ids
            if partition_keys is not None:
                nopart = _merge(nopart, _ids(con, f"SELECT '{lit}', chunk_id FROM vec WHERE kind IS NULL AND (batch_id IS NULL OR batch_id NOT IN (SELECT batch_id FROM parts))"))
            if deny_subjects:
                denied = _merge(denied, _ids(con, f"SELECT '{lit}', chunk_id FROM vec SEMI JOIN deny_ch USING (chunk_id)"))
            if table == active_table:
                con.execute("INSERT INTO active_docs SELECT DISTINCT doc_id FROM vec WHERE kind IS NULL")
        con.execute("DROP TABLE IF EXISTS vec")
        items["document_without_active_vector"] = _ids(con, f"SELECT '{DOCUMENTS}', doc_id FROM docs ANTI JOIN active_docs USING (doc_id)")
        items["data_without_partition"] = nopart
        items["denylisted_subject_data"] = denied

        # landing zone: the directory listing against documents.file_path
        land = scan_landing(scope.landing_dir)
        scanned[LANDING] = land.num_rows
        con.execute("CREATE TABLE land AS SELECT * FROM land")
        cutoff = now_ns - int(scope.grace_seconds * 1e9)
        cand = _ids(
            con,
            f"SELECT '{LANDING}', rel_path FROM land WHERE NOT is_sidecar AND mtime_ns < {cutoff} "
            "AND rel_path NOT IN (SELECT file_path FROM docs WHERE file_path IS NOT NULL)",
        )
        # a file with a reason file in quarantine was quarantined (a killed move left a copy)
        items["landing_never_ingested"] = {
            w: kept for w, ids in cand.items() if (kept := [p for p in ids if not (scope.quarantine_dir / (p + REASON_SUFFIX)).exists()])
        }
        items["document_landing_missing"] = _ids(
            con,
            f"SELECT '{DOCUMENTS}', doc_id FROM docs WHERE file_path IS NULL "
            "OR file_path NOT IN (SELECT rel_path FROM land WHERE NOT is_sidecar) "
            f"OR file_path || '{SIDECAR_SUFFIX}' NOT IN (SELECT rel_path FROM land WHERE is_sidecar)",
        )
    finally:
        con.close()
        spill.cleanup()
    checked = {k: True for k in KINDS}
    if partition_keys is None:
        checked["partition_without_data"] = checked["data_without_partition"] = False
    items = {k: {w: ids for w, ids in v.items() if ids} for k, v in items.items()}
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
        touched: set[str] = set()
        step("vectors")
        for table in report.embedding_tables:
            ids = sorted(
                set(report.ids("vector_without_chunk", table)) | set(report.ids("vector_of_orphan_chunk", table)) | set(report.ids("vector_stale", table))
            )
            if ids:
                res.rows_deleted[table] = store.delete_ids(table, "chunk_id", ids)
                touched.add(table)
        step("chunks")
        cands = report.ids("chunk_without_document", CHUNKS)
        if cands:
            keep = _still_orphan_chunks(store, cands)
            res.skipped["chunk_without_document"] = len(cands) - len(keep)
            res.deleted["chunk_without_document"] = len(keep)
            res.rows_deleted[CHUNKS] = store.delete_ids(CHUNKS, "chunk_id", keep)
            touched.add(CHUNKS)
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
            stats = store.purge(sorted(touched))
            res.purge = {"bytes_reclaimed": stats.bytes_reclaimed, "versions_removed": stats.versions_removed, "tables": sorted(stats.tables)}
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
            ledger.append_event("orphans.cleanup", {"kind": k, "deleted": 0 if dry_run else res.deleted[k], "found": counts[k], "dry_run": dry_run}, actor=actor)
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
    ledger.append_event(
        "orphans.report",
        {
            "counts": report.counts, "total": report.total, "cleanable_total": report.cleanable_total,
            "checked": {k: v for k, v in report.checked.items() if not v}, "active_version": report.active_version,
            "csv": csv_path.name if csv_path else None, "seconds": round(report.seconds, 3),
        },
        actor=actor,
    )
