"""Retention: delete what has expired everywhere it is stored, down to the bytes on disk.

Plain module (no Dagster). Categories and periods come from a validated policy file
(`aisg_pipelines/config/retention.yaml` by default):

* user_content (uploaded_at): documents -> chunks -> vectors in every `embeddings_*` table
  (retired versions included) -> landing file + sidecar; quarantined uploads by their age.
* system_logs / metrics (timestamp): rows of the LanceDB tables and the lines of the source
  files (a source file keeps only its held lines, or goes).
* audit_ledger (occurred_at): the expired prefix of the hash chain is removed behind a
  checkpoint that `Ledger.verify_chain` starts from (`Ledger.prune_events`); events naming a
  subject under legal hold, and the expired events after them, stay.
* retired_embed_versions (retired_at): the whole `embeddings_<v>` table is dropped (its
  directory leaves the disk) — never the active version nor the rollback target.

Legal holds: documents whose sidecar said legal_hold=true, and active ledger holds (scope
`subject`: subject_hash(subject_id, salt); scope `document`: subject_hash(doc_id, salt)).
Held data is never deleted and is reported separately. Deletion is by our own id lists
(doc_id, row_id) through `LanceStore.delete_ids`; then `LanceStore.purge` physically
removes the bytes. Steps run leaf-first (vectors, chunks, files, documents) so a run killed
at any point is finished by the next run. Removal of emptied Dagster partition keys is
left to the caller (`RetentionResult.partitions_emptied`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from .context import as_governance
from . import events
from .events import RetentionPurge
from .ids import BATCH_ID_RE, DOC_ID_RE, batched, in_filter, require, subject_hash
from .landing import REASON_SUFFIX, SIDECAR_SUFFIX
from .ledger import Ledger, audit_events, iso
from .markdown import md_table
from .store import CHUNKS, DOCUMENTS, EMBEDDINGS_PREFIX, METRICS, SYSTEM_LOGS, LanceStore, dir_size
from .retention_policy import (  # noqa: F401 - the policy API is used through retention too
    CATEGORIES, DEFAULT_POLICY_FILE, OPTIONAL_CATEGORIES, POLICY_KEYS, Policy, PolicyError, RetentionPolicies, load_policies, parse_policies,
)

# Dagster dynamic partition definitions whose keys retention can empty.
PARTITIONS = {"user_content": "ingest_batches", "system_logs": "system_log_days", "metrics": "metric_days", "retired_embed_versions": "embed_versions"}


# -- results ---------------------------------------------------------------------------


@dataclass
class CategoryResult:
    category: str
    period_days: int
    cutoff: str
    expired: int = 0  # items past the period (held ones included)
    deleted: int = 0  # items deleted (0 on a dry run)
    held: int = 0  # items past the period kept under legal hold (or kept for rollback)
    bytes_reclaimed: int = 0
    oldest_remaining_age_days: float | None = None
    unit: str = "rows"
    rows_deleted: dict[str, int] = field(default_factory=dict)  # per table / file kind
    held_items: list[str] = field(default_factory=list)  # our ids (doc_id, version name); never raw PII
    partitions_emptied: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def overdue(self) -> int:
        """Past the period, not held, still present."""
        return self.expired - self.held - self.deleted

    def audit_event(self, dry_run: bool) -> RetentionPurge:
        return RetentionPurge(
            category=self.category, expired=self.expired, deleted_rows=sum(self.rows_deleted.values()), deleted=self.deleted,
            unit=self.unit, held=self.held, bytes_reclaimed=self.bytes_reclaimed, dry_run=dry_run,
            oldest_remaining_age_days=self.oldest_remaining_age_days, period_days=self.period_days, cutoff=self.cutoff,
            rows_deleted=self.rows_deleted, partitions_emptied=self.partitions_emptied,
        )

    def audit_details(self, dry_run: bool) -> dict:
        return self.audit_event(dry_run).to_payload()


@dataclass
class RetentionResult:
    as_of: str
    dry_run: bool
    policy_source: str
    categories: dict[str, CategoryResult] = field(default_factory=dict)
    purge: dict[str, dict] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def partitions_emptied(self) -> dict[str, list[str]]:
        return {PARTITIONS[c]: r.partitions_emptied for c, r in self.categories.items() if c in PARTITIONS and r.partitions_emptied}

    @property
    def total_deleted_rows(self) -> int:
        return sum(sum(r.rows_deleted.values()) for r in self.categories.values())

    @property
    def bytes_reclaimed(self) -> int:
        return sum(r.bytes_reclaimed for r in self.categories.values())

    def summary_markdown(self) -> str:
        head = f"**Retention {'DRY RUN' if self.dry_run else 'run'}** as of `{self.as_of}` ({self.seconds:.1f}s)\n\n"
        table = md_table(
            ["category", "period (d)", "expired", "deleted", "held", "bytes reclaimed", "oldest remaining (d)"],
            [(r.category, r.period_days, f"{r.expired} {r.unit}", r.deleted, r.held, r.bytes_reclaimed,
              "-" if r.oldest_remaining_age_days is None else f"{r.oldest_remaining_age_days:.1f}") for r in self.categories.values()],
        )
        notes = [f"- {r.category}: {n}" for r in self.categories.values() for n in r.notes]
        return head + table + ("\n\n" + "\n".join(notes) if notes else "")

    def to_dict(self) -> dict:
        return {"as_of": self.as_of, "dry_run": self.dry_run, "policy_source": self.policy_source, "seconds": self.seconds,
                "categories": {k: asdict(v) for k, v in self.categories.items()}, "purge": self.purge}


class Holds:
    """Active legal holds as predicates over our values (salted hashes compared, never stored raw)."""

    def __init__(self, settings, ledger: Ledger):
        self.ledger_holds = ledger.active_holds()
        self._salt: bytes | None = None
        self._settings = settings
        self._cache: dict[str, str] = {}

    @property
    def any_ledger_hold(self) -> bool:
        return bool(self.ledger_holds["subject"] or self.ledger_holds["document"])

    def _hash(self, value: str) -> str:
        if self._salt is None:
            self._salt = as_governance(self._settings).salt
        h = self._cache.get(value)
        if h is None:
            h = self._cache[value] = subject_hash(value, self._salt)
        return h

    def subject_held(self, subject_id: str | None) -> bool:
        return bool(subject_id) and bool(self.ledger_holds["subject"]) and self._hash(subject_id) in self.ledger_holds["subject"]

    def document_held(self, doc_id: str) -> bool:
        return bool(self.ledger_holds["document"]) and self._hash(doc_id) in self.ledger_holds["document"]


def _age_days(now: datetime, ts: datetime | None) -> float | None:
    if ts is None:
        return None
    return max(0.0, round((now - ts).total_seconds() / 86400.0, 3))  # events written after as_of count as age 0


def _dir_size(path: Path) -> int:
    return dir_size(path) or 0


def _table_dir(store: LanceStore, name: str) -> Path | None:
    root = store.local_root()
    return root / f"{name}.lance" if root else None


def _sizes(store: LanceStore, names) -> dict[str, int]:
    out = {}
    for n in names:
        d = _table_dir(store, n)
        out[n] = _dir_size(d) if d else 0
    return out


def _needs_purge(store: LanceStore, name: str) -> bool:
    if not store.has_table(name):
        return False
    ds = store.dataset(name)
    return any(f.deletion_file() is not None for f in ds.get_fragments()) or len(ds.versions()) > 1


Hook = Callable[[str], None]


class Retention:
    """One retention run. `hook(step)` is called before each mutating step (tests kill runs there)."""

    def __init__(self, settings, *, policies: RetentionPolicies | None = None, now: datetime | None = None, dry_run: bool = False,
                 hook: Hook | None = None, store: LanceStore | None = None, ledger: Ledger | None = None,
                 known_partitions: dict[str, list[str]] | None = None):
        self.settings = settings
        self.policies = policies or load_policies()
        self.now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
        self.dry_run = dry_run
        self.hook = hook or (lambda step: None)
        gov = as_governance(settings)
        self.store = store or gov.store
        self.ledger = ledger or gov.ledger
        self.holds = Holds(settings, self.ledger)
        self.result = RetentionResult(iso(self.now), dry_run, self.policies.source)
        self._touched: dict[str, set[str]] = {}  # category -> tables with deletions
        # Existing Dagster partition keys (def name -> keys). Keys past the period whose data
        # is all gone are reported emptied too, so a run killed before the keys were removed
        # is finished by the next run.
        self.known_partitions = known_partitions or {}
        self._resumed_batches: set[str] = set()

    def _old_keys(self, category: str, cutoff: datetime) -> set[str]:
        keys = self.known_partitions.get(PARTITIONS[category], [])
        if category == "user_content":
            day = cutoff.strftime("%Y%m%d")
            return {k for k in keys if BATCH_ID_RE.fullmatch(k) and k[:8] < day}
        day = cutoff.strftime("%Y-%m-%d")
        return {k for k in keys if k < day}

    def _cat(self, category: str, unit: str) -> CategoryResult:
        pol = self.policies[category]
        r = CategoryResult(category, pol.days, iso(self.policies.cutoff(category, self.now)), unit=unit)
        self.result.categories[category] = r
        return r

    def _deleted_event(self, r: CategoryResult) -> None:
        """Written as soon as a category's rows are gone, before the purge: a run killed later
        still leaves an audit record of what it deleted (the final retention.purge events
        add bytes reclaimed)."""
        events.record(self.ledger, events.RetentionDeleted(category=r.category, expired=r.expired, deleted=r.deleted, held=r.held,
                                                           rows_deleted=r.rows_deleted, as_of=iso(self.now)), actor="retention")

    def _step(self, name: str) -> None:
        if not self.dry_run:
            self.hook(name)

    # -- retired embed versions ------------------------------------------------------
    def retired_versions(self) -> CategoryResult:
        from .versions import VersionRegistry

        r = self._cat("retired_embed_versions", "versions")
        cutoff = self.policies.cutoff("retired_embed_versions", self.now)
        reg = VersionRegistry(self.ledger)
        active = reg.active()
        previous = reg.previous_active()
        protected = {v.name for v in (active, previous) if v is not None}
        tables = self.store.embedding_tables()
        oldest = None
        known_keys = set(self.known_partitions.get(PARTITIONS["retired_embed_versions"], []))
        for v in reg.all():
            if v.status != "retired" or not v.retired_at:
                continue
            retired_at = datetime.fromisoformat(v.retired_at)
            if v.name not in tables:
                # table already dropped (e.g. by a run killed before its key was removed)
                if retired_at < cutoff and v.name not in protected and v.name in known_keys:
                    r.partitions_emptied.append(v.name)
                continue
            if retired_at >= cutoff:
                oldest = retired_at if oldest is None or retired_at < oldest else oldest
                continue
            r.expired += 1
            if v.name in protected:
                r.held += 1
                r.held_items.append(v.name)
                r.notes.append(f"{v.name} kept: it is the rollback target (previous active version)")
                oldest = retired_at if oldest is None or retired_at < oldest else oldest
                continue
            table = tables[v.name]
            d = _table_dir(self.store, table)
            size = _dir_size(d) if d else 0
            rows = self.store.count(table)
            if not self.dry_run:
                from . import cascade  # the table is dropped by the cascade: intent before, result after

                cascade.run_cascade(self.store, self.ledger, cascade.plan_cascade(self.store, drop_tables=[table]), cause="retention",
                                    actor="retention", on_step=self._step, purge=False)
                r.deleted += 1
                r.bytes_reclaimed += size
                r.rows_deleted[table] = rows
            r.partitions_emptied.append(v.name)
        if not self.dry_run and r.deleted:
            self._deleted_event(r)
        r.oldest_remaining_age_days = _age_days(self.now, oldest)
        return r

    # -- user content ----------------------------------------------------------------
    def _doc_held(self, doc_id: str, subject_id: str | None, legal_hold: bool | None) -> bool:
        return bool(legal_hold) or self.holds.subject_held(subject_id) or self.holds.document_held(doc_id)

    def user_content(self) -> CategoryResult:
        r = self._cat("user_content", "documents")
        cutoff = self.policies.cutoff("user_content", self.now)
        store = self.store
        docs = store.scan(DOCUMENTS, ["doc_id", "subject_id", "batch_id", "uploaded_at", "legal_hold", "file_path"]) if store.has_table(DOCUMENTS) else None
        expired_docs: dict[str, dict] = {}
        remaining_oldest: datetime | None = None
        if docs is not None and docs.num_rows:
            mask = pc.less(docs["uploaded_at"], pa.scalar(cutoff, docs.schema.field("uploaded_at").type))
            for row in docs.filter(mask).to_pylist():
                expired_docs[row["doc_id"]] = row
        # Chunks of documents already gone (a killed run, or an orphan) expire on their own date.
        if store.has_table(CHUNKS):
            ch = store.scan(CHUNKS, ["doc_id", "subject_id", "batch_id", "uploaded_at"])
            if ch.num_rows:
                mask = pc.less(ch["uploaded_at"], pa.scalar(cutoff, ch.schema.field("uploaded_at").type))
                sub = ch.filter(mask)
                known = pa.array(list(expired_docs) or [""], pa.string())
                orphan = sub.filter(pc.invert(pc.is_in(sub["doc_id"], value_set=known)))
                for row in orphan.to_pylist():
                    expired_docs.setdefault(row["doc_id"], {**row, "legal_hold": None, "file_path": None, "orphan": True})
        held = sorted(d for d, row in expired_docs.items() if self._doc_held(d, row["subject_id"], row["legal_hold"]))
        delete = sorted(set(expired_docs) - set(held))
        for d in delete:
            require(DOC_ID_RE, d, "doc_id")
        r.expired = sum(1 for row in expired_docs.values() if not row.get("orphan"))
        r.held = len(held)
        r.held_items = held
        if docs is not None and docs.num_rows:
            keep = docs.filter(pc.invert(pc.is_in(docs["doc_id"], value_set=pa.array(delete or [""], pa.string()))))
            if keep.num_rows:
                remaining_oldest = pc.min(keep["uploaded_at"]).as_py()
        r.oldest_remaining_age_days = _age_days(self.now, remaining_oldest)
        emb_tables = sorted(store.embedding_tables().values())
        tables = [t for t in [*emb_tables, CHUNKS, DOCUMENTS] if store.has_table(t)]
        if self.dry_run:
            for t in emb_tables:
                r.rows_deleted[t] = self._count_ids(t, "doc_id", delete)
            r.rows_deleted[CHUNKS] = self._count_ids(CHUNKS, "doc_id", delete)
            r.rows_deleted[DOCUMENTS] = self._count_ids(DOCUMENTS, "doc_id", delete)
            r.rows_deleted["landing_files"] = sum(1 for _ in self._landing_files(expired_docs, delete) if _.exists())
            r.rows_deleted["quarantined_files"] = len(self._expired_quarantine(cutoff))
        else:
            # one cascade (governance/cascade.py): intent in the ledger first, then leaf first
            # (vectors, chunks, files, documents), then the result; a killed run leaves an open
            # intent that the next run completes before planning anew
            from . import cascade

            q = self._expired_quarantine(cutoff)
            plan = cascade.plan_cascade(store, doc_ids=delete, files=q, landing_dir=self.settings.landing_dir)
            if not plan.is_empty():
                cres = cascade.run_cascade(store, self.ledger, plan, cause="retention", actor="retention", on_step=self._step, purge=False)
                for t in emb_tables:
                    r.rows_deleted[t] = cres.rows.get(t, 0)
                r.rows_deleted[CHUNKS] = cres.rows.get(CHUNKS, 0)
                r.rows_deleted["landing_files"] = cres.landing_files_removed
                r.rows_deleted["quarantined_files"] = cres.files_removed
                r.rows_deleted[DOCUMENTS] = cres.rows.get(DOCUMENTS, 0)
                r.bytes_reclaimed += cres.bytes_removed
            else:
                for t in [*emb_tables, CHUNKS]:
                    r.rows_deleted[t] = 0
                r.rows_deleted.update(landing_files=0, quarantined_files=0, documents=0)
            r.deleted = sum(1 for d in delete if not expired_docs[d].get("orphan"))
            self._touched["user_content"] = set(tables)
            self._deleted_event(r)
        # Ingest batches whose rows are all gone: candidates are the batches of deleted docs
        # and keys an earlier (killed) run reported but may not have removed.
        candidates = {expired_docs[d]["batch_id"] for d in delete} | self._old_keys("user_content", cutoff) | self._resumed_batches
        r.partitions_emptied = self._emptied_batches(sorted(candidates), tables, delete)
        return r

    def _count_ids(self, table: str, column: str, ids: list[str]) -> int:
        if not ids or not self.store.has_table(table):
            return 0
        return sum(self.store.count(table, in_filter(column, chunk)) for chunk in batched(ids, 1000))

    def _emptied_batches(self, candidates: list[str], tables: list[str], deleted_docs: list[str]) -> list[str]:
        if not candidates:
            return []
        gone = pa.array(deleted_docs or [""], pa.string())
        remaining: set[str] = set()
        for t in tables:
            for chunk in batched(candidates, 1000):
                rows = self.store.scan(t, ["batch_id", "doc_id"], filter=in_filter("batch_id", chunk))
                if rows.num_rows:
                    rows = rows.filter(pc.invert(pc.is_in(rows["doc_id"], value_set=gone)))
                    remaining.update(rows["batch_id"].to_pylist())
        return sorted(set(candidates) - remaining)

    def _landing_files(self, expired_docs: dict[str, dict], delete: list[str]):
        landing = Path(self.settings.landing_dir).resolve()
        for d in delete:
            rel = expired_docs[d].get("file_path")
            if not rel:
                continue
            p = (landing / rel).resolve()
            if not p.is_relative_to(landing):
                continue  # never follow a path out of the landing zone
            yield p
            yield p.with_name(p.name + SIDECAR_SUFFIX)

    def _expired_quarantine(self, cutoff: datetime) -> list[Path]:
        """Quarantined uploads (file, sidecar, reason) whose upload date is past the period.

        The upload date is the sidecar's uploaded_at when readable, else the file's mtime.
        Telemetry quarantine files are handled by their own categories.
        """
        qdir = Path(self.settings.quarantine_dir)
        if not qdir.exists():
            return []
        out: list[Path] = []
        for root, _dirs, files in os.walk(qdir):
            rootp = Path(root)
            if rootp == qdir / "telemetry" or (qdir / "telemetry") in rootp.parents:
                continue
            for name in files:
                if name.endswith(SIDECAR_SUFFIX) or name.endswith(REASON_SUFFIX):
                    continue
                p = rootp / name
                ts = None
                sidecar = p.with_name(name + SIDECAR_SUFFIX)
                if sidecar.exists():
                    try:
                        meta = json.loads(sidecar.read_text(encoding="utf-8"))
                        ts = datetime.fromisoformat(str(meta["uploaded_at"]).replace("Z", "+00:00"))
                        ts = ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)
                    except Exception:
                        ts = None
                if ts is None:
                    ts = datetime.fromtimestamp(p.stat().st_mtime, timezone.utc)
                if ts < cutoff:
                    out += [q for q in (p, sidecar, p.with_name(name + REASON_SUFFIX)) if q.exists()]
        # orphan sidecars / reason files (their upload already removed)
        return out

    # -- system logs and metrics -----------------------------------------------------
    def telemetry(self, category: str) -> CategoryResult:
        from .cascade import line_hash
        from .telemetry import KINDS, STRICT_DAY_RE, list_day_files, parse_line, quarantine_file, row_id_for, source_dir

        r = self._cat(category, "rows")
        cutoff = self.policies.cutoff(category, self.now)
        table = KINDS[category][0]
        store = self.store
        delete: list[str] = []
        expired_days: set[str] = set()
        remaining_days: set[str] = set()
        if store.has_table(table):
            t = store.scan(table, ["row_id", "day", "timestamp", "user_id"])
            if t.num_rows:
                mask = pc.less(t["timestamp"], pa.scalar(cutoff, t.schema.field("timestamp").type))
                exp = t.filter(mask)
                r.expired = exp.num_rows
                held_mask = [self.holds.subject_held(u) for u in exp["user_id"].to_pylist()] if self.holds.ledger_holds["subject"] else [False] * exp.num_rows
                held_rows = exp.filter(pa.array(held_mask, pa.bool_()))
                del_rows = exp.filter(pc.invert(pa.array(held_mask, pa.bool_())))
                r.held = held_rows.num_rows
                delete = del_rows["row_id"].to_pylist()
                expired_days = set(del_rows["day"].to_pylist())
                keep = t.filter(pc.invert(pc.is_in(t["row_id"], value_set=pa.array(delete or [""], pa.string()))))
                remaining_days = set(keep["day"].to_pylist())
                if keep.num_rows:
                    r.oldest_remaining_age_days = _age_days(self.now, pc.min(keep["timestamp"]).as_py())
        # Source files: keep only lines that are not expired, or held; quarantine files of past days go.
        sdir = source_dir(self.settings, category)
        cutoff_day = cutoff.strftime("%Y-%m-%d")
        file_plan: list[tuple[Path, list[bytes] | None, int]] = []
        drop_rows: set[str] = set()  # row ids of source lines that go (parsed lines)
        drop_lines: dict[str, list[str]] = {}  # path -> hashes of undatable lines that go
        files_by_day = list_day_files(sdir)
        for day, files in files_by_day.items():
            if day > cutoff_day:
                continue
            for rel in files:
                p = sdir / rel
                raw_lines = p.read_bytes().splitlines()
                kept: list[bytes] = []
                for raw in raw_lines:
                    if not raw.strip():
                        continue
                    try:
                        parsed = parse_line(category, raw)
                    except Exception:
                        if day == cutoff_day:
                            kept.append(raw)  # undatable line of the boundary day: keep
                        else:
                            drop_lines.setdefault(str(p), []).append(line_hash(raw))
                        continue
                    if parsed["timestamp"] >= cutoff or self.holds.subject_held(parsed.get("user_id")):
                        kept.append(raw)
                    else:
                        drop_rows.add(row_id_for(category, rel, raw))
                if len(kept) != sum(1 for x in raw_lines if x.strip()):
                    file_plan.append((p, kept or None, p.stat().st_size))
        removal = {p for p, kept, _ in file_plan if kept is None}
        live_days = {day for day, files in files_by_day.items() if any(sdir / rel not in removal for rel in files)}
        qfiles = []
        qroot = quarantine_file(self.settings.quarantine_dir, category, "0000-00-00").parent
        if qroot.exists():
            for q in sorted(qroot.glob("*.rejected.jsonl")):
                day = q.name.split(".")[0]
                if STRICT_DAY_RE.fullmatch(day) and day < cutoff_day:
                    qfiles.append(q)
        if self.dry_run:
            r.rows_deleted[table] = len(delete)
            r.rows_deleted["source_files_removed"] = sum(1 for _, k, _ in file_plan if k is None)
            r.rows_deleted["source_files_rewritten"] = sum(1 for _, k, _ in file_plan if k is not None)
            r.rows_deleted["quarantine_files_removed"] = len(qfiles)
        else:
            # one cascade: table rows and their source lines (by row id), undatable lines (by
            # hash), quarantine files of past days; intent before, result after
            from . import cascade

            plan = cascade.plan_cascade(
                store, telemetry={category: sorted(set(delete) | drop_rows)}, source_dirs={category: sdir},
                source_files={category: sorted(p.relative_to(sdir).as_posix() for p, _, _ in file_plan)},
                lines=drop_lines, files=qfiles,
            )
            n_q = sum(1 for q in qfiles if q.exists())
            cres = None
            if not plan.is_empty():
                cres = cascade.run_cascade(store, self.ledger, plan, cause="retention", actor="retention", on_step=self._step, purge=False)
            r.rows_deleted[table] = cres.rows.get(table, 0) if cres else 0
            r.deleted = r.rows_deleted[table]
            r.rows_deleted["source_files_removed"] = (cres.files_removed - n_q) if cres else 0
            r.rows_deleted["source_files_rewritten"] = cres.files_rewritten if cres else 0
            r.rows_deleted["quarantine_files_removed"] = n_q
            r.bytes_reclaimed += cres.bytes_removed if cres else 0
            if store.has_table(table):
                self._touched[category] = {table}
            self._deleted_event(r)
        candidates = expired_days | self._old_keys(category, cutoff)
        r.partitions_emptied = sorted(candidates - remaining_days - live_days)
        return r

    # -- audit ledger ---------------------------------------------------------------
    def audit_ledger(self) -> CategoryResult:
        """Events older than 7 years leave the chain as a prefix, behind a verifiable checkpoint
        (`Ledger.prune_events`). Events naming a subject under legal hold stay, and so does
        every expired event after them, because the kept chain must be contiguous."""
        r = self._cat("audit_ledger", "events")
        held = frozenset(self.holds.ledger_holds["subject"])
        prune = self.ledger.prune_events(r.cutoff, held_subject_hashes=held, dry_run=self.dry_run)
        r.expired, r.held, r.deleted = prune.expired, prune.held, prune.pruned
        if prune.pruned:
            r.rows_deleted["audit_events"] = prune.pruned
            r.notes.append(f"pruned through seq {prune.through_seq}; the chain now starts at anchor {prune.anchor_hash[:12]}… (checkpoint recorded by a ledger.pruned event)")
            from .checkpoints import checkpoint_after

            checkpoint_after(self.settings, self.ledger, "prune", prune=prune)  # signed checkpoint attesting the prune (issue 18)
        if prune.held:
            r.notes.append(f"{prune.held} expired event(s) kept: a subject under legal hold is named at or before them in the chain")
        with self.ledger.engine.connect() as conn:
            oldest = conn.execute(sa.select(sa.func.min(audit_events.c.occurred_at))).scalar()
        r.oldest_remaining_age_days = _age_days(self.now, datetime.fromisoformat(oldest)) if oldest else None
        return r

    # -- the run -----------------------------------------------------------------------
    def run(self) -> RetentionResult:
        t0 = time.perf_counter()
        if not self.dry_run:
            self._resume()
        self.retired_versions()  # before user content: no need to delete rows of a table being dropped
        self.user_content()
        self.telemetry("system_logs")
        self.telemetry("metrics")
        self.audit_ledger()
        self._access_exports()
        if not self.dry_run:
            self._purge()
        self.result.seconds = round(time.perf_counter() - t0, 3)
        for r in self.result.categories.values():
            events.record(self.ledger, r.audit_event(self.dry_run), actor="retention")
        return self.result

    def _access_exports(self) -> None:
        """GDPR access exports past the optional `access_exports` policy (governance/access.py)."""
        try:
            from .access import expire_exports

            opt = self.policies.optional.get("access_exports")
            expire_exports(self.settings, now=self.now, dry_run=self.dry_run, ledger=self.ledger, days=opt.days if opt else None)
        except Exception as exc:  # noqa: BLE001 - never blocks the other categories; the next run retries
            import logging

            logging.getLogger(__name__).warning("access exports not expired: %s", exc)

    def _resume(self) -> None:
        """Complete the cascades a killed retention run left open (their intent is in the
        ledger; `cascade.result` records what they deleted); their emptied batches are
        reported again with the partitions the run empties."""
        from . import cascade

        for done in cascade.resume_open(self.store, self.ledger, causes=["retention"], on_step=self._step):
            self._resumed_batches.update(done.batches_emptied)

    def _purge(self) -> None:
        """The shared physical purge over every table retention touched, or a killed run left dirty."""
        owner: dict[str, str] = {}
        for cat, tables in self._touched.items():
            for t in tables:
                owner[t] = cat
        for name in self.store.table_names():
            if name in (DOCUMENTS, CHUNKS) or name.startswith(EMBEDDINGS_PREFIX):
                owner.setdefault(name, "user_content")
            elif name == SYSTEM_LOGS:
                owner.setdefault(name, "system_logs")
            elif name == METRICS:
                owner.setdefault(name, "metrics")
        names = [n for n in sorted(owner) if n in self._touched.get(owner[n], set()) or _needs_purge(self.store, n)]
        if not names:
            return
        self._step("purge")
        before = _sizes(self.store, names)
        stats = self.store.purge(names)
        after = _sizes(self.store, names)
        for n in names:
            entry = dict(stats.tables.get(n, {}))
            local = self.store.local_root() is not None
            reclaimed = max(0, before[n] - after[n]) if local else int(entry.get("bytes_removed", 0))
            entry["bytes_reclaimed_net"] = reclaimed
            self.result.purge[n] = entry
            self.result.categories[owner[n]].bytes_reclaimed += reclaimed


def run_retention(settings, *, now: datetime | None = None, dry_run: bool = False, policies: RetentionPolicies | None = None,
                  policy_file: str | Path | None = None, hook: Hook | None = None,
                  known_partitions: dict[str, list[str]] | None = None) -> RetentionResult:
    pol = policies or load_policies(policy_file)
    return Retention(settings, policies=pol, now=now, dry_run=dry_run, hook=hook, known_partitions=known_partitions).run()


def overdue_report(settings, category: str, *, now: datetime | None = None, policies: RetentionPolicies | None = None) -> CategoryResult:
    """What a dry run finds for one category: the asset check fails if `overdue` > 0."""
    ret = Retention(settings, policies=policies, now=now, dry_run=True)
    fn = {"user_content": ret.user_content, "system_logs": lambda: ret.telemetry("system_logs"), "metrics": lambda: ret.telemetry("metrics"),
          "audit_ledger": ret.audit_ledger, "retired_embed_versions": ret.retired_versions}[category]
    return fn()
