"""Certificates (Ed25519 over canonical JSON, offline verification) and ledger tamper detection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from aisg_pipelines.governance import certificates as certs
from aisg_pipelines.governance.ledger import Ledger, audit_events
from aisg_pipelines.governance.secrets import load_or_create_signing_key

FIELDS = {
    "schema": certs.CERT_SCHEMA, "certificate_id": "cert-1", "request_id": "req-1", "subject_hash": "ab" * 32,
    "requested_by": "dpo", "requested_at": "2026-11-01T00:00:00+00:00", "started_at": "2026-11-01T00:00:01+00:00",
    "completed_at": "2026-11-01T00:01:00+00:00", "deadline": "2026-12-01T00:00:00+00:00", "deadline_met": True,
    "systems": {"lancedb.documents": {"items": 2}, "lancedb.embeddings": {"items": 6, "per_version": {"v1": 3, "v2": 3}}},
    "totals": {"items": 8}, "content_commitment": {"sha256": "cd" * 32, "items": 8}, "method": ["compaction", "cleanup"],
    "verification": {"result": "clean", "api_matches": 0, "versions_checked": 5, "files_scanned": 10, "bytes_scanned": 12345,
                     "byte_matches": 0}, "software_version": "0.1.0", "ledger_anchor": {"event": "erasure.verified", "event_hash": "ef" * 32},
    "note": "ünïcode ✓",
}


@pytest.fixture
def signed(settings):
    key, pub = load_or_create_signing_key(settings)
    cert = certs.sign(dict(FIELDS), key)
    path = certs.write_json(cert, settings.exports_dir / "cert-1.json")
    return path, pub, key


def test_dev_key_is_created_once_and_reused(settings, capsys):
    k1, pub1 = load_or_create_signing_key(settings)
    assert "DEVELOPMENT signing key" in capsys.readouterr().out
    k2, pub2 = load_or_create_signing_key(settings)
    assert pub1 == pub2 and certs.key_fingerprint(k1.public_key()) == certs.key_fingerprint(k2.public_key())
    key_file = settings.secrets_dir / "erasure_signing_key.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_configured_key_file_is_used(settings, tmp_path, monkeypatch):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    k = Ed25519PrivateKey.generate()
    p = tmp_path / "prod.pem"
    p.write_bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    monkeypatch.setenv("AISG_SIGNING_KEY_FILE", str(p))
    key, pub = load_or_create_signing_key(settings)
    assert certs.key_fingerprint(key.public_key()) == certs.key_fingerprint(k.public_key())
    assert pub == Path(str(p) + ".pub.pem") and not (settings.secrets_dir / "erasure_signing_key.pem").exists()


def test_valid_certificate_verifies_offline(signed):
    path, pub, _ = signed
    v = certs.verify_file(path, pub)
    assert v.ok and v.certificate_id == "cert-1" and v.message.startswith("VALID")
    assert path.read_bytes() == certs.canonical(json.loads(path.read_bytes()))


def test_every_single_byte_change_fails(signed, tmp_path):
    path, pub, _ = signed
    data = path.read_bytes()
    key = certs.load_public_key(pub)
    failures = 0
    for i in range(len(data)):  # every byte, flipped in the low bit
        b = bytearray(data)
        b[i] ^= 0x01
        assert not certs.verify_bytes(bytes(b), key).ok, f"byte {i} changed but still valid"
        failures += 1
    assert failures == len(data)


def test_tamper_messages_are_clear(signed, tmp_path):
    path, pub, _ = signed
    cert = json.loads(path.read_text())
    cert["totals"]["items"] = 7
    bad = tmp_path / "bad.json"
    bad.write_bytes(certs.canonical(cert))
    v = certs.verify_file(bad, pub)
    assert not v.ok and "altered after signing" in v.message
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps(json.loads(path.read_text()), indent=2))
    v = certs.verify_file(pretty, pub)
    assert not v.ok and "not byte-identical" in v.message
    trunc = tmp_path / "trunc.json"
    trunc.write_bytes(path.read_bytes()[:-3])
    assert "not valid UTF-8 JSON" in certs.verify_file(trunc, pub).message


def test_wrong_key_fails(signed, settings, tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path, _, _ = signed
    other = tmp_path / "other.pub.pem"
    other.write_bytes(certs.public_key_pem(Ed25519PrivateKey.generate().public_key()))
    v = certs.verify_file(path, other)
    assert not v.ok and "not by the given public key" in v.message


def test_renderings(signed, tmp_path):
    path, _, _ = signed
    cert = json.loads(path.read_text())
    cert["systems"] = FIELDS["systems"]
    html = certs.render_html({**cert, "content_commitment": FIELDS["content_commitment"]})
    assert "cert-1" in html and "v1: 3, v2: 3" in html and "&lt;file&gt;" in html
    pdf = certs.render_pdf(cert, tmp_path / "c.pdf")
    assert pdf is not None and pdf.read_bytes()[:4] == b"%PDF"


def test_cli_verify_certificate(signed, monkeypatch, settings):
    from aisg_pipelines.cli import main

    from .conftest import env_for

    for k, v in env_for(settings).items():
        monkeypatch.setenv(k, v)
    path, pub, _ = signed
    r = CliRunner().invoke(main, ["verify-certificate", str(path)])  # default public key of the deployment
    assert r.exit_code == 0 and "VALID" in r.output
    bad = path.with_name("bad.json")
    bad.write_bytes(path.read_bytes().replace(b'"items":8', b'"items":9', 1))
    r = CliRunner().invoke(main, ["verify-certificate", str(bad), "--public-key", str(pub)])
    assert r.exit_code == 1 and "INVALID" in r.output


# -- ledger tamper detection ------------------------------------------------------------------
@pytest.fixture
def ledger(settings):
    led = Ledger(settings.ledger_url)
    for i in range(5):
        led.append_event("erasure.test", {"i": i}, subject_hash="00" * 32)
    assert led.verify_chain().ok
    return led


def test_ledger_edit_detected(ledger):
    with ledger.begin() as c:
        c.execute(audit_events.update().where(audit_events.c.seq == 3).values(details=json.dumps({"i": 99})))
    v = ledger.verify_chain()
    assert not v.ok and any("seq=3" in p and "edited" in p for p in v.problems)


def test_ledger_delete_detected(ledger):
    with ledger.begin() as c:
        c.execute(audit_events.delete().where(audit_events.c.seq == 2))
    v = ledger.verify_chain()
    assert not v.ok and any("seq=3" in p and "deleted" in p for p in v.problems)


def test_ledger_reorder_detected(ledger):
    with ledger.begin() as c:
        rows = {r.seq: r._asdict() for r in c.execute(sa.select(audit_events).where(audit_events.c.seq.in_([2, 4])))}
        # swap the contents (and hashes) of events 2 and 4, keeping their seq positions
        c.execute(audit_events.delete().where(audit_events.c.seq.in_([2, 4])))
        for seq, src in ((2, rows[4]), (4, rows[2])):
            c.execute(audit_events.insert().values(**{**src, "seq": seq}))
    v = ledger.verify_chain()
    assert not v.ok and any("reordered" in p for p in v.problems)


def test_cli_verify_ledger_exit_code(ledger, settings, monkeypatch):
    from aisg_pipelines.cli import main

    from .conftest import env_for

    for k, v in env_for(settings).items():
        monkeypatch.setenv(k, v)
    assert CliRunner().invoke(main, ["verify-ledger"]).exit_code == 0
    with ledger.begin() as c:
        c.execute(audit_events.update().where(audit_events.c.seq == 1).values(actor="mallory"))
    r = CliRunner().invoke(main, ["verify-ledger"])
    assert r.exit_code == 1 and "BROKEN" in r.output
