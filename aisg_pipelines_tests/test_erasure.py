"""GDPR erasure end to end on a real store: two embed_versions, telemetry, exports, quarantine.

Everything is real (LanceDB in a tmp dir, the real model for v2, the real ledger). The
byte checks below grep the files themselves, independently of the code under test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pyarrow.compute as pc
import pytest

from aisg_pipelines.governance import erasure as er
from aisg_pipelines.governance.ids import subject_hash
from aisg_pipelines.governance.ledger import Ledger
from aisg_pipelines.governance.store import CHUNKS, DOCUMENTS, LanceStore

from .conftest import FIXED_NOW, env_for

TARGET = "subj-en-002"
CLOCK = lambda: FIXED_NOW  # noqa: E731


# -- fixture: a subject with data in every store ------------------------------------------
def _add_v2(s, model_path):
    from aisg_pipelines.governance.pipeline import embed_batch
    from aisg_pipelines.governance.versions import EmbedVersionSpec, VersionRegistry

    ledger = Ledger(s.ledger_url)
    store = LanceStore(s.lancedb_uri)
    v2, _ = VersionRegistry(ledger).register(EmbedVersionSpec("v2", model_path, max_seq_length=128))
    for b in ledger.batch_ids():
        embed_batch(store, v2, b)


def _add_telemetry_and_exports(s):
    from aisg_pipelines.governance import telemetry

    s.logs_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, uid in enumerate([TARGET, "subj-ko-001", TARGET, "subj-en-0021", "subj-ko-003"]):
        lines.append(json.dumps({"timestamp": "2026-11-19T10:0%d:00+00:00" % i, "level": "INFO", "message": f"search request {i}",
                                 "user_id": uid, "service": "api"}))
    (s.logs_dir / "aisg-2026-11-19.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    s.metrics_dir.mkdir(parents=True, exist_ok=True)
    m = [json.dumps({"name": "latency_ms", "value": 10 + i, "timestamp": "2026-11-19T10:00:00+00:00", "labels": {"user_id": uid}})
         for i, uid in enumerate([TARGET, "subj-ko-001"])]
    (s.metrics_dir / "aisg-2026-11-19.jsonl").write_text("\n".join(m) + "\n", encoding="utf-8")
    telemetry.ingest_all(s, now=FIXED_NOW)
    s.exports_dir.mkdir(parents=True, exist_ok=True)
    (s.exports_dir / "report.csv").write_text(f"subject,docs\n{TARGET},2\nsubj-ko-001,2\nsubj-en-0021,1\n", encoding="utf-8")


@pytest.fixture(scope="session")
def erasure_template(golden_store, model_path, tmp_path_factory):
    """Built once: the golden store plus a v2 embed_version, telemetry and an export."""
    import shutil

    from .conftest import settings_for

    root, manifest = golden_store
    tmpl = tmp_path_factory.mktemp("erasure_world")
    shutil.copytree(root / "var", tmpl / "var")
    s = settings_for(tmpl)
    _add_v2(s, model_path)
    _add_telemetry_and_exports(s)
    return tmpl, manifest


@pytest.fixture
def world(erasure_template, tmp_path):
    import shutil

    from .conftest import settings_for

    tmpl, manifest = erasure_template
    shutil.copytree(tmpl / "var", tmp_path / "var")
    return settings_for(tmp_path), manifest


def _subject_counts(s) -> dict:
    """Rows per (table, subject) counted in memory, independently of erasure.py."""
    store = LanceStore(s.lancedb_uri)
    docs = store.scan(DOCUMENTS, ["doc_id", "subject_id"]).to_pylist()
    owner = {d["doc_id"]: d["subject_id"] for d in docs}
    out: dict[str, int] = {}
    for d in docs:
        out[f"documents:{d['subject_id']}"] = out.get(f"documents:{d['subject_id']}", 0) + 1
    for c in store.scan(CHUNKS, ["doc_id", "subject_id"]).to_pylist():
        out[f"chunks:{c['subject_id']}"] = out.get(f"chunks:{c['subject_id']}", 0) + 1
    for v, t in store.embedding_tables().items():
        for r in store.scan(t, ["doc_id"]).to_pylist():
            k = f"{t}:{owner.get(r['doc_id'], 'orphan')}"
            out[k] = out.get(k, 0) + 1
    for t in ("system_logs", "metrics"):
        if store.has_table(t):
            for r in store.scan(t, ["user_id"]).to_pylist():
                out[f"{t}:{r['user_id']}"] = out.get(f"{t}:{r['user_id']}", 0) + 1
    return out


def _storage_files(s):
    for root in (Path(s.lancedb_uri), s.landing_dir, s.quarantine_dir, s.logs_dir, s.metrics_dir, s.exports_dir,
                 Path(s.ledger_url.removeprefix("sqlite:///"))):
        if root.is_file():
            yield root
        elif root.exists():
            yield from (p for p in root.rglob("*") if p.is_file())


def _grep(s, needles: list[bytes]) -> dict[bytes, list[str]]:
    import re

    found: dict[bytes, list[str]] = {}
    for p in _storage_files(s):
        data = p.read_bytes()
        for n in needles:
            # the identifier as a whole token (subj-en-0021 is another subject)
            pat = re.escape(n) + rb"(?![0-9])"
            if re.search(pat, data):
                found.setdefault(n, []).append(str(p))
    return found


def _text_needles(s, subject: str) -> list[bytes]:
    """40-byte pieces of the subject's stored and raw text that no other subject has."""
    store = LanceStore(s.lancedb_uri)
    mine, others = [], []
    for d in store.scan(DOCUMENTS, ["subject_id", "text", "file_path"]).to_pylist():
        raw = (s.landing_dir / d["file_path"]).read_bytes()
        (mine if d["subject_id"] == subject else others).extend([d["text"].encode(), raw])
    other_blob = b"\x00".join(others)
    needles = []
    for blob in mine:
        for i in range(0, max(1, len(blob) - 40), 97):
            piece = blob[i:i + 40]
            if len(piece) == 40 and piece not in other_blob and b"\n" not in piece:
                needles.append(piece)
    return needles


def _count_events(s, action):
    return len(Ledger(s.ledger_url).events(action))


# -- the main path ---------------------------------------------------------------------------
def test_erasure_removes_every_trace_and_certifies(world):
    from aisg_pipelines.governance.certificates import verify_file

    s, manifest = world
    before = _subject_counts(s)
    assert before[f"documents:{TARGET}"] == 2 and before[f"embeddings_v2:{TARGET}"] == before[f"embeddings_v1:{TARGET}"] > 0
    assert before[f"system_logs:{TARGET}"] == 2 and before[f"metrics:{TARGET}"] == 1
    needles = _text_needles(s, TARGET)
    assert len(needles) > 20
    pre = _grep(s, [TARGET.encode()])
    assert any("lancedb" in p for p in pre[TARGET.encode()])  # the grep can see it before

    intake, res = er.erase_subject(s, TARGET, requested_by="dpo@aisg", reason="Art. 17 request", clock=CLOCK)
    assert intake.accepted, intake
    (out,) = res.outcomes
    assert out.status == "certified", out.failure
    counts = out.counts
    assert counts["lancedb.documents"]["items"] == 2
    assert counts["lancedb.embeddings"]["per_version"] == {"v1": before[f"embeddings_v1:{TARGET}"], "v2": before[f"embeddings_v2:{TARGET}"]}
    assert counts["lancedb.system_logs"]["items"] == 2 and counts["lancedb.metrics"]["items"] == 1
    assert counts["exports"]["items"] == 1 and counts["logs_files"]["items"] == 2 and counts["metrics_files"]["items"] == 1
    assert counts["landing"]["items"] == 4  # 2 files + 2 sidecars

    # zero rows everywhere, other subjects exactly as before
    after = _subject_counts(s)
    assert not {k: v for k, v in after.items() if k.endswith(":" + TARGET)}
    assert {k: v for k, v in after.items()} == {k: v for k, v in before.items() if not k.endswith(":" + TARGET)}
    # no file under storage holds the identifier or any of their text (own grep)
    assert _grep(s, [TARGET.encode()]) == {}
    assert _grep(s, needles) == {}
    assert (s.exports_dir / "report.csv").read_text() == "subject,docs\nsubj-ko-001,2\nsubj-en-0021,1\n"
    assert "subj-en-0021" in (s.logs_dir / "aisg-2026-11-19.jsonl").read_text()
    # one table version left per table, no transaction file holding the id (checked by the grep too)
    store = LanceStore(s.lancedb_uri)
    assert all(len(store.dataset(t).versions()) == 1 for t in store.table_names())

    # the certificate verifies offline; a changed byte fails
    row = er.get_request(Ledger(s.ledger_url), out.request_id)
    cert_path = Path(row["certificate_path"])
    pub = Path(row["progress"]["public_key_path"])
    assert verify_file(cert_path, pub).ok
    cert = json.loads(cert_path.read_text())
    from aisg_pipelines.governance.secrets import load_or_create_salt

    assert cert["subject_hash"] == subject_hash(TARGET, load_or_create_salt(s))
    assert TARGET not in cert_path.read_text()
    assert cert["deadline_met"] is True and cert["verification"]["byte_matches"] == 0 and cert["verification"]["bytes_scanned"] > 0
    assert cert["content_commitment"]["items"] == sum(c["items"] for c in counts.values())
    assert cert["ledger_anchor"]["event_hash"] == Ledger(s.ledger_url).events("erasure.verified")[-1].event_hash
    assert cert_path.with_suffix(".html").exists() and cert_path.with_suffix(".pdf").read_bytes()[:4] == b"%PDF"
    data = bytearray(cert_path.read_bytes())
    i = data.index(b'"totals":{"items":') + len(b'"totals":{"items":')
    data[i] = ord("9") if data[i] != ord("9") else ord("8")
    tampered = cert_path.with_name("tampered.json")
    tampered.write_bytes(bytes(data))
    v = verify_file(tampered, pub)
    assert not v.ok and "altered" in v.message

    # ledger: status, denylist, chain intact, no raw id anywhere in it
    led = Ledger(s.ledger_url)
    assert row["status"] == "certified" and row["subject_hash"] in led.denylisted_subject_hashes()
    assert led.verify_chain().ok
    assert TARGET.encode() not in Path(s.ledger_url.removeprefix("sqlite:///")).read_bytes()
    assert not list(er.processing_dir(s).glob("*.json"))
    assert _count_events(s, "erasure.certified") == 1


def test_hostile_and_prefix_identifiers_erase_nothing_of_anyone_else(world):
    s, _ = world
    before = _subject_counts(s)
    hostile = "x' OR '1'='1"
    intake, res = er.erase_subject(s, hostile, requested_by="attacker", clock=CLOCK)
    assert not intake.accepted and intake.code == "hostile_identifier" and res is None
    row = er.get_request(Ledger(s.ledger_url), intake.request_id)
    assert row["status"] == "failed" and "hostile_identifier" in row["failure"]
    # even bypassing validation, the engine treats the identifier as data: nothing matches
    found, _ = er.discover(s, LanceStore(s.lancedb_uri), {hostile: "r1", "%": "r2", "subj-en-00": "r3"})
    assert all(not m.items for m in found.values())
    # a valid identifier that is a prefix of real ones erases nothing and still verifies clean
    intake, res = er.erase_subject(s, "subj-en-00", requested_by="dpo", clock=CLOCK)
    (out,) = res.outcomes
    assert out.status == "certified", out.failure
    assert sum(c["items"] for c in out.counts.values()) == 0
    assert _subject_counts(s) == before
    assert "subj-en-002" in (s.exports_dir / "report.csv").read_text()


@pytest.mark.parametrize("step", er.STEPS)
def test_killed_after_each_step_then_rerun_certifies_exactly_once(world, step):
    s, _ = world
    before = _subject_counts(s)

    class Killed(Exception):
        pass

    def hook(at):
        if at == step:
            raise Killed(at)

    with pytest.raises(Killed):
        er.erase_subject(s, TARGET, requested_by="dpo", request_id="req-kill", hook=hook, clock=CLOCK)
    res = er.process_requests(s, clock=CLOCK)  # what the next sensor tick / run does
    led = Ledger(s.ledger_url)
    row = er.get_request(led, "req-kill")
    assert row["status"] == "certified", row["failure"]
    assert _count_events(s, "erasure.certified") == 1
    assert len(list(er.certificates_dir(s).glob("*.json"))) == 1
    assert not list(er.processing_dir(s).glob("*"))
    assert {k: v for k, v in _subject_counts(s).items()} == {k: v for k, v in before.items() if not k.endswith(":" + TARGET)}
    assert row["progress"]["counts"]["lancedb.documents"]["items"] == 2  # counts survive the kill
    # running again does nothing
    er.process_requests(s, ["req-kill"], clock=CLOCK)
    assert _count_events(s, "erasure.certified") == 1
    assert led.verify_chain().ok
    del res


def test_sigkill_mid_run_then_rerun(world, tmp_path):
    s, _ = world
    er.erase_subject(s, TARGET, requested_by="dpo", request_id="req-sigkill", run=False, clock=CLOCK)
    script = textwrap.dedent(
        """
        import os, signal
        from aisg_pipelines.governance import erasure as er
        from aisg_pipelines.settings import Settings
        def hook(step):
            if step == "purged":
                os.kill(os.getpid(), signal.SIGKILL)
        er.process_requests(Settings.from_env(), ["req-sigkill"], hook=hook)
        """
    )
    env = {**os.environ, **env_for(s)}
    p = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=300)
    assert p.returncode == -signal.SIGKILL, p.stderr.decode()[-2000:]
    row = er.get_request(Ledger(s.ledger_url), "req-sigkill")
    assert row["status"] == "in_progress" and "purged" in row["progress"]["steps"]
    er.process_requests(s, clock=CLOCK)
    row = er.get_request(Ledger(s.ledger_url), "req-sigkill")
    assert row["status"] == "certified" and _count_events(s, "erasure.certified") == 1
    assert _grep(s, [TARGET.encode()]) == {}


def test_duplicate_requests_do_not_run_twice(world):
    """Only the same request_id is a duplicate; a new request for a subject erased before is
    processed and gets its own certificate (issue 12 finding 7)."""
    s, _ = world
    intake, res = er.erase_subject(s, TARGET, requested_by="dpo", request_id="req-1", clock=CLOCK)
    assert res.outcomes[0].status == "certified"
    same, res3 = er.erase_subject(s, "subj-ko-001", requested_by="dpo", request_id="req-1", clock=CLOCK)
    assert not same.accepted and same.code == "duplicate_request" and res3 is None
    again, res2 = er.erase_subject(s, TARGET, requested_by="dpo", request_id="req-2", clock=CLOCK)
    assert again.accepted and res2.outcomes[0].status == "certified", res2.outcomes[0].failure
    er.process_requests(s, ["req-1", "req-2"], clock=CLOCK)
    led = Ledger(s.ledger_url)
    assert _count_events(s, "erasure.certified") == 2 and _count_events(s, "erasure.started") == 2
    r1, r2 = er.get_request(led, "req-1"), er.get_request(led, "req-2")
    assert r1["status"] == r2["status"] == "certified" and r1["certificate_id"] != r2["certificate_id"]
    assert r1["subject_hash"] == r2["subject_hash"]
    assert sorted(p.name for p in er.certificates_dir(s).glob("*.json")) == sorted([f"{r1['certificate_id']}.json", f"{r2['certificate_id']}.json"])
    assert _subject_counts(s)["documents:subj-ko-001"] == 2  # req-1 reused for another subject ran nothing


def test_legal_hold_blocks_erasure(world):
    s, _ = world
    intake, res = er.erase_subject(s, "subj-ko-003", requested_by="dpo", clock=CLOCK)
    (out,) = res.outcomes
    assert out.status == "failed" and out.failure.startswith("legal_hold")
    assert _subject_counts(s)["documents:subj-ko-003"] == 2


def test_batch_of_requests_in_one_run(world):
    s, _ = world
    before = _subject_counts(s)
    for subj in (TARGET, "subj-ko-001"):
        er.erase_subject(s, subj, requested_by="dpo", run=False, clock=CLOCK)
    res = er.process_requests(s, clock=CLOCK)
    assert [o.status for o in res.outcomes] == ["certified", "certified"]
    after = _subject_counts(s)
    assert after == {k: v for k, v in before.items() if not k.endswith((":" + TARGET, ":subj-ko-001"))}
    assert _grep(s, [TARGET.encode(), b"subj-ko-001"]) == {}


def test_sla_status_with_injected_clock(world):
    s, _ = world
    led = Ledger(s.ledger_url)
    er.erase_subject(s, TARGET, requested_by="dpo", request_id="old-open", run=False, clock=lambda: FIXED_NOW - timedelta(days=31))
    er.erase_subject(s, "subj-ko-001", requested_by="dpo", request_id="young-open", run=False, clock=lambda: FIXED_NOW - timedelta(days=3))
    st = er.sla_status(led, FIXED_NOW)
    assert not st.ok and st.overdue == ["old-open"]
    assert {r["request_id"]: r["age_days"] for r in st.open} == {"old-open": 31.0, "young-open": 3.0}
    er.process_requests(s, ["old-open"], clock=CLOCK)
    st = er.sla_status(led, FIXED_NOW)
    assert st.ok and [r["request_id"] for r in st.open] == ["young-open"]
    assert er.sla_status(led, FIXED_NOW + timedelta(days=28)).overdue == ["young-open"]


def test_pattern_scanner_finds_every_occurrence():
    import random

    rnd = random.Random(7)
    blob = bytearray(rnd.randbytes(3_000_000))
    pats = [b"subj-en-002", b"A" * 40, rnd.randbytes(32), b"xy", b"0123456789abcdef" * 4]
    where = {}
    for p in pats:
        pos = rnd.randrange(0, len(blob) - 100)
        blob[pos:pos + len(p)] = p
        where[p] = pos
    sc = er.PatternScanner(pats)
    hits = {(sc.patterns[i], off) for i, off in sc.find(bytes(blob))}
    for p, pos in where.items():
        assert (p, pos) in hits
    # exact agreement with bytes.find for the long patterns
    for p in pats:
        if len(p) >= 8:
            expect, i = set(), bytes(blob).find(p)
            while i != -1:
                expect.add(i)
                i = bytes(blob).find(p, i + 1)
            assert {off for q, off in hits if q == p} == expect


def test_sensor_rejects_bad_requests_and_runs_good_ones(world, code_location_env):
    import dagster as dg

    from aisg_pipelines.local_runner import tick_sensor

    from .conftest import fresh_defs

    s, _ = world
    code_location_env(s)
    inbox = s.erasure_inbox
    inbox.mkdir(parents=True, exist_ok=True)
    files = {
        "a-good.json": {"request_id": "inbox-good", "subject_id": TARGET, "requested_by": "dpo", "reason": "Art. 17"},
        "b-good2.json": {"request_id": "inbox-good-2", "subject_id": "subj-ko-001", "requested_by": "dpo"},
        "dup.json": {"request_id": "inbox-good-2", "subject_id": TARGET, "requested_by": "dpo"},  # same id, another subject
        "missing.json": {"requested_by": "dpo"},
        "unknown.json": {"subject_id": "subj-ko-001", "requested_by": "dpo", "drop_table": True},
        "empty.json": {"subject_id": "  ", "requested_by": "dpo"},
        "hostile.json": {"subject_id": "x' OR '1'='1", "requested_by": "dpo"},
    }
    for name, body in files.items():
        (inbox / name).write_text(json.dumps(body))
    (inbox / "malformed.json").write_text('{"subject_id": "subj-ko-001", ')
    instance = dg.DagsterInstance.get()
    defs = fresh_defs()
    out = tick_sensor(defs, instance, "erasure_inbox_sensor")
    assert len(out.launched) == 1 and out.all_succeeded
    run = out.launched[0]
    assert run.tags["aisg/job"] == "erasure" and run.tags["aisg/erasure_requests"] == "inbox-good,inbox-good-2"
    led = Ledger(s.ledger_url)
    assert er.get_request(led, "inbox-good")["status"] == "certified"
    assert er.get_request(led, "inbox-good-2")["status"] == "certified"
    rejected = {p.name: p.with_name(p.name + ".reason.txt").read_text().splitlines()[0] for p in (inbox / "rejected").glob("*.json")}
    assert rejected == {
        "dup.json": "reason: duplicate_request", "missing.json": "reason: missing_subject", "unknown.json": "reason: unknown_fields",
        "empty.json": "reason: empty_identifier", "hostile.json": "reason: hostile_identifier", "malformed.json": "reason: malformed_json",
    }
    failures = sorted(r["failure"].split(":")[1].strip() for r in er.list_requests(led, ["failed"]))
    assert failures == sorted(["missing_subject", "unknown_fields", "empty_identifier", "hostile_identifier", "malformed_json"])
    assert [e.details["code"] for e in led.events("erasure.rejected") if e.details["request_id"] == "inbox-good-2"] == ["duplicate_request"]
    # issue 12 finding 8: rejected/ keeps the salted hash, never the raw subject id
    from aisg_pipelines.governance.secrets import load_or_create_salt

    for p in (inbox / "rejected").iterdir():
        data = p.read_bytes()
        assert TARGET.encode() not in data and b"subj-ko-001" not in data, p.name
    dup = json.loads((inbox / "rejected" / "dup.json").read_text())
    assert dup == {"request_id": "inbox-good-2", "subject_hash": subject_hash(TARGET, load_or_create_salt(s)),
                   "subject_id": "<redacted: salted hash in subject_hash>", "requested_by": "dpo"}
    assert json.loads((inbox / "rejected" / "malformed.json").read_text())["unreadable"] is True
    assert not list(inbox.glob("*.json"))
    # the run's metadata shows the certificates and summary
    mat = instance.get_latest_materialization_event(dg.AssetKey("erasure_requests")).asset_materialization
    assert mat.metadata["certified"].value == 2 and "certified" in mat.metadata["summary"].value
    assert {c["request_id"] for c in mat.metadata["certificates"].value} == {"inbox-good", "inbox-good-2"}
    checks = instance.get_latest_asset_check_evaluation_record if hasattr(instance, "get_latest_asset_check_evaluation_record") else None
    del checks
    # next tick: nothing pending, nothing launched; a re-dropped identical request is a duplicate
    out2 = tick_sensor(defs, instance, "erasure_inbox_sensor")
    assert not out2.launched and out2.skip_reason
    (inbox / "again.json").write_text(json.dumps(files["a-good.json"]))
    out3 = tick_sensor(defs, instance, "erasure_inbox_sensor")
    assert not out3.launched and (inbox / "rejected" / "again.json").exists()
    assert _count_events(s, "erasure.certified") == 2


def test_sla_asset_check_fails_on_overdue_request(world, code_location_env):
    import dagster as dg

    from aisg_pipelines.defs.erasure import erasure_sla
    from aisg_pipelines.defs.erasure.assets import ErasureClockResource
    from aisg_pipelines.defs.resources import GovernanceResource

    s, _ = world
    er.erase_subject(s, TARGET, requested_by="dpo", request_id="late", run=False, clock=lambda: FIXED_NOW - timedelta(days=40))
    governance = GovernanceResource.for_settings(s)
    ctx = dg.build_asset_check_context() if hasattr(dg, "build_asset_check_context") else None
    res = erasure_sla(ctx, governance=governance, erasure_clock=ErasureClockResource(now_iso=FIXED_NOW.isoformat()))
    assert not res.passed and res.metadata["overdue"].value == ["late"]
    res = erasure_sla(ctx, governance=governance, erasure_clock=ErasureClockResource(now_iso=(FIXED_NOW - timedelta(days=20)).isoformat()))
    assert res.passed


def test_cli_erase_and_verify_certificate(world, monkeypatch):
    from click.testing import CliRunner

    from aisg_pipelines.cli import main

    s, _ = world
    for k, v in env_for(s).items():
        monkeypatch.setenv(k, v)
    r = CliRunner().invoke(main, ["erase", "--subject-id", TARGET, "--requested-by", "dpo@aisg", "--reason", "Art. 17", "--request-id", "cli-1"])
    assert r.exit_code == 0, r.output
    assert "cli-1: certified" in r.output
    cert = er.get_request(Ledger(s.ledger_url), "cli-1")["certificate_path"]
    r = CliRunner().invoke(main, ["verify-certificate", cert])
    assert r.exit_code == 0 and r.output.startswith("VALID"), r.output
    r = CliRunner().invoke(main, ["erase", "--subject-id", "x' OR '1'='1", "--requested-by", "dpo"])
    assert r.exit_code == 2 and "hostile_identifier" in r.output
    r = CliRunner().invoke(main, ["erase", "--subject-id", "subj-ko-001", "--requested-by", "dpo", "--no-run", "--request-id", "cli-2"])
    assert r.exit_code == 0 and er.get_request(Ledger(s.ledger_url), "cli-2")["status"] == "received"
    r = CliRunner().invoke(main, ["erasure-status"])
    assert "cli-2" in r.output and "SLA: OK" in r.output


def test_pattern_scanner_many_similar_identifiers():
    import random

    rnd = random.Random(3)
    ids = [f"user-{i:06d}".encode() for i in range(0, 5000, 50)]  # 100 ids sharing prefixes
    blob = bytearray(b"".join(f"user-{i:06d}".encode() for i in range(5000)))  # an id column, like Lance stores it
    blob += rnd.randbytes(500_000)
    targets = {}
    for p in ids[:20]:
        pos = rnd.randrange(len(blob) - 500_000, len(blob) - 20)
        blob[pos:pos + len(p)] = p
        targets[p] = pos
    sc = er.PatternScanner(ids + [rnd.randbytes(48) for _ in range(50)])
    hits = {(sc.patterns[i], off) for i, off in sc.find(bytes(blob))}
    data = bytes(blob)
    for p in ids:
        expect, i = set(), data.find(p)
        while i != -1:
            expect.add(i)
            i = data.find(p, i + 1)
        assert {off for q, off in hits if q == p} == expect, p
    assert all((p, pos) in hits for p, pos in targets.items())


def test_trace_in_an_uncommitted_write_fails_verification_until_the_grace_period_passes(world, monkeypatch):
    """A writer killed before its commit left a data file with the subject's chunks. The purge
    keeps it while it is younger than the grace period (it could be a commit in progress), so
    the byte scan finds it and the request fails, naming the cause; resubmitted once the file
    is past the grace period, the purge removes it and the request is certified."""
    from lance.fragment import LanceFragment

    s, _ = world
    store = LanceStore(s.lancedb_uri)
    ds = store.dataset(CHUNKS)
    rows = ds.to_table(filter=None)
    rows = rows.filter(pc.equal(rows["subject_id"], TARGET))
    assert rows.num_rows > 0
    LanceFragment.create(ds.uri, rows, schema=ds.schema)  # written, never committed
    assert len(store.unreferenced_files(CHUNKS)) == 1

    monkeypatch.setenv("AISG_PURGE_UNVERIFIED_GRACE_SECONDS", "900")
    _, res = er.erase_subject(s, TARGET, requested_by="dpo", request_id="req-grace-1", clock=CLOCK)
    (out,) = res.outcomes
    assert out.status == "failed", out
    assert "lancedb/chunks.lance/data/" in out.failure and "younger than AISG_PURGE_UNVERIFIED_GRACE_SECONDS" in out.failure
    assert _subject_counts(s).get(f"chunks:{TARGET}", 0) == 0  # the committed rows are gone already

    monkeypatch.setenv("AISG_PURGE_UNVERIFIED_GRACE_SECONDS", "0")  # the grace period has passed
    _, res2 = er.erase_subject(s, TARGET, requested_by="dpo", request_id="req-grace-2", clock=CLOCK)
    (out2,) = res2.outcomes
    assert out2.status == "certified", out2.failure
    assert store.unreferenced_files(CHUNKS) == []
    assert _grep(s, [TARGET.encode()]).get(TARGET.encode(), []) == []


# -- issue 12 ---------------------------------------------------------------------------------
def _files_under(*roots: Path) -> dict[str, bytes]:
    out = {}
    for root in roots:
        for p in sorted(root.rglob("*")) if root.exists() else []:
            if p.is_file() and er.CERT_SUBDIR not in p.parts:
                out[str(p)] = p.read_bytes()
    return out


def test_identifiers_that_are_ordinary_tokens_touch_no_line_file_or_export(world):
    """Finding 1: `INFO` (a log level), `prod` (a metric label value and name part) and `v2`
    (an embed_version, in the Prometheus textfile and in exports) are valid subject ids; their
    erasure matches structured subject fields only, so it deletes nothing of anyone and certifies."""
    from aisg_pipelines.governance import telemetry
    from aisg_pipelines.governance.reports import write_prometheus_textfile

    s, _ = world
    with (s.metrics_dir / "aisg-2026-11-19.jsonl").open("a", encoding="utf-8") as f:
        for i, labels in enumerate([{"env": "prod", "user_id": "subj-ko-001"}, {"env": "prod"}, {"stage": "v2", "service": "INFO"}]):
            f.write(json.dumps({"name": "prod_requests_total", "value": i, "timestamp": "2026-11-19T11:00:00+00:00", "labels": labels}) + "\n")
    with (s.logs_dir / "aisg-2026-11-19.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps({"timestamp": "2026-11-19T11:00:00+00:00", "level": "INFO", "message": "deployed v2 to prod", "service": "prod"}) + "\n")
    telemetry.ingest_all(s, now=FIXED_NOW)
    prom = write_prometheus_textfile(s, now=FIXED_NOW)
    (s.exports_dir / "summary.html").write_text("<p>active embed_version v2 in prod; level INFO</p>\n", encoding="utf-8")
    (s.exports_dir / "versions.csv").write_text("version,env\nv2,prod\nINFO,prod\n", encoding="utf-8")
    assert b"v2" in prom.read_bytes() or b"v1" in prom.read_bytes()
    before_rows = _subject_counts(s)
    before_files = _files_under(s.logs_dir, s.metrics_dir, s.exports_dir, s.landing_dir, s.quarantine_dir)
    n_log_lines = (s.logs_dir / "aisg-2026-11-19.jsonl").read_bytes().count(b"\n")
    assert n_log_lines == 6 and before_rows["system_logs:None"] == 1

    for subject in ("INFO", "prod", "v2"):
        intake, res = er.erase_subject(s, subject, requested_by="dpo", request_id=f"tok-{subject}", clock=CLOCK)
        assert intake.accepted, intake
        (out,) = res.outcomes
        assert out.status == "certified", out.failure
        assert sum(c["items"] for c in out.counts.values()) == 0
        assert res.rows_deleted == {} or sum(res.rows_deleted.values()) == 0

    assert _subject_counts(s) == before_rows
    after_files = _files_under(s.logs_dir, s.metrics_dir, s.exports_dir, s.landing_dir, s.quarantine_dir)
    # byte for byte: no line, textfile or export rewritten or removed (new files, e.g. ledger checkpoints, may appear)
    assert {k: after_files.get(k) for k in before_files} == before_files
    assert prom.exists()


def test_erasure_run_by_the_sensor_leaves_no_empty_ingest_batches_partition(world, code_location_env):
    """Finding 6: the batches the erasure empties lose their dynamic partition, so the next
    orphan report has no partition_without_data (and keeps every other key)."""
    import dagster as dg

    from aisg_pipelines.governance.orphans import OrphanScope, detect_orphans
    from aisg_pipelines.local_runner import tick_sensor

    from .conftest import fresh_defs

    s, _ = world
    code_location_env(s)
    instance = dg.DagsterInstance.get()
    led = Ledger(s.ledger_url)
    store = LanceStore(s.lancedb_uri)
    docs = store.scan(DOCUMENTS, ["doc_id", "subject_id", "batch_id"]).to_pylist()
    instance.add_dynamic_partitions("ingest_batches", sorted({d["batch_id"] for d in docs}))
    target_batches = sorted({d["batch_id"] for d in docs if d["subject_id"] == TARGET})
    shared = {d["batch_id"] for d in docs if d["subject_id"] != TARGET}
    emptied = sorted(set(target_batches) - shared)
    assert emptied  # one document per upload day in the sample
    keys_before = sorted(instance.get_dynamic_partitions("ingest_batches"))
    scope = OrphanScope.from_settings(s)
    assert detect_orphans(scope, keys_before).counts["partition_without_data"] == 0

    before_paths = store.scan(DOCUMENTS, ["file_path", "subject_id"]).to_pylist()
    import sqlalchemy as sa

    from aisg_pipelines.governance.ledger import ingest_batch_files

    with led.engine.connect() as c:
        before_mtimes = {r.rel_path: r.mtime_ns for r in c.execute(sa.select(ingest_batch_files))}
    assert all(r["file_path"] in before_mtimes for r in before_paths)
    s.erasure_inbox.mkdir(parents=True, exist_ok=True)
    (s.erasure_inbox / "r.json").write_text(json.dumps({"request_id": "p-1", "subject_id": TARGET, "requested_by": "dpo"}))
    out = tick_sensor(fresh_defs(), instance, "erasure_inbox_sensor")
    assert len(out.launched) == 1 and out.all_succeeded
    assert er.get_request(led, "p-1")["status"] == "certified"
    keys_after = sorted(instance.get_dynamic_partitions("ingest_batches"))
    assert keys_after == sorted(set(keys_before) - set(emptied))
    report = detect_orphans(OrphanScope.from_settings(s), keys_after)
    assert report.counts["partition_without_data"] == 0 and report.cleanable_total == 0
    # the ledger keeps no batch-file record of the erased uploads (finding 8)
    assert not set(emptied) & set(led.batch_ids())
    paths = [d for d in (json.dumps(led.batch_files(b)) for b in led.batch_ids())]
    assert not any(f"{d['doc_id']}." in "".join(paths) for d in docs if d["subject_id"] == TARGET)
    erased_paths = [r["file_path"] for r in before_paths if r["subject_id"] == TARGET]
    assert len(erased_paths) == 2 and led.already_batched([(p, m) for p, m in before_mtimes.items() if p in erased_paths]) == {}
    ledger_bytes = Path(s.ledger_url.removeprefix("sqlite:///")).read_bytes()
    assert not [p for p in erased_paths if p.encode() in ledger_bytes]  # freed pages are zeroed (secure_delete)
    (intent,) = [e.details for e in led.events("cascade.intent")]
    (result,) = [e.details for e in led.events("cascade.result")]
    assert intent["request_ids"] == ["p-1"] and result["partitions_deleted"] == len(emptied)


def test_in_progress_request_of_a_dead_run_is_relaunched_by_the_next_tick(world, code_location_env):
    """Finding 5: a sensor-launched run killed mid-way stays STARTED; the next tick sees that its
    worker is gone, marks the run failed and relaunches the request, which is certified. A run
    whose worker is alive keeps its requests."""
    import dagster as dg
    from dagster._core.utils import make_new_run_id

    from aisg_pipelines.defs.erasure.sensors import REQUESTS_TAG, WORKER_TAG, worker_identity
    from aisg_pipelines.local_runner import tick_sensor

    from .conftest import fresh_defs

    s, _ = world
    code_location_env(s)
    instance = dg.DagsterInstance.get()

    class Killed(Exception):
        pass

    def kill(step):
        if step == "discovered":
            raise Killed(step)

    er.erase_subject(s, TARGET, requested_by="dpo", request_id="dead-1", run=False, clock=CLOCK)
    with pytest.raises(Killed):
        er.process_requests(s, ["dead-1"], hook=kill, clock=CLOCK)
    led = Ledger(s.ledger_url)
    assert er.get_request(led, "dead-1")["status"] == "in_progress"
    # the run the sensor launched for it, whose worker process has exited
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    dead = dg.DagsterRun(job_name="erasure", run_id=make_new_run_id(), status=dg.DagsterRunStatus.STARTED,
                         tags={"aisg/job": "erasure", REQUESTS_TAG: "dead-1", WORKER_TAG: f"{worker_identity().split(':')[0]}:{p.pid}:1"})
    instance.add_run(dead)
    # a live worker (this process) keeps its requests in flight: nothing is launched
    live = dg.DagsterRun(job_name="erasure", run_id=make_new_run_id(), status=dg.DagsterRunStatus.STARTED,
                         tags={"aisg/job": "erasure", REQUESTS_TAG: "dead-1", WORKER_TAG: worker_identity()})
    instance.add_run(live)
    defs = fresh_defs()
    out = tick_sensor(defs, instance, "erasure_inbox_sensor")
    assert not out.launched and out.skip_reason
    assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
    instance.report_run_failed(instance.get_run_by_id(live.run_id))  # now that one ends too
    out = tick_sensor(defs, instance, "erasure_inbox_sensor")
    assert len(out.launched) == 1 and out.all_succeeded
    assert out.launched[0].tags[REQUESTS_TAG] == "dead-1"
    assert er.get_request(led, "dead-1")["status"] == "certified"
    assert _count_events(s, "erasure.certified") == 1
    assert instance.get_run_by_id(out.launched[0].run_id).tags[WORKER_TAG].split(":")[1] == str(os.getpid())


def test_run_monitoring_is_on_in_both_instance_files(tmp_path, monkeypatch):
    import shutil

    import dagster as dg
    import yaml

    root = Path(__file__).resolve().parent.parent
    for f in (root / "dagster.yaml", root / "deploy" / "dagster.yaml"):
        cfg = yaml.safe_load(f.read_text())
        assert cfg["run_monitoring"]["enabled"] is True, f
        assert cfg["run_monitoring"]["start_timeout_seconds"] > 0 and cfg["run_monitoring"]["max_runtime_seconds"] > 0, f
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(root / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        assert instance.run_monitoring_enabled


def test_sample_manifest_keeps_only_the_salted_hash_after_erasure(world):
    """Finding 8 (demo): the sample manifest named the erased subject; afterwards it holds the
    salted hash only, and the other subjects' entries are unchanged."""
    from aisg_pipelines.governance.secrets import load_or_create_salt

    s, manifest = world
    path = s.data_dir / "sample_manifest.json"
    path.write_text(json.dumps(manifest, indent=2, default=str))
    assert TARGET.encode() in path.read_bytes()
    _, res = er.erase_subject(s, TARGET, requested_by="dpo", request_id="man-1", clock=CLOCK)
    assert res.outcomes[0].status == "certified", res.outcomes[0].failure
    after = json.loads(path.read_text())
    assert TARGET.encode() not in path.read_bytes()
    h = subject_hash(TARGET, load_or_create_salt(s))
    mine = [d for d in after["documents"] if d.get("subject_hash") == h]
    assert len(mine) == 2 and all(d["subject_id"] is None and d["erased"] is True for d in mine)
    (subj,) = [x for x in after["subjects"] if x.get("subject_hash") == h]
    assert subj["subject_id"] is None
    assert [d for d in after["documents"] if d.get("subject_hash") != h] == [d for d in json.loads(json.dumps(manifest, default=str))["documents"] if d["subject_id"] != TARGET]
    assert res.files["sample_manifest_fields_redacted"] == 3


def test_another_subjects_chunks_under_a_taken_over_doc_id_are_never_erased(world):
    """Finding 3 (erasure side): if a doc_id was taken over (documents row now of TARGET, chunks
    of subj-ko-001 still under it), erasing TARGET deletes nothing of subj-ko-001."""
    import pyarrow as pa

    from aisg_pipelines.governance.ids import chunk_id_for
    from aisg_pipelines.governance.store import CHUNKS_SCHEMA

    s, _ = world
    store = LanceStore(s.lancedb_uri)
    doc = next(r for r in store.scan(DOCUMENTS, ["doc_id", "subject_id"]).to_pylist() if r["subject_id"] == TARGET)["doc_id"]
    victim_rows = [r for r in store.scan(CHUNKS, CHUNKS_SCHEMA.names).to_pylist() if r["subject_id"] == "subj-ko-001"][:2]
    planted = []
    for i, r in enumerate(victim_rows):
        r = dict(r, doc_id=doc, chunk_id=chunk_id_for(doc, 900 + i))
        planted.append(r)
    store.append(CHUNKS, CHUNKS_SCHEMA, pa.Table.from_pylist(planted, schema=CHUNKS_SCHEMA))
    for t in store.embedding_tables().values():
        schema = store.dataset(t).schema
        vec = store.scan(t, schema.names).to_pylist()[:2]
        store.append(t, schema, pa.Table.from_pylist([dict(v, doc_id=doc, chunk_id=p["chunk_id"]) for v, p in zip(vec, planted)], schema=schema))
    before = _subject_counts(s)
    _, res = er.erase_subject(s, TARGET, requested_by="dpo", request_id="takeover-1", clock=CLOCK)
    (out,) = res.outcomes
    assert out.status == "certified", out.failure
    after = _subject_counts(s)
    assert after["chunks:subj-ko-001"] == before["chunks:subj-ko-001"]
    kept = {p["chunk_id"] for p in planted}
    for t in store.embedding_tables().values():
        assert kept <= set(store.scan(t, ["chunk_id"])["chunk_id"].to_pylist()), t
    assert kept <= set(store.scan(CHUNKS, ["chunk_id"])["chunk_id"].to_pylist())
