"""Signed inbox requests: HMAC-SHA256 with a key shared with AISG's /analytics/erase.

A request file dropped in the erasure inbox carries its signature in a `signature` field:

    {"request_id": "...", "subject_id": "...", "requested_by": "...", ..., "signature": "sha256=<hex>"}

where <hex> = HMAC-SHA256(key, canonical JSON of every other field) (keys sorted, no spaces,
UTF-8: ledger.canonical_json; `sign_request` computes it). The key is the file named by
AISG_INBOX_HMAC_KEY_FILE (a mounted secret, the same one /analytics/erase uses; hex or raw
bytes, at least 32 bytes). With a key configured, an unsigned or badly signed file is rejected
with a readable reason (`unsigned_request`, `bad_signature`) and moved to rejected/ like any bad
request. Without one (local development, `make demo`), files are accepted unsigned and the
sensor logs a warning on every tick: deploy/ always sets it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path

from .ledger import canonical_json

KEY_ENV = "AISG_INBOX_HMAC_KEY_FILE"
FIELD = "signature"
PREFIX = "sha256="


class SignatureRejected(Exception):
    def __init__(self, code: str, detail: str):
        super().__init__(f"{code}: {detail}")
        self.code, self.detail = code, detail


def load_key(path: str | os.PathLike | None = None) -> bytes | None:
    """The shared key, or None when none is configured."""
    p = path or os.environ.get(KEY_ENV, "").strip()
    if not p:
        return None
    raw = Path(p).read_bytes().strip()
    try:
        key = bytes.fromhex(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        key = raw
    if len(key) < 32:
        raise ValueError(f"{KEY_ENV}: the inbox HMAC key must have at least 32 bytes")
    return key


def signature_for(obj: dict, key: bytes) -> str:
    body = {k: v for k, v in obj.items() if k != FIELD}
    return PREFIX + hmac.new(key, canonical_json(body).encode("utf-8"), hashlib.sha256).hexdigest()


def sign_request(obj: dict, key: bytes) -> dict:
    """The request with its signature field (what /analytics/erase writes)."""
    return {**{k: v for k, v in obj.items() if k != FIELD}, FIELD: signature_for(obj, key)}


def verify(raw: bytes, key: bytes | None) -> bytes:
    """The request bytes without the signature field, after checking it; raises SignatureRejected.

    Without a key, the bytes are returned as they are (minus a signature field, unchecked)."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        if key is None:
            return raw  # the request parser gives the precise reason
        raise SignatureRejected("unsigned_request", "the request is not a JSON object, so it cannot carry a signature") from None
    if not isinstance(obj, dict):
        if key is None:
            return raw
        raise SignatureRejected("unsigned_request", "the request is not a JSON object, so it cannot carry a signature")
    sig = obj.get(FIELD)
    if key is None:
        return raw if sig is None else canonical_json({k: v for k, v in obj.items() if k != FIELD}).encode("utf-8")
    if sig is None:
        raise SignatureRejected("unsigned_request", "the request has no signature field: requests must be signed by /analytics/erase "
                                "(HMAC-SHA256 of the canonical JSON of the other fields, \"sha256=<hex>\")")
    if not isinstance(sig, str) or not sig.startswith(PREFIX):
        raise SignatureRejected("bad_signature", 'the signature must be a string "sha256=<64 hex digits>"')
    if not hmac.compare_digest(sig, signature_for(obj, key)):
        raise SignatureRejected("bad_signature", "the HMAC-SHA256 signature does not match the request's content "
                                "(altered after signing, or signed with another key)")
    return canonical_json({k: v for k, v in obj.items() if k != FIELD}).encode("utf-8")
