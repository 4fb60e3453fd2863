"""GDPR Art. 15/20 access exports (issue 17) on the real sample store: exactly one subject's data,
signed, verifiable, rejected like erasure, an honest empty export, the 30-day SLA and the report."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from pathlib import Path

import pytest

from aisg_pipelines.governance import access as ac
from aisg_pipelines.governance import erasure as er
from aisg_pipelines.governance.ledger import Ledger
from aisg_pipelines.governance.store import DOCUMENTS, LanceStore

from .conftest import FIXED_NOW, env_for


def _cli(s, monkeypatch, *args):
    from click.testing import CliRunner

    from aisg_pipelines.cli import main

    for k, v in env_for(s).items():
        monkeypatch.setenv(k, v)
    return CliRunner().invoke(main, list(args))


def _add_telemetry(s, subjects):
    from aisg_pipelines.governance import telemetry

    s.logs_dir.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"timestamp": f"2026-11-19T10:0{i}:00+00:00", "level": "INFO", "message": f"search {i}", "user_id": u, "service": "api"})
             for i, u in enumerate(subjects)]
    (s.logs_dir / "aisg-2026-11-19.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    telemetry.ingest_all(s, now=FIXED_NOW)


def test_export_holds_exactly_one_subjects_data_signed_and_verifiable(populated_settings, monkeypatch):
    s, manifest = populated_settings
    subjects = [x["subject_id"] for x in manifest["subjects"]]
    target, others = subjects[1], [x for x in subjects if x != subjects[1]]
    _add_telemetry(s, [target, others[0], target])
    store = LanceStore(s.lancedb_uri)
    stored_docs = {r["doc_id"]: r["subject_id"] for r in store.scan(DOCUMENTS, ["doc_id", "subject_id"]).to_pylist()}

    r = _cli(s, monkeypatch, "access-export", "--subject-id", target, "--requested-by", "dpo@aisg", "--reason", "Art. 15", "--request-id", "acc-1")
    assert r.exit_code == 0, r.output
    row = ac.get_request(Ledger(s.ledger_url), "acc-1")
    assert row.status == "delivered"
    path = ac.exports_root(s) / row.export_id / "export.json"
    assert row.export_path == str(path)
    data = path.read_bytes()
    doc = json.loads(data)

    # against the sample manifest: exactly the subject's documents that the store holds, and nothing of anyone else
    mine = next(x for x in manifest["subjects"] if x["subject_id"] == target)
    expected = {d for d in mine["doc_ids"] if d in stored_docs}
    assert expected and {d["doc_id"] for d in doc["documents"]} == expected
    other_docs = {d["doc_id"] for d in manifest["documents"] if d["subject_id"] != target}
    for d in doc["documents"]:
        assert d["text_scrubbed"] and d["chunks"] and d["embed_versions"] == ["v1"]
        sidecar = next(u for u in d["upload"] if u["kind"] == "sidecar")
        assert sidecar["metadata"]["subject_id"] == target
        up = next(x for x in manifest["documents"] if x["doc_id"] == d["doc_id"])
        assert d["retention"]["policy"] == "user_content" and d["retention"]["days"] == 180
        if not up["legal_hold"]:
            assert d["retention"]["deletes_at"][:10] == (ac._parse_ts(d["uploaded_at"]) + timedelta(days=180)).date().isoformat()
    assert [x["record"]["user_id"] for x in doc["records"]] == [target, target]
    assert all(x["retention"]["policy"] == "system_logs" for x in doc["records"])
    assert doc["ledger_events"] and all(e["retention"]["days"] == 2557 for e in doc["ledger_events"])
    assert doc["export_retention"]["policy"] == "access_exports" and doc["export_retention"]["deletes_at"]
    for f in sorted(path.parent.iterdir()):
        if f.suffix in (".json", ".html"):
            body = f.read_bytes()
            for o in others + sorted(other_docs):
                assert o.encode() not in body, (f.name, o)
    assert {f.name for f in path.parent.iterdir()} == {"export.json", "export.en.html", "export.ko.html", "export.en.pdf", "export.ko.pdf"}
    assert "정보주체" in (path.parent / "export.ko.html").read_text(encoding="utf-8")
    assert (path.parent / "export.ko.pdf").read_bytes().startswith(b"%PDF")

    # the JSON Schema in docs/ accepts it
    import jsonschema

    from aisg_pipelines.governance.access import SCHEMA_FILE

    jsonschema.validate(doc, json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))

    # verify-certificate: VALID and anchored; one changed byte fails
    r = _cli(s, monkeypatch, "verify-certificate", str(path))
    assert r.exit_code == 0 and r.output.startswith("VALID") and "ledger anchor OK" in r.output, r.output
    i = data.index(b'"text_scrubbed":"') + len(b'"text_scrubbed":"')
    bad = path.with_name("tampered.json")
    bad.write_bytes(data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:])
    r = _cli(s, monkeypatch, "verify-certificate", str(bad), "--offline")
    assert r.exit_code == 1 and "INVALID" in r.output
    bad.unlink()

    # an erasure of the subject removes its access export (it holds the subject's data) and verifies clean
    intake, res = er.erase_subject(s, target, requested_by="dpo", clock=lambda: FIXED_NOW)
    assert res.outcomes[0].status == "certified", res.outcomes[0].failure
    assert not path.parent.exists() or not any(path.parent.iterdir())


def test_hostile_and_unknown_ids_are_rejected_exactly_as_erasure_rejects_them(populated_settings, monkeypatch):
    s, _ = populated_settings
    led = Ledger(s.ledger_url)
    cases = ["x' OR '1'='1", "a;DROP TABLE documents", "  ", "ünïcode", "a" * 200]
    for sid in cases:
        with pytest.raises(er.RequestRejected) as exp:
            er.parse_request({"subject_id": sid, "requested_by": "dpo"}, source="cli")
        res, out = ac.request_access(s, sid, requested_by="dpo")
        assert not res.accepted and res.code == exp.value.code and out == [], sid
    codes = [e.details["code"] for e in led.events("access.rejected")]
    assert codes[0] == "hostile_identifier" and len(codes) == len(cases)
    assert not led.events("erasure.")  # nothing recorded as an erasure
    assert not ac.exports_root(s).exists()
    r = _cli(s, monkeypatch, "access-export", "--subject-id", "x' OR '1'='1", "--requested-by", "dpo")
    assert r.exit_code == 2 and "hostile_identifier" in r.output

    # the inbox: same sensor intake, same rejected/ files and reasons as erasure's
    inbox = s.erasure_inbox
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "hostile.json").write_text(json.dumps({"type": "access", "subject_id": "x' OR '1'='1", "requested_by": "dpo"}))
    (inbox / "unknown.json").write_text(json.dumps({"type": "access", "subject_id": "subj-ko-001", "requested_by": "dpo", "drop": 1}))
    (inbox / "badtype.json").write_text(json.dumps({"type": "delete-all", "subject_id": "subj-ko-001", "requested_by": "dpo"}))
    (inbox / "good.json").write_text(json.dumps({"type": "access", "request_id": "inbox-acc", "subject_id": "subj-ko-001", "requested_by": "dpo"}))
    scan = er.scan_inbox(s, led)
    assert scan.accepted == ["inbox-acc"]
    assert {(n, c) for n, c, _ in scan.rejected} == {("hostile.json", "hostile_identifier"), ("unknown.json", "unknown_fields"),
                                                     ("badtype.json", "invalid_fields")}
    assert (inbox / "rejected" / "hostile.json.reason.txt").read_text().startswith("reason: hostile_identifier")
    # a rejected access file is an access.rejected event; only the file of an unknown type is recorded as an erasure rejection
    assert [e.details["code"] for e in led.events("access.rejected")][-2:] == ["hostile_identifier", "unknown_fields"]
    assert [r["failure"] for r in er.list_requests(led)] == ["rejected: invalid_fields: type must be one of ['erasure', 'access']"]
    assert ac.pending_request_ids(s, led) == ["inbox-acc"] and er.pending_request_ids(s, led) == []


def test_subject_with_no_data_gets_a_valid_signed_export_saying_so(populated_settings, monkeypatch):
    s, _ = populated_settings
    res, (out,) = ac.request_access(s, "subj-xx-999", requested_by="dpo", request_id="acc-none")
    assert res.accepted and out["status"] == "delivered" and out["found"] is False
    doc = json.loads((ac.exports_root(s) / out["export_id"] / "export.json").read_bytes())
    assert doc["found"] is False and doc["documents"] == [] and doc["records"] == [] and "no personal data" in doc["statement"]["en"]
    r = _cli(s, monkeypatch, "verify-certificate", out["export_path"])
    assert r.exit_code == 0 and r.output.startswith("VALID"), r.output

    # the export's own retention (config/retention.yaml `access_exports`, 30 days): kept before, deleted after
    assert doc["export_retention"]["days"] == 30
    gen = ac._parse_ts(doc["generated_at"])
    assert ac.expire_exports(s, now=gen + timedelta(days=29)) == []
    assert ac.expire_exports(s, now=gen + timedelta(days=31), dry_run=True) == [out["export_id"]]
    assert (ac.exports_root(s) / out["export_id"]).exists()
    assert ac.expire_exports(s, now=gen + timedelta(days=31)) == [out["export_id"]]
    assert not (ac.exports_root(s) / out["export_id"]).exists()
    assert Ledger(s.ledger_url).events("access.exports_expired")[0].details["export_ids"] == [out["export_id"]]


def test_legal_holds_are_listed_and_held_items_have_no_deletion_date(populated_settings):
    from aisg_pipelines.governance.ids import subject_hash
    from aisg_pipelines.governance.secrets import load_or_create_salt

    s, manifest = populated_settings
    held = manifest["legal_hold_subject"]
    flagged = {d["doc_id"] for d in manifest["documents"] if d["legal_hold"]}
    _, (out,) = ac.request_access(s, held, requested_by="dpo", request_id="acc-held")
    doc = json.loads(Path(out["export_path"]).read_bytes())
    by_id = {d["doc_id"]: d["retention"] for d in doc["documents"]}
    assert flagged & set(by_id) and all(by_id[d]["held"] and by_id[d]["deletes_at"] is None for d in flagged & set(by_id))
    assert all(r["deletes_at"] for d, r in by_id.items() if d not in flagged)
    # a subject-wide hold in the ledger: listed, and nothing of the subject has a deletion date
    other = next(x["subject_id"] for x in manifest["subjects"] if x["subject_id"] != held)
    Ledger(s.ledger_url).add_legal_hold("subject", subject_hash(other, load_or_create_salt(s)), "litigation 2026-17")
    _, (out,) = ac.request_access(s, other, requested_by="dpo", request_id="acc-held-2")
    doc = json.loads(Path(out["export_path"]).read_bytes())
    assert [(h["scope"], h["reason"], h["active"]) for h in doc["legal_holds"]] == [("subject", "litigation 2026-17", True)]
    assert doc["documents"] and all(d["retention"]["held"] and d["retention"]["deletes_at"] is None for d in doc["documents"])


def test_sla_report_and_sensor(populated_settings, code_location_env):
    import dagster as dg

    from aisg_pipelines.defs.access import access_sla
    from aisg_pipelines.defs.erasure.assets import ErasureClockResource
    from aisg_pipelines.defs.resources import GovernanceResource
    from aisg_pipelines.governance.reports import build_report, collect_report, week_containing, write_prometheus_textfile
    from aisg_pipelines.local_runner import tick_sensor

    from .conftest import fresh_defs

    s, _ = populated_settings
    late, _ = ac.request_access(s, "subj-ko-001", requested_by="dpo", request_id="acc-late", run=False, now=FIXED_NOW - timedelta(days=40))
    assert late.accepted
    led = Ledger(s.ledger_url)
    st = ac.sla_status(led, FIXED_NOW)
    assert not st.ok and st.overdue == ["acc-late"]
    res = access_sla(None, governance=GovernanceResource.for_settings(s), erasure_clock=ErasureClockResource(now_iso=FIXED_NOW.isoformat()))
    assert not res.passed and res.metadata["overdue"].value == ["acc-late"]

    # the daily governance_health job evaluates access_sla with erasure's (a red check is alerted)
    code_location_env(s)
    with dg.instance_for_test() as inst:
        health = fresh_defs().resolve_job_def("governance_health").execute_in_process(instance=inst, raise_on_error=True)
        evals = {e.check_name: e.passed for e in health.get_asset_check_evaluations()}
    assert evals["access_sla"] is False and evals["erasure_sla"] is True

    # the compliance report as of FIXED_NOW: the request is open and overdue (a finding), listed in the HTML
    rep = build_report(s, week_containing(FIXED_NOW), now=FIXED_NOW, write_prometheus=False)
    a = rep.summary["access"]
    assert (a["received"], a["delivered"], a["open"], a["overdue"]) == (0, 0, 1, 1)
    assert [x["request_id"] for x in a["requests"]] == ["acc-late"] and a["requests"][0]["overdue"]
    assert any(f.startswith("Access: 1 open") for f in rep.summary["findings"])
    assert rep.summary["key_figures"]["access_overdue_open"] == 1
    assert "Access requests (GDPR Art. 15/20" in rep.paths["html"].read_text(encoding="utf-8")
    from aisg_pipelines.governance.prometheus import read_samples

    prom = read_samples(write_prometheus_textfile(s, now=FIXED_NOW))
    assert prom["aisg_access_open_requests"] == 1 and prom["aisg_access_oldest_open_request_age_seconds"] == 40 * 86400

    # the erasure inbox sensor picks up an access request and launches access_export (with the pending one)
    (s.erasure_inbox / "a.json").write_text(json.dumps({"type": "access", "request_id": "acc-inbox", "subject_id": "subj-en-002",
                                                        "requested_by": "dpo"}))
    instance = dg.DagsterInstance.get()
    out = tick_sensor(fresh_defs(), instance, "erasure_inbox_sensor")
    assert [r.job_name for r in out.launched] == ["access_export"] and out.all_succeeded
    assert {r.request_id: r.status for r in ac.list_requests(led)} == {"acc-late": "delivered", "acc-inbox": "delivered"}
    assert ac.sla_status(led).ok

    now = datetime.now(timezone.utc)
    a = collect_report(s, week_containing(now), now=now)["access"]
    assert (a["received"], a["delivered"], a["open"], a["overdue"], a["delivered_late"]) == (1, 2, 0, 0, 1)
