"""The telemetry sensor (new or changed log/metric days -> partitions and runs), the retention job and its daily schedule."""

import json

import dagster as dg

from ..resources import GovernanceResource
from .partitions import BY_KIND

ingest_system_logs_job = dg.define_asset_job(
    "ingest_system_logs",
    selection=dg.AssetSelection.assets("system_logs"),
    description="Ingest one or more days of AISG system logs.",
    tags={"aisg/job": "telemetry"},
)
ingest_metrics_job = dg.define_asset_job(
    "ingest_metrics",
    selection=dg.AssetSelection.assets("metrics"),
    description="Ingest one or more days of AISG metric samples.",
    tags={"aisg/job": "telemetry"},
)
JOBS = {"system_logs": ingest_system_logs_job, "metrics": ingest_metrics_job}

retention_job = dg.define_asset_job(
    "retention",
    selection=dg.AssetSelection.assets("retention_report"),
    description=(
        "Delete what has expired in every category, purge it physically, remove emptied partition keys, "
        "write audit events. Config: dry_run (default false), as_of (ISO time, default now), policy_file."
    ),
    tags={"aisg/job": "retention"},
)

retention_daily = dg.ScheduleDefinition(
    name="retention_daily",
    job=retention_job,
    cron_schedule="30 3 * * *",
    execution_timezone="UTC",
    run_config={"ops": {"retention_report": {"config": {"dry_run": False}}}},
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Runs retention for real every day at 03:30 UTC.",
)


def plan_telemetry_requests(instance: dg.DagsterInstance, paths, cursor: dict) -> tuple[list[dg.RunRequest], dict]:
    """Days whose files changed since the cursor: add their keys, one run per kind (a key range if several).
    `paths`: anything with logs_dir and metrics_dir (the runtime context)."""
    from pathlib import Path

    from ...governance.ids import sha256_hex
    from ...governance.telemetry import day_signature, list_day_files

    requests, new_cursor = [], {}
    for kind, pdef in BY_KIND.items():
        directory = Path(paths.logs_dir if kind == "system_logs" else paths.metrics_dir)
        seen = cursor.get(kind, {})
        sigs = {day: day_signature(directory, files) for day, files in list_day_files(directory).items()}
        new_cursor[kind] = sigs
        changed = sorted(d for d, sig in sigs.items() if seen.get(d) != sig)
        if not changed:
            continue
        existing = set(instance.get_dynamic_partitions(pdef.name))
        missing = [d for d in changed if d not in existing]
        if missing:
            instance.add_dynamic_partitions(pdef.name, missing)
        order = {k: i for i, k in enumerate(instance.get_dynamic_partitions(pdef.name))}
        changed.sort(key=order.__getitem__)
        run_key = f"{kind}:{changed[0]}..{changed[-1]}:{sha256_hex(''.join(sigs[d] for d in changed))[:12]}"
        tags = {"aisg/telemetry_days": str(len(changed))}
        if len(changed) == 1:
            requests.append(dg.RunRequest(run_key=run_key, job_name=JOBS[kind].name, partition_key=changed[0], tags=tags))
        else:
            tags.update({"dagster/asset_partition_range_start": changed[0], "dagster/asset_partition_range_end": changed[-1]})
            requests.append(dg.RunRequest(run_key=run_key, job_name=JOBS[kind].name, tags=tags))
    return requests, new_cursor


@dg.sensor(
    jobs=[ingest_system_logs_job, ingest_metrics_job],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Watches AISG_LOGS_DIR and AISG_METRICS_DIR. A day whose files were added or changed becomes a dynamic "
        "partition (system_log_days / metric_days) and is (re-)ingested; several days go in one single-run backfill."
    ),
)
def telemetry_sensor(context: dg.SensorEvaluationContext, governance: GovernanceResource):
    cursor = json.loads(context.cursor) if context.cursor else {}
    requests, new_cursor = plan_telemetry_requests(context.instance, governance.to_settings(), cursor)
    if not requests:
        return dg.SkipReason("no new or changed log/metric days")
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(new_cursor, sort_keys=True))
