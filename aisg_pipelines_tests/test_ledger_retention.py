"""Audit-ledger retention (issue 5, 7 years): a prefix of the hash chain leaves behind a
checkpoint, the kept chain still verifies, and tampering around the checkpoint is detected."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
import sqlalchemy as sa

from aisg_pipelines.governance.ids import subject_hash
from aisg_pipelines.governance.ledger import (
    PRUNE_ACTION,
    Ledger,
    LedgerTampered,
    audit_events,
    iso,
    ledger_checkpoints,
)
from aisg_pipelines.governance.retention import overdue_report, run_retention
from aisg_pipelines.governance.secrets import load_or_create_salt

from .conftest import FIXED_NOW, PG_URL, pg_admin_connect

OLD = FIXED_NOW - timedelta(days=9 * 365)  # past 7 years
RECENT = FIXED_NOW - timedelta(days=30)
CUTOFF = iso(FIXED_NOW - timedelta(days=2557))
HELD = "f" * 64


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request, tmp_path):
    """The ledger on SQLite, and on a fresh database of the real PostgreSQL server (.ci/run)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'pg-or-sqlite.db'}"
        return
    if not PG_URL:
        pytest.skip("AISG_TEST_PG_URL is unset: no PostgreSQL server (.ci/run starts one and sets it)")
    name = f"aisg_ledger_ret_{secrets.token_hex(4)}"
    admin = pg_admin_connect()
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    url = PG_URL.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _ledger(tmp_path, url: str | None = None) -> Ledger:
    """4 expired events (the 3rd names HELD), then 3 recent ones."""
    led = Ledger(url or f"sqlite:///{tmp_path / 'ledger.db'}")
    for i in range(4):
        led.append_event("test.old", {"i": i}, subject_hash=HELD if i == 2 else None, occurred_at=iso(OLD + timedelta(days=i)))
    for i in range(3):
        led.append_event("test.recent", {"i": i}, occurred_at=iso(RECENT + timedelta(days=i)))
    return led


def test_prune_removes_the_expired_prefix_and_the_chain_still_verifies(tmp_path, ledger_url):
    led = _ledger(tmp_path, ledger_url)
    old = led.events("test.old")
    dry = led.prune_events(CUTOFF, dry_run=True)
    assert (dry.expired, dry.pruned, dry.prunable, dry.held) == (4, 0, 4, 0)
    assert len(led.events()) == 7

    res = led.prune_events(CUTOFF)
    assert (res.expired, res.pruned, res.held, res.through_seq) == (4, 4, 0, old[-1].seq)
    assert res.anchor_hash == old[-1].event_hash
    kept = led.events()
    assert [e.action for e in kept] == ["test.recent"] * 3 + [PRUNE_ACTION]
    assert kept[0].prev_hash == old[-1].event_hash
    record = kept[-1].details
    assert (record["through_seq"], record["events_pruned"], record["events_pruned_total"]) == (old[-1].seq, 4, 4)
    v = led.verify_chain()
    assert v.ok, v.problems
    assert (v.events, v.pruned_events, v.anchor_hash) == (4, 4, old[-1].event_hash)

    # idempotent: nothing left to prune, nothing changes
    again = led.prune_events(CUTOFF)
    assert (again.expired, again.pruned) == (0, 0)
    assert len(led.events()) == 4 and led.verify_chain().ok


def test_a_second_prune_chains_onto_the_first_checkpoint(tmp_path):
    led = _ledger(tmp_path)
    led.prune_events(CUTOFF)
    # years later the recent events expire too (and so does the first ledger.pruned record)
    later = iso(FIXED_NOW + timedelta(days=2557 + 400))
    res = led.prune_events(later)
    assert (res.expired, res.pruned, res.held) == (4, 4, 0)
    v = led.verify_chain()
    assert v.ok, v.problems
    assert (v.events, v.pruned_events) == (1, 8)
    with led.engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(ledger_checkpoints)).scalar() == 2


def test_a_held_subject_stops_the_prune_and_is_reported_as_held(tmp_path, ledger_url):
    led = _ledger(tmp_path, ledger_url)
    res = led.prune_events(CUTOFF, held_subject_hashes={HELD})
    # event 0 and 1 go; event 2 names the held subject, so it and event 3 stay (chain stays contiguous)
    assert (res.expired, res.pruned, res.held) == (4, 2, 2)
    assert [e.details["i"] for e in led.events("test.old")] == [2, 3]
    assert led.verify_chain().ok


def test_removing_a_kept_event_or_forging_the_checkpoint_is_detected(tmp_path):
    led = _ledger(tmp_path)
    led.prune_events(CUTOFF)
    first_kept = led.events()[0]
    with led.begin() as c:
        c.execute(audit_events.delete().where(audit_events.c.seq == first_kept.seq))
    v = led.verify_chain()
    assert not v.ok and any("was deleted" in p for p in v.problems), v.problems

    (tmp_path / "b").mkdir()
    led2 = _ledger(tmp_path / "b")
    led2.prune_events(CUTOFF)
    with led2.begin() as c:
        c.execute(ledger_checkpoints.update().values(anchor_hash="a" * 64))
    v2 = led2.verify_chain()
    assert not v2.ok and any("checkpoint anchor_hash does not match" in p for p in v2.problems), v2.problems

    (tmp_path / "c").mkdir()
    led3 = _ledger(tmp_path / "c")
    led3.prune_events(CUTOFF)
    with led3.begin() as c:
        c.execute(ledger_checkpoints.delete())
    v3 = led3.verify_chain()
    assert not v3.ok and any("checkpoint is missing" in p for p in v3.problems), v3.problems

    # deleting old events by hand (no checkpoint) is still a broken chain, as before
    (tmp_path / "d").mkdir()
    led4 = _ledger(tmp_path / "d")
    with led4.begin() as c:
        c.execute(audit_events.delete().where(audit_events.c.action == "test.old"))
    assert not led4.verify_chain().ok


def test_a_tampered_chain_is_not_pruned(tmp_path, ledger_url):
    led = _ledger(tmp_path, ledger_url)
    with led.begin() as c:
        c.execute(audit_events.update().where(audit_events.c.seq == 2).values(details='{"i": 99}'))
    with pytest.raises(LedgerTampered, match="seq=2"):
        led.prune_events(CUTOFF)
    assert len(led.events()) == 7  # the evidence stays


def test_retention_run_prunes_the_audit_ledger_and_keeps_held_subjects(settings):
    s = settings
    salt = load_or_create_salt(s)
    led = Ledger(s.ledger_url)
    held = subject_hash("subj-en-002", salt)
    for i in range(5):
        led.append_event("erasure.certified", {"i": i}, subject_hash=held if i == 3 else subject_hash(f"subj-{i}", salt),
                         occurred_at=iso(OLD + timedelta(days=i)))
    led.append_event("ingest.documents", {"documents": 1}, occurred_at=iso(RECENT))
    hold_id = led.add_legal_hold("subject", held, "litigation")

    dry = run_retention(s, now=FIXED_NOW, dry_run=True)
    a = dry.categories["audit_ledger"]
    assert (a.expired, a.deleted, a.held, a.overdue) == (5, 0, 2, 3)
    assert overdue_report(s, "audit_ledger", now=FIXED_NOW).overdue == 3

    res = run_retention(s, now=FIXED_NOW)
    a = res.categories["audit_ledger"]
    assert (a.expired, a.deleted, a.held, a.overdue) == (5, 3, 2, 0)
    assert a.rows_deleted == {"audit_events": 3}
    assert round(a.oldest_remaining_age_days) == round((FIXED_NOW - (OLD + timedelta(days=3))).total_seconds() / 86400)
    assert [e.details["i"] for e in led.events("erasure.certified")] == [3, 4]
    assert led.verify_chain().ok
    assert overdue_report(s, "audit_ledger", now=FIXED_NOW).overdue == 0

    # the hold is released: the next run prunes the rest, and only that
    led.release_legal_hold(hold_id)
    res2 = run_retention(s, now=FIXED_NOW)
    a2 = res2.categories["audit_ledger"]
    assert (a2.expired, a2.deleted, a2.held) == (2, 2, 0)
    assert led.events("erasure.certified") == [] and led.verify_chain().ok
    assert led.verify_chain().pruned_events == 5
