"""Erasure intake: parse and validate a request, record it (deduplicated by request_id) in
the ledger's `erasure_requests` table, keep redacted copies of rejected requests (the inbox
scan is governance/inbox.py); and the read side of the table (requests, open ones, the
denylist as ingest consults it, the 30-day SLA).

Plain module (no Dagster). The raw subject identifier of an open request lives only in its
private pending file `<erasure_inbox>/processing/<request_id>.json` (0600); the ledger holds
the salted hash (see governance/erasure.py for the whole lifecycle).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from . import events
from .context import age_days, as_governance
from .ids import SUBJECT_ID_RE, sha256_hex, subject_hash
from .landing import REASON_SUFFIX
from .ledger import Ledger, canonical_json, erasure_requests, iso

SLA_DAYS = 30
STATUSES = ("received", "in_progress", "verified", "certified", "failed")
OPEN_STATUSES = ("received", "in_progress", "verified")
ALLOWED_FIELDS = {"request_id", "subject_id", "requested_by", "reason", "requested_at", "source", "type"}
REQUEST_TYPES = ("erasure", "access")  # "access": a GDPR Art. 15/20 export (governance/access.py)
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
HOSTILE_CHARS = set("'\";\\=()*%`<>|&$\n\r\t ")
CERT_SUBDIR = "erasure_certificates"
STEPS = ("started", "discovered", "deleted", "files_removed", "purged", "verified", "certified")


class RequestRejected(Exception):
    def __init__(self, code: str, detail: str = ""):
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


class ErasureFailed(Exception):
    """A terminal failure of one request (legal hold, verification found traces)."""


@dataclass(frozen=True)
class ErasureRequest:
    request_id: str
    subject_id: str
    requested_by: str
    reason: str
    requested_at: str
    source: str
    type: str = "erasure"  # or "access" (governance/access.py)


# -- paths and small helpers --------------------------------------------------------------
def processing_dir(settings) -> Path:
    return Path(settings.erasure_inbox) / "processing"


def rejected_dir(settings) -> Path:
    return Path(settings.erasure_inbox) / "rejected"


def certificates_dir(settings) -> Path:
    return Path(settings.exports_dir) / CERT_SUBDIR


def _utc(dt: datetime | None) -> datetime:
    return (dt or datetime.now(timezone.utc)).astimezone(timezone.utc)


def _write_private(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _salt(settings) -> bytes:
    """The subject-hash salt of the context (`settings` may be a Settings or a Governance)."""
    return as_governance(settings).salt


# -- intake -------------------------------------------------------------------------------
def parse_request(raw: bytes | str | dict, *, source: str, now: datetime | None = None) -> ErasureRequest:
    """Validate one request (inbox file content or CLI values); raises RequestRejected."""
    if isinstance(raw, dict):
        obj = raw
        digest = sha256_hex(canonical_json(raw))
    else:
        data = raw.encode("utf-8") if isinstance(raw, str) else raw
        digest = sha256_hex(data)
        try:
            obj = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RequestRejected("malformed_json", str(exc)[:200]) from None
    if not isinstance(obj, dict):
        raise RequestRejected("malformed_json", f"expected a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - ALLOWED_FIELDS)
    if unknown:
        raise RequestRejected("unknown_fields", f"unknown fields {unknown[:10]}; allowed: {sorted(ALLOWED_FIELDS)}")
    rtype = obj.get("type", "erasure")
    if rtype not in REQUEST_TYPES:
        raise RequestRejected("invalid_fields", f"type must be one of {list(REQUEST_TYPES)}")
    rid = obj.get("request_id")
    if rid is None:
        rid = "er-" + digest[:24]  # stable: the same file always gets the same id
    elif not isinstance(rid, str) or not REQUEST_ID_RE.fullmatch(rid):
        raise RequestRejected("invalid_request_id", f"request_id must match {REQUEST_ID_RE.pattern}")
    if "subject_id" not in obj or obj["subject_id"] is None:
        raise RequestRejected("missing_subject", "no subject_id")
    subject = obj["subject_id"]
    if not isinstance(subject, str):
        raise RequestRejected("invalid_identifier", f"subject_id must be a string, got {type(subject).__name__}")
    if not subject.strip():
        raise RequestRejected("empty_identifier", "subject_id is empty")
    if not SUBJECT_ID_RE.fullmatch(subject):
        code = "hostile_identifier" if (set(subject) & HOSTILE_CHARS or "--" in subject) else "invalid_identifier"
        raise RequestRejected(code, f"subject_id must match {SUBJECT_ID_RE.pattern} (identifiers are data, never code)")
    requested_by = obj.get("requested_by")
    if not isinstance(requested_by, str) or not requested_by.strip() or len(requested_by) > 256:
        raise RequestRejected("missing_fields", "requested_by (who asked, 1-256 chars) is required")
    reason = obj.get("reason") or ""
    if not isinstance(reason, str) or len(reason) > 2000:
        raise RequestRejected("invalid_fields", "reason must be a string of at most 2000 chars")
    requested_at = obj.get("requested_at")
    if requested_at is None:
        requested_at_dt = _utc(now)
    else:
        try:
            requested_at_dt = datetime.fromisoformat(str(requested_at))
        except ValueError:
            raise RequestRejected("invalid_fields", "requested_at is not an ISO-8601 timestamp") from None
        if requested_at_dt.tzinfo is None:
            requested_at_dt = requested_at_dt.replace(tzinfo=timezone.utc)
    return ErasureRequest(rid, subject, requested_by.strip(), reason, iso(requested_at_dt), source, rtype)


def get_request(ledger: Ledger, request_id: str) -> dict | None:
    with ledger.engine.connect() as conn:
        r = conn.execute(sa.select(erasure_requests).where(erasure_requests.c.request_id == request_id)).first()
    return _row(r) if r else None


def list_requests(ledger: Ledger, statuses: Iterable[str] | None = None) -> list[dict]:
    q = sa.select(erasure_requests).order_by(erasure_requests.c.requested_at, erasure_requests.c.request_id)
    if statuses:
        q = q.where(erasure_requests.c.status.in_(list(statuses)))
    with ledger.engine.connect() as conn:
        return [_row(r) for r in conn.execute(q)]


def _row(r) -> dict:
    d = dict(r._mapping)
    d["progress"] = json.loads(d.get("progress") or "{}")
    return d


def _update(ledger: Ledger, request_id: str, conn=None, *, expect: Iterable[str] | None = None, **values) -> bool:
    stmt = erasure_requests.update().where(erasure_requests.c.request_id == request_id)
    if expect:
        stmt = stmt.where(erasure_requests.c.status.in_(list(expect)))
    if "progress" in values and not isinstance(values["progress"], str):
        values["progress"] = canonical_json(values["progress"])
    if conn is not None:
        return conn.execute(stmt.values(**values)).rowcount == 1
    with ledger.begin() as c:
        return c.execute(stmt.values(**values)).rowcount == 1


@dataclass
class IntakeResult:
    accepted: bool
    request_id: str
    code: str = ""
    detail: str = ""
    redelivery: bool = False  # the same request seen again: nothing new recorded


def record_rejection(ledger: Ledger, request_id: str, code: str, detail: str, *, source: str, subject_hash_: str | None = None,
                     requested_by: str | None = None, now: datetime | None = None) -> None:
    """A rejected request: a `failed` row (if the id is new) and an `erasure.rejected` event."""
    stamp = iso(_utc(now))
    with ledger.begin() as conn:
        exists = conn.execute(sa.select(erasure_requests.c.request_id).where(erasure_requests.c.request_id == request_id)).scalar()
        if exists is None:
            conn.execute(erasure_requests.insert().values(
                request_id=request_id, subject_hash=subject_hash_, status="failed", failure=f"rejected: {code}: {detail}"[:2000],
                requested_by=(requested_by or "")[:256] or None, requested_at=stamp, received_at=stamp, failed_at=stamp,
                source=source, progress="{}",
            ))
        events.record(ledger, events.ErasureRejected(request_id=request_id, code=code, new_row=exists is None, source=source),
                      actor="erasure", subject_hash=subject_hash_, conn=conn)


def intake(settings, ledger: Ledger, req: ErasureRequest, *, now: datetime | None = None) -> IntakeResult:
    """Record a valid request as `received`, with its raw id in the private pending file.

    Only the same request_id is a duplicate (rejected with a reason). A new request for a
    subject erased before is processed and gets its own certificate: new uploads may have
    arrived since, and the requester is owed an answer. Requests of one subject that are
    open together share one discovery and deletion. The pending file is written first and
    the ledger row second, so a crash in between is completed by the next intake of the
    same request.
    """
    h = subject_hash(req.subject_id, _salt(settings))
    existing = get_request(ledger, req.request_id)
    pending = processing_dir(settings) / f"{req.request_id}.json"
    if existing is not None:
        if existing["subject_hash"] == h and existing["status"] in OPEN_STATUSES and pending.exists():
            return IntakeResult(True, req.request_id, redelivery=True)
        record_rejection(ledger, req.request_id, "duplicate_request", f"request_id already recorded with status {existing['status']}",
                         source=req.source, subject_hash_=existing["subject_hash"] if existing["subject_hash"] == h else None, now=now)
        return IntakeResult(False, req.request_id, "duplicate_request", f"request {req.request_id} already exists ({existing['status']})")
    _write_private(pending, {"request": asdict(req)})
    stamp = iso(_utc(now))
    with ledger.begin() as conn:
        conn.execute(erasure_requests.insert().values(
            request_id=req.request_id, subject_hash=h, status="received", reason=req.reason[:2000], requested_by=req.requested_by,
            requested_at=req.requested_at, received_at=stamp, source=req.source, progress="{}",
        ))
        events.record(ledger, events.ErasureReceived(request_id=req.request_id, source=req.source, requested_at=req.requested_at),
                      actor="erasure", subject_hash=h, conn=conn)
    return IntakeResult(True, req.request_id)


def _raw_subject(raw: bytes) -> str | None:
    """The subject_id string of a request file, if it has one (even a request rejected for another reason)."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    v = obj.get("subject_id") if isinstance(obj, dict) else None
    return v if isinstance(v, str) and v.strip() else None


def _redact(text: str, subject: str | None, settings) -> str:
    """`text` with every occurrence of the raw subject id replaced by its salted hash."""
    if not subject or not text or subject not in text:
        return text
    return text.replace(subject, f"<subject_hash:{subject_hash(subject, _salt(settings))[:16]}>")


def redacted_request(settings, raw: bytes) -> dict:
    """What `rejected/` keeps of a request file: the salted hash instead of the subject id, the
    other allowed fields with the id redacted, only the names of unknown fields; nothing of a
    file that is not a JSON object (it may hold an identifier in any form)."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        obj = None
    if not isinstance(obj, dict):
        return {"unreadable": True, "bytes": len(raw), "sha256": sha256_hex(raw),
                "note": "not a JSON object: its content is not kept (it may hold a subject identifier)"}
    subject = _raw_subject(raw)
    out: dict[str, Any] = {}
    if "subject_id" in obj:
        out["subject_hash"] = subject_hash(subject, _salt(settings)) if subject else None
        out["subject_id"] = "<redacted: salted hash in subject_hash>" if subject else f"<{type(obj['subject_id']).__name__}>"
    for k, v in obj.items():
        if k == "subject_id":
            continue
        if k in ALLOWED_FIELDS:
            out[k] = _redact(v, subject, settings) if isinstance(v, str) else v
        else:
            out.setdefault("unknown_fields", []).append(_redact(str(k), subject, settings)[:64])
    return out


def _move_rejected(settings, path: Path, code: str, detail: str, rid: str, raw: bytes | None = None) -> None:
    """Keep a redacted copy of a rejected request in `rejected/` with a reason file; the
    original (which may hold the raw subject id) is removed."""
    dst_dir = rejected_dir(settings)
    dst_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(dst_dir, 0o700)
    if raw is None:
        raw = path.read_bytes()[:1_000_000]
    subject = _raw_subject(raw)
    name = _redact(path.name, subject, settings)
    dst = dst_dir / name
    if dst.exists():
        dst = dst_dir / f"{Path(name).stem}.{rid}{path.suffix}"
    _write_private(dst, redacted_request(settings, raw))
    path.unlink(missing_ok=True)
    dst.with_name(dst.name + REASON_SUFFIX).write_text(
        f"reason: {code}\ndetail: {_redact(detail, subject, settings)}\nrecorded_as: {rid}\nrejected_at: {iso()}\n", encoding="utf-8"
    )


def pending_request_ids(settings, ledger: Ledger) -> list[str]:
    """Open requests that have their pending file (what a run can process)."""
    d = processing_dir(settings)
    return [r["request_id"] for r in list_requests(ledger, OPEN_STATUSES) if (d / f"{r['request_id']}.json").exists()]


# -- the denylist, as ingest consults it ----------------------------------------------------
def erased_before_hash(ledger: Ledger, subject_hash_: str) -> datetime | None:
    """When the subject (by salted hash) was last certified erased, or None.

    The latest `certified_at` of its certified requests; a denylist entry without one (a
    ledger from before requests were kept) counts from the time it was added."""
    from .ledger import erasure_denylist

    with ledger.engine.connect() as conn:
        cert = conn.execute(sa.select(sa.func.max(erasure_requests.c.certified_at))
                            .where(erasure_requests.c.subject_hash == subject_hash_, erasure_requests.c.status == "certified")).scalar()
        if cert is None:
            cert = conn.execute(sa.select(erasure_denylist.c.added_at).where(erasure_denylist.c.subject_hash == subject_hash_)).scalar()
    if cert is None:
        return None
    dt = datetime.fromisoformat(cert)
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def erased_before(ledger: Ledger, subject_id: str, settings=None, *, salt: bytes | None = None) -> datetime | None:
    """The certified erasure time of `subject_id` (salted-hash lookup in the ledger), or None.

    Ingest quarantines an upload of this subject as a replay when its `uploaded_at` precedes
    this time; newer uploads are new data. The salt comes from `salt`, else from `settings`
    (`load_or_create_salt`), else from `Governance.from_env()`."""
    if salt is None:
        if settings is None:
            from .context import Governance

            settings = Governance.from_env()
        salt = _salt(settings)
    return erased_before_hash(ledger, subject_hash(subject_id, salt))



@dataclass
class SlaStatus:
    ok: bool
    open: list[dict]  # request_id, status, age_days, overdue
    overdue: list[str]


def sla_status(ledger: Ledger, now: datetime | None = None) -> SlaStatus:
    """Every request older than 30 days must be certified (failed ones count as not certified)."""
    now = _utc(now)
    rows = []
    for r in list_requests(ledger):
        if r["status"] == "certified":
            continue
        if r["failure"] and r["failure"].startswith("rejected:"):
            continue  # a rejected submission is not a valid request to honour
        age = age_days(now, r["requested_at"], ndigits=None)
        rows.append({"request_id": r["request_id"], "status": r["status"], "age_days": round(age, 2), "overdue": age > SLA_DAYS,
                     "failure": (r["failure"] or "")[:200]})
    overdue = [r["request_id"] for r in rows if r["overdue"]]
    return SlaStatus(not overdue, rows, overdue)

