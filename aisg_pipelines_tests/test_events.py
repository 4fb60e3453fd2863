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


# -- every action the package writes is declared in events.py -------------------------------------
import ast  # noqa: E402
import dataclasses  # noqa: E402
from pathlib import Path  # noqa: E402

import aisg_pipelines  # noqa: E402
from aisg_pipelines.governance.ledger import canonical_json  # noqa: E402

PACKAGE = Path(aisg_pipelines.__file__).resolve().parent
WRITERS = {"append_event", "_append"}  # Ledger's write API (ledger.py)


def _module_constants(tree: ast.Module) -> dict[str, ast.expr]:
    return {t.id: node.value for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}


def _action_of(expr: ast.expr, consts: dict[str, ast.expr]) -> str | None:
    """The action string an argument names: a literal, a module constant, or `events.<Type>.ACTION`."""
    if isinstance(expr, ast.Name) and expr.id in consts:
        expr = consts[expr.id]
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return expr.value
    if isinstance(expr, ast.Attribute) and expr.attr == "ACTION" and isinstance(expr.value, ast.Attribute):
        cls = getattr(events, expr.value.attr, None)
        return cls.ACTION if cls is not None else None
    return None


def test_every_action_written_in_the_package_is_declared():
    declared = events.declared()
    problems, writes = [], 0
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel == Path("governance/events.py"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        consts = _module_constants(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, (ast.Attribute, ast.Name)):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            where = f"{rel}:{node.lineno}"
            if name in WRITERS and node.args:
                # a raw write: only ledger.py's own `_append` of a declared action, everything else goes through events.record
                arg = node.args[1] if name == "_append" else node.args[0]
                if rel == Path("governance/ledger.py") and isinstance(arg, ast.Name) and arg.id == "action":
                    continue  # append_event passing its own argument on
                action = _action_of(arg, consts)
                writes += 1
                if action not in declared:
                    problems.append(f"{where}: {name}({ast.unparse(arg)}) writes an action events.py does not declare")
                elif name == "append_event":
                    problems.append(f"{where}: append_event({action!r}, ...): write it as events.record(ledger, events.<Type>(...))")
            elif name == "record" and len(node.args) >= 2 and isinstance(node.args[1], ast.Call):
                ctor = node.args[1].func
                cls = getattr(events, ctor.attr if isinstance(ctor, ast.Attribute) else getattr(ctor, "id", ""), None)
                if not (isinstance(cls, type) and issubclass(cls, events.LedgerEvent)):
                    continue
                writes += 1
                kw = {k.arg: k.value for k in node.keywords}
                action = _action_of(kw["action"], consts) if "action" in kw else cls.ACTION
                # a computed action (f"embed_version.{reason}") is checked when written: record() refuses one the type does not declare
                if "action" in kw and action is None:
                    continue
                if action not in events.actions_of(cls):
                    problems.append(f"{where}: {cls.__name__} is not declared as the payload of {action!r}")
    assert not problems, "\n".join(problems)
    assert writes >= 30  # the scan sees the producers (33 writes with a literal type today)


def _sample(cls: type[events.LedgerEvent]) -> events.LedgerEvent:
    """An instance with a non-default value in every field."""
    values = {"str": "x", "int": 3, "float": 1.5, "bool": True, "dict": {"k": 1}, "list": ["a", "b"]}
    kw = {}
    for f in dataclasses.fields(cls):
        base = str(f.type).split("[")[0].split(" ")[0]
        kw[f.name] = {"flat_key": 2} if f.name == cls.FLAT else (f"{f.name}-1" if base == "str" else values[base])
    return cls(**kw)


def test_every_declared_type_round_trips_through_its_payload():
    declared = events.declared()
    for action in ("erasure.received", "erasure.started", "erasure.discovered", "erasure.purged", "erasure.verified", "erasure.failed",
                   "erasure.rejected", "erasure.certified", "access.received", "access.rejected", "access.discovered", "access.failed",
                   "access.delivered", "access.exports_expired", "cascade.intent", "cascade.result", "legal_hold.added",
                   "legal_hold.released", "ledger.pruned", "alert.sent", "inbox.authenticated"):
        assert action in declared, action
    for action, types in declared.items():
        for cls in types:
            ev = _sample(cls)
            payload = ev.to_payload()
            assert cls.from_payload(payload, action) == ev, (action, cls.__name__)
            assert canonical_json(cls.from_payload(payload, action).to_payload()) == canonical_json(payload)
            empty = cls()
            assert cls.from_payload(empty.to_payload(), action) == empty


def test_payloads_keep_the_keys_written_before_the_types():
    # the shapes that are not one key per field: each compared with the dict its producer wrote before
    assert events.LegalHoldReleased(hold_id="h").to_payload() == {"hold_id": "h"}
    assert events.LegalHoldReleased(hold_id="h", reason="r", approved_by="a").to_payload() == {"hold_id": "h", "reason": "r", "approved_by": "a"}
    assert events.EmbedVersionTransition(name="v2", from_status="building").to_payload() == {"name": "v2", "from": "building"}
    assert events.EmbedVersionRegistered(name="v2", meaning={"dims": 384, "normalize": True}).to_payload() == {"name": "v2", "dims": 384, "normalize": True}
    intent = events.CascadeIntent(cascade_id="c", cause="erasure", planned={"chunks": 2}, ids_sha256="s", documents=1, chunks=2,
                                  details={"request_ids": ["r1"]})
    assert intent.to_payload() == {"request_ids": ["r1"], "cascade_id": "c", "cause": "erasure", "planned": {"chunks": 2}, "ids_sha256": "s",
                                   "documents": 1, "chunks": 2}
    assert events.CascadeIntent.from_payload(intent.to_payload()) == intent
    assert "parity" not in events.EmbedVersionReindex(name="v2").to_payload()
    assert "parity" not in events.EmbedVersionValidationFailed(name="v2").to_payload()
    parity = events.EmbedVersionParity(name="v3", backend="onnx", passed=True, reasons=[], figures={"recall_at_10": 0.98})
    assert parity.to_payload() == {"name": "v3", "backend": "onnx", "passed": True, "reasons": [], "recall_at_10": 0.98}


def test_record_refuses_an_action_the_type_does_not_declare(tmp_path):
    import pytest

    led = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    with pytest.raises(ValueError, match="not the payload"):
        events.record(led, events.EmbedVersionTransition(name="v"), action="embed_version.unknown")
    events.record(led, events.LegalHoldReleased(hold_id="h"))
    assert [e.details for e in led.events("legal_hold.")] == [{"hold_id": "h"}]
