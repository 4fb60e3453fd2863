"""Issue 18: tamper evidence against someone with write access to the ledger database.

Each attack is made the way the issue made it: plain SQL on the ledger (SQLite and the real
PostgreSQL), plus the project's own `event_hash` where the attacker recomputes the chain.
`verify_ledger` must catch each one and name its cause; a legitimate 7-year prune verifies.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
import shutil
from datetime import timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from aisg_pipelines.governance import certificates as certs
from aisg_pipelines.governance import checkpoints as ck
from aisg_pipelines.governance.ledger import (
    GENESIS_HASH,
    PRUNE_ACTION,
    Ledger,
    LedgerTampered,
    audit_events,
    canonical_json,
    event_hash,
    iso,
    ledger_checkpoints,
    ledger_signed_checkpoints,
)
from aisg_pipelines.governance.secrets import load_or_create_signing_key

from .conftest import FIXED_NOW, PG_URL, env_for, pg_admin_connect

OLD = FIXED_NOW - timedelta(days=9 * 365)
CUTOFF = iso(FIXED_NOW - timedelta(days=2557))


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request, settings):
    """(settings, ledger) on SQLite, and on a fresh database of the real PostgreSQL server."""
    if request.param == "sqlite":
        yield settings, Ledger(settings.ledger_url)
        return
    if not PG_URL:
        pytest.skip("AISG_TEST_PG_URL is unset: no PostgreSQL server (.ci/run starts one and sets it)")
    name = f"aisg_tamper_{secrets.token_hex(4)}"
    admin = pg_admin_connect()
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    s = dataclasses.replace(settings, ledger_url=PG_URL.rsplit("/", 1)[0] + "/" + name)
    led = Ledger(s.ledger_url)
    try:
        yield s, led
    finally:
        led.engine.dispose()
        with admin.cursor() as cur:
            for db in (name, name + "_bak"):
                cur.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        admin.close()


def _append(led: Ledger, n: int, action: str = "test.event") -> None:
    for i in range(n):
        led.append_event(action, {"i": i})


def _build(s, led: Ledger) -> None:
    """10 events, checkpoint #1 (the migration), 5 more, checkpoint #2 (hourly)."""
    _append(led, 10)
    assert ck.write_checkpoint(s, led, reason="hourly").reason == "migration"
    _append(led, 5)
    assert ck.write_checkpoint(s, led, reason="hourly").no == 2


def _verify(s, led: Ledger, **kw) -> ck.LedgerVerification:
    return ck.verify_ledger(s, led, **kw)


def _max_seq(led: Ledger) -> int:
    with led.engine.connect() as c:
        return c.execute(sa.select(sa.func.max(audit_events.c.seq))).scalar()


def _rewrite_from(led: Ledger, k: int) -> None:
    """Change event k's details and recompute the hash of it and of every later event."""
    with led.begin() as c:
        rows = c.execute(sa.select(audit_events).where(audit_events.c.seq >= k).order_by(audit_events.c.seq)).all()
        prev = c.execute(sa.select(audit_events.c.event_hash).where(audit_events.c.seq < k).order_by(audit_events.c.seq.desc()).limit(1)).scalar() or GENESIS_HASH
        # move the old hashes out of the way of the UNIQUE constraints first
        for r in rows:
            c.execute(audit_events.update().where(audit_events.c.seq == r.seq).values(prev_hash="x" * 60 + f"{r.seq:04d}", event_hash="y" * 60 + f"{r.seq:04d}"))
        for r in rows:
            ev = r._asdict()
            if r.seq == k:
                ev["details"] = canonical_json({"i": "rewritten"})
            h = event_hash(prev, ev)
            c.execute(audit_events.update().where(audit_events.c.seq == r.seq).values(details=ev["details"], prev_hash=prev, event_hash=h))
            prev = h


def test_intact_ledger_verifies_and_the_cli_says_what_it_checked(world, monkeypatch):
    s, led = world
    _build(s, led)
    v = _verify(s, led)
    assert v.ok and v.findings == [] and v.checkpoints == 2 and v.newest_checkpoint == 2, v.findings
    for k, val in {**env_for(s), "AISG_LEDGER_URL": s.ledger_url}.items():
        monkeypatch.setenv(k, val)
    from aisg_pipelines.cli import main

    r = CliRunner().invoke(main, ["verify-ledger"])
    assert r.exit_code == 0 and "ledger OK" in r.output and "2 signed checkpoint(s)" in r.output, r.output
    # unchanged head: the hourly run does not write another checkpoint
    assert ck.write_checkpoint(s, led, reason="hourly", skip_unchanged=True).skipped


def test_edit_one_event(world):
    s, led = world
    _build(s, led)
    with led.begin() as c:
        c.execute(audit_events.update().where(audit_events.c.seq == 3).values(details=json.dumps({"i": 99})))
    v = _verify(s, led)
    assert not v.ok and v.causes == [ck.EDITED], v.findings


def test_delete_a_middle_event(world):
    s, led = world
    _build(s, led)
    with led.begin() as c:
        c.execute(audit_events.delete().where(audit_events.c.seq == 5))
    v = _verify(s, led)
    assert not v.ok and v.causes == [ck.DELETED], v.findings


@pytest.mark.parametrize("n", [1, 7])
def test_truncate_the_tail(world, n):
    s, led = world
    _build(s, led)
    assert _verify(s, led).ok
    top = _max_seq(led)
    with led.begin() as c:
        c.execute(audit_events.delete().where(audit_events.c.seq > top - n))
    assert led.verify_chain().ok  # the plain chain cannot see it
    v = _verify(s, led)
    assert not v.ok and v.causes == [ck.TRUNCATION], v.findings
    assert f"seq={top - n}" in v.findings[0].message and "checkpoint #2" in v.findings[0].message


def test_rewrite_from_event_k_with_recomputed_hashes(world):
    s, led = world
    _build(s, led)
    report = s.exports_dir / "compliance" / "2026-W47" / "summary.json"
    report.parent.mkdir(parents=True)
    with led.engine.connect() as c:
        r = c.execute(sa.select(audit_events).where(audit_events.c.seq == 12)).first()
    report.write_text(json.dumps({"ledger": {"head_seq": r.seq, "head_hash": r.event_hash}}))
    assert _verify(s, led).reports == 1
    _rewrite_from(led, 4)
    assert led.verify_chain().ok  # the plain chain cannot see it
    v = _verify(s, led)
    assert not v.ok and v.causes == [ck.REWRITE], v.findings
    assert "seq=10" in v.findings[0].message  # the earliest anchor that no longer holds: checkpoint #1
    with pytest.raises(LedgerTampered, match="rewritten"):  # nor is a rewritten history signed
        ck.write_checkpoint(s, led, reason="hourly")


def test_forged_checkpoints(world):
    s, led = world
    _build(s, led)
    _rewrite_from(led, 12)
    head = led.verify_chain()
    d = ck.checkpoints_dir(s)
    # (a) edit checkpoint #2 to sign the rewritten head: the signature no longer holds
    p2 = d / ck.file_name(2)
    cp2 = json.loads(p2.read_bytes())
    cp2["ledger"]["head_hash"] = head.head_hash
    p2.write_bytes(certs.canonical(cp2))
    v = _verify(s, led)
    assert not v.ok and ck.FORGED in v.causes and "altered" in " ".join(f.message for f in v.findings), v.findings
    # (b) a brand-new checkpoint #3 over the rewritten head, signed by the attacker's own key
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    body = {**{k: val for k, val in cp2.items() if k != "signature"}, "checkpoint_no": 3,
            "previous": {"checkpoint_no": 2, "sha256": hashlib.sha256(p2.read_bytes()).hexdigest()}}
    (d / ck.file_name(3)).write_bytes(certs.canonical(certs.sign(body, Ed25519PrivateKey.generate())))
    v = _verify(s, led)
    assert not v.ok and ck.FORGED in v.causes and any("ckpt-00000003.json" in f.message for f in v.findings), v.findings


def test_forged_prune_checkpoint(world):
    """Delete a prefix and forge the prune's records in the database (checkpoint row and a
    ledger.pruned event): the plain chain accepts it, no signed checkpoint attests it."""
    s, led = world
    _build(s, led)
    with led.engine.connect() as c:
        r4 = c.execute(sa.select(audit_events).where(audit_events.c.seq == 4)).first()
    record = {"cutoff": iso(FIXED_NOW), "through_seq": 4, "events_pruned": 4, "events_pruned_total": 4, "anchor_hash": r4.event_hash,
              "pruned_digest": "0" * 64, "oldest_pruned_at": r4.occurred_at, "newest_pruned_at": r4.occurred_at}
    ev = led.append_event(PRUNE_ACTION, record, actor="retention")
    with led.begin() as c:
        c.execute(ledger_checkpoints.insert().values(created_at=iso(FIXED_NOW), record_event_id=ev.event_id, **record))
        c.execute(audit_events.delete().where(audit_events.c.seq <= 4))
    assert led.verify_chain().ok
    v = _verify(s, led)
    assert not v.ok and ck.FORGED in v.causes and any("forged prune" in f.message for f in v.findings), v.findings
    with pytest.raises(LedgerTampered, match="forged prune"):  # and the hourly checkpoint does not launder it
        ck.write_checkpoint(s, led, reason="hourly")


def test_delete_the_newest_checkpoints(world):
    s, led = world
    _build(s, led)
    _append(led, 3)
    ck.write_checkpoint(s, led, reason="hourly")
    d = ck.checkpoints_dir(s)
    for n in (2, 3):
        (d / ck.file_name(n)).unlink()
    v = _verify(s, led)
    assert not v.ok and v.causes == [ck.MISSING], v.findings
    # the database's record gone too: the Prometheus witness still saw checkpoint #3
    with led.begin() as c:
        c.execute(ledger_signed_checkpoints.delete().where(ledger_signed_checkpoints.c.checkpoint_no >= 2))
    v = _verify(s, led, witness_checkpoint_no=3)
    assert not v.ok and v.causes == [ck.MISSING] and "Prometheus" in v.findings[0].message, v.findings


def test_missing_checkpoint_after_a_certificate(world):
    """A certificate is always followed by a checkpoint: one that is not covered is a missing checkpoint."""
    s, led = world
    _build(s, led)
    led.append_event("erasure.certified", {"certificate_id": "c-1"}, occurred_at=iso(FIXED_NOW))
    v = _verify(s, led)
    assert not v.ok and v.causes == [ck.MISSING], v.findings
    ck.write_checkpoint(s, led, reason="certificate")
    assert _verify(s, led).ok


def test_replace_the_database_with_an_older_backup(world):
    s, led = world
    _build(s, led)
    pg = not s.ledger_url.startswith("sqlite")
    name = s.ledger_url.rsplit("/", 1)[1]
    led.engine.dispose()
    if pg:
        admin = pg_admin_connect()
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}_bak" TEMPLATE "{name}"')
    else:
        db = s.ledger_url.removeprefix("sqlite:///")
        shutil.copy(db, db + ".bak")
    _append(led, 4)
    ck.write_checkpoint(s, led, reason="hourly")
    assert _verify(s, led).ok
    led.engine.dispose()
    if pg:  # the whole database replaced by the older copy
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{name}" TEMPLATE "{name}_bak"')
        admin.close()
    else:
        shutil.copy(db + ".bak", db)
    led = Ledger(s.ledger_url)
    assert led.verify_chain().ok
    v = _verify(s, led)
    assert not v.ok and v.causes == [ck.OLDER_BACKUP], v.findings
    with pytest.raises(LedgerTampered):  # and it is not signed over
        ck.write_checkpoint(s, led, reason="hourly")
    # a restore the DPO decided on: accepted by a signed checkpoint that names what was lost
    acc = ck.write_checkpoint(s, led, accept_restore="INC-7: restored from the nightly dump")
    assert acc.reason == "restore accepted" and acc.no == 4
    v = _verify(s, led)
    assert v.ok and any("accepted a restore" in w and "#3" in w for w in v.warnings), v.findings
    _append(led, 2)  # (SQLite and PostgreSQL both hand out the lost seqs again)
    ck.write_checkpoint(s, led, reason="hourly")
    assert _verify(s, led).ok
    led.engine.dispose()


def test_a_legitimate_7_year_prune_still_verifies(world):
    s, led = world
    for i in range(6):
        led.append_event("test.old", {"i": i}, occurred_at=iso(OLD + timedelta(days=i)))
    ck.write_checkpoint(s, led, reason="hourly")  # its head is pruned below
    for i in range(3):
        led.append_event("test.recent", {"i": i}, occurred_at=iso(FIXED_NOW - timedelta(days=3 - i)))
    ck.write_checkpoint(s, led, reason="hourly")
    res = led.prune_events(CUTOFF, now=iso(FIXED_NOW))
    assert res.pruned == 6
    with pytest.raises(LedgerTampered, match="prune"):  # only the prune itself signs a new prune state
        ck.write_checkpoint(s, led, reason="hourly")
    ck.write_checkpoint(s, led, reason="prune", prune=res)  # what retention does after every prune
    v = _verify(s, led)
    assert v.ok and v.checkpoints == 3 and v.chain.pruned_events == 6, v.findings
    _append(led, 2)
    ck.write_checkpoint(s, led, reason="hourly")  # the segment check starts at the prune
    assert _verify(s, led).ok


def test_migration_of_an_existing_ledger(world):
    s, led = world
    _append(led, 7)
    v = _verify(s, led)
    assert v.ok and not v.checkpointed and any("no signed checkpoint yet" in w for w in v.warnings)
    first = ck.ensure_checkpointed(s, led)
    assert first.no == 1 and first.reason == "migration" and first.head_seq == _max_seq(led)
    assert ck.ensure_checkpointed(s, led) is None
    v = _verify(s, led)
    assert v.ok and v.checkpointed and v.checkpoints == 1


def _certificate(s, led: Ledger) -> tuple:
    """A certificate the way erasure.certify makes one: anchored to erasure.verified, then
    erasure.certified records the file's digest, then a checkpoint."""
    anchor = led.append_event("erasure.verified", {"request_id": "er-1"})
    key, pub = load_or_create_signing_key(s)
    cert = certs.sign({"schema": certs.CERT_SCHEMA, "certificate_id": "cert-er-1", "request_id": "er-1",
                       "ledger_anchor": {"event": "erasure.verified", "event_hash": anchor.event_hash, "event_seq": anchor.seq}}, key)
    path = certs.write_json(cert, s.exports_dir / ck.CERT_SUBDIR / "cert-er-1.json")
    led.append_event("erasure.certified", {"request_id": "er-1", "certificate_id": "cert-er-1",
                                           "certificate_sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    ck.write_checkpoint(s, led, reason="certificate")
    return path, pub


def test_certificate_anchor_cross_checked(world, monkeypatch):
    """The issue's own attack: delete the erasure trail from the tail; the certificate's anchor is gone."""
    s, led = world
    _build(s, led)
    path, pub = _certificate(s, led)
    v = _verify(s, led)
    assert v.ok and v.certificates == 1, v.findings
    ok, why = ck.certificate_anchor(s, path, led)
    assert ok, why
    for k, val in {**env_for(s), "AISG_LEDGER_URL": s.ledger_url}.items():
        monkeypatch.setenv(k, val)
    from aisg_pipelines.cli import main

    r = CliRunner().invoke(main, ["verify-certificate", str(path)])
    assert r.exit_code == 0 and "VALID" in r.output and "anchored" in r.output, r.output
    r = CliRunner().invoke(main, ["verify-certificate", str(path), "--offline"])
    assert r.exit_code == 0 and "signature only" in r.output, r.output
    top = _max_seq(led)
    with led.begin() as c:
        c.execute(audit_events.delete().where(audit_events.c.seq > top - 2))
    v = _verify(s, led)
    assert not v.ok and v.causes == [ck.TRUNCATION], v.findings
    ok, why = ck.certificate_anchor(s, path, led)
    assert ok is False and ck.TRUNCATION in why
    r = CliRunner().invoke(main, ["verify-certificate", str(path)])
    assert r.exit_code == 1 and "ANCHOR BROKEN" in r.output, r.output
    r = CliRunner().invoke(main, ["verify-ledger"])
    assert r.exit_code == 1 and "cause: truncation" in r.output, r.output


def test_prometheus_textfile_witnesses_the_head(world):
    s, led = world
    _build(s, led)
    from aisg_pipelines.governance.reports import render_prometheus

    g = ck.ledger_gauges(s, led)
    assert (g["head_seq"], g["checkpoint_no"]) == (_max_seq(led), 2)
    text = render_prometheus({"open_erasure_requests": 0, "oldest_open_request_age_seconds": 0, "erasure_available": 1,
                              "overdue_retention": {}, "orphans": {}, "active_embed_version": None, "ledger": g}, FIXED_NOW)
    assert f"aisg_ledger_head_seq {_max_seq(led)}" in text and "aisg_ledger_checkpoint_number 2" in text
    path = s.exports_dir / "metrics" / "aisg_governance.prom"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    # events after the newest checkpoint, cut from the tail: only the witness saw them
    _append(led, 3)
    g = ck.ledger_gauges(s, led)
    path.write_text(text.replace(f"aisg_ledger_head_seq {g['head_seq'] - 3}", f"aisg_ledger_head_seq {g['head_seq']}"))
    assert _verify(s, led).ok
    with led.begin() as c:
        c.execute(audit_events.delete().where(audit_events.c.seq > g["head_seq"] - 3))
    v = _verify(s, led)
    # nothing else in the database refers to them, so it cannot tell this from an older copy
    assert not v.ok and v.causes in ([ck.TRUNCATION], [ck.OLDER_BACKUP]), v.findings
    assert any("Prometheus witness" in f.message for f in v.findings)


def test_hourly_checkpoint_job_and_schedule(settings):
    """The Dagster wrapper: the first run is the migration, an unchanged head writes nothing,
    the textfile carries the witness gauges; the schedule is hourly and part of the code location."""
    import dagster as dg

    from aisg_pipelines.defs.ledger import jobs
    from aisg_pipelines.defs.resources import build_resources

    led = Ledger(settings.ledger_url)
    _append(led, 4)
    resources = {k: v for k, v in build_resources(settings).items() if k == "governance"}
    with dg.instance_for_test() as instance:
        out = jobs.ledger_checkpoint.execute_in_process(resources=resources, instance=instance).output_for_node("sign_ledger_checkpoint")
        assert (out["checkpoint_no"], out["head_seq"], out["skipped"]) == (1, _max_seq(led), False)
        again = jobs.ledger_checkpoint.execute_in_process(resources=resources, instance=instance).output_for_node("sign_ledger_checkpoint")
        assert again["skipped"] and again["checkpoint_no"] == 1
    prom = (settings.exports_dir / "metrics" / "aisg_governance.prom").read_text()
    assert f"aisg_ledger_head_seq {_max_seq(led)}" in prom and "aisg_ledger_checkpoint_number 1" in prom
    assert ck.verify_ledger(settings, led).ok
    assert jobs.ledger_checkpoint_hourly.cron_schedule == "7 * * * *"
    from aisg_pipelines.definitions import AREAS

    assert any(s.name == "ledger_checkpoint_hourly" for area in AREAS for s in (area.schedules or []))


def test_retention_run_signs_its_prune(world):
    """The 7-year prune through `run_retention`: its hook signs the prune, the ledger verifies."""
    from aisg_pipelines.governance.retention import run_retention

    s, led = world
    for i in range(4):
        led.append_event("erasure.certified", {"certificate_id": f"c-{i}"}, occurred_at=iso(OLD + timedelta(days=i)))
    led.append_event("ingest.documents", {"documents": 1}, occurred_at=iso(FIXED_NOW - timedelta(days=2)))
    ck.write_checkpoint(s, led, reason="hourly")
    res = run_retention(s, now=FIXED_NOW)
    assert res.categories["audit_ledger"].deleted == 4
    newest = ck.load_checkpoints(ck.checkpoints_dir(s), load_or_create_signing_key(s)[0].public_key())[-1]
    assert newest.body["reason"] == "prune" and newest.body["ledger"]["events_pruned_total"] == 4
    v = _verify(s, led)
    assert v.ok and v.chain.pruned_events == 4, v.findings
