"""The erasure inbox: request files dropped by AISG's /analytics/erase, taken in one scan.

Erasure requests (GDPR Art. 17) and access requests (`"type": "access"`, Art. 15/20) share the
inbox and its validation (`erasure_intake.parse_request`); each type's own intake records it.
This module sits above both (it imports erasure_intake and access), so neither imports the other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from . import access, events
from .erasure_intake import RequestRejected, _move_rejected, _raw_subject, _redact, intake, parse_request, record_rejection
from .ids import sha256_hex
from .ledger import Ledger


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
                res = access.intake(settings, ledger, req, now=now)
            else:
                res = intake(settings, ledger, req, now=now)
        except RequestRejected as rej:
            rid = "rej-" + sha256_hex(path.name.encode() + b"\0" + raw)[:24]
            detail = _redact(rej.detail, _raw_subject(raw), settings)
            if _raw_type(raw) == "access":
                access.record_rejection(ledger, rid, rej.code, detail, source="inbox")
            else:
                record_rejection(ledger, rid, rej.code, detail, source="inbox", now=now)
            _move_rejected(settings, path, rej.code, detail, rid, raw)
            out.rejected.append((path.name, rej.code, detail))
            continue
        if res.accepted:
            if not getattr(res, "redelivery", False):  # who asked, and what vouched for the request (issue 13)
                events.record(ledger, events.InboxAuthenticated(
                    request_id=res.request_id, type=req.type, requested_by=req.requested_by,
                    approved_by="hmac-sha256:/analytics/erase" if key is not None else "unsigned:no key configured",
                ), actor="erasure_inbox")
            path.unlink(missing_ok=True)
            out.accepted.append(res.request_id)
        else:
            _move_rejected(settings, path, res.code, res.detail, res.request_id, raw)
            out.rejected.append((path.name, res.code, res.detail))
    return out


def _raw_type(raw: bytes) -> str | None:
    """The `type` field of a request file, if it is a JSON object with one."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return obj.get("type") if isinstance(obj, dict) else None
