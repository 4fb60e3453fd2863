"""The erasure inbox sensor: request files -> `received` requests -> one erasure run.

Bad request files are moved to `<inbox>/rejected/` with a reason (and recorded in the
ledger); they never make the tick fail. Pending requests are batched into one run whose
run_key derives from their ids and attempt numbers: the same pending set launches once;
after a failed run the attempt number changes, so the next tick retries (resumable).
"""

import hashlib
from collections import Counter

import dagster as dg

from ..resources import GovernancePathsResource, LandingZoneResource, LanceStoreResource, LedgerResource, settings_from_resources

REQUESTS_TAG = "aisg/erasure_requests"

erasure_job = dg.define_asset_job(
    "erasure",
    selection=dg.AssetSelection.assets("erasure_requests"),
    description="Process pending GDPR erasure requests: discover, delete, purge, verify, certify.",
    tags={"aisg/job": "erasure"},
)

_FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def plan_run(instance, pending: list[str]):
    """(request ids to launch now, run_key) given the runs already in the instance."""
    inflight: set[str] = set()
    attempts: Counter = Counter()
    for run in instance.get_runs(filters=dg.RunsFilter(tags={"aisg/job": "erasure"}), limit=2000):
        ids = [i for i in run.tags.get(REQUESTS_TAG, "").split(",") if i]
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


@dg.sensor(
    job=erasure_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Watches the erasure inbox (files dropped by /analytics/erase). Valid requests are recorded as "
        "`received`; malformed, duplicate or hostile ones are moved to rejected/ with a reason. Pending "
        "requests are batched into one `erasure` run (run_key from their ids)."
    ),
)
def erasure_inbox_sensor(
    context: dg.SensorEvaluationContext,
    lance: LanceStoreResource,
    ledger: LedgerResource,
    landing: LandingZoneResource,
    paths: GovernancePathsResource,
):
    from ...governance.erasure import pending_request_ids, scan_inbox

    s = settings_from_resources(lance, ledger, landing, paths)
    led = ledger.get_ledger()
    scan = scan_inbox(s, led)
    for name, code, detail in scan.rejected:
        context.log.warning(f"erasure request file {name} rejected: {code} {detail}")
    launch, key = plan_run(context.instance, pending_request_ids(s, led))
    if not launch:
        return dg.SkipReason(f"no pending erasure requests ({len(scan.rejected)} files rejected this tick)")
    return dg.RunRequest(
        run_key=key,
        run_config={"ops": {"erasure_requests": {"config": {"request_ids": launch}}}},
        tags={REQUESTS_TAG: ",".join(launch), "aisg/erasure_count": str(len(launch))},
    )
