"""The payloads of the ledger events that other modules read back: one dataclass per action.

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
    """Base: `ACTION` is the ledger action; every field has the default a missing key reads as."""

    ACTION: ClassVar[str] = ""

    def to_payload(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_payload(cls, payload: dict[str, Any], action: str | None = None):
        data = upgrade(action or cls.ACTION, payload)
        # a key that is absent, or null where the field is not nullable, reads as the field's default
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data and (data[f.name] is not None or f.default is None)})


def record(ledger, event: LedgerEvent, *, action: str | None = None, **kwargs):
    """Append `event` to the ledger (kwargs: actor, subject_hash, occurred_at, conn)."""
    return ledger.append_event(action or event.ACTION, event.to_payload(), **kwargs)


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
