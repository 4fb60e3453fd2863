"""Erasure certificates: canonical JSON signed with Ed25519, plus HTML and PDF renderings.

The JSON file is the certificate; HTML and PDF are readable copies of it. The file is
written in canonical form (keys sorted, no whitespace, UTF-8), and the Ed25519 signature
covers the canonical JSON of every field except `signature`. Verification needs only
the file and the public key (offline), and fails on any changed byte:
- the file must parse as JSON and be exactly in canonical form (so even a whitespace
  change is detected, not only a change that alters a value);
- the signature must verify over the canonical JSON of the other fields.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SIGNATURE_ALGORITHM = "Ed25519"
CERT_SCHEMA = "aisg.erasure-certificate/1"


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def public_key_pem(public_key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_fingerprint(public_key) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def sign(fields: dict[str, Any], private_key) -> dict[str, Any]:
    """Return the certificate: `fields` plus a `signature` over their canonical JSON."""
    if "signature" in fields:
        raise ValueError("fields must not contain a signature already")
    body = canonical(fields)
    sig = private_key.sign(body)
    return {
        **fields,
        "signature": {
            "algorithm": SIGNATURE_ALGORITHM,
            "public_key_sha256": key_fingerprint(private_key.public_key()),
            "signed_fields_sha256": hashlib.sha256(body).hexdigest(),
            "value": base64.b64encode(sig).decode("ascii"),
        },
    }


def write_json(cert: dict[str, Any], path: Path) -> Path:
    """Atomically write the certificate in canonical form (what verification expects)."""
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(canonical(cert))
    os.replace(tmp, path)
    return path


@dataclass(frozen=True)
class Verification:
    ok: bool
    message: str
    certificate_id: str | None = None
    request_id: str | None = None


def load_public_key(path: Path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = serialization.load_pem_public_key(Path(path).read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} is not an Ed25519 public key")
    return key


def verify_bytes(data: bytes, public_key) -> Verification:
    from cryptography.exceptions import InvalidSignature

    try:
        cert = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Verification(False, f"INVALID: the certificate is not valid UTF-8 JSON ({exc}); it was modified or truncated")
    if not isinstance(cert, dict) or not isinstance(cert.get("signature"), dict):
        return Verification(False, "INVALID: no signature block in the certificate")
    cid, rid = cert.get("certificate_id"), cert.get("request_id")
    sig = cert["signature"]
    if sig.get("algorithm") != SIGNATURE_ALGORITHM:
        return Verification(False, f"INVALID: unsupported signature algorithm {sig.get('algorithm')!r}", cid, rid)
    if sig.get("public_key_sha256") != key_fingerprint(public_key):
        return Verification(
            False,
            f"INVALID: the certificate was signed by key {str(sig.get('public_key_sha256'))[:16]}…, "
            f"not by the given public key {key_fingerprint(public_key)[:16]}…",
            cid, rid,
        )
    if set(sig) != {"algorithm", "public_key_sha256", "signed_fields_sha256", "value"}:
        return Verification(False, f"INVALID: unexpected signature block fields {sorted(sig)}", cid, rid)
    fields = {k: v for k, v in cert.items() if k != "signature"}
    body = canonical(fields)
    altered = "INVALID: the signature does not match the certificate's content: the certificate was altered after signing"
    try:
        raw_sig = base64.b64decode(str(sig["value"]), validate=True)
        if base64.b64encode(raw_sig).decode("ascii") != sig["value"]:  # non-canonical base64 (e.g. changed padding bits)
            raise ValueError("non-canonical signature encoding")
        public_key.verify(raw_sig, body)
    except (InvalidSignature, ValueError):
        return Verification(False, altered, cid, rid)
    if sig["signed_fields_sha256"] != hashlib.sha256(body).hexdigest():
        return Verification(False, altered + " (signed_fields_sha256 differs)", cid, rid)
    if canonical(cert) != data:
        return Verification(False, "INVALID: the signed content is intact but the file is not byte-identical to the signed canonical form: the file was modified", cid, rid)
    return Verification(
        True,
        f"VALID: certificate {cid} for request {rid} is signed by key {key_fingerprint(public_key)[:16]}… and unmodified",
        cid, rid,
    )


def verify_file(cert_path: Path, public_key_path: Path) -> Verification:
    cert_path, public_key_path = Path(cert_path), Path(public_key_path)
    if not cert_path.exists():
        return Verification(False, f"INVALID: certificate file {cert_path} does not exist")
    try:
        key = load_public_key(public_key_path)
    except (OSError, ValueError) as exc:
        return Verification(False, f"INVALID: cannot load public key {public_key_path}: {exc}")
    return verify_bytes(cert_path.read_bytes(), key)


# -- renderings --------------------------------------------------------------------------
def _rows(cert: dict[str, Any]) -> list[tuple[str, str]]:
    v = cert.get("verification", {})
    return [
        ("Certificate", cert["certificate_id"]),
        ("Request", cert["request_id"]),
        ("Data subject (salted hash)", cert["subject_hash"]),
        ("Requested by", cert.get("requested_by", "")),
        ("Requested at", cert["requested_at"]),
        ("Started at", cert["started_at"]),
        ("Completed at", cert["completed_at"]),
        ("Deadline (30 days)", f"{cert['deadline']} — {'met' if cert['deadline_met'] else 'MISSED'}"),
        ("Items erased", str(cert["totals"]["items"])),
        ("Content commitment (sha256)", cert["content_commitment"]["sha256"]),
        ("Method", "; ".join(cert["method"])),
        ("Verification", f"{v.get('result')}: {v.get('api_matches')} API matches in {v.get('versions_checked')} table versions; "
                         f"{v.get('files_scanned')} files / {v.get('bytes_scanned')} bytes scanned, {v.get('byte_matches')} matches"),
        ("Software", f"aisg_pipelines {cert['software_version']}"),
        ("Anchored to ledger event", cert["ledger_anchor"]["event_hash"]),
        ("Signature", f"{cert['signature']['algorithm']} by key {cert['signature']['public_key_sha256'][:16]}…"),
    ]


def _systems(cert: dict[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    for system, info in sorted(cert["systems"].items()):
        per = info.get("per_version") or {}
        detail = ", ".join(f"{k}: {n}" for k, n in sorted(per.items()))
        out.append((system, str(info.get("items", 0)), detail))
    return out


def render_html(cert: dict[str, Any]) -> str:
    """The certificate as a page (templates/erasure_certificate.html.j2); the signed JSON is the certificate."""
    from .html_templates import render

    return render("erasure_certificate.html.j2", certificate_id=str(cert["certificate_id"]),
                  rows=[(str(k), str(v)) for k, v in _rows(cert)], systems=[tuple(map(str, r)) for r in _systems(cert)])


def render_pdf(cert: dict[str, Any], path: Path) -> Path | None:
    """PDF rendering with reportlab (imported here); None if reportlab is not installed."""
    try:
        from reportlab.lib.pagesizes import A4
        from reportlab.lib.styles import getSampleStyleSheet
        from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table
    except ImportError:
        return None
    styles = getSampleStyleSheet()
    cell = styles["BodyText"]
    e = html.escape
    doc = SimpleDocTemplate(str(path), pagesize=A4, title=f"Erasure certificate {cert['certificate_id']}")
    story = [
        Paragraph("Certificate of erasure (GDPR Art. 17)", styles["Title"]),
        Table([[Paragraph(f"<b>{e(k)}</b>", cell), Paragraph(e(v), cell)] for k, v in _rows(cert)], colWidths=[150, 330]),
        Spacer(1, 12),
        Paragraph("Systems covered", styles["Heading2"]),
        Table([[Paragraph(e(a), cell), Paragraph(e(b), cell), Paragraph(e(c), cell)] for a, b, c in [("system", "items", "per version"), *_systems(cert)]], colWidths=[170, 60, 250]),
        Spacer(1, 12),
        Paragraph("The signed certificate is the canonical JSON file with the same id; this PDF is a rendering of it.", cell),
    ]
    doc.build(story)
    return path
