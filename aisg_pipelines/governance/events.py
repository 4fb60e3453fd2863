"""The payloads of the ledger events: one dataclass per action the package writes (`declared()`).

Producers write `Event(...).to_payload()` (or `record(ledger, event)`), readers (the compliance
report, the Prometheus gauges, ledger verification) read `Event.from_payload(e.details)`, so both
sides name the same fields. The ledger hashes the payload as canonical JSON (sorted keys), so `to_payload()` is
exactly the dict the producer wrote before these types existed.

Rows already in a ledger are never rewritten (the hash chain covers them). Rows written before a
field existed are read through `upgrade()`, the one compatibility shim: it fills the fields that
were added later with the value that means "not recorded", and every reader goes through it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar


def upgrade(action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A stored payload in today's shape. The only place that knows older shapes:

    - `retention.purge` without `deleted` (the reports' reading before these types: the items
      deleted are the rows deleted) -> `deleted = deleted_rows`;
    - `ingest.documents` written before re-ingest existed: no `deferred`, `replaced`, `dropped`
      (read as 0) or `emptied_batches` ([]): the field defaults.
    """
    d = dict(payload or {})
    if action == RetentionPurge.ACTION and "deleted" not in d:
        d["deleted"] = d.get("deleted_rows") or 0
    return d


@dataclass(frozen=True)
class LedgerEvent:
    """Base: `ACTION` is the ledger action; every field has the default a missing key reads as.

    Three class settings keep `to_payload()` byte-for-byte what producers wrote before the types:
    `KEYS` renames a field to its payload key (`from` is a Python keyword), `OMIT_IF_NONE` lists
    fields whose key was only written when known, and `FLAT` names one dict field whose items sit
    at the top level of the payload (keys the type does not fix, e.g. a version's meaning).
    """

    ACTION: ClassVar[str] = ""
    KEYS: ClassVar[dict[str, str]] = {}
    OMIT_IF_NONE: ClassVar[tuple[str, ...]] = ()
    FLAT: ClassVar[str | None] = None

    def to_payload(self) -> dict[str, Any]:
        d = asdict(self)
        for name in self.OMIT_IF_NONE:
            if d.get(name) is None:
                d.pop(name, None)
        extra = d.pop(self.FLAT) or {} if self.FLAT else {}
        return {**extra, **{self.KEYS.get(k, k): v for k, v in d.items()}}

    @classmethod
    def from_payload(cls, payload: dict[str, Any], action: str | None = None):
        data = upgrade(action or cls.ACTION, payload)
        keyed = {f.name: cls.KEYS.get(f.name, f.name) for f in fields(cls) if f.name != cls.FLAT}
        # a key that is absent, or null where the field is not nullable, reads as the field's default
        kw = {f.name: data[keyed[f.name]] for f in fields(cls)
              if f.name in keyed and keyed[f.name] in data and (data[keyed[f.name]] is not None or f.default is None)}
        if cls.FLAT:
            kw[cls.FLAT] = {k: v for k, v in data.items() if k not in keyed.values()}
        return cls(**kw)


def record(ledger, event: LedgerEvent, *, action: str | None = None, **kwargs):
    """Append `event` to the ledger (kwargs: actor, subject_hash, occurred_at, conn)."""
    action = action or event.ACTION
    if action not in actions_of(type(event)):
        raise ValueError(f"{type(event).__name__} is not the payload of ledger action {action!r}")
    return ledger.append_event(action, event.to_payload(), **kwargs)


def actions_of(cls: type[LedgerEvent]) -> tuple[str, ...]:
    """The ledger actions whose payload `cls` is (`ACTIONS` when one type serves several)."""
    return tuple(getattr(cls, "ACTIONS", None) or (cls.ACTION,))


def declared() -> dict[str, list[type[LedgerEvent]]]:
    """Every ledger action the package writes -> the type(s) of its payload."""
    out: dict[str, list[type[LedgerEvent]]] = {}
    todo = list(LedgerEvent.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        for a in actions_of(cls):
            out.setdefault(a, []).append(cls)
    return out


# -- retention (governance/retention.py) --------------------------------------------------------
@dataclass(frozen=True)
class RetentionPurge(LedgerEvent):
    """One per category and run, after the physical purge (dry runs too, marked)."""

    ACTION: ClassVar[str] = "retention.purge"
    category: str = ""
    expired: int = 0
    deleted_rows: int = 0  # rows deleted in every table
    deleted: int = 0  # items of the category's unit deleted
    unit: str = "rows"
    held: int = 0
    bytes_reclaimed: int = 0
    dry_run: bool = False
    oldest_remaining_age_days: float | None = None
    period_days: int | None = None
    cutoff: str | None = None
    rows_deleted: dict[str, int] = field(default_factory=dict)  # per table
    partitions_emptied: list[str] = field(default_factory=list)

    @property
    def remaining_past_period(self) -> int:
        return max(self.expired - self.deleted, 0)


@dataclass(frozen=True)
class RetentionDeleted(LedgerEvent):
    """As soon as a category's rows are gone (a run killed before the purge still leaves it)."""

    ACTION: ClassVar[str] = "retention.deleted"
    category: str = ""
    expired: int = 0
    deleted: int = 0
    held: int = 0
    rows_deleted: dict[str, int] = field(default_factory=dict)
    as_of: str | None = None


# -- ingest (governance/pipeline.py) ------------------------------------------------------------
@dataclass(frozen=True)
class IngestDocuments(LedgerEvent):
    ACTION: ClassVar[str] = "ingest.documents"
    batch_id: str = ""
    documents: int = 0
    pii_removed: dict[str, int] = field(default_factory=dict)  # entity type -> count
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    missing: int = 0
    deferred: int = 0
    replaced: int = 0
    emptied_batches: list[str] = field(default_factory=list)
    dropped: int = 0


# -- orphans (governance/orphans.py) ------------------------------------------------------------
@dataclass(frozen=True)
class OrphansReport(LedgerEvent):
    ACTION: ClassVar[str] = "orphans.report"
    counts: dict[str, int] = field(default_factory=dict)  # kind -> orphans found
    total: int = 0
    cleanable_total: int = 0
    checked: dict[str, bool] = field(default_factory=dict)  # only the stores that could not be checked
    active_version: str | None = None
    csv: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class OrphansCleanup(LedgerEvent):
    """One per cleanable kind and cleanup run."""

    ACTION: ClassVar[str] = "orphans.cleanup"
    kind: str = ""
    deleted: int = 0
    found: int = 0
    dry_run: bool = False


# -- embed versions (governance/versions.py) ----------------------------------------------------
@dataclass(frozen=True)
class EmbedVersionSwitch(LedgerEvent):
    """The active version changed: `embed_version.activate`, `.rollback` or `.bootstrap`."""

    ACTION: ClassVar[str] = "embed_version.activate"
    ACTIONS: ClassVar[tuple[str, ...]] = ("embed_version.activate", "embed_version.rollback", "embed_version.bootstrap")
    name: str = ""
    previous: str | None = None


# -- erasure (governance/erasure_certify.py) -----------------------------------------------------
@dataclass(frozen=True)
class ErasureCertified(LedgerEvent):
    """The signed certificate is written; `checkpoints.verify_ledger` checks the file against
    `certificate_sha256` (and the event anchors the certificate in the chain)."""

    ACTION: ClassVar[str] = "erasure.certified"
    request_id: str = ""
    certificate_id: str = ""
    certificate_sha256: str = ""
    anchored_to: str = ""  # hash of the erasure.verified event the certificate names
    deadline_met: bool = False

    @property
    def file_sha256(self) -> str:
        return self.certificate_sha256


# -- access (governance/access.py) --------------------------------------------------------------
@dataclass(frozen=True)
class AccessDelivered(LedgerEvent):
    """A signed access export is written; `checkpoints.verify_ledger` checks export.json against it."""

    ACTION: ClassVar[str] = "access.delivered"
    request_id: str = ""
    export_id: str = ""
    certificate_id: str = ""  # = export_id: verify-certificate treats an export like a certificate
    export_path: str = ""
    export_sha256: str = ""
    anchored_to: str = ""
    deadline_met: bool = False
    deletes_at: str | None = None

    @property
    def file_sha256(self) -> str:
        return self.export_sha256


# -- reports (governance/reports.py) ------------------------------------------------------------
@dataclass(frozen=True)
class ReportExported(LedgerEvent):
    ACTION: ClassVar[str] = "report.exported"
    period: str = ""
    kind: str = ""
    files: list[str] = field(default_factory=list)
    within_policy: bool = True
    findings: int = 0


# -- erasure requests (governance/erasure_intake.py, erasure.py) ---------------------------------
@dataclass(frozen=True)
class ErasureReceived(LedgerEvent):
    ACTION: ClassVar[str] = "erasure.received"
    request_id: str = ""
    source: str = ""
    requested_at: str | None = None


@dataclass(frozen=True)
class ErasureRejected(LedgerEvent):
    ACTION: ClassVar[str] = "erasure.rejected"
    request_id: str = ""
    code: str = ""
    new_row: bool = False  # the rejection created the request's row (no earlier request with that id)
    source: str = ""


@dataclass(frozen=True)
class ErasureStarted(LedgerEvent):
    ACTION: ClassVar[str] = "erasure.started"
    request_id: str = ""


@dataclass(frozen=True)
class ErasureDiscovered(LedgerEvent):
    ACTION: ClassVar[str] = "erasure.discovered"
    request_id: str = ""
    counts: dict[str, Any] = field(default_factory=dict)  # per store / version
    commitment: str = ""  # sha256 of the manifest's item commitment
    items: int = 0


@dataclass(frozen=True)
class ErasurePurged(LedgerEvent):
    ACTION: ClassVar[str] = "erasure.purged"
    request_id: str = ""
    tables: list[str] = field(default_factory=list)
    bytes_reclaimed: int = 0
    versions_removed: int = 0


@dataclass(frozen=True)
class ErasureVerified(LedgerEvent):
    """The certificate's ledger anchor (`erasure.certified` names this event's hash)."""

    ACTION: ClassVar[str] = "erasure.verified"
    request_id: str = ""
    files_scanned: int = 0
    bytes_scanned: int = 0
    versions_checked: int = 0
    api_matches: int = 0
    byte_matches: int = 0


@dataclass(frozen=True)
class ErasureFailed(LedgerEvent):
    ACTION: ClassVar[str] = "erasure.failed"
    request_id: str = ""
    failure: str = ""


@dataclass(frozen=True)
class InboxAuthenticated(LedgerEvent):
    """Who asked, and what vouched for the request (governance/inbox.py)."""

    ACTION: ClassVar[str] = "inbox.authenticated"
    request_id: str = ""
    type: str = ""
    requested_by: str = ""
    approved_by: str = ""


# -- access requests (governance/access.py) -----------------------------------------------------
@dataclass(frozen=True)
class AccessReceived(LedgerEvent):
    ACTION: ClassVar[str] = "access.received"
    request_id: str = ""
    source: str = ""
    requested_at: str | None = None
    requested_by: str = ""


@dataclass(frozen=True)
class AccessRejected(LedgerEvent):
    ACTION: ClassVar[str] = "access.rejected"
    request_id: str = ""
    code: str = ""
    detail: str = ""
    source: str = ""


@dataclass(frozen=True)
class AccessDiscovered(LedgerEvent):
    """The export's ledger anchor (`access.delivered` names this event's hash)."""

    ACTION: ClassVar[str] = "access.discovered"
    request_id: str = ""
    export_id: str = ""
    found: bool = False
    summary: dict[str, Any] = field(default_factory=dict)
    commitment: str = ""


@dataclass(frozen=True)
class AccessFailed(LedgerEvent):
    ACTION: ClassVar[str] = "access.failed"
    request_id: str = ""
    failure: str = ""


@dataclass(frozen=True)
class AccessExportsExpired(LedgerEvent):
    ACTION: ClassVar[str] = "access.exports_expired"
    export_ids: list[str] = field(default_factory=list)
    policy_days: int = 0


# -- deletion cascade (governance/cascade.py) ---------------------------------------------------
@dataclass(frozen=True)
class CascadeIntent(LedgerEvent):
    """Before a cascade deletes anything; `details` are the caller's (no personal data, e.g. request ids)."""

    ACTION: ClassVar[str] = "cascade.intent"
    FLAT: ClassVar[str | None] = "details"
    cascade_id: str = ""
    cause: str = ""
    planned: dict[str, Any] = field(default_factory=dict)
    ids_sha256: str = ""
    documents: int = 0
    chunks: int = 0
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CascadeResult(LedgerEvent):
    ACTION: ClassVar[str] = "cascade.result"
    cascade_id: str = ""
    cause: str = ""
    resumed: bool = False
    planned: dict[str, Any] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    landing_files_removed: int = 0
    files_removed: int = 0
    files_rewritten: int = 0
    lines_removed: int = 0
    source_lines_removed: dict[str, int] = field(default_factory=dict)
    bytes_removed: int = 0
    ledger_paths_removed: int = 0
    ledger_batches_removed: int = 0
    partitions_deleted: int = 0
    tables_dropped: list[str] = field(default_factory=list)


# -- legal holds, ledger pruning (governance/ledger.py) -----------------------------------------
@dataclass(frozen=True)
class LegalHoldAdded(LedgerEvent):
    ACTION: ClassVar[str] = "legal_hold.added"
    hold_id: str = ""
    scope: str = ""
    reason: str = ""


@dataclass(frozen=True)
class LegalHoldReleased(LedgerEvent):
    ACTION: ClassVar[str] = "legal_hold.released"
    OMIT_IF_NONE: ClassVar[tuple[str, ...]] = ("reason", "approved_by")
    hold_id: str = ""
    reason: str | None = None
    approved_by: str | None = None


@dataclass(frozen=True)
class LedgerPruned(LedgerEvent):
    """The checkpoint record of a prune (the same values as its `ledger_checkpoints` row)."""

    ACTION: ClassVar[str] = "ledger.pruned"
    cutoff: str = ""
    through_seq: int = 0
    events_pruned: int = 0
    events_pruned_total: int = 0
    anchor_hash: str = ""
    pruned_digest: str = ""
    oldest_pruned_at: str | None = None
    newest_pruned_at: str | None = None


# -- retention's Dagster layer (defs/retention/assets.py) ---------------------------------------
@dataclass(frozen=True)
class RetentionPartitionsRemoved(LedgerEvent):
    ACTION: ClassVar[str] = "retention.partitions_removed"
    removed: dict[str, int] = field(default_factory=dict)  # partitions definition -> keys removed
    as_of: str | None = None


# -- embed versions (governance/versions.py, reindex.py) ----------------------------------------
@dataclass(frozen=True)
class EmbedVersionRegistered(LedgerEvent):
    """A new version; `meaning` is what it means (`versions._meaning`: weights, dims, chunker, export)."""

    ACTION: ClassVar[str] = "embed_version.registered"
    FLAT: ClassVar[str | None] = "meaning"
    name: str = ""
    meaning: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EmbedVersionTransition(LedgerEvent):
    """A status change (`embed_version.<new status>`); `from` is the status it left."""

    ACTION: ClassVar[str] = "embed_version.building"
    ACTIONS: ClassVar[tuple[str, ...]] = ("embed_version.registered", "embed_version.building", "embed_version.validated",
                                          "embed_version.active", "embed_version.retired")
    KEYS: ClassVar[dict[str, str]] = {"from_status": "from"}
    name: str = ""
    from_status: str = ""

    @classmethod
    def action_for(cls, status: str) -> str:
        return f"embed_version.{status}"


@dataclass(frozen=True)
class EmbedVersionParity(LedgerEvent):
    """The retrieval-parity gate's result; `figures` are `reindex.ParityReport.figures()`."""

    ACTION: ClassVar[str] = "embed_version.parity"
    FLAT: ClassVar[str | None] = "figures"
    name: str = ""
    backend: str = ""
    passed: bool = False
    reasons: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EmbedVersionValidationFailed(LedgerEvent):
    ACTION: ClassVar[str] = "embed_version.validation_failed"
    OMIT_IF_NONE: ClassVar[tuple[str, ...]] = ("parity",)
    name: str = ""
    reasons: list[str] = field(default_factory=list)
    chunks: int = 0
    vectors: int = 0
    parity: dict[str, Any] | None = None


@dataclass(frozen=True)
class EmbedVersionReindex(LedgerEvent):
    """A reindex run's outcome; `gate_state` lets a re-run reuse the last passed gate."""

    ACTION: ClassVar[str] = "embed_version.reindex"
    OMIT_IF_NONE: ClassVar[tuple[str, ...]] = ("parity",)
    name: str = ""
    previous: str | None = None
    activated: bool = False
    batches: int = 0
    chunks: int = 0
    embedded: int = 0
    skipped: int = 0
    stale_removed: int = 0
    seconds: float = 0.0
    chunks_per_second: float = 0.0
    self_top1: float | None = None
    sample_size: int = 0
    vectors: int = 0
    gate_reused: bool = False
    gate_state: dict[str, Any] = field(default_factory=dict)
    backend: str = ""
    parity: dict[str, Any] | None = None


# -- alerts (governance/alerts.py) --------------------------------------------------------------
@dataclass(frozen=True)
class AlertSent(LedgerEvent):
    ACTION: ClassVar[str] = "alert.sent"
    incident: str = ""
    kind: str = ""
    severity: str = ""
    title: str = ""
    delivered: bool = False
    http_status: int | None = None
    channel: str = "none"
