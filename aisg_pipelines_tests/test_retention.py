"""Retention on a real populated LanceDB store at a fixed clock (issue 5)."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from aisg_pipelines.governance.ids import subject_hash
from aisg_pipelines.governance.ledger import Ledger, embed_versions
from aisg_pipelines.governance.retention import (
    CATEGORIES,
    DEFAULT_POLICY_FILE,
    PolicyError,
    load_policies,
    overdue_report,
    run_retention,
)
from aisg_pipelines.governance.secrets import load_or_create_salt
from aisg_pipelines.governance.store import CHUNKS, DOCUMENTS, LanceStore, embeddings_schema
from aisg_pipelines.governance.telemetry import generate_sample_telemetry, ingest_all

from .conftest import FIXED_NOW, fresh_defs, settings_for

# Later than FIXED_NOW so that several sample documents are past 180 days: cutoff = FIXED_NOW - 100 d.
AS_OF = FIXED_NOW + timedelta(days=80)


def _store(s) -> LanceStore:
    return LanceStore(s.lancedb_uri)


def _add_v2_copy(s) -> None:
    """A second embed_version table, cheaply: v1's vectors copied through the store API."""
    store = _store(s)
    rows = store.scan("embeddings_v1", ["chunk_id", "doc_id", "batch_id", "content_sha256", "vector", "embedded_at"])
    schema = embeddings_schema(384, {"embed_version": "v2"})
    store.append("embeddings_v2", schema, rows)
    store.ensure_indices("embeddings_v2")


def _state(s) -> dict:
    """Ids in every table, and every file outside LanceDB (whose data file names are random)."""
    store = _store(s)
    out = {}
    for t in store.table_names():
        cols = {"documents": "doc_id", "chunks": "chunk_id", "system_logs": "row_id", "metrics": "row_id"}.get(t, "chunk_id")
        out[t] = sorted(store.scan(t, [cols])[cols].to_pylist())
    out["files"] = {k: v for k, v in _listing(s).items() if not k.startswith("lancedb/")}
    return out


def _storage_dirs(s) -> list[Path]:
    return [Path(s.lancedb_uri), s.landing_dir, s.quarantine_dir, s.logs_dir, s.metrics_dir]


def _listing(s, with_content: bool = True) -> dict[str, object]:
    out = {}
    for d in _storage_dirs(s):
        for p in sorted(d.rglob("*")) if d.exists() else []:
            if p.is_file():
                out[str(p.relative_to(s.data_dir))] = p.read_bytes() if with_content else p.stat().st_size
    return out


def _expired_markers(s, manifest, cutoff) -> tuple[list[str], list[bytes]]:
    """doc_ids of expired, unheld documents and distinctive substrings of their scrubbed text."""
    store = _store(s)
    docs = store.scan(DOCUMENTS, ["doc_id", "text", "uploaded_at", "legal_hold"]).to_pylist()
    expired = [d for d in docs if d["uploaded_at"] < cutoff and not d["legal_hold"]]
    others = "\n".join(d["text"] for d in docs if d not in expired)
    markers = []
    for d in expired:
        t = d["text"]
        for start in (len(t) // 4, len(t) // 2, 3 * len(t) // 4):
            piece = t[start : start + 40]
            if piece not in others and "<" not in piece:
                markers.append(piece.encode("utf-8"))
    return [d["doc_id"] for d in expired], markers


def _grep_files(s, needles: list[bytes]) -> list[str]:
    hits = []
    for d in _storage_dirs(s):
        for p in d.rglob("*") if d.exists() else []:
            if p.is_file():
                data = p.read_bytes()
                hits += [f"{p}: {n[:30]!r}" for n in needles if n in data]
    return hits


# -- policies ------------------------------------------------------------------------------


def test_default_policies_ship_with_the_package():
    p = load_policies()
    assert {c: p[c].days for c in CATEGORIES} == {
        "user_content": 180, "system_logs": 90, "metrics": 30, "audit_ledger": 2557, "retired_embed_versions": 30,
    }
    assert Path(p.source) == DEFAULT_POLICY_FILE


def _policy(**over):
    base = {c: {"days": d} for c, d in zip(CATEGORIES, (180, 90, 30, 2557, 30))}
    base.update(over)
    return {"version": 1, "policies": {k: v for k, v in base.items() if v is not None}}


@pytest.mark.parametrize(
    "data, message",
    [
        (_policy(chat_history={"days": 10}), "unknown retention category 'chat_history'"),
        (_policy(metrics={"days": 0}), "policy 'metrics': days must be positive, got 0"),
        (_policy(system_logs={"days": -5}), "policy 'system_logs': days must be positive, got -5"),
        (_policy(user_content=None), "no policy for known category 'user_content'"),
        (_policy(metrics={"days": "30"}), "days must be a whole number"),
        (_policy(metrics={"days": 30, "dayz": 1}), "unknown keys ['dayz']"),
        ({"user_content": 180}, "expected a mapping with a `policies:`"),
    ],
)
def test_bad_policy_files_are_refused(tmp_path, data, message):
    import yaml

    f = tmp_path / "retention.yaml"
    f.write_text(yaml.safe_dump(data))
    with pytest.raises(PolicyError) as exc:
        load_policies(f)
    assert message in str(exc.value)
    assert isinstance(exc.value, ValueError)


def test_unreadable_policy_files_are_refused(tmp_path):
    with pytest.raises(PolicyError, match="does not exist"):
        load_policies(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("policies: [unclosed")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policies(tmp_path / "bad.yaml")


def test_salt_is_created_once_and_reused(settings):
    a = load_or_create_salt(settings)
    b = load_or_create_salt(settings)
    assert a == b and len(a) == 32
    assert oct((settings.secrets_dir / "subject_hash_salt").stat().st_mode & 0o777) == "0o600"


# -- the run -------------------------------------------------------------------------------


def test_retention_deletes_exactly_the_expired_rows_everywhere_and_keeps_holds(populated_settings):
    s, manifest = populated_settings
    _add_v2_copy(s)
    store = _store(s)
    cutoff = AS_OF - timedelta(days=180)
    docs = {d["doc_id"]: d for d in store.scan(DOCUMENTS, ["doc_id", "subject_id", "uploaded_at", "legal_hold", "file_path", "batch_id"]).to_pylist()}
    expired = sorted(d for d, r in docs.items() if r["uploaded_at"] < cutoff)
    sidecar_held = sorted(d for d in expired if docs[d]["legal_hold"])
    assert len(expired) == 3 and len(sidecar_held) == 1  # 116.7, 150 and 183.3 days old at FIXED_NOW
    # a ledger hold on one more expired document (scope document, salted hash of the doc_id)
    ledger_held = next(d for d in expired if d not in sidecar_held)
    ledger = Ledger(s.ledger_url)
    ledger.add_legal_hold("document", subject_hash(ledger_held, load_or_create_salt(s)), "litigation")
    to_delete = sorted(set(expired) - set(sidecar_held) - {ledger_held})
    assert len(to_delete) == 1
    ids_before, markers = _expired_markers(s, manifest, cutoff)
    held_text = next(r["text"] for r in store.scan(DOCUMENTS, ["doc_id", "text"]).to_pylist() if r["doc_id"] == ledger_held)
    markers = [m for m in markers if m.decode() not in held_text]
    ids_before = [d for d in ids_before if d != ledger_held]
    assert ids_before == to_delete and markers
    chunks_before = store.scan(CHUNKS, ["chunk_id", "doc_id"]).to_pylist()
    doomed_chunks = sorted(c["chunk_id"] for c in chunks_before if c["doc_id"] in to_delete)
    assert doomed_chunks
    before = _state(s)
    assert _grep_files(s, markers + [d.encode() for d in to_delete])  # the bytes are there to begin with

    res = run_retention(s, now=AS_OF)

    uc = res.categories["user_content"]
    assert (uc.expired, uc.deleted, uc.held) == (3, 1, 2)
    assert uc.held_items == sorted(sidecar_held + [ledger_held])
    assert uc.rows_deleted == {
        "embeddings_v1": len(doomed_chunks), "embeddings_v2": len(doomed_chunks), "chunks": len(doomed_chunks),
        "documents": 1, "landing_files": 2, "quarantined_files": 0,
    }
    after = _state(s)
    assert after["documents"] == sorted(set(before["documents"]) - set(to_delete))
    for t in ("chunks", "embeddings_v1", "embeddings_v2"):
        assert after[t] == sorted(set(before[t]) - set(doomed_chunks)), t
    for d in sidecar_held + [ledger_held]:
        assert (s.landing_dir / docs[d]["file_path"]).exists()
    assert not (s.landing_dir / docs[to_delete[0]]["file_path"]).exists()
    assert not (s.landing_dir / (docs[to_delete[0]]["file_path"] + ".meta.json")).exists()
    # down to the bytes: no file under any storage directory holds the expired text or doc_id
    assert _grep_files(s, markers + [d.encode() for d in to_delete]) == []
    assert uc.bytes_reclaimed > 0
    # the oldest remaining is the held 183-day document
    oldest = min(docs[d]["uploaded_at"] for d in docs if d not in to_delete)
    assert uc.oldest_remaining_age_days == round((AS_OF - oldest).total_seconds() / 86400, 3)
    # batch partition of the deleted doc is empty now (one doc per upload day in the sample)
    assert uc.partitions_emptied == [docs[to_delete[0]]["batch_id"]]
    # audit trail: one retention.purge event per category, chain intact
    events = [e for e in ledger.events("retention.purge")]
    assert sorted(e.details["category"] for e in events) == sorted(CATEGORIES)
    ev = next(e for e in events if e.details["category"] == "user_content")
    assert ev.details["deleted_rows"] == sum(uc.rows_deleted.values()) and ev.details["held"] == 2 and ev.details["dry_run"] is False
    assert ledger.verify_chain().ok
    # the per-category check now passes: nothing unheld past its period remains
    assert overdue_report(s, "user_content", now=AS_OF).overdue == 0
    # a second run finds nothing more to do
    again = run_retention(s, now=AS_OF)
    assert (again.categories["user_content"].deleted, again.categories["user_content"].held) == (0, 2)
    assert _state(s) == after


def test_dry_run_changes_nothing(populated_settings):
    s, _ = populated_settings
    before_state, before_files = _state(s), _listing(s)
    salt = s.secrets_dir / "subject_hash_salt"
    salt_before = salt.read_bytes() if salt.exists() else None  # ingest creates it to check the erasure denylist
    res = run_retention(s, now=AS_OF, dry_run=True)
    uc = res.categories["user_content"]
    assert (uc.expired, uc.deleted, uc.held) == (3, 0, 1)
    assert uc.rows_deleted["documents"] == 2 and uc.rows_deleted["landing_files"] == 4
    assert uc.bytes_reclaimed == 0
    assert _state(s) == before_state
    assert _listing(s) == before_files  # byte for byte
    assert (salt.read_bytes() if salt.exists() else None) == salt_before  # a dry run neither creates nor changes the salt
    assert all(e.details["dry_run"] for e in Ledger(s.ledger_url).events("retention.purge"))


class Killed(Exception):
    pass


@pytest.mark.parametrize("kill_at", ["delete:embeddings_v1", "delete:chunks", "delete:landing", "delete:documents", "delete:system_logs", "purge"])
def test_killed_run_converges_on_rerun(populated_settings, tmp_path, kill_at):
    s, _ = populated_settings
    ref = settings_for(tmp_path / "ref")
    shutil.copytree(s.data_dir, ref.data_dir)
    for x in (s, ref):
        generate_sample_telemetry(x.logs_dir, x.metrics_dir, now=FIXED_NOW, subject_ids=["subj-ko-001", "subj-en-002"], span_days=200, logs_per_day=3, samples_per_metric=1)
        ingest_all(x, now=FIXED_NOW)
    run_retention(ref, now=AS_OF)

    def hook(step):
        if step == kill_at:
            raise Killed(step)

    with pytest.raises(Killed):
        run_retention(s, now=AS_OF, hook=hook)
    if kill_at in ("delete:system_logs", "purge"):  # user content was done: its deletion is already audited
        ev = [e.details for e in Ledger(s.ledger_url).events("retention.deleted") if e.details["category"] == "user_content"]
        assert [(e["deleted"], e["held"], e["rows_deleted"]["documents"]) for e in ev] == [(2, 1, 2)]
    known = {"system_log_days": [f"{(FIXED_NOW - timedelta(days=a)).strftime('%Y-%m-%d')}" for a in range(200)]}
    second = run_retention(s, now=AS_OF, known_partitions=known)
    assert _state(s) == _state(ref)
    # the purge finished: nothing left but the latest version of each table
    store = _store(s)
    for t in store.table_names():
        ds = store.dataset(t)
        assert len(ds.versions()) == 1, t
        assert all(f.deletion_file() is None for f in ds.get_fragments()), t
    # day keys past the period whose data is gone are reported by the re-run, whatever the kill point
    cutoff_day = (AS_OF - timedelta(days=90)).strftime("%Y-%m-%d")
    held_days = {r["day"] for r in store.scan("system_logs", ["day"]).to_pylist() if r["day"] < cutoff_day}
    assert second.categories["system_logs"].partitions_emptied == sorted(k for k in known["system_log_days"] if k < cutoff_day and k not in held_days)


def test_retired_versions_are_dropped_but_never_active_or_rollback(populated_settings, model_path):
    from aisg_pipelines.governance.versions import EmbedVersionSpec, VersionRegistry

    s, _ = populated_settings
    store = _store(s)
    rows = store.scan("embeddings_v1", ["chunk_id", "doc_id", "batch_id", "content_sha256", "vector", "embedded_at"])
    led = Ledger(s.ledger_url)
    reg = VersionRegistry(led)
    for name, size in (("v2", 400), ("v3", 300)):
        reg.register(EmbedVersionSpec(name, model_path, chunk_size=size, chunk_overlap=50))
        store.append(f"embeddings_{name}", embeddings_schema(384), rows)
        reg.activate(name, require_validated=False)
    assert reg.active().name == "v3" and reg.previous_active().name == "v2"
    # v1 and v2 both retired long enough ago
    with led.begin() as c:
        c.execute(sa.update(embed_versions).where(embed_versions.c.name.in_(["v1", "v2"])).values(retired_at=(FIXED_NOW - timedelta(days=45)).isoformat()))
    v1_dir = Path(s.lancedb_uri) / "embeddings_v1.lance"
    size = sum(p.stat().st_size for p in v1_dir.rglob("*") if p.is_file())
    dry = run_retention(s, now=FIXED_NOW, dry_run=True).categories["retired_embed_versions"]
    assert (dry.expired, dry.deleted, dry.held) == (2, 0, 1) and v1_dir.exists()
    res = run_retention(s, now=FIXED_NOW).categories["retired_embed_versions"]
    assert (res.expired, res.deleted, res.held) == (2, 1, 1)
    assert res.held_items == ["v2"] and res.partitions_emptied == ["v1"]
    assert res.rows_deleted == {"embeddings_v1": rows.num_rows} and res.bytes_reclaimed == size
    assert not v1_dir.exists()
    assert sorted(store.embedding_tables()) == ["v2", "v3"]
    assert overdue_report(s, "retired_embed_versions", now=FIXED_NOW).overdue == 0


def test_telemetry_retention_keeps_held_subjects_rows_and_lines(settings):
    s = settings
    subjects = ["subj-ko-001", "subj-en-002", "subj-ko-003"]
    man = generate_sample_telemetry(s.logs_dir, s.metrics_dir, now=FIXED_NOW, subject_ids=subjects, span_days=200)
    ingest_all(s, now=FIXED_NOW)
    led = Ledger(s.ledger_url)
    led.add_legal_hold("subject", subject_hash("subj-en-002", load_or_create_salt(s)), "regulator request")
    store = _store(s)
    logs = store.scan("system_logs", ["row_id", "timestamp", "user_id", "day"]).to_pylist()
    mets = store.scan("metrics", ["row_id", "timestamp", "day"]).to_pylist()
    lc, mc = FIXED_NOW - timedelta(days=90), FIXED_NOW - timedelta(days=30)
    exp_logs = [r for r in logs if r["timestamp"] < lc]
    held_logs = [r for r in exp_logs if r["user_id"] == "subj-en-002"]
    exp_mets = [r for r in mets if r["timestamp"] < mc]
    res = run_retention(s, now=FIXED_NOW)
    sl, me = res.categories["system_logs"], res.categories["metrics"]
    assert (sl.expired, sl.deleted, sl.held) == (len(exp_logs), len(exp_logs) - len(held_logs), len(held_logs))
    assert held_logs and (me.expired, me.deleted, me.held) == (len(exp_mets), len(exp_mets), 0)
    left = {r["row_id"] for r in store.scan("system_logs", ["row_id"]).to_pylist()}
    assert left == {r["row_id"] for r in logs} - {r["row_id"] for r in exp_logs} | {r["row_id"] for r in held_logs}
    assert store.count("metrics") == len(mets) - len(exp_mets)
    # metric days older than 30 days are all gone as partitions; log days keep a held row each
    assert me.partitions_emptied == sorted({r["day"] for r in exp_mets} - {r["day"] for r in mets if r["timestamp"] >= mc})
    assert len(list(s.metrics_dir.glob("*.jsonl"))) == 31  # days 0..30; the boundary day keeps its late lines
    # source files keep only held lines: a re-ingest of every day changes nothing
    before = sorted(left)
    ingest_all(s, now=FIXED_NOW)
    assert sorted(r["row_id"] for r in store.scan("system_logs", ["row_id"]).to_pylist()) == before
    old_file = s.logs_dir / f"aisg-{(FIXED_NOW - timedelta(days=150)).strftime('%Y-%m-%d')}.jsonl"
    assert old_file.exists() and all(json.loads(l)["user_id"] == "subj-en-002" for l in old_file.read_text().splitlines())
    # the quarantine of malformed lines from old days went too
    assert not any(p.name < f"{(FIXED_NOW - timedelta(days=91)).strftime('%Y-%m-%d')}" for p in (s.quarantine_dir / "telemetry" / "system_logs").glob("*.jsonl"))
    assert overdue_report(s, "system_logs", now=FIXED_NOW).overdue == 0
    assert man["log_rows"] == len(logs)


def test_retention_job_in_dagster(populated_settings, code_location_env):
    import dagster as dg

    s, _ = populated_settings
    generate_sample_telemetry(s.logs_dir, s.metrics_dir, now=FIXED_NOW, subject_ids=["subj-ko-001"], span_days=40, logs_per_day=2, samples_per_metric=1)
    code_location_env(s)
    defs = fresh_defs()
    instance = dg.DagsterInstance.get()
    from aisg_pipelines.local_runner import run_job, tick_sensor

    out = tick_sensor(defs, instance, "telemetry_sensor")
    assert out.launched and out.all_succeeded
    assert len(instance.get_dynamic_partitions("system_log_days")) == 40
    instance.add_dynamic_partitions("ingest_batches", Ledger(s.ledger_url).batch_ids())
    n_batches = len(instance.get_dynamic_partitions("ingest_batches"))
    res = run_job(defs, instance, "retention", run_config={"ops": {"retention_report": {"config": {"dry_run": False, "as_of": AS_OF.isoformat()}}}})
    assert res.success
    mat = instance.get_latest_materialization_event(dg.AssetKey("retention_report")).asset_materialization
    md = mat.metadata
    assert md["user_content_deleted"].value == 2 and md["user_content_held"].value == 1
    # emptied day partitions (logs > 90 d, metrics > 30 d at AS_OF) and batch keys were removed
    # at AS_OF the log cutoff is FIXED_NOW - 10 d: days 11..39 (29 keys) are emptied, the boundary day keeps rows
    assert md["system_logs_partitions_removed"].value == 29 and md["metrics_partitions_removed"].value == 40
    assert len(instance.get_dynamic_partitions("system_log_days")) == 11 and instance.get_dynamic_partitions("metric_days") == []
    assert len(instance.get_dynamic_partitions("ingest_batches")) == n_batches - 2
    checks = {e.check_name: e.passed for e in res.get_asset_check_evaluations()}
    assert checks == {f"{c}_within_retention": True for c in CATEGORIES}


def test_hold_cli_add_list_release(settings, code_location_env):
    from click.testing import CliRunner

    from aisg_pipelines.cli import main

    code_location_env(settings)
    r = CliRunner()
    out = r.invoke(main, ["hold", "add", "--subject-id", "subj-ko-001", "--reason", "case 42"])
    assert out.exit_code == 0, out.output
    assert r.invoke(main, ["hold", "add", "--doc-id", "doc-0001", "--reason", "case 43"]).exit_code == 0
    bad = r.invoke(main, ["hold", "add", "--subject-id", "x' OR '1'='1", "--reason", "r"])
    assert bad.exit_code == 2 and "is not valid" in bad.output
    assert r.invoke(main, ["hold", "add", "--reason", "r"]).exit_code == 2
    salt = load_or_create_salt(settings)
    holds = Ledger(settings.ledger_url).active_holds()
    assert holds == {"subject": {subject_hash("subj-ko-001", salt)}, "document": {subject_hash("doc-0001", salt)}}
    assert "2 hold(s)" in r.invoke(main, ["hold", "list"]).output
    no_reason = r.invoke(main, ["hold", "release", "--doc-id", "doc-0001"])
    assert no_reason.exit_code == 2 and "--reason" in no_reason.output  # a release needs a reason (issue 13)
    assert r.invoke(main, ["hold", "release", "--doc-id", "doc-0001", "--reason", "case 43 closed", "--approved-by", "dpo@aisg"]).exit_code == 0
    ev = Ledger(settings.ledger_url).events("legal_hold.released")[-1]
    assert ev.details["reason"] == "case 43 closed" and ev.details["approved_by"] == "dpo@aisg" and ev.actor == "dpo@aisg"
    assert Ledger(settings.ledger_url).active_holds()["document"] == set()
    assert "1 hold(s)" in r.invoke(main, ["hold", "list"]).output
    assert "subj-ko-001" not in r.invoke(main, ["hold", "list", "--all"]).output  # only salted hashes are stored


@pytest.mark.parametrize("kill_at", ["delete:chunks", "delete:landing", "delete:documents"])
def test_killed_after_deleting_rows_leaves_them_in_the_ledger_and_the_rerun_records_the_result(populated_settings, kill_at):
    """Issue 12 finding 9: the intent (with exact planned counts) is in the ledger before the first
    row goes; the re-run completes that intent and records its result."""
    s, _ = populated_settings
    _add_v2_copy(s)
    store, led = _store(s), Ledger(s.ledger_url)
    cutoff = AS_OF - timedelta(days=180)
    docs = store.scan(DOCUMENTS, ["doc_id", "uploaded_at", "legal_hold"]).to_pylist()
    doomed = sorted(d["doc_id"] for d in docs if d["uploaded_at"] < cutoff and not d["legal_hold"])
    chunks = [c for c in store.scan(CHUNKS, ["chunk_id", "doc_id"]).to_pylist() if c["doc_id"] in doomed]
    assert len(doomed) == 2 and chunks
    before = {t: store.count(t) for t in ("embeddings_v1", "embeddings_v2", CHUNKS, DOCUMENTS)}

    def hook(step):
        if step == kill_at:
            raise Killed(step)

    with pytest.raises(Killed):
        run_retention(s, now=AS_OF, hook=hook)
    # rows are already gone (vectors at least) and the ledger says so, with exact counts
    assert store.count("embeddings_v1") == before["embeddings_v1"] - len(chunks)
    (intent,) = [e for e in led.events("cascade.intent")]
    assert intent.actor == "retention" and intent.details["cause"] == "retention"
    assert intent.details["planned"] == {"embeddings_v1": len(chunks), "embeddings_v2": len(chunks), CHUNKS: len(chunks),
                                         DOCUMENTS: 2, "landing_files": 4}
    assert led.events("cascade.result") == []
    run_retention(s, now=AS_OF)
    results = [e.details for e in led.events("cascade.result")]
    assert results[0]["cascade_id"] == intent.details["cascade_id"] and results[0]["resumed"] is True
    # every row the killed run planned is gone, and no other
    after = {t: store.count(t) for t in before}
    assert {t: before[t] - after[t] for t in before} == {k: v for k, v in intent.details["planned"].items() if k != "landing_files"}
    from aisg_pipelines.governance.cascade import open_intents

    assert open_intents(led) == [] and led.verify_chain().ok
