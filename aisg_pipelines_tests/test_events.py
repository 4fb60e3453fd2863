"""Typed ledger events: payloads round-trip unchanged, older rows read through the one shim."""

from __future__ import annotations

from aisg_pipelines.governance import events
from aisg_pipelines.governance.ledger import Ledger


def test_payloads_round_trip_and_old_rows_read_through_the_shim(tmp_path):
    purge = {"category": "user_content", "expired": 5, "deleted_rows": 20, "deleted": 4, "unit": "documents", "held": 1,
             "bytes_reclaimed": 1000, "dry_run": False, "oldest_remaining_age_days": 179.5, "period_days": 180,
             "cutoff": "2026-05-07T00:00:00Z", "rows_deleted": {"chunks": 12, "documents": 4, "embeddings_v1": 4}, "partitions_emptied": ["b1"]}
    assert events.RetentionPurge.from_payload(purge).to_payload() == purge
    assert events.RetentionPurge.from_payload(purge).remaining_past_period == 1

    # a row written without `deleted`: the items deleted are its rows deleted; unknown keys are ignored
    old = events.RetentionPurge.from_payload({"category": "metrics", "expired": 9, "deleted_rows": 7, "held": None, "extra": 1})
    assert (old.deleted, old.held, old.unit, old.remaining_past_period) == (7, 0, "rows", 2)

    # ingest.documents from before re-ingest: the newer fields read as "nothing"
    ing = events.IngestDocuments.from_payload({"batch_id": "b", "documents": 3, "pii_removed": {"EMAIL_ADDRESS": 2},
                                               "quarantined_by_reason": {}, "missing": 1})
    assert (ing.deferred, ing.replaced, ing.dropped, ing.emptied_batches) == (0, 0, 0, [])

    # the ledger stores exactly the payload; the reader gets the same values back
    led = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    events.record(led, events.OrphansCleanup(kind="vector_without_chunk", deleted=2, found=3, dry_run=False), actor="test")
    events.record(led, events.EmbedVersionSwitch(name="v2", previous="v1"), action="embed_version.rollback")
    (cleanup,) = led.events("orphans.cleanup")
    assert cleanup.details == {"kind": "vector_without_chunk", "deleted": 2, "found": 3, "dry_run": False} and cleanup.actor == "test"
    assert events.OrphansCleanup.from_payload(cleanup.details) == events.OrphansCleanup("vector_without_chunk", 2, 3, False)
    assert [e.details for e in led.events("embed_version.rollback")] == [{"name": "v2", "previous": "v1"}]
    assert led.verify_chain().ok
