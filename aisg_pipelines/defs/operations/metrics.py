"""prometheus_textfile_refresh: rewrite the Prometheus textfiles every 5 minutes.

Both files of the textfile-collector directory: `aisg_governance.prom` (reports.
write_prometheus_textfile) and `aisg_operations.prom` (governance/metrics.py, prometheus_client:
SLA breaches, failed requests, last successful run per job, ledger-chain health, PII entities
scrubbed, quarantined files). Written by the sensor itself, so no run is launched for it.
AISG_METRICS_INTERVAL_SECONDS (default 300) sets the period.
"""


import dagster as dg

from ..resources import GovernanceResource
from ...settings import env_number

INTERVAL = env_number("AISG_METRICS_INTERVAL_SECONDS", 300, minimum=1)


def last_success_by_job(instance: dg.DagsterInstance, job_names) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name in sorted(job_names):
        if name.startswith("__"):
            continue
        recs = instance.get_run_records(filters=dg.RunsFilter(job_name=name, statuses=[dg.DagsterRunStatus.SUCCESS]), limit=1)
        out[name] = (recs[0].end_time or recs[0].create_timestamp.timestamp()) if recs else None
    return out


@dg.sensor(
    name="prometheus_textfile_refresh",
    minimum_interval_seconds=INTERVAL,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Rewrites the Prometheus textfiles (aisg_governance.prom, aisg_operations.prom) every 5 minutes; launches no run.",
)
def prometheus_textfile_refresh(context: dg.SensorEvaluationContext, governance: GovernanceResource):
    from ...governance.metrics import write_textfile
    from ...governance.reports import write_prometheus_textfile

    s = governance.context()
    led = s.ledger
    gov = write_prometheus_textfile(s, ledger=led)
    ops = write_textfile(s, ledger=led, last_success=last_success_by_job(context.instance, context.repository_def.job_names))
    return dg.SkipReason(f"wrote {gov} and {ops}")
