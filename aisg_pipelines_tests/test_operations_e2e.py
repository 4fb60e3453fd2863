"""Operations with the real daemon (issue 13): alerts reach a webhook, once per incident;
a transient LanceDB error is retried with the AISG backoff.

Processes on 127.0.0.1, as in deploy/: a code server (`dagster api grpc`, the production
definitions plus one injected fault source: faulty_location.py) and `dagster-daemon run`
(sensors, schedules, the run queue, run monitoring). Runs are submitted with `dagster job
launch` to the QueuedRunCoordinator, as the webserver would. The webhook receiver is a
thread of this test. Everything waits on conditions (runs finished, sensor ticks), never
on fixed sleeps.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest

from aisg_pipelines.governance.ledger import Ledger

from .conftest import env_for, settings_for
from .test_operations import Receiver

pytestmark = [pytest.mark.integration]

BIN = Path(sys.executable).parent
LOCATION = "aisg_ops"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what: str, fn, timeout: float, interval: float = 1.0, on_timeout=None):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last value: {last!r})\n{on_timeout() if on_timeout else ''}")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    def tail(self, n: int = 40) -> str:
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return f"--- {self.name} (pid {self.popen.pid}, rc {self.popen.poll()}):\n" + "\n".join(lines[-n:])

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to the process group this test created, wait, then SIGKILL (run workers too)."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.popen.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.popen.wait(timeout)
                if sig == signal.SIGTERM:
                    continue
            except subprocess.TimeoutExpired:
                pass


FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("ops_e2e")
    s = settings_for(root)
    s.data_dir.mkdir(parents=True)
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\n"
        "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: QueuedRunCoordinator\n"
        "  config:\n    max_concurrent_runs: 2\n    dequeue_interval_seconds: 1\n"
        "run_monitoring:\n  enabled: true\n  start_timeout_seconds: 120\n  poll_interval_seconds: 5\n"
        "sensors:\n  use_threads: true\n  num_workers: 2\n"
    )
    port = free_port()
    ws = root / "workspace.yaml"
    ws.write_text(f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: {port}\n      location_name: {LOCATION}\n")
    receiver = Receiver()
    faults = root / "faults"
    env = {
        **os.environ, **env_for(s), "DAGSTER_HOME": str(home), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
        "AISG_ALERT_WEBHOOK_URL": receiver.url, "AISG_ALERT_SENSOR_INTERVAL_SECONDS": "1", "AISG_RUN_EXECUTOR": "in_process",
        "AISG_TEST_FAULTS": str(faults), "AISG_SENSOR_INTERVAL_SECONDS": "3600",
    }
    env.pop("AISG_RETRY_DELAYS_SECONDS", None)  # the production backoff: 1, 5, 25, 125 s
    procs: list[Proc] = []

    def start(name, args):
        log = root / f"{name}.log"
        with open(log, "ab") as fh:
            p = subprocess.Popen(args, cwd=root, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        procs.append(Proc(name, p, log))

    # create the instance's sqlite databases here, once, before several processes (and sensor
    # threads) open them concurrently for the first time (alembic stamps them on creation)
    from dagster._core.instance.ref import InstanceRef

    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
    instance.get_runs(limit=1)
    instance.all_instigator_state()
    start("code_server", [str(BIN / "dagster"), "api", "grpc", "-m", "aisg_pipelines_tests.faulty_location", "-h", "127.0.0.1", "-p", str(port),
                          "--location-name", LOCATION])
    start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(ws)])

    def logs():
        return "\n".join(p.tail() for p in procs)

    st = type("Stack", (), {})()
    st.root, st.settings, st.env, st.ws, st.instance, st.receiver, st.faults, st.logs = root, s, env, ws, instance, receiver, faults, logs
    st.ledger = Ledger(s.ledger_url)

    def launch(job, config=None):
        args = [str(BIN / "dagster"), "job", "launch", "-w", str(ws), "-l", LOCATION, "-j", job]
        if config:
            args += ["--config-json", json.dumps(config)]
        before = {r.run_id for r in instance.get_runs(filters=dg.RunsFilter(job_name=job))}
        out = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        runs = wait_for(f"run of {job} submitted", lambda: [r for r in instance.get_runs(filters=dg.RunsFilter(job_name=job)) if r.run_id not in before], 60)
        return runs[0].run_id

    def finished(run_id, timeout=180):
        return wait_for(f"run {run_id} finished", lambda: (r := instance.get_run_by_id(run_id)) and r.status in FINISHED and r, timeout,
                        interval=0.5, on_timeout=logs)

    def sensor_ticks(name):
        from dagster._core.scheduler.instigation import TickStatus

        origin = [s for s in instance.all_instigator_state() if s.name == name]
        if not origin:
            return 0
        ticks = instance.get_ticks(origin[0].instigator_origin_id, origin[0].selector_id, limit=1000)
        return sum(t.status in (TickStatus.SKIPPED, TickStatus.SUCCESS) for t in ticks)

    st.launch, st.finished, st.sensor_ticks = launch, finished, sensor_ticks
    try:
        # the daemon is up once it has ticked the alert sensors against the code server
        wait_for("daemon ticking alert_on_check_failure", lambda: sensor_ticks("alert_on_check_failure") > 0, 180, on_timeout=logs)
        yield st
    finally:
        for p in reversed(procs):
            p.stop()
        receiver.close()


def _settle(stack, sensor: str, ticks: int = 2):
    """Wait until `sensor` has evaluated `ticks` more times (so anything it would still send is sent)."""
    n = stack.sensor_ticks(sensor)
    wait_for(f"{ticks} more ticks of {sensor}", lambda: stack.sensor_ticks(sensor) >= n + ticks, 60, interval=0.5, on_timeout=stack.logs)


def test_failed_job_alerts_exactly_once(stack):
    run_id = stack.launch("retention", {"ops": {"retention_report": {"config": {"dry_run": True, "policy_file": "/nonexistent/retention.yaml"}}}})
    run = stack.finished(run_id)
    assert run.status == dg.DagsterRunStatus.FAILURE
    wait_for("the run-failure alert", lambda: stack.receiver.incidents(f"run_failure:{run_id}"), 60, interval=0.5, on_timeout=stack.logs)
    _settle(stack, "alert_on_run_failure")
    assert stack.receiver.incidents(f"run_failure:{run_id}") == [f"run_failure:{run_id}"]
    post = next(p for p in stack.receiver.posts if run_id in p["attachments"][0]["footer"])
    assert "retention" in post["text"] and any(f["title"] == "job" and f["value"] == "retention" for f in post["attachments"][0]["fields"])
    # a bad config is deterministic: the step failed once, never retried
    types = [e.dagster_event.event_type for e in stack.instance.all_logs(run_id) if e.dagster_event]
    assert types.count(dg.DagsterEventType.STEP_FAILURE) == 1 and dg.DagsterEventType.STEP_UP_FOR_RETRY not in types
    ev = [e for e in stack.ledger.events("alert.sent") if e.details["incident"] == f"run_failure:{run_id}"]
    assert len(ev) == 1 and ev[0].details["delivered"] is True


def test_overdue_erasure_request_alerts_once_without_an_erasure_run(stack):
    from aisg_pipelines.governance.erasure import intake, parse_request, processing_dir

    now = datetime.now(timezone.utc)
    req = parse_request({"request_id": "er-stuck", "subject_id": "subj-stuck", "requested_by": "dpo@aisg", "reason": "art17",
                         "requested_at": (now - timedelta(days=31)).isoformat()}, source="inbox")
    assert intake(stack.settings, stack.ledger, req).accepted
    (processing_dir(stack.settings) / "er-stuck.json").unlink()  # stuck: nothing will process it
    run = stack.finished(stack.launch("governance_health"))
    assert run.status == dg.DagsterRunStatus.SUCCESS
    sla = "check:erasure_requests/erasure_sla:"
    wait_for("the SLA alert", lambda: stack.receiver.incidents(sla), 60, interval=0.5, on_timeout=stack.logs)
    # the next health run finds it still overdue: the same incident, no second alert
    assert stack.finished(stack.launch("governance_health")).status == dg.DagsterRunStatus.SUCCESS
    _settle(stack, "alert_on_check_failure")
    assert len(stack.receiver.incidents(sla)) == 1
    post = next(p for p in stack.receiver.posts if sla in p["attachments"][0]["footer"])
    assert any(f["title"] == "overdue" and "er-stuck" in f["value"] for f in post["attachments"][0]["fields"])
    assert not stack.instance.get_runs(filters=dg.RunsFilter(job_name="erasure"))
    # no run failed on the way: nothing else was alerted as a run failure
    failed = [r.run_id for r in stack.instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))]
    assert sorted(i.split(":", 1)[1] for i in stack.receiver.incidents("run_failure:")) == sorted(failed)


def test_transient_lancedb_error_is_retried_with_the_aisg_backoff(stack):
    stack.faults.write_text("2")
    run = stack.finished(stack.launch("orphan_report_job"), timeout=240)
    assert run.status == dg.DagsterRunStatus.SUCCESS, stack.logs()
    assert stack.faults.read_text() == "0"
    logs = [e for e in stack.instance.all_logs(run.run_id) if e.dagster_event]
    ups = [e for e in logs if e.dagster_event.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    restarts = [e for e in logs if e.dagster_event.event_type == dg.DagsterEventType.STEP_RESTARTED]
    assert len(ups) == 2 and len(restarts) == 2
    gaps = [r.timestamp - u.timestamp for u, r in zip(ups, restarts)]
    assert 1.0 <= gaps[0] < 4.0 and 5.0 <= gaps[1] < 9.0, gaps  # 1 s, then 5 s
    assert [e.dagster_event.event_specific_data.seconds_to_wait for e in ups] == [1.0, 5.0]
    # a retried run that succeeds is not an incident
    assert not stack.receiver.incidents(f"run_failure:{run.run_id}")


def test_read_only_webserver_refuses_mutations(stack):
    """The compliance officers' webserver (`dagster-webserver --read-only`, deploy/): GraphQL
    queries work, a launch (here: a live retention run) is refused, nothing is launched."""
    import urllib.request

    port = free_port()
    log = stack.root / "webserver_ro.log"
    with open(log, "ab") as fh:
        p = subprocess.Popen([str(BIN / "dagster-webserver"), "-w", str(stack.ws), "-h", "127.0.0.1", "-p", str(port), "--read-only"],
                             cwd=stack.root, env=stack.env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    web = Proc("webserver_ro", p, log)
    try:
        def gql(query, variables=None):
            req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query, "variables": variables or {}}).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read())

        def up():
            try:
                return gql("{ version }")["data"]["version"]
            except Exception:  # noqa: BLE001 - not listening yet
                return None

        wait_for("read-only webserver", up, 120, interval=0.5, on_timeout=web.tail)
        before = len(stack.instance.get_runs(filters=dg.RunsFilter(job_name="retention")))
        res = gql(
            "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename ... on UnauthorizedError { message } } }",
            {"p": {"selector": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__", "jobName": "retention"},
                   "runConfigData": {"ops": {"retention_report": {"config": {"dry_run": False}}}}}},
        )
        assert res["data"]["launchRun"]["__typename"] == "UnauthorizedError", res
        sched = gql(
            "mutation($s: ScheduleSelector!) { startSchedule(scheduleSelector: $s) { __typename } }",
            {"s": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__", "scheduleName": "retention_daily"}},
        )
        assert sched["data"]["startSchedule"]["__typename"] == "UnauthorizedError", sched
        assert len(stack.instance.get_runs(filters=dg.RunsFilter(job_name="retention"))) == before
        # reading still works: the jobs of the location are listed
        q = gql('{ repositoriesOrError { ... on RepositoryConnection { nodes { jobs { name } } } } }')
        assert "erasure" in {j["name"] for n in q["data"]["repositoriesOrError"]["nodes"] for j in n["jobs"]}
    finally:
        web.stop()
