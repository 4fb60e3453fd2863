"""GDPR Art. 17 erasure: intake, discovery, commitment, deletion, physical purge, verification.

Plain module (no Dagster); the sensor, the job and `aisg erase` call these functions.

Lifecycle of a request (table `erasure_requests` in the ledger):
    received -> in_progress -> verified -> certified        or  -> failed (with the reason)

Where the raw subject identifier lives (and where it never goes):
- The ledger stores only the salted hash (HMAC-SHA256, secret salt). Events carry counts.
- While a request is open, the raw identifier is kept in one private pending file,
  `<erasure_inbox>/processing/<request_id>.json` (mode 0600), together with the discovery
  manifest (our ids, content hashes and the fingerprints used by the byte scan). That file
  is what makes a killed run resumable: a re-run reads the id back from it. It is deleted
  when the request is certified (or fails terminally). Rejected request files are moved
  to `<erasure_inbox>/rejected/` with a reason file, for the operator to inspect.
- The identifier is data, never code: discovery reads `subject_id`/`user_id` columns with
  pyarrow and compares in memory (`pc.is_in`); rows are then deleted by our own ids
  (doc_id, chunk_id, row_id) through `LanceStore.delete_ids`. The identifier never enters a
  filter string, so it never lands in a Lance `_transactions/*.txn` file either.

Physical erasure uses the shared `LanceStore.purge` (compaction materialising deletions,
index rebuild, tags moved, cleanup of every old version). Verification then checks
(a) every table and every remaining version through the Lance API, and (b) the bytes of
every file under every storage directory, plus the decoded string columns of every Lance
file on disk (Lance may compress strings, so raw bytes alone could miss them).
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
import os
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from .cascade import line_hash
from .ids import SUBJECT_ID_RE, batched, in_filter, sha256_hex, subject_hash
from .landing import REASON_SUFFIX, SIDECAR_SUFFIX
from .ledger import Ledger, canonical_json, erasure_requests, iso
from .markdown import md_table
from .store import CHUNKS, DOCUMENTS, EMBEDDINGS_PREFIX, LanceStore

log = logging.getLogger(__name__)

SLA_DAYS = 30
STATUSES = ("received", "in_progress", "verified", "certified", "failed")
OPEN_STATUSES = ("received", "in_progress", "verified")
ALLOWED_FIELDS = {"request_id", "subject_id", "requested_by", "reason", "requested_at", "source", "type"}
REQUEST_TYPES = ("erasure", "access")  # "access": a GDPR Art. 15/20 export (governance/access.py)
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
HOSTILE_CHARS = set("'\";\\=()*%`<>|&$\n\r\t ")
CERT_SUBDIR = "erasure_certificates"
STEPS = ("started", "discovered", "deleted", "files_removed", "purged", "verified", "certified")
ID_CHARS = rb"A-Za-z0-9._@:+\-"


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
    from .secrets import load_or_create_salt

    return load_or_create_salt(settings)


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
        ledger.append_event("erasure.rejected", {"request_id": request_id, "code": code, "new_row": exists is None, "source": source},
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
        ledger.append_event("erasure.received", {"request_id": req.request_id, "source": req.source, "requested_at": req.requested_at},
                            actor="erasure", subject_hash=h, conn=conn)
    return IntakeResult(True, req.request_id)


@dataclass
class InboxScan:
    accepted: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str, str]] = field(default_factory=list)  # (file, code, detail)


def scan_inbox(settings, ledger: Ledger, *, now: datetime | None = None) -> InboxScan:
    """Take every `*.json` in the inbox: valid ones become `received` requests, bad ones are
    moved to `rejected/` with a reason file and recorded in the ledger. Never raises on bad input."""
    inbox = Path(settings.erasure_inbox)
    out = InboxScan()
    if not inbox.exists():
        return out
    from .inbox_auth import SignatureRejected, load_key, verify  # HMAC-signed requests (issue 13)

    key = load_key()
    for path in sorted(p for p in inbox.iterdir() if p.is_file() and p.suffix == ".json"):
        try:
            raw = path.read_bytes()[:1_000_000]
        except OSError:
            continue  # vanished or unreadable right now: next tick
        try:
            try:
                body = verify(raw, key)
            except SignatureRejected as sig:
                raise RequestRejected(sig.code, sig.detail) from None
            req = parse_request(body, source="inbox", now=now)
            if req.type == "access":
                from .access import intake as access_intake

                res = access_intake(settings, ledger, req, now=now)
            else:
                res = intake(settings, ledger, req, now=now)
        except RequestRejected as rej:
            rid = "rej-" + sha256_hex(path.name.encode() + b"\0" + raw)[:24]
            detail = _redact(rej.detail, _raw_subject(raw), settings)
            if _raw_type(raw) == "access":
                from .access import record_rejection as access_rejection

                access_rejection(ledger, rid, rej.code, detail, source="inbox")
            else:
                record_rejection(ledger, rid, rej.code, detail, source="inbox", now=now)
            _move_rejected(settings, path, rej.code, detail, rid, raw)
            out.rejected.append((path.name, rej.code, detail))
            continue
        if res.accepted:
            if not getattr(res, "redelivery", False):  # who asked, and what vouched for the request (issue 13)
                ledger.append_event("inbox.authenticated", {
                    "request_id": res.request_id, "type": req.type, "requested_by": req.requested_by,
                    "approved_by": "hmac-sha256:/analytics/erase" if key is not None else "unsigned:no key configured",
                }, actor="erasure_inbox")
            path.unlink(missing_ok=True)
            out.accepted.append(res.request_id)
        else:
            _move_rejected(settings, path, res.code, res.detail, res.request_id, raw)
            out.rejected.append((path.name, res.code, res.detail))
    return out


def _raw_subject(raw: bytes) -> str | None:
    """The subject_id string of a request file, if it has one (even a request rejected for another reason)."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    v = obj.get("subject_id") if isinstance(obj, dict) else None
    return v if isinstance(v, str) and v.strip() else None


def _raw_type(raw: bytes) -> str | None:
    """The `type` field of a request file, if it is a JSON object with one."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return obj.get("type") if isinstance(obj, dict) else None


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
    (`load_or_create_salt`), else from `Settings.from_env()`."""
    if salt is None:
        if settings is None:
            from ..settings import Settings

            settings = Settings.from_env()
        salt = _salt(settings)
    return erased_before_hash(ledger, subject_hash(subject_id, salt))


# -- discovery ------------------------------------------------------------------------------
@dataclass
class Manifest:
    """Everything found for one subject: our ids, content hashes, files, fingerprints."""

    items: dict[str, str] = field(default_factory=dict)  # "system\tid" -> content sha256
    lance_ids: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # table -> column -> ids
    files: list[str] = field(default_factory=list)  # absolute paths to remove
    line_files: dict[str, list[int]] = field(default_factory=dict)  # (unused since the cascade; kept so old pending files load)
    line_hashes: dict[str, list[str]] = field(default_factory=dict)  # absolute path -> sha256 of the subject's lines
    telemetry_rows: dict[str, list[str]] = field(default_factory=dict)  # kind -> row ids (table rows and source lines)
    telemetry_files: dict[str, list[str]] = field(default_factory=dict)  # kind -> source files (relative) holding them
    landing_paths: list[str] = field(default_factory=list)  # landing-relative uploads: their ledger batch-file records go
    foreign_chunks: list[str] = field(default_factory=list)  # other subjects' chunks under this subject's doc ids: kept
    fingerprints: dict[str, str] = field(default_factory=dict)  # hex pattern -> kind
    doc_ids: list[str] = field(default_factory=list)
    held_documents: int = 0

    def add(self, system: str, ident: str, content_hash: str) -> None:
        self.items[f"{system}\t{ident}"] = content_hash

    def add_ids(self, table: str, column: str, ids: Iterable[str]) -> None:
        cur = self.lance_ids.setdefault(table, {}).setdefault(column, [])
        have = set(cur)
        for i in ids:
            if i not in have:
                have.add(i)
                cur.append(i)

    def merge(self, other: "Manifest") -> None:
        for k, v in other.items.items():
            self.items.setdefault(k, v)
        for t, cols in other.lance_ids.items():
            for c, ids in cols.items():
                self.add_ids(t, c, ids)
        self.files = sorted(set(self.files) | set(other.files))
        for f, lines in other.line_files.items():
            self.line_files[f] = sorted(set(self.line_files.get(f, [])) | set(lines))
        for f, hs in other.line_hashes.items():
            self.line_hashes[f] = sorted(set(self.line_hashes.get(f, [])) | set(hs))
        for k, ids in other.telemetry_rows.items():
            self.telemetry_rows[k] = sorted(set(self.telemetry_rows.get(k, [])) | set(ids))
        for k, fs in other.telemetry_files.items():
            self.telemetry_files[k] = sorted(set(self.telemetry_files.get(k, [])) | set(fs))
        self.landing_paths = sorted(set(self.landing_paths) | set(other.landing_paths))
        self.foreign_chunks = sorted(set(self.foreign_chunks) | set(other.foreign_chunks))
        self.fingerprints.update(other.fingerprints)
        self.doc_ids = sorted(set(self.doc_ids) | set(other.doc_ids))
        self.held_documents = max(self.held_documents, other.held_documents)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "Manifest":
        return cls(**d)

    def commitment(self) -> dict:
        """sha256 over the sorted (system, id, content sha256) lines of everything found."""
        lines = sorted(f"{k}\t{v}\n" for k, v in self.items.items())
        h = hashlib.sha256()
        for line in lines:
            h.update(line.encode("utf-8"))
        return {"algorithm": "sha256 over sorted lines 'system\\tid\\tcontent_sha256\\n'", "sha256": h.hexdigest(), "items": len(lines)}

    def counts(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for key in self.items:
            system = key.split("\t", 1)[0]
            if system.startswith("lancedb." + EMBEDDINGS_PREFIX):
                e = out.setdefault("lancedb.embeddings", {"items": 0, "per_version": {}})
                e["items"] += 1
                v = system.removeprefix("lancedb." + EMBEDDINGS_PREFIX)
                e["per_version"][v] = e["per_version"].get(v, 0) + 1
            else:
                out.setdefault(system, {"items": 0})["items"] += 1
        return dict(sorted(out.items()))


def distinctive_windows(data: bytes, n: int, width: int = 48) -> list[bytes]:
    """Up to n non-overlapping windows of `data`, preferring digit-rich, varied ones
    (random numbers are what makes a window unique to this subject's text)."""
    return distinctive_windows_many([data], n, width)[0]


def distinctive_windows_many(texts: list[bytes], n: int, width: int = 48) -> list[list[bytes]]:
    """`distinctive_windows` for many texts at once (one vectorised numpy pass over all of them).

    Candidate windows start at 0, width/4, ... of each text; a window is skipped if it holds a
    placeholder bracket or a newline or starts/ends with whitespace (layout and placeholders are
    shared by everyone). Score = 4 x digits + distinct bytes + 1000 if every 16-byte piece holds a
    digit (such windows make selective scan keys); the best non-overlapping ones are taken."""
    out: list[list[bytes]] = [[] for _ in texts]
    if n <= 0:
        return out
    big = []
    for i, d in enumerate(texts):
        if len(d) < 16:
            continue
        if len(d) <= width:
            out[i] = [d]
        else:
            big.append(i)
    if not big:
        return out
    lens = np.array([len(texts[i]) for i in big], dtype=np.int64)
    bases = np.concatenate(([0], np.cumsum(lens)[:-1]))
    buf = b"".join(texts[i] for i in big)
    arr = np.frombuffer(buf, dtype=np.uint8)
    step = max(1, width // 4)
    counts = (lens - width) // step + 1
    tid = np.repeat(np.arange(len(big)), counts)
    local = (np.arange(tid.size) - np.repeat(np.cumsum(counts) - counts, counts)) * step
    starts = bases[tid] + local
    isdig = (arr >= 48) & (arr <= 57)
    cs = np.concatenate(([0], np.cumsum(isdig, dtype=np.int64)))
    digits = cs[starts + width] - cs[starts]
    bad = (arr == 60) | (arr == 62) | (arr == 10)
    cb = np.concatenate(([0], np.cumsum(bad, dtype=np.int64)))
    ws_ = np.zeros(256, dtype=bool)
    ws_[list(b" \t\n\r\x0b\x0c")] = True
    ok = (cb[starts + width] == cb[starts]) & ~ws_[arr[starts]] & ~ws_[arr[starts + width - 1]]
    nodig16 = (cs[16:] - cs[:-16]) == 0  # 16-byte piece starting at k has no digit
    cz = np.concatenate(([0], np.cumsum(nodig16, dtype=np.int64)))
    dense = cz[starts + width - 15] == cz[starts]
    srt = np.sort(np.lib.stride_tricks.sliding_window_view(arr, width)[starts], axis=1)
    distinct = 1 + np.count_nonzero(np.diff(srt, axis=1), axis=1)
    score = digits * 4 + distinct + np.where(dense, 1000, 0)
    sel = np.flatnonzero(ok)
    order = sel[np.lexsort((local[sel], -score[sel], tid[sel]))]  # by text, best score, earliest
    t_sorted = tid[order]
    bounds = np.searchsorted(t_sorted, np.arange(len(big) + 1))
    loc_sorted = local[order].tolist()
    for k, i in enumerate(big):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        chosen: list[int] = []
        for st in loc_sorted[lo:hi] if n > 1 else loc_sorted[lo:min(hi, lo + 1)]:
            if all(abs(st - c) >= width for c in chosen):
                chosen.append(st)
                if len(chosen) >= n:
                    break
        d = texts[i]
        out[i] = [d[st:st + width] for st in sorted(chosen)]
    return out


def _is_in(arr: pa.ChunkedArray | pa.Array, values: Iterable[str]) -> pa.Array:
    vals = list(values)
    if not vals:
        return pa.array([False] * len(arr))
    return pc.fill_null(pc.is_in(arr, value_set=pa.array(vals, pa.string())), False)


FETCH_BATCH = 20_000


def _fetch(store: LanceStore, table: str, columns: list[str], column: str, ids: Iterable[str]) -> pa.Table:
    """Rows whose `column` (one of our own id columns) is in `ids`. The filter is a pyarrow
    expression, not SQL text: no string is parsed, and one call replaces many 1000-id IN lists."""
    return store.dataset(table).to_table(columns=columns, filter=pc.field(column).isin(pa.array(list(ids), pa.string())))


def _other_tables(store: LanceStore) -> list[str]:
    return [n for n in store.table_names() if n not in (DOCUMENTS, CHUNKS) and not n.startswith(EMBEDDINGS_PREFIX)]


ROW_ID_COLUMNS = ("row_id", "event_id", "sample_id", "log_id", "id")
SUBJECT_COLUMNS = ("subject_id", "user_id")


def _table_subject_columns(store: LanceStore, name: str) -> tuple[list[str], str | None]:
    schema = store.dataset(name).schema
    names = schema.names
    subj = [c for c in SUBJECT_COLUMNS if c in names and pa.types.is_string(schema.field(c).type)]
    idcol = next((c for c in ROW_ID_COLUMNS if c in names), None)
    return subj, idcol


@dataclass
class DiscoveryContext:
    """What discovery learned besides the manifests: identifiers that *contain* a target
    (a byte-scan hit inside one of them is another subject's data, not a trace)."""

    superstrings: dict[str, set[str]] = field(default_factory=dict)


def discover(settings, store: LanceStore, subjects: dict[str, str]) -> tuple[dict[str, Manifest], DiscoveryContext]:
    """subjects: {raw subject id: request_id} -> {request_id: Manifest}. One pass per table for all subjects."""
    manifests = {rid: Manifest() for rid in subjects.values()}
    ctx = DiscoveryContext({s: set() for s in subjects})
    targets = list(subjects)
    seen_ids: set[str] = set()

    def note_ids(values: Iterable[str]) -> None:
        for u in values:
            if u is None or u in seen_ids:
                continue
            seen_ids.add(u)
            for t in targets:
                if t in u and u != t:
                    ctx.superstrings[t].add(u)

    # documents: in-memory match on subject_id, then details fetched by our doc ids
    doc_owner: dict[str, str] = {}
    for b in store.scan_batches(DOCUMENTS, ["doc_id", "subject_id"]):
        note_ids(pc.unique(b.column(1)).to_pylist())
        m = _is_in(b.column(1), targets)
        if pc.any(m).as_py():
            f = b.filter(m)
            doc_owner.update(zip(f.column(0).to_pylist(), f.column(1).to_pylist()))
    for ids in batched(sorted(doc_owner), FETCH_BATCH):
        t = _fetch(store, DOCUMENTS, ["doc_id", "subject_id", "file_path", "file_sha256", "text", "text_sha256", "legal_hold"], "doc_id", ids)
        rows = t.to_pylist()
        windows = distinctive_windows_many([(r["text"] or "").encode("utf-8") for r in rows], 4)
        for r, wins in zip(rows, windows):
            if r["subject_id"] not in subjects:  # re-check in memory (the filter was on our ids only)
                continue
            man = manifests[subjects[r["subject_id"]]]
            man.add("lancedb.documents", r["doc_id"], r["text_sha256"] or sha256_hex(r["text"] or ""))
            man.add_ids(DOCUMENTS, "doc_id", [r["doc_id"]])
            man.doc_ids.append(r["doc_id"])
            if r["legal_hold"]:
                man.held_documents += 1
            for w in wins:
                man.fingerprints[w.hex()] = "document_text"
            for hx in (r["text_sha256"], r["file_sha256"]):
                if hx:
                    man.fingerprints[hx.encode().hex()] = "content_hash"
            if r["file_path"]:
                _add_upload(man, Path(settings.landing_dir), r["file_path"], "landing")
                _add_upload(man, Path(settings.quarantine_dir), r["file_path"], "quarantine")

    # chunks: by subject_id or by one of the subject's documents
    chunk_owner: dict[str, str] = {}
    for b in store.scan_batches(CHUNKS, ["chunk_id", "doc_id", "subject_id"]):
        note_ids(pc.unique(b.column(2)).to_pylist())
        m = pc.or_(_is_in(b.column(2), targets), _is_in(b.column(1), doc_owner))
        if pc.any(m).as_py():
            f = b.filter(m)
            for cid, did, sid in zip(f.column(0).to_pylist(), f.column(1).to_pylist(), f.column(2).to_pylist()):
                if sid is not None and sid not in subjects:
                    # another subject's chunk under one of this subject's doc ids (a doc_id taken
                    # over): never erased with this subject, and neither are its vectors
                    manifests[subjects[doc_owner[did]]].foreign_chunks.append(cid)
                    continue
                chunk_owner[cid] = sid if sid in subjects else doc_owner[did]
    foreign = {c for m in manifests.values() for c in m.foreign_chunks}
    chunk_doc: dict[str, str] = {}
    for ids in batched(sorted(chunk_owner), FETCH_BATCH):
        t = _fetch(store, CHUNKS, ["chunk_id", "doc_id", "text", "content_sha256"], "chunk_id", ids)
        rows = t.to_pylist()
        windows = distinctive_windows_many([(r["text"] or "").encode("utf-8") for r in rows], 1)
        for r, wins in zip(rows, windows):
            man = manifests[subjects[chunk_owner[r["chunk_id"]]]]
            chunk_doc[r["chunk_id"]] = r["doc_id"]
            man.add("lancedb.chunks", r["chunk_id"], r["content_sha256"] or sha256_hex(r["text"] or ""))
            man.add_ids(CHUNKS, "chunk_id", [r["chunk_id"]])
            for w in wins:
                man.fingerprints[w.hex()] = "chunk_text"
            if r["content_sha256"]:
                man.fingerprints[r["content_sha256"].encode().hex()] = "content_hash"

    # vectors in every embeddings_* table (retired versions included)
    for version, table in sorted(store.embedding_tables().items()):
        owner: dict[str, str] = {}
        for b in store.scan_batches(table, ["chunk_id", "doc_id"]):
            m = pc.or_(_is_in(b.column(0), chunk_owner), _is_in(b.column(1), doc_owner))
            if pc.any(m).as_py():
                f = b.filter(m)
                for cid, did in zip(f.column(0).to_pylist(), f.column(1).to_pylist()):
                    if cid in foreign:
                        continue
                    owner[cid] = chunk_owner.get(cid) or doc_owner[did]
        for ids in batched(sorted(owner), FETCH_BATCH):
            t = _fetch(store, table, ["chunk_id", "vector"], "chunk_id", ids)
            vec = t.column("vector").combine_chunks()
            flat = vec.flatten().to_numpy(zero_copy_only=False).reshape(len(vec), -1) if len(vec) else np.zeros((0, 0))
            for i, cid in enumerate(t.column("chunk_id").to_pylist()):
                man = manifests[subjects[owner[cid]]]
                man.add(f"lancedb.{table}", cid, hashlib.sha256(flat[i].astype("<f4").tobytes()).hexdigest())
                man.add_ids(table, "chunk_id", [cid])

    # any other table with a subject_id / user_id column (system_logs, metrics, ...)
    for table in _other_tables(store):
        subj_cols, idcol = _table_subject_columns(store, table)
        if not subj_cols:
            continue
        found: dict[Any, str] = {}
        ds = store.dataset(table)
        cols = subj_cols + ([idcol] if idcol else [])
        for b in ds.to_batches(columns=cols, with_row_id=idcol is None, batch_size=131072):
            mask = None
            for c in subj_cols:
                note_ids(pc.unique(b.column(c)).to_pylist())
                mc = _is_in(b.column(c), targets)
                mask = mc if mask is None else pc.or_(mask, mc)
            if not pc.any(mask).as_py():
                continue
            f = b.filter(mask)
            ids = f.column(idcol if idcol else "_rowid").to_pylist()
            owners = [next(v for v in vals if v in subjects) for vals in zip(*(f.column(c).to_pylist() for c in subj_cols))]
            found.update(zip(ids, owners))
        if not found:
            continue
        column = idcol or "_rowid"
        for chunk in batched(sorted(found, key=str), 1000):
            filt = in_filter(column, chunk) if idcol else f"_rowid IN ({', '.join(str(int(i)) for i in chunk)})"
            rows = ds.to_table(filter=filt, with_row_id=idcol is None).to_pylist()
            for r in rows:
                key = r[column]
                man = manifests[subjects[found[key]]]
                man.add(f"lancedb.{table}", str(key), sha256_hex(canonical_json({k: v for k, v in r.items() if k != "_rowid"})))
                man.add_ids(table, column, [str(key)])

    discover_files(settings, subjects, manifests, note_ids)
    for man in manifests.values():
        man.files = sorted(set(man.files))
        man.doc_ids = sorted(set(man.doc_ids))
    return manifests, ctx


def discover_files(settings, subjects: dict[str, str], manifests: dict[str, Manifest], note_ids: Callable[[Iterable[str]], None] = lambda _v: None) -> None:
    """The file part of discovery (also what verification re-runs after the deletion):
    uploads whose sidecar names the subject, and lines whose structured subject field does."""
    # sidecars in the landing zone and quarantine naming the subject
    targets = list(subjects)
    for base, system in ((Path(settings.landing_dir), "landing"), (Path(settings.quarantine_dir), "quarantine")):
        if not base.exists():
            continue
        for sc in base.rglob("*" + SIDECAR_SUFFIX):
            try:
                raw = sc.read_bytes()[:1_000_000]
            except OSError:
                continue
            owner = None
            try:
                meta = json.loads(raw.decode("utf-8"))
                sid = meta.get("subject_id") if isinstance(meta, dict) else None
                if isinstance(sid, str):
                    note_ids([sid])
                owner = sid if sid in subjects else None
            except (UnicodeDecodeError, json.JSONDecodeError):
                # malformed sidecar: only the subject_id field itself, never a substring of the bytes
                owner = next((t for t in targets if _sidecar_field(t).search(raw)), None)
            if owner:
                data_rel = str(sc.relative_to(base))[: -len(SIDECAR_SUFFIX)]
                _add_upload(manifests[subjects[owner]], base, data_rel, system)

    # access exports (governance/access.py) made for the subject hold its data: they go too
    from .access import export_files_of

    salt = _salt(settings)
    by_hash = {subject_hash(t, salt): t for t in targets}
    for h, paths in export_files_of(settings, by_hash).items():
        man = manifests[subjects[by_hash[h]]]
        for p in paths:
            man.add("exports.access", str(p.relative_to(settings.exports_dir)), hashlib.sha256(p.read_bytes()).hexdigest())
            man.files.append(str(p))

    # Line files: incoming logs and metrics, telemetry rejects, exports. The subject is matched
    # on structured fields only (JSON subject_id/user_id at any depth, a CSV subject column, a
    # Prometheus label), never on a substring of a line or a file name: an id that is also an
    # ordinary token ("INFO", "prod", "v2") must not take other lines with it.
    from .telemetry import SUFFIXES as TELEMETRY_SUFFIXES

    line_roots = [(Path(settings.logs_dir), "logs_files", "system_logs"), (Path(settings.metrics_dir), "metrics_files", "metrics"),
                  (Path(settings.quarantine_dir) / "telemetry", "quarantine_telemetry", None), (Path(settings.exports_dir), "exports", None)]
    for base, system, kind in line_roots:
        for p, rel, n, line, owner in structured_lines(base, targets):
            man = manifests[subjects[owner]]
            man.add(system, f"{rel}#L{n + 1}", hashlib.sha256(line).hexdigest())
            if kind is not None and p.name.endswith(TELEMETRY_SUFFIXES):
                # telemetry source lines go by row id, with their rows (the cascade drops both)
                from .telemetry import row_id_for

                rid_ = row_id_for(kind, rel, line)
                man.telemetry_rows.setdefault(kind, []).append(rid_)
                man.telemetry_files.setdefault(kind, []).append(rel)
            else:
                man.line_hashes.setdefault(str(p), []).append(line_hash(line))
    for man in manifests.values():
        man.telemetry_rows = {k: sorted(set(v)) for k, v in man.telemetry_rows.items()}
        man.telemetry_files = {k: sorted(set(v)) for k, v in man.telemetry_files.items()}
        man.line_hashes = {k: sorted(set(v)) for k, v in man.line_hashes.items()}
        man.landing_paths = sorted(set(man.landing_paths))


SUBJECT_FIELDS = ("subject_id", "user_id")  # JSON keys (any depth) and Prometheus labels naming a subject
CSV_SUBJECT_COLUMNS = ("subject_id", "user_id", "subject")  # CSV/TSV header names of a subject column
STRUCTURED_LINE_SUFFIXES = (".jsonl", ".ndjson", ".log", ".json", ".csv", ".tsv", ".prom")
_PROM_LABEL = re.compile(rb'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _sidecar_field(target: str) -> re.Pattern[bytes]:
    """`"subject_id": "<target>"` in a sidecar that is not valid JSON: the field, not a substring."""
    return re.compile(rb'"subject_id"\s*:\s*"' + re.escape(target.encode("utf-8")) + rb'"')


def json_subjects(obj: Any, depth: int = 0) -> set[str]:
    """String values of subject fields anywhere in a JSON value (a rejected telemetry line's
    `raw` string is parsed too)."""
    out: set[str] = set()
    if depth > 32:
        return out
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in SUBJECT_FIELDS and isinstance(v, str):
                out.add(v)
            elif isinstance(v, (dict, list)):
                out |= json_subjects(v, depth + 1)
            elif k == "raw" and isinstance(v, str) and v.lstrip().startswith("{"):
                try:
                    out |= json_subjects(json.loads(v), depth + 1)
                except (json.JSONDecodeError, RecursionError):
                    pass
    elif isinstance(obj, list):
        for v in obj:
            out |= json_subjects(v, depth + 1)
    return out


def _line_subjects(fmt: str, line: bytes, cols: list[int], delim: str) -> set[str]:
    if not line.strip():
        return set()
    if fmt == "json":
        try:
            return json_subjects(json.loads(line.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            return set()
    if fmt == "csv":
        if not cols:
            return set()
        import csv

        try:
            row = next(csv.reader([line.decode("utf-8").rstrip("\r")], delimiter=delim))
        except (UnicodeDecodeError, csv.Error, StopIteration):
            return set()
        return {row[i] for i in cols if i < len(row)}
    if fmt == "prom":
        if line.lstrip().startswith(b"#") or b"{" not in line:
            return set()
        labels = line[line.index(b"{") + 1:line.rfind(b"}")] if b"}" in line else b""
        return {v.decode("utf-8", "replace") for k, v in _PROM_LABEL.findall(labels) if k.decode() in SUBJECT_FIELDS}
    return set()


def structured_lines(base: Path, targets: Iterable[str]):
    """(path, relative path, 0-based line number, line bytes, owner) of every line under `base`
    whose structured subject field equals one of `targets`. Files without a structure we know
    (text, HTML, PDF, ...) never match; certificates are skipped."""
    targets = set(targets)
    if not targets or not base.exists():
        return
    for p in sorted(base.rglob("*")):
        if not p.is_file() or p.is_symlink() or p.name.endswith(".tmp") or CERT_SUBDIR in p.parts or "access_exports" in p.parts:
            continue
        suffix = p.suffix.lower()
        if suffix not in STRUCTURED_LINE_SUFFIXES:
            continue
        try:
            data = p.read_bytes()
        except OSError:
            continue
        lines = data.split(b"\n")
        fmt, cols, delim = ("json", [], "")
        if suffix in (".csv", ".tsv"):
            import csv

            delim = "\t" if suffix == ".tsv" else ","
            try:
                header = next(csv.reader([lines[0].decode("utf-8").lstrip("\ufeff").rstrip("\r")], delimiter=delim))
            except (UnicodeDecodeError, csv.Error, StopIteration):
                continue
            cols = [i for i, h in enumerate(header) if h.strip().lower() in CSV_SUBJECT_COLUMNS]
            fmt = "csv"
            if not cols:
                continue
        elif suffix == ".prom":
            fmt = "prom"
        rel = str(p.relative_to(base))
        for n, line in enumerate(lines):
            if fmt == "csv" and n == 0:
                continue
            hit = _line_subjects(fmt, line, cols, delim) & targets
            if hit:
                yield p, rel, n, line, sorted(hit)[0]


def _add_upload(man: Manifest, base: Path, rel: str, system: str) -> None:
    data_path = base / rel
    for p, kind in ((data_path, "file"), (data_path.with_name(data_path.name + SIDECAR_SUFFIX), "sidecar"),
                    (data_path.with_name(data_path.name + REASON_SUFFIX), "reason")):
        if not p.is_file():
            continue
        data = p.read_bytes()
        man.add(f"{system}", f"{rel}#{kind}", hashlib.sha256(data).hexdigest())
        man.files.append(str(p))
        if system == "landing" and kind == "file":
            man.landing_paths.append(rel)
        if kind == "file":
            for w in distinctive_windows(data, 3):
                man.fingerprints[w.hex()] = "raw_file"
            man.fingerprints[hashlib.sha256(data).hexdigest().encode().hex()] = "content_hash"


# -- deletion: through the cascade (governance/cascade.py) ---------------------------------
SAMPLE_MANIFEST = "sample_manifest.json"  # written by the demo (sample_data.generate_landing_zone) into the data dir


def redact_json_subjects(path: Path, subjects: dict[str, str]) -> int:
    """Rewrite a JSON document so that no structured subject field holds a raw id of `subjects`
    ({raw id: salted hash}): the value becomes null with `subject_hash` and `erased: true`
    beside it (a `*_subject` key gets {"subject_hash": ...}). Returns the fields redacted."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return 0
    n = 0

    def walk(x):
        nonlocal n
        if isinstance(x, dict):
            for k in list(x):
                v = x[k]
                if isinstance(v, str) and v in subjects and (k in SUBJECT_FIELDS or k.endswith("_subject")):
                    n += 1
                    if k in SUBJECT_FIELDS:
                        x[k] = None
                        x["subject_hash"] = subjects[v]
                        x["erased"] = True
                    else:
                        x[k] = {"subject_hash": subjects[v]}
                else:
                    walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(doc)
    if n:
        tmp = path.with_name("." + path.name + ".erasure.tmp")
        tmp.write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8")
        os.replace(tmp, path)
    return n


def _cascade_plan(settings, store: LanceStore, manifests: Iterable[Manifest]):
    """The cascade plan of a batch of manifests: our ids, paths and line hashes, nothing else."""
    from . import cascade
    from .store import METRICS, SYSTEM_LOGS

    kinds = {SYSTEM_LOGS: "system_logs", METRICS: "metrics"}
    doc_ids: set[str] = set()
    chunk_ids: set[str] = set()
    tables: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    telemetry: dict[str, set[str]] = defaultdict(set)
    tfiles: dict[str, set[str]] = defaultdict(set)
    lines: dict[str, set[str]] = defaultdict(set)
    files: set[str] = set()
    landing_paths: set[str] = set()
    keep: set[str] = set()
    for man in manifests:
        keep.update(man.foreign_chunks)
        doc_ids.update(man.doc_ids)
        for table, cols in man.lance_ids.items():
            for col, ids in cols.items():
                if table == DOCUMENTS and col == "doc_id":
                    doc_ids.update(ids)
                elif table == CHUNKS and col == "chunk_id":
                    chunk_ids.update(ids)
                elif table in kinds and col == "row_id":
                    telemetry[kinds[table]].update(ids)
                else:  # vectors of one version by chunk id, other tables by their own ids
                    tables[table][col].update(ids)
        for k, ids in man.telemetry_rows.items():
            telemetry[k].update(ids)
        for k, fs in man.telemetry_files.items():
            tfiles[k].update(fs)
        for f, hs in man.line_hashes.items():
            lines[f].update(hs)
        files.update(man.files)
        landing_paths.update(man.landing_paths)
    plan = cascade.plan_cascade(
        store, doc_ids=sorted(doc_ids), chunk_ids=sorted(chunk_ids),
        tables={t: {c: sorted(v) for c, v in cols.items()} for t, cols in tables.items()},
        telemetry={k: sorted(v) for k, v in telemetry.items()},
        source_dirs={"system_logs": settings.logs_dir, "metrics": settings.metrics_dir},
        source_files={k: sorted(v) for k, v in tfiles.items()},
        lines={f: sorted(v) for f, v in lines.items()}, files=sorted(files), landing_dir=settings.landing_dir,
        vectors_by_doc=False,  # discovery found every vector (by chunk id and doc id) in every version
        keep_chunk_ids=sorted(keep),
    )
    plan.ledger_paths = sorted(set(plan.ledger_paths) | landing_paths)
    return plan


# -- byte-level scanning ------------------------------------------------------------------
_Q = 8
_TABLE_BITS = 22
_MULT = np.uint64(0x9E3779B97F4A7C15)
_MULT2 = np.uint64(0xC2B2AE3D27D4EB4F)


_MULT3 = np.uint64(0x165667B19E3779F9)


def _key_hash(words: list[np.ndarray]) -> np.ndarray:
    """Mix 2 or 3 uint64 key words into one (uint64 wrap-around arithmetic)."""
    h = words[0] * _MULT
    for w, m in zip(words[1:], (_MULT2, _MULT3)):
        h ^= w * m
    return h


def _byte_rank(b: int) -> int:
    """How common a byte is in our files (lower = rarer anchor): NUL/0xFF padding and
    letters/space in text are common; punctuation is rare."""
    if b in (0, 0xFF):
        return 4
    if 97 <= b <= 122 or 65 <= b <= 90 or b == 32:
        return 3
    if 48 <= b <= 57:
        return 2
    return 1


class PatternScanner:
    """Find many byte patterns in large buffers quickly (numpy, no per-byte Python).

    Patterns of 24+ bytes are grouped by length band. Within a group of minimum length L and
    key length q (16 for 24..47 bytes, 24 for 48+), every occurrence covers one of the
    sampled positions 0, s, 2s, ... with s = L - q + 1. At each sampled position the first
    8 bytes are looked up in a hash bitmap of the patterns' keys at offsets 0..s-1, then the
    next 8 bytes, then a hash of all q bytes (texts sharing a vocabulary pass the word-level
    stages; 24-byte keys of digit-rich windows rarely pass the last one), then an exact
    vectorised lookup of the key words; only those candidates are compared in full in Python.
    The cost is one vectorised pass over len/s positions per group, whatever the number of
    patterns. 8..23-byte patterns (identifiers) are found by their rarest byte (below);
    patterns shorter than 8 bytes use bytes.find.
    """

    def __init__(self, patterns: Iterable[bytes]):
        self.patterns = sorted({p for p in patterns if p})
        self.short = [i for i, p in enumerate(self.patterns) if len(p) < _Q]
        self.groups = []
        long_ = [i for i, p in enumerate(self.patterns) if len(p) >= 24]
        # 8..23 bytes (identifiers): sampling would need a step of len-7 (~4) positions, so
        # they are found by their rarest byte instead: one vectorised compare per anchor byte.
        # group key (anchor byte, its index j, pattern length L); lookup key = the LAST 8 bytes
        # (ids often share prefixes such as "user-00", rarely suffixes)
        self.anchors: dict[tuple[int, int, int], dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
        for i, p in enumerate(self.patterns):
            if _Q <= len(p) < 24:
                j = min(range(len(p)), key=lambda k: (_byte_rank(p[k]), k))
                self.anchors[(p[j], j, len(p))][int.from_bytes(p[-_Q:], "little")].append(i)
        self.anchor_keys = {k: np.array(sorted(v), dtype=np.uint64) for k, v in self.anchors.items()}
        self.anchor_bitmaps = {k: self._bitmap(v) for k, v in self.anchors.items()}
        for lo, hi, q in ((24, 48, 16), (48, 1 << 30, 24)):  # a few short texts must not slow the 48+ band
            idx = [i for i in long_ if lo <= len(self.patterns[i]) < hi]
            if idx:
                self.groups.append(self._group(idx, q))

    def _group(self, idx: list[int], q: int):
        """Sampling group for patterns idx (all >= L bytes, L = the shortest), key length q (16|24).

        Every occurrence covers a sampled position (multiple of s = L - q + 1) at some offset
        o in 0..s-1 of the pattern; the q bytes there are its key. Built vectorised: only the
        first L bytes of each pattern are needed. Filters: first 8 bytes, second 8 bytes, and a
        hash of all q bytes (texts sharing a vocabulary pass the word-level stages, rarely the
        whole key); then a sorted-key lookup checks the key words exactly, and only real
        candidates reach the full byte comparison."""
        L = min(len(self.patterns[i]) for i in idx)
        s = L - q + 1
        nw = q // 8
        P = np.frombuffer(b"".join(self.patterns[i][:L] for i in idx), dtype=np.uint8).reshape(len(idx), L)
        pid = np.array(idx, dtype=np.int64)
        words = [[] for _ in range(nw)]
        offs, pids = [], []
        for o in range(s):
            for w in range(nw):
                words[w].append(np.ascontiguousarray(P[:, o + 8 * w:o + 8 * w + 8]).view("<u8").ravel())
            offs.append(np.full(len(idx), o, dtype=np.int64))
            pids.append(pid)
        W = [np.concatenate(x) for x in words]
        off = np.concatenate(offs)
        pids_ = np.concatenate(pids)
        full = _key_hash(W)
        order = np.argsort(W[0], kind="stable")
        keys = tuple(x[order] for x in W)
        return (s, q, self._bitmap(W[0]), self._bitmap(W[1]), self._bitmap(full), keys, off[order], pids_[order])

    @staticmethod
    def _bitmap(keys: Iterable[int]):
        arr = np.unique(np.asarray(keys if isinstance(keys, np.ndarray) else sorted(keys), dtype=np.uint64))
        bits = min(28, max(_TABLE_BITS, int(len(arr) * 64).bit_length()))  # at most ~1.5% full
        bm = np.zeros(1 << bits, dtype=bool)
        shift = np.uint64(64 - bits)
        bm[(arr * _MULT) >> shift] = True
        return bm, shift

    def find(self, buf) -> list[tuple[int, int]]:
        """[(pattern index, start offset)] of every occurrence in `buf` (any buffer object)."""
        mv = memoryview(buf).cast("B")
        n = len(mv)
        hits: set[tuple[int, int]] = set()
        if n == 0 or not self.patterns:
            return []
        every = np.ndarray((n - 7,), dtype="<u8", buffer=mv, strides=(1,)) if n >= 8 else None
        for s, q, (bm1, sh1), (bm2, sh2), (bm3, sh3), keys, koff, kpid in self.groups:
            total = (n - q) // s + 1 if n >= q else 0
            step = 1 << 21
            for start in range(0, total, step):
                cnt = min(step, total - start)
                v = np.ndarray((cnt,), dtype="<u8", buffer=mv, offset=start * s, strides=(s,))
                h = v * _MULT
                np.right_shift(h, sh1, out=h)
                cand = np.flatnonzero(bm1[h])
                del v, h
                if cand.size == 0:
                    continue
                pos = (cand + start) * s
                v2 = every[pos + 8]
                ok = bm2[(v2 * _MULT) >> sh2]
                pos = pos[ok]
                if pos.size == 0:
                    continue
                ws = [every[pos + 8 * w] for w in range(q // 8)]
                ok = bm3[(_key_hash(ws) * _MULT) >> sh3]
                pos = pos[ok]
                if pos.size == 0:
                    continue
                ws = [w[ok] for w in ws]
                # exact key lookup, vectorised: every (pattern, offset) whose q key bytes equal these
                lo = np.searchsorted(keys[0], ws[0], side="left")
                hi = np.searchsorted(keys[0], ws[0], side="right")
                n_e = hi - lo
                if not n_e.any():
                    continue
                rep = np.repeat(np.arange(pos.size), n_e)
                ent = lo[rep] + (np.arange(rep.size) - np.repeat(np.cumsum(n_e) - n_e, n_e))
                good = np.ones(rep.size, dtype=bool)
                for w in range(1, q // 8):
                    good &= keys[w][ent] == ws[w][rep]
                st = pos[rep] - koff[ent]
                good &= st >= 0
                for i, s0 in zip(kpid[ent[good]].tolist(), st[good].tolist()):
                    pat = self.patterns[i]
                    if mv[s0:s0 + len(pat)] == pat:
                        hits.add((i, s0))
        if every is not None and self.anchors:
            arr = np.frombuffer(mv, dtype=np.uint8)
            block = 1 << 26
            for (b, j, length), keymap in self.anchors.items():
                keys = self.anchor_keys[(b, j, length)]
                ko = length - _Q
                for off in range(0, n, block):
                    c = np.flatnonzero(arr[off:off + block] == b)
                    if c.size == 0:
                        continue
                    st = c + (off - j)
                    st = st[(st >= 0) & (st <= n - length)]
                    if st.size == 0:
                        continue
                    vals = every[st + ko]
                    bm, sh = self.anchor_bitmaps[(b, j, length)]
                    pre = bm[(vals * _MULT) >> sh]
                    st, vals = st[pre], vals[pre]
                    ok = np.isin(vals, keys)
                    for p0, val in zip(st[ok].tolist(), vals[ok].tolist()):
                        for i in keymap[val]:
                            pat = self.patterns[i]
                            if mv[p0:p0 + len(pat)] == pat:
                                hits.add((i, p0))
            del arr
        del every
        if self.short:
            data = buf if hasattr(buf, "find") else bytes(mv)
            for i in self.short:
                pat = self.patterns[i]
                at = data.find(pat)
                while at != -1:
                    hits.add((i, at))
                    at = data.find(pat, at + 1)
        try:
            mv.release()
        except BufferError:
            pass
        return sorted(hits)


@dataclass
class ScanFinding:
    location: str  # file path (relative to its storage root) or "file::column"
    kind: str  # subject_id | document_text | chunk_text | raw_file | content_hash | chunk_id
    request_id: str
    count: int = 1


@dataclass
class ScanReport:
    files_scanned: int = 0
    bytes_scanned: int = 0
    lance_files_decoded: int = 0
    decoded_bytes_scanned: int = 0
    findings: list[ScanFinding] = field(default_factory=list)
    explained: int = 0  # hits that belong to other remaining data (shared text, longer ids)
    identifier_token_hits: dict[str, int] = field(default_factory=dict)  # location -> raw occurrences outside structured fields
    seconds: float = 0.0
    roots: list[str] = field(default_factory=list)


def storage_roots(settings, store: LanceStore) -> list[tuple[str, Path]]:
    roots = []
    lroot = store.local_root()
    if lroot is not None:
        roots.append(("lancedb", lroot))
    roots += [("landing", Path(settings.landing_dir)), ("quarantine", Path(settings.quarantine_dir)),
              ("logs", Path(settings.logs_dir)), ("metrics", Path(settings.metrics_dir)), ("exports", Path(settings.exports_dir))]
    if settings.ledger_url.startswith("sqlite:///"):
        roots.append(("ledger", Path(settings.ledger_url.removeprefix("sqlite:///"))))
    out, seen = [], set()
    for name, p in roots:
        rp = p.resolve()
        if rp in seen or not p.exists():
            continue
        seen.add(rp)
        out.append((name, p))
    return out


def byte_scan(settings, store: LanceStore, targets: dict[str, str], manifests: dict[str, Manifest],
              ctx: DiscoveryContext, removed_files: set[str]) -> ScanReport:
    """Scan every file under every storage root for the subject's content fingerprints, and
    check the identifier where it is structured.

    The identifier is a trace only in a structured subject field: a subject column of any
    Lance file on disk (decoded, exact value; versions are checked by `api_check`), a sidecar's
    subject_id, a JSON subject_id/user_id, a CSV subject column, a Prometheus label
    (`discover_files` run again). Elsewhere an identifier can be an ordinary token ("INFO",
    "prod", "v2"); raw-byte occurrences of identifiers of 8+ bytes are counted and listed
    (`identifier_token_hits`) for the operator, not treated as the subject's data."""
    t0 = time.perf_counter()
    rep = ScanReport()
    owners: dict[bytes, list[tuple[str, str, str]]] = defaultdict(list)  # pattern -> [(request_id, kind, subject)]
    for subj, rid in targets.items():
        if len(subj.encode("utf-8")) >= 8:
            owners[subj.encode("utf-8")].append((rid, "subject_id", subj))
        for hx, kind in manifests[rid].fingerprints.items():
            owners[bytes.fromhex(hx)].append((rid, kind, subj))
    scanner = PatternScanner(owners)
    pats = scanner.patterns
    raw_hits: list[tuple[str, bytes, int, Any]] = []  # (location, pattern, offset, buffer-getter)

    import threading

    lock = threading.Lock()

    def scan_buffer(location: str, buf) -> None:
        for i, off in scanner.find(buf):
            p = pats[i]
            for rid, kind, subj in owners[p]:
                if kind == "subject_id":
                    if not _explained_id(buf, off, subj, ctx.superstrings.get(subj, ())):
                        with lock:  # a token, not a structured field: listed, not a trace
                            rep.identifier_token_hits[location] = rep.identifier_token_hits.get(location, 0) + 1
                    continue
                with lock:
                    raw_hits.append((location, p, rid, kind))

    subject_values = pa.array(sorted(targets), pa.string())

    def check_subject_column(location: str, arr) -> None:
        """Exact values of a decoded subject column (never a substring)."""
        mask = _is_in(arr, subject_values.to_pylist())
        if pc.any(mask).as_py():
            for v in pc.unique(arr.filter(mask)).to_pylist():
                with lock:
                    raw_hits.append((location, v.encode("utf-8"), targets[v], "subject_id"))

    roots = storage_roots(settings, store)
    rep.roots = [name for name, _ in roots]
    jobs: list[tuple[str, Path, str]] = []
    for name, root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        jobs += [(name, p, f"{name}/{p.relative_to(root)}" if root.is_dir() else name) for p in files]

    def scan_file(job: tuple[str, Path, str]) -> None:
        name, p, loc = job
        try:
            size = p.stat().st_size
            with lock:
                rep.files_scanned += 1
                rep.bytes_scanned += size
            if size == 0:
                return
            with open(p, "rb") as fh:
                mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
                try:
                    scan_buffer(loc, mm)
                finally:
                    try:
                        mm.close()
                    except BufferError:
                        pass
        except (FileNotFoundError, PermissionError):
            return
        if name == "lancedb" and p.suffix == ".lance":
            _scan_lance_decoded(p, loc, rep, scan_buffer, lock, check_subject_column)

    # numpy and lance release the GIL: one thread per core; largest files first
    jobs.sort(key=lambda j: -j[1].stat().st_size if j[1].exists() else 0)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        list(pool.map(scan_file, jobs))
    if store.objects is not None:  # LanceDB on object storage: every object version under the prefix
        rep.roots.append(_scan_object_store(store, rep, scan_buffer, lock, check_subject_column))
    # the identifier in structured fields of files: uploads whose sidecar names the subject,
    # lines whose subject field does (what discovery matches, run again after the deletion)
    leftover = {rid: Manifest() for rid in set(targets.values())}
    discover_files(settings, targets, leftover)
    for rid, m in leftover.items():
        for key in m.items:
            system, ident = key.split("\t", 1)
            raw_hits.append((f"{system}/{ident}", b"", rid, "subject_id"))
    # text fingerprints found outside our own removed files: shared with remaining data?
    text_kinds = {"document_text", "chunk_text", "raw_file"}
    suspicious = {p for loc, p, rid, kind in raw_hits if kind in text_kinds}
    shared = _shared_with_remaining(store, suspicious) if suspicious else set()
    agg: dict[tuple[str, str, str], int] = defaultdict(int)
    for loc, p, rid, kind in raw_hits:
        if kind in text_kinds and p in shared and not any(loc.endswith(f) for f in removed_files):
            rep.explained += 1
            continue
        agg[(loc, kind, rid)] += 1
    rep.findings = [ScanFinding(loc, kind, rid, n) for (loc, kind, rid), n in sorted(agg.items())]
    rep.seconds = time.perf_counter() - t0
    return rep


def _explained_id(buf, off: int, target: str, supers: Iterable[str]) -> bool:
    t = target.encode("utf-8")
    mv = memoryview(buf)
    try:
        for u in supers:
            ub = u.encode("utf-8")
            j = ub.find(t)
            while j != -1:
                st = off - j
                if st >= 0 and mv[st:st + len(ub)] == ub:
                    return True
                j = ub.find(t, j + 1)
        return False
    finally:
        mv.release()


def _scan_object_store(store: LanceStore, rep: ScanReport, scan_buffer, lock, check_subject_column) -> str:
    """Read every version of every object under the store's prefix: current objects and, on a
    versioned bucket, the noncurrent versions a purge's cleanup left (list_objects_v2 does not
    show them, their bytes are intact). Raw bytes are scanned; .lance files are also decoded.
    Returns the root's label, s3://bucket/prefix."""
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    objs = store.objects
    versions = [v for v in objs.list_versions() if not v.delete_marker]

    def scan_version(v) -> None:
        rel = objs.rel(v.key)
        loc = f"lancedb/{rel}" if v.is_latest else f"lancedb/{rel}?versionId={v.version_id}"
        data = objs.read(v.key, v.version_id)
        with lock:
            rep.files_scanned += 1
            rep.bytes_scanned += len(data)
        if not data:
            return
        scan_buffer(loc, data)
        if rel.endswith(".lance"):
            with tempfile.TemporaryDirectory() as td:
                tmp = Path(td) / Path(rel).name
                tmp.write_bytes(data)
                _scan_lance_decoded(tmp, loc, rep, scan_buffer, lock, check_subject_column)

    with ThreadPoolExecutor(max_workers=4) as pool:  # network-bound
        list(pool.map(scan_version, versions))
    return f"lancedb=s3://{objs.bucket}/{objs.prefix}"


def _scan_lance_decoded(path: Path, loc: str, rep: ScanReport, scan_buffer, lock, check_subject_column=None) -> None:
    """Decode the string columns of a Lance file (data or index) and scan their bytes."""
    try:
        from lance.file import LanceFileReader

        schema = LanceFileReader(str(path)).metadata().schema
        cols = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type) or pa.types.is_binary(f.type)]
        if not cols:
            return
        table = LanceFileReader(str(path), columns=cols).read_all(batch_size=65536).to_table()
    except Exception:  # not a readable Lance file (e.g. a manifest) - raw bytes were scanned already
        return
    with lock:
        rep.lance_files_decoded += 1
    for name in table.column_names:
        if check_subject_column is not None and name in SUBJECT_COLUMNS:
            check_subject_column(f"{loc}::{name}", table.column(name))
        for chunk in table.column(name).chunks:
            bufs = chunk.buffers()
            data = bufs[2] if len(bufs) > 2 else None
            if data is None or data.size == 0:
                continue
            with lock:
                rep.decoded_bytes_scanned += data.size
            scan_buffer(f"{loc}::{name}", data)


def _shared_with_remaining(store: LanceStore, patterns: set[bytes]) -> set[bytes]:
    """Which text fingerprints also occur in remaining documents/chunks (i.e. are not unique).

    One PatternScanner pass over the text columns' data buffers (a window spanning two
    adjacent values can only add a false "shared", which the raw hit still reports unless
    the text really is shared)."""
    scanner = PatternScanner(patterns)
    shared: set[bytes] = set()
    for table in (DOCUMENTS, CHUNKS):
        for b in store.scan_batches(table, ["text"]):
            col = b.column(0)
            data = col.buffers()[2]
            if data is None or data.size == 0:
                continue
            for i, _ in scanner.find(data):
                shared.add(scanner.patterns[i])
            if len(shared) == len(scanner.patterns):
                return shared
    return shared


# -- API verification ---------------------------------------------------------------------
@dataclass
class ApiCheck:
    tables_checked: int = 0
    versions_checked: int = 0
    matches: dict[str, int] = field(default_factory=dict)  # "table@version" -> rows


def api_check(store: LanceStore, targets: Iterable[str], manifests: Iterable[Manifest]) -> ApiCheck:
    import lance

    targets = list(targets)
    ids: dict[str, set[str]] = defaultdict(set)
    manifests = list(manifests)
    foreign = sorted({c for man in manifests for c in man.foreign_chunks})  # other subjects' chunks, kept on purpose
    for man in manifests:
        for table, cols in man.lance_ids.items():
            for col, vals in cols.items():
                ids[col].update(vals)
        ids["doc_id"].update(man.doc_ids)
    out = ApiCheck()
    for table in store.table_names():
        ds0 = store.dataset(table)
        out.tables_checked += 1
        for v in ds0.versions():
            ds = lance.dataset(ds0.uri, version=v["version"], storage_options=store.storage_options)
            names = ds.schema.names
            cols = [c for c in (*SUBJECT_COLUMNS, "doc_id", "chunk_id", *ROW_ID_COLUMNS) if c in names]
            out.versions_checked += 1
            n = 0
            for b in ds.to_batches(columns=cols, batch_size=131072):
                mask = None
                for c in cols:
                    vals = targets if c in SUBJECT_COLUMNS else ids.get(c, ())
                    if not vals:
                        continue
                    mc = _is_in(b.column(c), vals)
                    mask = mc if mask is None else pc.or_(mask, mc)
                if mask is not None and foreign and "chunk_id" in cols:
                    mask = pc.and_(mask, pc.invert(_is_in(b.column("chunk_id"), foreign)))
                if mask is not None:
                    n += pc.sum(pc.cast(mask, pa.int64())).as_py() or 0
            if n:
                out.matches[f"{table}@{v['version']}"] = n
    return out


# -- the run --------------------------------------------------------------------------------
@dataclass
class RequestOutcome:
    request_id: str
    status: str
    subject_hash: str
    failure: str | None = None
    certificate_id: str | None = None
    certificate_path: str | None = None
    counts: dict = field(default_factory=dict)
    commitment: str | None = None
    deadline_met: bool | None = None


@dataclass
class ErasureRunResult:
    outcomes: list[RequestOutcome] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # discovery, deletion, files, purge, verify_api, scan, certify
    rows_deleted: dict[str, int] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)
    purge: dict[str, dict] = field(default_factory=dict)
    scan: dict[str, Any] = field(default_factory=dict)
    partitions_deleted: list[str] = field(default_factory=list)  # ingest_batches keys the erasure left empty

    @property
    def certified(self) -> list[RequestOutcome]:
        return [o for o in self.outcomes if o.status == "certified"]

    @property
    def failed(self) -> list[RequestOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def summary_markdown(self) -> str:
        table = md_table(
            ["request", "status", "items", "certificate", "failure"],
            [(o.request_id, o.status, sum(v.get("items", 0) for v in o.counts.values()), o.certificate_path or "-", (o.failure or "-")[:200])
             for o in self.outcomes],
        )
        t = ", ".join(f"{k} {v:.2f}s" for k, v in self.timings.items())
        return (f"**{len(self.certified)} certified, {len(self.failed)} failed** of {len(self.outcomes)} requests.\n\n"
                + table + f"\n\nTimings: {t}.\n\nScan: {self.scan.get('files_scanned', 0)} files, "
                f"{self.scan.get('bytes_scanned', 0)} bytes raw + {self.scan.get('decoded_bytes_scanned', 0)} bytes of decoded Lance strings.")


def _progress(ledger: Ledger, rid: str) -> dict:
    r = get_request(ledger, rid)
    return r["progress"] if r else {}


def _mark(ledger: Ledger, rid: str, step: str, now: datetime, conn=None, **extra) -> None:
    prog = _progress(ledger, rid)
    prog.setdefault("steps", {})[step] = iso(now)
    prog.update(extra)
    _update(ledger, rid, conn, progress=prog)


def _mark_all(ledger: Ledger, rids: Iterable[str], step: str, now: datetime, **extra) -> None:
    with ledger.begin() as conn:
        for rid in rids:
            _mark(ledger, rid, step, now, conn=conn, **extra)


def process_requests(
    settings,
    request_ids: Iterable[str] | None = None,
    *,
    ledger: Ledger | None = None,
    store: LanceStore | None = None,
    hook: Callable[[str], None] | None = None,
    clock: Callable[[], datetime] | None = None,
    actor: str = "erasure",
    partitions=None,
) -> ErasureRunResult:
    """Process open requests (all pending ones by default) together: shared purge and scan.

    Resumable: a run killed after any step is completed by the next run; a request is
    certified exactly once (the certify transaction only moves `verified` -> `certified`).
    `hook(step)` is called after each step (tests use it to simulate a kill).
    Deletion goes through the cascade (governance/cascade.py): one intent for the batch,
    recorded before anything is deleted; an intent a killed run left open is completed
    first. `partitions` (a `cascade.PartitionSink`, e.g. the Dagster instance's
    ingest_batches) receives the batch keys the erasure leaves empty.
    Several requests for the same subject in one batch share one discovery and deletion;
    each gets its own certificate.
    """
    ledger = ledger or Ledger(settings.ledger_url)
    store = store or LanceStore(settings.lancedb_uri, settings.lancedb_storage_options)
    clock = clock or (lambda: datetime.now(timezone.utc))
    hook = hook or (lambda step: None)
    res = ErasureRunResult()
    wanted = list(request_ids) if request_ids is not None else pending_request_ids(settings, ledger)
    pdir = processing_dir(settings)

    reqs: dict[str, dict] = {}  # rid -> pending file content
    for rid in sorted(set(wanted)):
        row = get_request(ledger, rid)
        pfile = pdir / f"{rid}.json"
        if row is None:
            continue
        if row["status"] in ("certified", "failed"):
            pfile.unlink(missing_ok=True)  # finish a run killed right after certification
            res.outcomes.append(_outcome(row))
            continue
        if not pfile.exists():
            _fail(ledger, rid, "the pending request file is missing: the raw identifier is gone, resubmit the request", clock())
            res.outcomes.append(_outcome(get_request(ledger, rid)))
            continue
        reqs[rid] = json.loads(pfile.read_text(encoding="utf-8"))
    if not reqs:
        return res

    now = clock()
    # One ledger transaction per step for the whole batch (a step's markers are idempotent; a
    # commit per request and step cost ~1.5 s for 100 requests on SQLite).
    with ledger.begin() as conn:
        for rid in reqs:
            if _update(ledger, rid, conn, expect=["received"], status="in_progress", started_at=iso(now)):
                ledger.append_event("erasure.started", {"request_id": rid}, actor=actor, subject_hash=get_request(ledger, rid)["subject_hash"], conn=conn)
                _mark(ledger, rid, "started", now, conn=conn)
    hook("started")

    to_verify = {rid: p for rid, p in reqs.items() if get_request(ledger, rid)["status"] == "in_progress"}
    manifests: dict[str, Manifest] = {}
    ctx = DiscoveryContext()
    primary: dict[str, str] = {}  # rid -> the request of the same subject that discovery and the scan report under
    if to_verify:
        from . import cascade

        cascade.resume_open(store, ledger, causes=["erasure"], partitions=partitions)  # a killed run's deletions
        subjects: dict[str, str] = {}
        for rid in sorted(to_verify):
            subjects.setdefault(to_verify[rid]["request"]["subject_id"], rid)
        primary = {rid: subjects[p["request"]["subject_id"]] for rid, p in to_verify.items()}
        t = time.perf_counter()
        found, ctx = discover(settings, store, subjects)
        res.timings["discovery"] = time.perf_counter() - t
        holds = ledger.active_holds()
        salt = _salt(settings)
        for rid, p in to_verify.items():
            man = Manifest.from_json(p["manifest"]) if "manifest" in p else Manifest()
            man.merge(found[primary[rid]])
            manifests[rid] = man
            row = get_request(ledger, rid)
            held_docs = man.held_documents + sum(subject_hash(d, salt) in holds["document"] for d in man.doc_ids)
            if row["subject_hash"] in holds["subject"] or held_docs:
                what = "the subject is under legal hold" if row["subject_hash"] in holds["subject"] else f"{held_docs} of the subject's documents are under legal hold"
                _fail(ledger, rid, f"legal_hold: {what}; nothing was erased (GDPR Art. 17(3)(e)); resubmit after the hold is released", clock())
                (pdir / f"{rid}.json").unlink(missing_ok=True)
                continue
            p["manifest"] = man.to_json()
            _write_private(pdir / f"{rid}.json", p)
            commitment = man.commitment()
            _mark(ledger, rid, "discovered", clock(), counts=man.counts(), commitment=commitment)
            ledger.append_event("erasure.discovered", {"request_id": rid, "counts": man.counts(), "commitment": commitment["sha256"], "items": commitment["items"]},
                                actor=actor, subject_hash=row["subject_hash"])
        to_verify = {rid: p for rid, p in to_verify.items() if rid in manifests and get_request(ledger, rid)["status"] == "in_progress"}
        manifests = {rid: manifests[rid] for rid in to_verify}
    hook("discovered")

    deleted_at: float | None = None  # monotonic time of this run's delete (reader grace below)
    if to_verify:
        t = time.perf_counter()
        # one cascade for the batch: intent in the ledger, leaf-first deletion of our ids in
        # every store (vectors of every version, chunks, telemetry rows and their source lines,
        # the subject's lines in line files, files, documents, the ledger's path records and the
        # ingest_batches partitions left empty), result in the ledger
        plan = _cascade_plan(settings, store, manifests.values())
        cres = cascade.run_cascade(store, ledger, plan, cause="erasure", actor=actor, partitions=partitions, purge=False,
                                   details={"request_ids": sorted(to_verify)})
        res.rows_deleted = dict(cres.rows)
        res.files = {"files_removed": cres.files_removed + cres.landing_files_removed, "files_rewritten": cres.files_rewritten,
                     "lines_removed": cres.lines_removed, "ledger_paths_removed": cres.ledger_paths_removed,
                     "partitions_deleted": len(cres.partitions_deleted)}
        res.partitions_deleted = list(cres.partitions_deleted)
        # the demo's sample manifest names the sample subjects: keep their salted hash only
        sample = Path(settings.data_dir) / SAMPLE_MANIFEST
        if sample.is_file():
            by_subject = {to_verify[r]["request"]["subject_id"]: get_request(ledger, r)["subject_hash"] for r in to_verify}
            res.files["sample_manifest_fields_redacted"] = redact_json_subjects(sample, by_subject)
        res.timings["deletion"] = time.perf_counter() - t
        deleted_at = time.monotonic()
        _mark_all(ledger, to_verify, "deleted", clock(), cascade_id=cres.cascade_id)
        hook("deleted")
        _mark_all(ledger, to_verify, "files_removed", clock())
        hook("files_removed")

        t = time.perf_counter()
        # the shared physical purge: the touched tables and every table a killed run or a
        # killed write left dirty (deletion files, old versions, files no version references)
        pst = cascade.purge_tables(store, set(cres.rows))
        res.purge = pst["tables"]
        res.timings["purge"] = time.perf_counter() - t

        class _Stats:  # what the events below read
            tables = pst["tables"]
            bytes_reclaimed = pst["bytes_reclaimed"]
            versions_removed = pst["versions_removed"]

        stats = _Stats
        purge_summary = {n: {k: e.get(k) for k in ("version_before", "version_after", "old_versions", "versions_left", "fragments_rewritten", "tags_moved")} for n, e in stats.tables.items()}
        with ledger.begin() as conn:
            for rid in to_verify:
                _mark(ledger, rid, "purged", clock(), conn=conn, purge=purge_summary)
                ledger.append_event("erasure.purged", {"request_id": rid, "tables": sorted(stats.tables), "bytes_reclaimed": stats.bytes_reclaimed,
                                                       "versions_removed": stats.versions_removed}, actor=actor, conn=conn)
        hook("purged")

        subjects = {to_verify[rid]["request"]["subject_id"]: rid for rid in sorted(set(primary.values())) if rid in to_verify}
        t = time.perf_counter()
        api = api_check(store, subjects, manifests.values())
        res.timings["verify_api"] = time.perf_counter() - t
        removed = {str(Path(f).relative_to(base)) for m in manifests.values() for f in m.files
                   for base in (Path(settings.landing_dir), Path(settings.quarantine_dir)) if Path(f).is_relative_to(base)}
        rep = byte_scan(settings, store, subjects, manifests, ctx, removed)
        res.timings["scan"] = rep.seconds
        res.scan = {"files_scanned": rep.files_scanned, "bytes_scanned": rep.bytes_scanned, "lance_files_decoded": rep.lance_files_decoded,
                    "decoded_bytes_scanned": rep.decoded_bytes_scanned, "explained": rep.explained, "roots": rep.roots}
        objinfo = store.objects.info() if store.objects is not None else None  # bucket, prefix, versioning, object lock
        for rid, p in to_verify.items():
            man = manifests[rid]
            mine = [f for f in rep.findings if f.request_id == primary.get(rid, rid)]
            api_matches = sum(api.matches.values())  # shared: any match of any target is a failure for all (kept simple, exact)
            kinds: dict[str, int] = defaultdict(int)
            for fp_kind in man.fingerprints.values():
                kinds[fp_kind] += 1
            verification = {
                "result": "clean" if not mine and not api_matches else "traces_found",
                "api_matches": api_matches, "api_match_locations": sorted(api.matches)[:50],
                "tables_checked": api.tables_checked, "versions_checked": api.versions_checked,
                "files_scanned": rep.files_scanned, "bytes_scanned": rep.bytes_scanned,
                "lance_files_decoded": rep.lance_files_decoded, "decoded_bytes_scanned": rep.decoded_bytes_scanned,
                "byte_matches": sum(f.count for f in mine), "patterns": {"subject_id": 1, **dict(sorted(kinds.items()))},
                "hits_explained_by_other_data": rep.explained, "storage_roots": rep.roots,
                **({"object_storage": objinfo} if objinfo else {}),
                "identifier_token_hits_outside_structured_fields": sum(rep.identifier_token_hits.values()),
            }
            if mine or api_matches:
                where = "; ".join(f"{f.location} ({f.kind} x{f.count})" for f in mine[:20])
                in_grace = sum((e.get("unverified_files") or {}).get("kept_in_grace", 0) for e in (res.purge or {}).values())
                hint = (f"; {in_grace} file(s) of uncommitted LanceDB writes were younger than AISG_PURGE_UNVERIFIED_GRACE_SECONDS "
                        "and kept (they may be a commit in progress): if the traces are there, resubmit after that period") if in_grace else ""
                refused = [(e.get("object_versions") or {}).get("reason") for e in (res.purge or {}).values()]
                hint += "".join(f"; {r}" for r in refused if r)  # versioned bucket: Object Lock kept noncurrent versions
                _fail(ledger, rid, f"verification found traces: {api_matches} API matches {sorted(api.matches)[:10]}; bytes: {where}{hint}", clock(), verification=verification)
                (pdir / f"{rid}.json").unlink(missing_ok=True)
                continue
            stamp = clock()
            with ledger.begin() as conn:
                ev = ledger.append_event("erasure.verified", {"request_id": rid, "files_scanned": rep.files_scanned, "bytes_scanned": rep.bytes_scanned,
                                                              "versions_checked": api.versions_checked, "api_matches": 0, "byte_matches": 0},
                                         actor=actor, subject_hash=get_request(ledger, rid)["subject_hash"], conn=conn)
                verification["ledger_event_hash"] = ev.event_hash
                verification["ledger_event_seq"] = ev.seq
                prog = _progress(ledger, rid)
                prog.setdefault("steps", {})["verified"] = iso(stamp)
                prog["verification"] = verification
                _update(ledger, rid, conn, expect=["in_progress"], status="verified", verified_at=iso(stamp), progress=prog)
        hook("verified")

    if deleted_at is not None and any(get_request(ledger, rid)["status"] == "verified" for rid in reqs):
        # Readers (aisg_pipelines.serving) re-check a table at most AISG_READER_REFRESH_SECONDS
        # after a delete: no certificate before every reader has moved past it. (A request
        # resumed in a new process was deleted before the kill and the restart, which take
        # longer than the bound.) The wait is part of the run, so it counts in the SLA.
        from ..settings import reader_grace_seconds

        wait = reader_grace_seconds() - (time.monotonic() - deleted_at)
        res.timings["reader_grace"] = max(0.0, wait)
        if wait > 0:
            time.sleep(wait)
    t = time.perf_counter()
    for rid in sorted(reqs):
        row = get_request(ledger, rid)
        if row["status"] == "verified":
            certify(settings, ledger, rid, clock=clock, actor=actor)
        if get_request(ledger, rid)["status"] == "certified":
            (pdir / f"{rid}.json").unlink(missing_ok=True)
    res.timings["certify"] = time.perf_counter() - t
    hook("certified")
    res.outcomes += [_outcome(get_request(ledger, rid)) for rid in sorted(reqs)]
    return res


def _fail(ledger: Ledger, rid: str, failure: str, now: datetime, **extra) -> None:
    with ledger.begin() as conn:
        prog = _progress(ledger, rid)
        prog.update(extra)
        _update(ledger, rid, conn, status="failed", failure=failure[:4000], failed_at=iso(now), progress=prog)
        row = conn.execute(sa.select(erasure_requests.c.subject_hash).where(erasure_requests.c.request_id == rid)).scalar()
        ledger.append_event("erasure.failed", {"request_id": rid, "failure": failure[:500]}, actor="erasure", subject_hash=row, conn=conn)


def _outcome(row: dict) -> RequestOutcome:
    prog = row["progress"]
    return RequestOutcome(
        request_id=row["request_id"], status=row["status"], subject_hash=row["subject_hash"] or "", failure=row["failure"],
        certificate_id=row["certificate_id"], certificate_path=row["certificate_path"], counts=prog.get("counts", {}),
        commitment=(prog.get("commitment") or {}).get("sha256"), deadline_met=prog.get("deadline_met"),
    )


def certificate_id_for(request_id: str) -> str:
    return "cert-" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"aisg:erasure:{request_id}"))


METHOD = [
    "the subject is matched only on structured fields: subject_id/user_id columns (pyarrow, in memory, never a filter string), sidecar subject_id, JSON subject_id/user_id fields, CSV subject columns, Prometheus labels; never substrings of raw lines or file names",
    "one deletion cascade (intent recorded in the ledger before, result after): rows deleted by internal ids (doc_id, chunk_id, row_id) in every embeddings_<version> table, chunks, telemetry tables, then source lines, files, documents, ledger batch-file records and emptied ingest_batches partitions",
    "physical purge: compaction materialising deletions (threshold 0), scalar index rebuild, tags moved, cleanup_old_versions(older_than=0), unreferenced leftovers of killed writes past the grace period",
    "landing-zone and quarantine files and sidecars deleted; log/metric/export lines whose subject field names the subject removed",
    "verification: every table and version via the Lance API, subject columns of every Lance file on disk (decoded, exact values), structured fields of every file, and a byte-level scan of every file under every storage root plus decoded string columns of every Lance file for the subject's content fingerprints",
    "subject added to the erasure denylist as a salted hash",
]


def certify(settings, ledger: Ledger, request_id: str, *, clock: Callable[[], datetime] | None = None, actor: str = "erasure") -> str:
    """verified -> certified exactly once: sign and write the certificate, append
    `erasure.certified`, add the subject to the denylist, in one ledger transaction."""
    from .. import __version__
    from . import certificates as certs
    from .secrets import load_or_create_signing_key

    clock = clock or (lambda: datetime.now(timezone.utc))
    row = get_request(ledger, request_id)
    if row["status"] == "certified":
        return row["certificate_path"]
    if row["status"] != "verified":
        raise ValueError(f"request {request_id} is {row['status']}, only a verified request can be certified")
    prog = row["progress"]
    v = prog["verification"]
    completed = _utc(clock())
    requested = datetime.fromisoformat(row["requested_at"])
    deadline = requested + timedelta(days=SLA_DAYS)
    cid = certificate_id_for(request_id)
    fields = {
        "schema": certs.CERT_SCHEMA,
        "certificate_id": cid,
        "request_id": request_id,
        "subject_hash": row["subject_hash"],
        "subject_hash_method": "HMAC-SHA256 of the subject identifier with the deployment's secret salt",
        "requested_by": row["requested_by"],
        "request_source": row["source"],
        "requested_at": row["requested_at"],
        "started_at": row["started_at"],
        "verified_at": row["verified_at"],
        "completed_at": iso(completed),
        "deadline": iso(deadline),
        "deadline_met": completed <= deadline,
        "systems": prog.get("counts", {}),
        "totals": {"items": sum(s.get("items", 0) for s in prog.get("counts", {}).values())},
        "lance_versions": prog.get("purge", {}),
        "content_commitment": prog.get("commitment", {}),
        "method": METHOD,
        "verification": {k: v[k] for k in v if k not in ("ledger_event_hash", "ledger_event_seq", "api_match_locations")},
        "denylist": "subject added to erasure_denylist (salted hash)",
        "software_version": __version__,
        "ledger_anchor": {"event": "erasure.verified", "event_hash": v["ledger_event_hash"], "event_seq": v["ledger_event_seq"]},
    }
    key, pub_path = load_or_create_signing_key(settings)
    cert = certs.sign(fields, key)
    out_dir = certificates_dir(settings)
    json_path = certs.write_json(cert, out_dir / f"{cid}.json")
    (out_dir / f"{cid}.html").write_text(certs.render_html(cert), encoding="utf-8")
    pdf = certs.render_pdf(cert, out_dir / f"{cid}.pdf")
    with ledger.begin() as conn:
        ev = ledger.append_event("erasure.certified", {"request_id": request_id, "certificate_id": cid,
                                                        "certificate_sha256": hashlib.sha256(json_path.read_bytes()).hexdigest(),
                                                        "anchored_to": v["ledger_event_hash"], "deadline_met": fields["deadline_met"]},
                                 actor=actor, subject_hash=row["subject_hash"], conn=conn)
        ledger.add_to_denylist(row["subject_hash"], request_id, conn=conn)
        prog.setdefault("steps", {})["certified"] = iso(completed)
        prog["deadline_met"] = fields["deadline_met"]
        prog["certified_event_hash"] = ev.event_hash
        prog["public_key_path"] = str(pub_path)
        prog["renderings"] = {"html": str(out_dir / f"{cid}.html"), "pdf": str(pdf) if pdf else None}
        if not _update(ledger, request_id, conn, expect=["verified"], status="certified", certified_at=iso(completed),
                       certificate_id=cid, certificate_path=str(json_path), progress=prog):
            raise RuntimeError(f"request {request_id} was certified concurrently")  # rolls back this event
    from .checkpoints import checkpoint_after

    checkpoint_after(settings, ledger, "certificate")  # the head, signed outside the ledger (issue 18)
    return str(json_path)


# -- convenience ----------------------------------------------------------------------------
def erase_subject(settings, subject_id: str, *, requested_by: str, reason: str = "", request_id: str | None = None,
                  run: bool = True, hook=None, clock=None, partitions=None) -> tuple[IntakeResult, ErasureRunResult | None]:
    """What `aisg erase` does: validate, record as received, and (unless run=False) process now.
    `partitions` (a `cascade.PartitionSink`) receives the ingest_batches keys left empty."""
    ledger = Ledger(settings.ledger_url)
    obj = {"subject_id": subject_id, "requested_by": requested_by, "reason": reason,
           "request_id": request_id or f"er-{uuid.uuid4().hex[:20]}"}
    now = (clock or (lambda: datetime.now(timezone.utc)))()
    try:
        req = parse_request(obj, source="cli", now=now)
    except RequestRejected as rej:
        record_rejection(ledger, obj["request_id"] if REQUEST_ID_RE.fullmatch(str(obj["request_id"])) else "rej-" + sha256_hex(canonical_json(obj))[:24],
                         rej.code, rej.detail, source="cli", now=now)
        return IntakeResult(False, obj["request_id"], rej.code, rej.detail), None
    intake_res = intake(settings, ledger, req, now=now)
    if not intake_res.accepted or not run:
        return intake_res, None
    return intake_res, process_requests(settings, [req.request_id], ledger=ledger, hook=hook, clock=clock, partitions=partitions)


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
        age = (now - datetime.fromisoformat(r["requested_at"])).total_seconds() / 86400
        rows.append({"request_id": r["request_id"], "status": r["status"], "age_days": round(age, 2), "overdue": age > SLA_DAYS,
                     "failure": (r["failure"] or "")[:200]})
    overdue = [r["request_id"] for r in rows if r["overdue"]]
    return SlaStatus(not overdue, rows, overdue)
