"""Operations (issue 13): alerts once per incident, governance_health, the AISG backoff.

In-process: a webhook receiver on 127.0.0.1 started by the test, a temporary Dagster
instance, the real ledger. The same with the real daemon is in test_operations_e2e.py.
"""



import json
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from aisg_pipelines.defs.retry import aisg_retry, is_transient, retry_delays
from aisg_pipelines.governance.alerts import Alert, AlertDeliveryError, send_alert
from aisg_pipelines.governance.ledger import Ledger

from .conftest import fresh_defs


class Receiver:
    """A Slack-compatible webhook on 127.0.0.1 that records every JSON body it is sent."""

    def __init__(self, status: int = 200):
        self.posts: list[dict] = []
        self.status = status
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if outer.status == 200:
                    outer.posts.append(json.loads(body))
                self.send_response(outer.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def incidents(self, prefix: str = "") -> list[str]:
        out = [p["attachments"][0]["footer"].removeprefix("aisg_pipelines incident ") for p in self.posts]
        return [i for i in out if i.startswith(prefix)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_send_alert_once_per_incident_and_ledger_event(settings, receiver):
    led = Ledger(settings.ledger_url)
    a = Alert(incident="run_failure:abc", title="Dagster run of retention failed", text="boom", fields={"job": "retention"}, kind="run_failure")
    assert send_alert(led, a, url=receiver.url) is True
    assert send_alert(led, a, url=receiver.url) is False  # the same incident again: nothing new
    assert receiver.incidents() == ["run_failure:abc"]
    p = receiver.posts[0]
    assert p["text"].startswith("[ERROR] Dagster run of retention failed") and p["attachments"][0]["fields"][0] == {"title": "job", "value": "retention", "short": True}
    ev = [e for e in led.events("alert.")]
    assert len(ev) == 1 and ev[0].details["incident"] == "run_failure:abc" and ev[0].details["delivered"] is True
    assert led.verify_chain().ok
    # a webhook that refuses: raised, nothing recorded (posted again next time)
    receiver.status = 500
    with pytest.raises(AlertDeliveryError, match="HTTP 500"):
        send_alert(led, Alert(incident="run_failure:def", title="t", text="x"), url=receiver.url)
    assert len(led.events("alert.")) == 1
    # no webhook configured: recorded as undelivered, never silently dropped
    assert send_alert(led, Alert(incident="run_failure:ghi", title="t", text="x"), url="") is True
    assert led.events("alert.")[-1].details["delivered"] is False


def _overdue_request(settings, led, rid="er-old", days=40):
    from aisg_pipelines.governance.erasure import intake, parse_request, processing_dir

    now = datetime.now(timezone.utc)
    req = parse_request({"request_id": rid, "subject_id": "subj-stuck", "requested_by": "dpo@aisg", "reason": "art17",
                         "requested_at": (now - timedelta(days=days)).isoformat()}, source="inbox")
    assert intake(settings, led, req).accepted
    (processing_dir(settings) / f"{rid}.json").unlink()  # stuck: no run will ever pick it up


def test_governance_health_alerts_an_overdue_request_once_without_an_erasure_run(settings, code_location_env, receiver, monkeypatch):
    code_location_env(settings)
    monkeypatch.setenv("AISG_ALERT_WEBHOOK_URL", receiver.url)
    led = Ledger(settings.ledger_url)
    _overdue_request(settings, led)
    defs = fresh_defs()
    with dg.instance_for_test() as instance:
        job = defs.resolve_job_def("governance_health")
        res = job.execute_in_process(instance=instance, resources=None, raise_on_error=True)
        evals = {e.check_name: e.passed for e in res.get_asset_check_evaluations()}
        assert evals["erasure_sla"] is False
        assert evals["ledger_chain_intact"] is True
        assert all(evals[f"{c}_within_retention"] for c in ("user_content", "system_logs", "metrics", "audit_ledger", "retired_embed_versions"))
        assert evals["compliance_reports_fresh"] is False  # never built
        assert not instance.get_runs(filters=dg.RunsFilter(job_name="erasure"))
        sensor = defs.get_repository_def().get_sensor_def("alert_on_check_failure")

        def tick(cursor):
            ctx = dg.build_sensor_context(instance=instance, cursor=cursor, sensor_name=sensor.name, definitions=defs, resources=dict(defs.resources))
            return sensor.evaluate_tick(ctx)

        t1 = tick(None)
        assert len(receiver.incidents("check:erasure_requests/erasure_sla:")) == 1
        # the next day's health run finds it still red: the same incident, no new alert
        job.execute_in_process(instance=instance, raise_on_error=True)
        t2 = tick(t1.cursor)
        assert len(receiver.incidents("check:erasure_requests/erasure_sla:")) == 1
        # and with the cursor lost (sensor reset), the ledger still knows the incident was alerted
        tick(None)
        assert len(receiver.incidents("check:erasure_requests/erasure_sla:")) == 1
        assert t2.cursor
        sla_events = [e for e in led.events("alert.sent") if e.details["incident"].startswith("check:erasure_requests/erasure_sla")]
        assert len(sla_events) == 1


def test_transient_classification():
    assert is_transient(OSError("connection reset by peer"))
    assert is_transient(RuntimeError("LanceError(IO): Generic S3 error: connection refused"))
    assert is_transient(TimeoutError())
    assert not is_transient(FileNotFoundError("policy.yaml"))
    assert not is_transient(ValueError("bad config"))
    assert not is_transient(RuntimeError("verification found 3 traces"))
    from aisg_pipelines.governance.erasure import ErasureFailed

    assert not is_transient(ErasureFailed("traces remain"))
    assert retry_delays() == (1.0, 5.0, 25.0, 125.0)


def test_retry_backoff_in_a_run(monkeypatch):
    monkeypatch.setenv("AISG_RETRY_DELAYS_SECONDS", "0.2,0.4,0.8")
    calls: list[float] = []

    @dg.asset
    @aisg_retry
    def flaky(context: dg.AssetExecutionContext):
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise OSError("LanceError(IO): connection reset")
        return 1

    @dg.asset
    @aisg_retry
    def bad_config(context: dg.AssetExecutionContext):
        calls.append(-1.0)
        raise ValueError("unknown retention category")

    res = dg.materialize([flaky])
    assert res.success and len(calls) == 3
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert 0.2 <= gaps[0] < 0.4 + 0.3 and 0.4 <= gaps[1] < 0.8 + 0.3, gaps
    calls.clear()
    res = dg.materialize([bad_config], raise_on_error=False)
    assert not res.success and calls == [-1.0]  # deterministic: not retried


def test_every_schedule_and_sensor_runs_by_default():
    defs = fresh_defs()
    repo = defs.get_repository_def()
    assert {s.name: s.default_status for s in repo.schedule_defs if s.default_status != dg.DefaultScheduleStatus.RUNNING} == {}
    assert {s.name: s.default_status for s in repo.sensor_defs if s.default_status != dg.DefaultSensorStatus.RUNNING} == {}
    names = {s.name for s in repo.schedule_defs}
    assert {"governance_health_daily", "compliance_report_weekly_schedule", "compliance_report_monthly_schedule", "retention_daily"} <= names
    assert "orphan_report_daily" not in names  # runs after retention instead (no scan during the purge)


def test_orphan_report_runs_after_a_successful_retention_run(settings, code_location_env):
    code_location_env(settings)
    defs = fresh_defs()
    sensor = defs.get_repository_def().get_sensor_def("orphan_report_after_retention")
    with dg.instance_for_test() as instance:
        res = defs.resolve_job_def("retention").execute_in_process(instance=instance, run_config={"ops": {"retention_report": {"config": {"dry_run": True}}}})
        assert res.success
        run = instance.get_run_by_id(res.run_id)
        ev = [e for e in instance.all_logs(res.run_id) if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.RUN_SUCCESS][0]
        ctx = dg.build_run_status_sensor_context(sensor_name=sensor.name, dagster_instance=instance, dagster_run=run, dagster_event=ev.dagster_event)
        req = sensor(ctx)
        assert req.run_key == f"orphans_after:{res.run_id}"
        assert sensor.job_name == "orphan_report_job"


def test_inbox_requests_must_be_signed_when_a_key_is_configured(settings, monkeypatch):
    from aisg_pipelines.governance.erasure import get_request, rejected_dir, scan_inbox
    from aisg_pipelines.governance.inbox_auth import KEY_ENV, sign_request

    key = bytes(range(32))
    (settings.secrets_dir).mkdir(parents=True, exist_ok=True)
    (settings.secrets_dir / "inbox.key").write_text(key.hex())
    monkeypatch.setenv(KEY_ENV, str(settings.secrets_dir / "inbox.key"))
    inbox = settings.erasure_inbox
    inbox.mkdir(parents=True)
    base = {"subject_id": "subj-a", "requested_by": "user:subj-a via /analytics/erase", "reason": "art17"}
    (inbox / "signed.json").write_text(json.dumps(sign_request({**base, "request_id": "er-signed"}, key)))
    (inbox / "unsigned.json").write_text(json.dumps({**base, "request_id": "er-unsigned"}))
    forged = sign_request({**base, "request_id": "er-forged"}, key)
    forged["subject_id"] = "subj-b"  # altered after signing
    (inbox / "forged.json").write_text(json.dumps(forged))
    (inbox / "otherkey.json").write_text(json.dumps(sign_request({**base, "request_id": "er-otherkey"}, b"k" * 32)))
    led = Ledger(settings.ledger_url)
    scan = scan_inbox(settings, led)
    assert scan.accepted == ["er-signed"] and get_request(led, "er-signed")["status"] == "received"
    reasons = {name: (code, detail) for name, code, detail in scan.rejected}
    assert reasons["unsigned.json"][0] == "unsigned_request" and "no signature field" in reasons["unsigned.json"][1]
    assert reasons["forged.json"][0] == "bad_signature" and "does not match" in reasons["forged.json"][1]
    assert reasons["otherkey.json"][0] == "bad_signature"
    # the readable reason is next to the moved file, and the rejection is in the ledger
    texts = " ".join(p.read_text() for p in rejected_dir(settings).rglob("*") if p.is_file() and "reason" in p.name)
    assert "unsigned_request" in texts and "bad_signature" in texts
    assert sorted(e.details["code"] for e in led.events("erasure.rejected")) == ["bad_signature", "bad_signature", "unsigned_request"]
    assert not list(inbox.glob("*.json"))
    [auth] = led.events("inbox.authenticated")
    assert auth.details == {"request_id": "er-signed", "type": "erasure", "requested_by": "user:subj-a via /analytics/erase",
                            "approved_by": "hmac-sha256:/analytics/erase"}


def test_inbox_without_a_key_accepts_unsigned_requests(settings, monkeypatch):
    from aisg_pipelines.governance.erasure import scan_inbox
    from aisg_pipelines.governance.inbox_auth import KEY_ENV

    monkeypatch.delenv(KEY_ENV, raising=False)
    settings.erasure_inbox.mkdir(parents=True)
    (settings.erasure_inbox / "r.json").write_text(json.dumps({"request_id": "er-dev", "subject_id": "subj-a", "requested_by": "dev"}))
    assert scan_inbox(settings, Ledger(settings.ledger_url)).accepted == ["er-dev"]


def test_lineage_connects_the_governance_story():
    defs = fresh_defs()
    g = defs.get_repository_def().asset_graph

    def parents(name):
        return {p.to_user_string() for p in g.get(dg.AssetKey(name)).parent_keys}

    for ext in ("landing_zone", "incoming_telemetry", "erasure_inbox", "audit_ledger"):
        assert not g.get(dg.AssetKey(ext)).is_materializable, ext  # external: AISG writes them
    assert "landing_zone" in parents("documents") and "incoming_telemetry" in parents("system_logs")
    for gov in ("orphan_report", "retention_report", "erasure_requests"):
        assert {"documents", "chunks", "embeddings", "audit_ledger"} <= parents(gov), gov
    assert "erasure_inbox" in parents("erasure_requests")
    for rep in ("compliance_report_weekly", "compliance_report_monthly"):
        assert {"orphan_report", "retention_report", "erasure_requests"} <= parents(rep)
    for key in g.get_all_asset_keys():
        node = g.get(key)
        assert node.owners, key
        if node.is_materializable:
            assert node.code_version, key
