"""Compliance reports as assets partitioned by calendar period (weekly and monthly).

Each partition is one period in the report timezone (AISG_REPORT_TIMEZONE, default
Asia/Seoul). Materializing a partition (from a schedule, or a backfill from the UI) writes
`<exports>/compliance/<period>/` and the Prometheus textfile; the logic is in
governance/reports.py and governance/report_render.py.
"""


from datetime import datetime, timezone

import dagster as dg

from ...governance.periods import report_timezone
from ..retry import aisg_retry
from ..resources import GovernanceResource

REPORT_TIMEZONE = report_timezone()

# Weekly partitions run Monday 00:00 to Monday 00:00 local time (day_offset=1 is Monday).
weekly_report_partitions = dg.WeeklyPartitionsDefinition(start_date="2025-01-06", day_offset=1, timezone=REPORT_TIMEZONE)
monthly_report_partitions = dg.MonthlyPartitionsDefinition(start_date="2025-01-01", timezone=REPORT_TIMEZONE)


def asset_check_results(instance: dg.DagsterInstance, check_keys, since_ts: float | None = None) -> list[dict]:
    """Every completed asset-check execution in the instance as plain dicts for the report.

    {"asset", "check", "passed", "occurred_at"}; planned (never completed) executions are left out.
    """
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus as Status

    out: list[dict] = []
    for key in sorted(check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name)):
        cursor = None
        while True:
            records = instance.event_log_storage.get_asset_check_execution_history(key, limit=1000, cursor=cursor)
            for r in records:
                if r.status == Status.PLANNED:
                    continue
                if since_ts is not None and r.create_timestamp < since_ts:
                    continue
                evaluation = r.evaluation
                ts = r.event.timestamp if r.event is not None else r.create_timestamp
                out.append({
                    "asset": key.asset_key.to_user_string(),
                    "check": key.name,
                    "passed": bool(evaluation.passed) if evaluation is not None else r.status == Status.SUCCEEDED,
                    "occurred_at": datetime.fromtimestamp(ts, timezone.utc).isoformat(),
                })
            if len(records) < 1000:
                break
            cursor = records[-1].id
    return out


# A job executed in-process (`execute_in_process`: the CLI, the demo, tests) has no repository
# on its context; definitions.py registers the code location here, so the report still sees
# every check of it (this module never imports definitions.py: imports run one way).
_code_location: dg.Definitions | None = None


def register_code_location(defs: dg.Definitions) -> None:
    global _code_location
    _code_location = defs


def all_check_keys(context: dg.AssetExecutionContext):
    """Every asset check of the code location (not only of this job)."""
    try:
        return context.repository_def.asset_graph.asset_check_keys
    except Exception:  # noqa: BLE001 - a job executed in-process outside a repository
        if _code_location is None:
            return context.job_def.asset_layer.asset_graph.asset_check_keys
        return _code_location.get_repository_def().asset_graph.asset_check_keys


def _materialize(context: dg.AssetExecutionContext, kind: str, governance: GovernanceResource) -> dg.MaterializeResult:
    from ...governance.report_render import summary_markdown
    from ...governance.reports import Period, build_report, period_for_partition

    window = context.partition_time_window
    base = period_for_partition(kind, context.partition_key, REPORT_TIMEZONE)
    # The partition window is the source of truth for the boundaries (same timezone).
    period = Period(kind, base.label, window.start, window.end, REPORT_TIMEZONE)
    checks = asset_check_results(context.instance, all_check_keys(context), since_ts=window.start.timestamp())
    settings = governance.context()
    res = build_report(settings, period, check_results=checks)
    s = res.summary
    k = res.key_figures
    context.log.info(f"compliance report {period.label}: {len(res.paths)} files in {res.out_dir}; findings: {s['findings'] or 'none'}")
    metadata: dict = {
        "summary": dg.MetadataValue.md(summary_markdown(s, res.paths)),
        "dagster/row_count": s["ledger"]["events_in_period"],
        "period": period.label,
        "period_start": period.start.isoformat(),
        "period_end": period.end.isoformat(),
        "within_policy": s["within_policy"],
        "findings": len(s["findings"]),
        "export_dir": dg.MetadataValue.path(str(res.out_dir)),
        "report_html": dg.MetadataValue.path(str(res.paths["html"])),
        "report_pdf": dg.MetadataValue.path(str(res.paths["pdf"])),
        "summary_json": dg.MetadataValue.path(str(res.paths["json"])),
        "csv_files": dg.MetadataValue.json(sorted(str(p) for n, p in res.paths.items() if n.startswith("csv_"))),
        "prometheus_textfile": dg.MetadataValue.path(str(res.prometheus_path)),
    }
    for name, value in k.items():
        if value is not None:
            metadata[name] = value
    return dg.MaterializeResult(metadata=metadata)


_DESCRIPTION = (
    "Compliance report for one {what} ({tz}): retention, erasure requests (certificates re-verified), "
    "PII scrubbing, orphans, embeddings, data quality (asset checks), audit-ledger integrity and storage. "
    "Writes report.html (charts), report.pdf, summary.json and one CSV per section to "
    "`$AISG_EXPORTS_DIR/compliance/<period>/`, plus the Prometheus textfile. No personal data: subjects "
    "appear only as salted hashes. Backfill a past period by materializing its partition."
)


@dg.asset(
    partitions_def=weekly_report_partitions,
    group_name="compliance",
    kinds={"python", "pdf", "html"},
    description=_DESCRIPTION.format(what="ISO week, Monday 00:00 to Monday 00:00", tz=REPORT_TIMEZONE),
    tags={"aisg/area": "reports"},
)
@aisg_retry
def compliance_report_weekly(
    context: dg.AssetExecutionContext,
    governance: GovernanceResource,
) -> dg.MaterializeResult:
    return _materialize(context, "week", governance)


@dg.asset(
    partitions_def=monthly_report_partitions,
    group_name="compliance",
    kinds={"python", "pdf", "html"},
    description=_DESCRIPTION.format(what="calendar month", tz=REPORT_TIMEZONE),
    tags={"aisg/area": "reports"},
)
@aisg_retry
def compliance_report_monthly(
    context: dg.AssetExecutionContext,
    governance: GovernanceResource,
) -> dg.MaterializeResult:
    return _materialize(context, "month", governance)


compliance_report_weekly_job = dg.define_asset_job(
    "compliance_report_weekly_job", selection=[compliance_report_weekly],
    description="Export the weekly compliance report for one ISO week.",
)
compliance_report_monthly_job = dg.define_asset_job(
    "compliance_report_monthly_job", selection=[compliance_report_monthly],
    description="Export the monthly compliance report for one month.",
)

# Monday 06:00 and the 1st 06:00 in the report timezone; each run reports the period just ended.
compliance_report_weekly_schedule = dg.build_schedule_from_partitioned_job(
    compliance_report_weekly_job, name="compliance_report_weekly_schedule", hour_of_day=6, minute_of_hour=0, day_of_week=1, default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Weekly compliance report, Monday 06:00 (report timezone), for the week that just ended.",
)
compliance_report_monthly_schedule = dg.build_schedule_from_partitioned_job(
    compliance_report_monthly_job, name="compliance_report_monthly_schedule", hour_of_day=6, minute_of_hour=0, day_of_month=1, default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Monthly compliance report, 1st of the month 06:00 (report timezone), for the month that just ended.",
)
