"""The erasure inbox sensor: request files -> `received` requests -> one erasure run.

Bad request files are moved to `<inbox>/rejected/` with a (redacted) reason (and recorded in
the ledger); they never make the tick fail. Pending requests are batched into one run whose
run_key derives from their ids and attempt numbers: the same pending set launches once;
after a failed run the attempt number changes, so the next tick retries (resumable).

A run whose worker died (killed, OOM, host restart) would stay STARTED and hold its requests
`in_progress` forever. The erasure step tags its run with the worker's identity
(`aisg/worker` = host:pid:process start time); a tick that finds a STARTED run whose worker
is gone (same host and that process no longer exists; or the run launcher's health check says
so) reports the run failed, which counts as a finished attempt, and relaunches its requests.
Dagster run monitoring (dagster.yaml, deploy/dagster.yaml) fails runs stuck in STARTING or
CANCELING, and runs past max_runtime, on its own.
"""

import hashlib
import os
import socket
from collections import Counter

import dagster as dg

from ..resources import GovernanceResource

REQUESTS_TAG = "aisg/erasure_requests"

erasure_job = dg.define_asset_job(
    "erasure",
    selection=dg.AssetSelection.assets("erasure_requests"),
    description="Process pending GDPR erasure requests: discover, delete, purge, verify, certify.",
    tags={"aisg/job": "erasure"},
)

_FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


WORKER_TAG = "aisg/worker"


def _proc_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), '' where unknown: with the
    pid it names one process, not a later one that reused the pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""


def worker_identity() -> str:
    """host:pid:start of this process (the value of the run's aisg/worker tag)."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_proc_start(pid)}"


def worker_alive(tag: str) -> bool | None:
    """True/False when this host can tell (the worker ran here), None otherwise."""
    try:
        host, pid_s, start = tag.rsplit(":", 2)
        pid = int(pid_s)
    except ValueError:
        return None
    if host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    return not start or _proc_start(pid) in ("", start)


def run_worker_dead(instance, run) -> bool:
    """A STARTED run whose worker is gone."""
    if run.status != dg.DagsterRunStatus.STARTED:
        return False
    tag = run.tags.get(WORKER_TAG)
    if tag and worker_alive(tag) is False:
        return True
    launcher = instance.run_launcher
    if getattr(launcher, "supports_check_run_worker_health", False):
        try:
            from dagster._core.launcher import WorkerStatus

            return launcher.check_run_worker_health(run).status in (WorkerStatus.FAILED, WorkerStatus.NOT_FOUND)
        except Exception:
            return False
    return False


def plan_run(instance, pending: list[str], log=None):
    """(request ids to launch now, run_key) given the runs already in the instance. A run
    whose worker is dead is reported failed first (its requests are relaunched)."""
    inflight: set[str] = set()
    attempts: Counter = Counter()
    for run in instance.get_runs(filters=dg.RunsFilter(tags={"aisg/job": "erasure"}), limit=2000):
        ids = [i for i in run.tags.get(REQUESTS_TAG, "").split(",") if i]
        if run.status not in _FINISHED and run_worker_dead(instance, run):
            instance.report_run_failed(run, message=f"erasure run worker {run.tags.get(WORKER_TAG, '?')} is gone; its requests are relaunched")
            if log is not None:
                log.warning(f"erasure run {run.run_id} was STARTED but its worker is gone: marked failed, requests {ids} relaunched")
            attempts.update(ids)
            continue
        if run.status in _FINISHED:
            attempts.update(ids)
        else:
            inflight.update(ids)
    launch = [rid for rid in sorted(pending) if rid not in inflight]
    if not launch:
        return [], None
    body = "+".join(f"{rid}#{attempts[rid]}" for rid in launch)
    key = "erasure:" + (body if len(body) <= 200 else hashlib.sha256(body.encode()).hexdigest())
    return launch, key


def plan_access_run(instance, pending: list[str]):
    """(access request ids to launch, run_key): ids not in an unfinished access_export run; the
    key counts finished runs per id, so a request left pending by a crashed run is relaunched."""
    from ..access.jobs import ACCESS_REQUESTS_TAG

    inflight: set[str] = set()
    attempts: Counter = Counter()
    for run in instance.get_runs(filters=dg.RunsFilter(tags={"aisg/job": "access_export"}), limit=2000):
        ids = [i for i in run.tags.get(ACCESS_REQUESTS_TAG, "").split(",") if i]
        (attempts.update(ids) if run.status in _FINISHED else inflight.update(ids))
    launch = [rid for rid in sorted(pending) if rid not in inflight]
    if not launch:
        return [], None
    body = "+".join(f"{rid}#{attempts[rid]}" for rid in launch)
    return launch, "access:" + (body if len(body) <= 200 else hashlib.sha256(body.encode()).hexdigest())


def _access_job():
    from ..access.jobs import access_export_job

    return access_export_job


@dg.sensor(
    jobs=[erasure_job, _access_job()],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Watches the erasure inbox (files dropped by /analytics/erase). Valid requests are recorded as "
        "`received`; malformed, duplicate or hostile ones are moved to rejected/ with a reason. Pending "
        "requests are batched into one `erasure` run (run_key from their ids). Requests of `\"type\": \"access\"` "
        "(GDPR Art. 15/20) are validated the same way and launch one `access_export` run."
    ),
)
def erasure_inbox_sensor(
    context: dg.SensorEvaluationContext,
    governance: GovernanceResource,
):
    from ...governance.erasure import pending_request_ids, scan_inbox

    s = governance.context()
    led = s.ledger
    scan = scan_inbox(s, led)
    for name, code, detail in scan.rejected:
        context.log.warning(f"erasure request file {name} rejected: {code} {detail}")
    from ...governance.inbox_auth import KEY_ENV

    if not os.environ.get(KEY_ENV) and scan.accepted:
        context.log.warning(f"{KEY_ENV} is not set: {len(scan.accepted)} inbox request(s) accepted without a signature (development only)")
    launch, key = plan_run(context.instance, pending_request_ids(s, led), log=context.log)
    from ...governance.access import pending_request_ids as access_pending
    from ..access.jobs import ACCESS_REQUESTS_TAG

    access_launch, access_key = plan_access_run(context.instance, access_pending(s, led))
    out = []
    if access_launch:
        out.append(dg.RunRequest(
            run_key=access_key, job_name="access_export",
            run_config={"ops": {"access_requests": {"config": {"request_ids": access_launch}}}},
            tags={ACCESS_REQUESTS_TAG: ",".join(access_launch)},
        ))
    if not launch:
        return out or dg.SkipReason(f"no pending erasure requests ({len(scan.rejected)} files rejected this tick)")
    out.append(dg.RunRequest(
        run_key=key, job_name="erasure",
        run_config={"ops": {"erasure_requests": {"config": {"request_ids": launch}}}},
        tags={REQUESTS_TAG: ",".join(launch), "aisg/erasure_count": str(len(launch))},
    ))
    return out if len(out) > 1 else out[0]
