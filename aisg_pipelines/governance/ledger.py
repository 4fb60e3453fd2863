"""The governance ledger: one SQLAlchemy database (SQLite locally, PostgreSQL in production).

It holds the append-only, hash-chained audit trail of every governance action, and the
small amount of state the jobs coordinate on: ingest batch manifests, the embed_version
registry, legal holds, erasure requests and the erasure denylist.

No raw personal data enters the ledger: subjects appear only as salted hashes.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError

from . import events
from .ids import sha256_hex
from .periods import iso  # the ledger's timestamp format; other modules import it from here too

metadata = sa.MetaData()

GENESIS_HASH = "0" * 64

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(36), nullable=False, unique=True),
    sa.Column("occurred_at", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("subject_hash", sa.String(64), nullable=True),
    sa.Column("details", sa.Text, nullable=False),
    # UNIQUE(prev_hash) makes the chain linear: two writers racing for the same head
    # cannot both append; the loser retries on the new head.
    sa.Column("prev_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("event_hash", sa.String(64), nullable=False, unique=True),
)
sa.Index("ix_audit_events_action_time", audit_events.c.action, audit_events.c.occurred_at)

# Retention of the audit trail itself (7 years) removes a *prefix* of the chain. Each prune
# leaves a checkpoint: the hash of the last removed event (the anchor the first kept event
# links to), a digest of every removed event hash, and the id of the `ledger.pruned` event
# that records the same values inside the chain. `verify_chain` starts from the newest
# checkpoint and requires that event, so removing events without a real prune, or forging a
# checkpoint row, is still detected.
ledger_checkpoints = sa.Table(
    "ledger_checkpoints",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("cutoff", sa.String(32), nullable=False),
    sa.Column("through_seq", sa.Integer, nullable=False, unique=True),
    sa.Column("events_pruned", sa.Integer, nullable=False),  # by this prune
    sa.Column("events_pruned_total", sa.Integer, nullable=False),  # since the genesis
    sa.Column("anchor_hash", sa.String(64), nullable=False),
    sa.Column("pruned_digest", sa.String(64), nullable=False),
    sa.Column("oldest_pruned_at", sa.String(32), nullable=False),
    sa.Column("newest_pruned_at", sa.String(32), nullable=False),
    sa.Column("record_event_id", sa.String(36), nullable=False, unique=True),
)

# Signed checkpoints (issue 18, governance/checkpoints.py): the head of the chain signed with
# the Ed25519 key and written *outside* this database (the checkpoints directory / object
# storage). This table only records which checkpoints were written, so `aisg verify-ledger`
# can tell a deleted checkpoint file or a truncated tail (rows pointing past the head) from
# an older copy of the whole database. It is not a trust root: the signed files are.
ledger_signed_checkpoints = sa.Table(
    "ledger_signed_checkpoints",
    metadata,
    sa.Column("checkpoint_no", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("head_seq", sa.Integer, nullable=True),  # null: the ledger was empty
    sa.Column("head_hash", sa.String(64), nullable=False),
    sa.Column("file_name", sa.String(128), nullable=False),
    sa.Column("file_sha256", sa.String(64), nullable=False),
)

ingest_batches = sa.Table(
    "ingest_batches",
    metadata,
    sa.Column("batch_id", sa.String(32), primary_key=True),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("files", sa.Text, nullable=False),  # JSON list of landing-relative paths
)

# Every landed file (path + mtime) that is in a batch manifest: the landing sensor skips
# these, so a lost sensor cursor (daemon reset, demo then `dagster dev`) never re-batches
# files already ingested. A re-upload to the same path has a new mtime and is new.
ingest_batch_files = sa.Table(
    "ingest_batch_files",
    metadata,
    sa.Column("rel_path", sa.Text, primary_key=True),
    sa.Column("mtime_ns", sa.BigInteger, primary_key=True),
    sa.Column("batch_id", sa.String(32), nullable=False, index=True),
)

embed_versions = sa.Table(
    "embed_versions",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("model_path", sa.Text, nullable=False),
    sa.Column("model_name", sa.String(256), nullable=False),
    sa.Column("weights_fingerprint", sa.String(64), nullable=False),
    sa.Column("dims", sa.Integer, nullable=False),
    sa.Column("normalize", sa.Boolean, nullable=False),
    sa.Column("max_seq_length", sa.Integer, nullable=False),
    sa.Column("chunk_size", sa.Integer, nullable=False),
    sa.Column("chunk_overlap", sa.Integer, nullable=False),
    sa.Column("params_hash", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("registered_at", sa.String(32), nullable=False),
    sa.Column("building_at", sa.String(32)),
    sa.Column("validated_at", sa.String(32)),
    sa.Column("activated_at", sa.String(32)),
    sa.Column("retired_at", sa.String(32)),
    sa.Column("backend", sa.String(16)),  # torch | onnx | onnx-int8 (NULL: registered before backends, i.e. torch)
    sa.Column("quantization", sa.Text),  # onnx-int8 settings (canonical JSON)
)
# Exactly one active version: a partial unique index, enforced by the database itself.
sa.Index(
    "uq_one_active_embed_version",
    embed_versions.c.status,
    unique=True,
    sqlite_where=embed_versions.c.status == "active",
    postgresql_where=embed_versions.c.status == "active",
)

legal_holds = sa.Table(
    "legal_holds",
    metadata,
    sa.Column("hold_id", sa.String(36), primary_key=True),
    sa.Column("scope", sa.String(16), nullable=False),  # 'subject' | 'document'
    sa.Column("target_hash", sa.String(64), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("released_at", sa.String(32)),
)

erasure_denylist = sa.Table(
    "erasure_denylist",
    metadata,
    sa.Column("subject_hash", sa.String(64), primary_key=True),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("added_at", sa.String(32), nullable=False),
)


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def event_hash(prev_hash: str, event: dict[str, Any]) -> str:
    body = {k: event[k] for k in ("event_id", "occurred_at", "actor", "action", "subject_hash", "details")}
    return sha256_hex(prev_hash + "\n" + canonical_json(body))


@dataclass(frozen=True)
class AuditEvent:
    seq: int
    event_id: str
    occurred_at: str
    actor: str
    action: str
    subject_hash: str | None
    details: dict[str, Any]
    prev_hash: str
    event_hash: str


@dataclass(frozen=True)
class ChainVerification:
    ok: bool
    events: int
    head_hash: str
    problems: list[str]
    anchor_hash: str = GENESIS_HASH  # what the first kept event links to (genesis, or a checkpoint)
    pruned_events: int = 0  # removed by audit-ledger retention, accounted for by checkpoints
    head_seq: int | None = None  # seq of the newest event (None: no event)


@dataclass(frozen=True)
class LedgerPrune:
    """What `Ledger.prune_events` found (dry run) or removed."""

    cutoff: str
    expired: int  # events older than the cutoff
    pruned: int  # removed now (0 on a dry run)
    prunable: int  # the contiguous expired prefix not blocked by a hold
    held: int  # expired events kept: under a subject legal hold, or after one in the chain
    through_seq: int | None = None
    anchor_hash: str | None = None
    record_event_id: str | None = None


class LedgerTampered(RuntimeError):
    """The chain does not verify; retention refuses to remove evidence of that."""


PRUNE_ACTION = events.LedgerPruned.ACTION


def _event_problems(r, prev: str) -> list[str]:
    """What is wrong with audit row `r` when the previous event's hash is `prev`."""
    problems = []
    if r.prev_hash != prev:
        problems.append(f"event seq={r.seq} ({r.action}) links to {r.prev_hash[:12]}… but the previous event hash is {prev[:12]}…: an event was deleted, inserted or reordered")
    if event_hash(r.prev_hash, r._asdict()) != r.event_hash:
        problems.append(f"event seq={r.seq} ({r.action}) content does not match its hash: the event was edited")
    return problems


def _latest_checkpoint(conn):
    return conn.execute(sa.select(ledger_checkpoints).order_by(ledger_checkpoints.c.through_seq.desc()).limit(1)).first()


def normalise_url(url: str) -> str:
    """`postgresql://` means psycopg 3 to SQLAlchemy 2.1; the installed driver is psycopg2."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


# Columns added to a table after ledgers were created with it: nullable, added in place.
_ADDED_COLUMNS = {"embed_versions": ("backend", "quantization")}


def _add_missing_columns(engine) -> None:
    insp = sa.inspect(engine)
    for table_name, cols in _ADDED_COLUMNS.items():
        have = {c["name"] for c in insp.get_columns(table_name)}
        table = metadata.tables[table_name]
        for name in cols:
            if name in have:
                continue
            col = table.c[name]
            ddl = f"ALTER TABLE {table_name} ADD COLUMN {name} {col.type.compile(dialect=engine.dialect)}"
            try:
                with engine.begin() as conn:
                    conn.execute(sa.text(ddl))
            except sa.exc.DBAPIError:  # another process added it first
                if name not in {c["name"] for c in sa.inspect(engine).get_columns(table_name)}:
                    raise


class Ledger:
    def __init__(self, url: str, *, create: bool = True):
        url = normalise_url(url)
        self.url = url
        if url.startswith("sqlite:///"):
            from pathlib import Path

            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        kwargs: dict[str, Any] = {"future": True, "pool_pre_ping": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30}
        self.engine = sa.create_engine(url, **kwargs)
        if create:
            metadata.create_all(self.engine)
            _add_missing_columns(self.engine)

    @contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        with self.engine.begin() as conn:
            yield conn

    # -- audit trail -------------------------------------------------------------------
    def append_event(
        self,
        action: str,
        details: dict[str, Any] | None = None,
        *,
        actor: str = "aisg_pipelines",
        subject_hash: str | None = None,
        conn: sa.Connection | None = None,
        occurred_at: str | None = None,
    ) -> AuditEvent:
        """Append one event to the hash chain, atomically (retrying if another writer won).

        `occurred_at` (ISO UTC) defaults to now; tests and backfills may pass a fixed time
        (it is covered by the event hash like every other field).
        """
        if conn is not None:
            return self._append(conn, action, details or {}, actor, subject_hash, occurred_at)
        last_error: Exception | None = None
        for attempt in range(20):
            try:
                with self.engine.begin() as c:
                    return self._append(c, action, details or {}, actor, subject_hash, occurred_at)
            except (IntegrityError, OperationalError) as exc:  # lost the race for the head
                last_error = exc
                time.sleep(0.02 * (attempt + 1))
        raise RuntimeError(f"could not append audit event {action!r}: {last_error}")

    def _append(self, conn, action, details, actor, subject_hash, occurred_at=None) -> AuditEvent:
        head = conn.execute(
            sa.select(audit_events.c.event_hash).order_by(audit_events.c.seq.desc()).limit(1)
        ).scalar()
        prev = head or GENESIS_HASH
        event = {
            "event_id": str(uuid.uuid4()),
            "occurred_at": iso(datetime.fromisoformat(occurred_at)) if occurred_at else iso(),
            "actor": actor,
            "action": action,
            "subject_hash": subject_hash,
            "details": canonical_json(details),
        }
        h = event_hash(prev, event)
        res = conn.execute(audit_events.insert().values(**event, prev_hash=prev, event_hash=h))
        return AuditEvent(
            seq=res.inserted_primary_key[0], event_id=event["event_id"], occurred_at=event["occurred_at"],
            actor=actor, action=action, subject_hash=subject_hash, details=details, prev_hash=prev, event_hash=h,
        )

    def events(self, action_prefix: str | None = None, since: str | None = None, until: str | None = None) -> list[AuditEvent]:
        q = sa.select(audit_events).order_by(audit_events.c.seq)
        if action_prefix:
            q = q.where(audit_events.c.action.startswith(action_prefix))
        if since:
            q = q.where(audit_events.c.occurred_at >= since)
        if until:
            q = q.where(audit_events.c.occurred_at < until)
        with self.engine.connect() as conn:
            return [
                AuditEvent(
                    seq=r.seq, event_id=r.event_id, occurred_at=r.occurred_at, actor=r.actor, action=r.action,
                    subject_hash=r.subject_hash, details=json.loads(r.details), prev_hash=r.prev_hash, event_hash=r.event_hash,
                )
                for r in conn.execute(q)
            ]

    def verify_chain(self) -> ChainVerification:
        """Detects edited, deleted, inserted or reordered events.

        After audit-ledger retention the chain starts at the newest checkpoint's anchor, and
        the checkpoint must match the newest `ledger.pruned` event in the kept chain.
        """
        problems: list[str] = []
        with self.engine.connect() as conn:
            cp = _latest_checkpoint(conn)
            anchor = cp.anchor_hash if cp else GENESIS_HASH
            prev = anchor
            n = 0
            last_prune_record = None
            head_seq = None
            for r in conn.execute(sa.select(audit_events).order_by(audit_events.c.seq)):
                n += 1
                head_seq = r.seq
                if cp is not None and r.seq <= cp.through_seq:
                    problems.append(f"event seq={r.seq} ({r.action}) is at or before checkpoint seq={cp.through_seq}, whose events were pruned")
                problems += _event_problems(r, prev)
                if r.action == PRUNE_ACTION:
                    last_prune_record = r
                prev = r.event_hash
        if cp is not None:
            if last_prune_record is None or last_prune_record.event_id != cp.record_event_id:
                problems.append(f"checkpoint through seq={cp.through_seq} is not the one recorded by the newest {PRUNE_ACTION} event in the chain: the checkpoint table was edited")
            else:
                recorded = events.LedgerPruned.from_payload(json.loads(last_prune_record.details))
                for key in ("through_seq", "anchor_hash", "pruned_digest", "events_pruned_total"):
                    if getattr(recorded, key) != getattr(cp, key):
                        problems.append(f"checkpoint {key} does not match the {PRUNE_ACTION} event seq={last_prune_record.seq}")
        elif last_prune_record is not None:
            problems.append(f"the chain records a prune (event seq={last_prune_record.seq}) but its checkpoint is missing")
        return ChainVerification(ok=not problems, events=n, head_hash=prev, problems=problems, anchor_hash=anchor,
                                 pruned_events=cp.events_pruned_total if cp else 0, head_seq=head_seq)

    def prune_events(self, cutoff: str, *, held_subject_hashes: set[str] | frozenset[str] = frozenset(), dry_run: bool = False,
                     now: str | None = None) -> LedgerPrune:
        """Remove the audit events older than `cutoff` (ISO UTC), keeping the chain verifiable.

        Only a contiguous prefix of the chain can go: pruning stops at the first event that is
        not expired, or that names a subject under legal hold (that event, and every expired
        event after it, is counted as held). The removal, the checkpoint and the
        `ledger.pruned` event that records it are one transaction, so a killed run leaves
        either all of it or none of it. A chain that does not verify is not pruned.
        """
        with self.engine.begin() as conn:
            expired = conn.execute(sa.select(sa.func.count()).select_from(audit_events).where(audit_events.c.occurred_at < cutoff)).scalar() or 0
            if expired == 0:
                return LedgerPrune(cutoff=cutoff, expired=0, pruned=0, prunable=0, held=0)
            cp = _latest_checkpoint(conn)
            prev = cp.anchor_hash if cp else GENESIS_HASH
            digest = hashlib.sha256()
            prunable, last = 0, None
            oldest = newest = None
            rows = conn.execute(sa.select(audit_events).order_by(audit_events.c.seq)).yield_per(10_000)
            try:
                for r in rows:
                    if r.occurred_at >= cutoff or (r.subject_hash and r.subject_hash in held_subject_hashes):
                        break
                    if bad := _event_problems(r, prev):
                        raise LedgerTampered(f"{bad[0]}; nothing was pruned (see `aisg verify-ledger`)")
                    digest.update(r.event_hash.encode())
                    prev, last = r.event_hash, r
                    prunable += 1
                    oldest = r.occurred_at if oldest is None else min(oldest, r.occurred_at)
                    newest = r.occurred_at if newest is None else max(newest, r.occurred_at)
            finally:
                rows.close()
            held = expired - prunable
            if dry_run or prunable == 0:
                return LedgerPrune(cutoff=cutoff, expired=expired, pruned=0, prunable=prunable, held=held)
            record = {
                "cutoff": cutoff, "through_seq": last.seq, "events_pruned": prunable,
                "events_pruned_total": (cp.events_pruned_total if cp else 0) + prunable,
                "anchor_hash": last.event_hash, "pruned_digest": digest.hexdigest(),
                "oldest_pruned_at": oldest, "newest_pruned_at": newest,
            }
            ev = self._append(conn, PRUNE_ACTION, events.LedgerPruned(**record).to_payload(), "retention", None, now)
            conn.execute(ledger_checkpoints.insert().values(created_at=ev.occurred_at, record_event_id=ev.event_id, **record))
            conn.execute(audit_events.delete().where(audit_events.c.seq <= last.seq))
            return LedgerPrune(cutoff=cutoff, expired=expired, pruned=prunable, prunable=prunable, held=held,
                               through_seq=last.seq, anchor_hash=last.event_hash, record_event_id=ev.event_id)

    # -- ingest batches ----------------------------------------------------------------
    def record_batch(self, batch_id: str, files: list[str], mtimes_ns: dict[str, int] | None = None) -> None:
        """Idempotent: the same batch id always has the same manifest."""
        with self.engine.begin() as conn:
            existing = conn.execute(sa.select(ingest_batches.c.files).where(ingest_batches.c.batch_id == batch_id)).scalar()
            if existing is None:
                conn.execute(ingest_batches.insert().values(batch_id=batch_id, created_at=iso(), files=json.dumps(sorted(files))))
                if mtimes_ns:
                    conn.execute(
                        ingest_batch_files.insert(),
                        [{"rel_path": f, "mtime_ns": mtimes_ns[f], "batch_id": batch_id} for f in sorted(files) if f in mtimes_ns],
                    )

    def already_batched(self, candidates: list[tuple[str, int]]) -> dict[tuple[str, int], str]:
        """{(rel_path, mtime_ns): batch_id} for the candidates already in a batch manifest."""
        found: dict[tuple[str, int], str] = {}
        paths = sorted({p for p, _ in candidates})
        with self.engine.connect() as conn:
            for i in range(0, len(paths), 500):
                cols = (ingest_batch_files.c.rel_path, ingest_batch_files.c.mtime_ns, ingest_batch_files.c.batch_id)
                for r in conn.execute(sa.select(*cols).where(ingest_batch_files.c.rel_path.in_(paths[i : i + 500]))):
                    found[(r.rel_path, r.mtime_ns)] = r.batch_id
        wanted = set(candidates)
        return {k: v for k, v in found.items() if k in wanted}

    def batch_files(self, batch_id: str) -> list[str]:
        with self.engine.connect() as conn:
            files = conn.execute(sa.select(ingest_batches.c.files).where(ingest_batches.c.batch_id == batch_id)).scalar()
        if files is None:
            raise KeyError(f"ingest batch {batch_id!r} has no manifest in the ledger")
        return json.loads(files)

    def batch_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(sa.select(ingest_batches.c.batch_id).order_by(ingest_batches.c.batch_id))]

    def forget_batch(self, batch_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(ingest_batches.delete().where(ingest_batches.c.batch_id == batch_id))
            conn.execute(ingest_batch_files.delete().where(ingest_batch_files.c.batch_id == batch_id))

    # -- legal holds and denylist ------------------------------------------------------
    def add_legal_hold(self, scope: str, target_hash: str, reason: str) -> str:
        if scope not in ("subject", "document"):
            raise ValueError(f"legal hold scope must be 'subject' or 'document', not {scope!r}")
        hold_id = str(uuid.uuid4())
        with self.engine.begin() as conn:
            conn.execute(legal_holds.insert().values(hold_id=hold_id, scope=scope, target_hash=target_hash, reason=reason, created_at=iso()))
            events.record(self, events.LegalHoldAdded(hold_id=hold_id, scope=scope, reason=reason), subject_hash=target_hash if scope == "subject" else None, conn=conn)
        return hold_id

    def release_legal_hold(self, hold_id: str, reason: str | None = None, released_by: str | None = None) -> None:
        """Release one hold; the audit event records why and who approved it (the CLI requires both)."""
        with self.engine.begin() as conn:
            conn.execute(legal_holds.update().where(legal_holds.c.hold_id == hold_id).values(released_at=iso()))
            events.record(self, events.LegalHoldReleased(hold_id=hold_id, reason=reason, approved_by=released_by),
                          actor=released_by or "aisg_pipelines", conn=conn)

    def active_holds(self) -> dict[str, set[str]]:
        """{'subject': {hash, ...}, 'document': {hash, ...}} of holds not released."""
        out: dict[str, set[str]] = {"subject": set(), "document": set()}
        with self.engine.connect() as conn:
            for r in conn.execute(sa.select(legal_holds.c.scope, legal_holds.c.target_hash).where(legal_holds.c.released_at.is_(None))):
                out[r.scope].add(r.target_hash)
        return out

    def denylisted_subject_hashes(self) -> set[str]:
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(sa.select(erasure_denylist.c.subject_hash))}

    def add_to_denylist(self, subject_hash: str, request_id: str, conn: sa.Connection | None = None) -> None:
        stmt = sa.select(erasure_denylist.c.subject_hash).where(erasure_denylist.c.subject_hash == subject_hash)
        def _do(c):
            if c.execute(stmt).scalar() is None:
                c.execute(erasure_denylist.insert().values(subject_hash=subject_hash, request_id=request_id, added_at=iso()))
        if conn is not None:
            _do(conn)
        else:
            with self.engine.begin() as c:
                _do(c)


# -- erasure requests (issue 6: GDPR erasure) ---------------------------------------------
# One row per request, keyed by request_id. The raw subject identifier is NOT stored here:
# only its salted hash. While a request is open, the raw id lives only in its private
# pending file (erasure_inbox/processing/<request_id>.json), deleted on certification.
# Logic (lifecycle, transitions) lives in governance/erasure.py.
erasure_requests = sa.Table(
    "erasure_requests",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("subject_hash", sa.String(64), nullable=True),  # null when the request was rejected before a subject was known
    sa.Column("status", sa.String(16), nullable=False),  # received | in_progress | verified | certified | failed
    sa.Column("reason", sa.Text, nullable=True),  # the requester's reason (free text, no personal data expected)
    sa.Column("failure", sa.Text, nullable=True),  # why it failed / was rejected
    sa.Column("requested_by", sa.String(256), nullable=True),
    sa.Column("requested_at", sa.String(32), nullable=False),
    sa.Column("received_at", sa.String(32), nullable=False),
    sa.Column("started_at", sa.String(32)),
    sa.Column("verified_at", sa.String(32)),
    sa.Column("certified_at", sa.String(32)),
    sa.Column("failed_at", sa.String(32)),
    sa.Column("certificate_id", sa.String(64)),
    sa.Column("certificate_path", sa.Text),
    sa.Column("source", sa.String(16), nullable=False),  # cli | inbox
    sa.Column("progress", sa.Text, nullable=False, default="{}"),  # JSON: steps done, counts, commitment
)
sa.Index("ix_erasure_requests_subject", erasure_requests.c.subject_hash)
sa.Index("ix_erasure_requests_status", erasure_requests.c.status)
