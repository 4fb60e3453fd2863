"""governance_health: a daily job that evaluates the governance promises on its own.

It runs asset checks only (no asset is materialized, no erasure or retention is run):
erasure SLA (`erasure_sla`), retention overdue (one check per category), ledger-chain
integrity (`ledger_chain_intact`, on the external `audit_ledger` asset) and report freshness
(`compliance_reports_fresh`). A red check is paged by `alert_on_check_failure`, so a stuck
or failed erasure request turns red and alerts even when no erasure run ever happens.

Also here: the orphan report runs after each successful retention run (not at a fixed time
that could fall inside the purge).
"""


import time

import dagster as dg

from ..resources import GovernanceResource

audit_ledger = dg.AssetSpec(
    "audit_ledger",
    group_name="governance_stores",
    kinds={"postgres"},
    owners=["team:aisg-platform"],
    description="The governance ledger (AISG_LEDGER_URL): hash-chained audit events, batches, embed_versions, legal holds, "
    "erasure requests, the denylist; signed checkpoints outside the database (docs/ledger_integrity.md).",
)

# A weekly report is due every Monday, a monthly one every 1st; the daily governance assets
# (retention at 03:30, the orphan report after it) every day; a day of slack for the run itself.
FRESHNESS_DAYS = {"compliance_report_weekly": 8.0, "compliance_report_monthly": 32.0, "retention_report": 2.0, "orphan_report": 2.0}


@dg.asset_check(
    asset=audit_ledger.key,
    name="ledger_chain_intact",
    description="The audit ledger's hash chain verifies from its anchor (genesis or the newest checkpoint): no event edited, deleted, inserted or reordered.",
)
def ledger_chain_intact(governance: GovernanceResource) -> dg.AssetCheckResult:
    v = governance.context().ledger.verify_chain()
    return dg.AssetCheckResult(
        passed=v.ok, severity=dg.AssetCheckSeverity.ERROR,
        description=None if v.ok else "; ".join(v.problems[:5]),
        metadata={"events": v.events, "head_seq": v.head_seq if v.head_seq is not None else -1, "head_hash": v.head_hash,
                  "problems": len(v.problems), "pruned_events": v.pruned_events},
    )


@dg.asset_check(
    asset=audit_ledger.key,
    name="compliance_reports_fresh",
    description="Freshness: the weekly compliance report was built within 8 days, the monthly one within 32 days, and the daily "
    "retention_report and orphan_report within 2 days.",
)
def compliance_reports_fresh(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    now = time.time()
    ages: dict[str, float] = {}
    stale = []
    for name, limit in FRESHNESS_DAYS.items():
        ev = context.instance.get_latest_materialization_event(dg.AssetKey(name))
        age = (now - ev.timestamp) / 86400 if ev is not None else float("inf")
        ages[name] = round(age, 2) if age != float("inf") else -1.0
        if age > limit:
            stale.append(f"{name} {'never built' if ev is None else f'last built {age:.1f} days ago'} (limit {limit:g})")
    return dg.AssetCheckResult(
        passed=not stale, severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(stale) or None,
        metadata={f"{k}_age_days": v for k, v in ages.items()},
    )


def health_selection() -> dg.AssetSelection:
    from ..access.assets import access_sla  # GDPR access requests: the same 30-day deadline (issue 17)
    from ..erasure.assets import erasure_sla
    from ..retention.checks import retention_checks

    return dg.AssetSelection.checks(erasure_sla, access_sla, *retention_checks, ledger_chain_intact, compliance_reports_fresh)


governance_health_job = dg.define_asset_job(
    "governance_health",
    selection=health_selection(),
    description="Evaluate erasure SLA, retention overdue, ledger-chain integrity and report freshness (checks only; "
    "nothing is deleted or materialized). Red checks are alerted by alert_on_check_failure.",
    tags={"aisg/job": "health"},
)

governance_health_daily = dg.ScheduleDefinition(
    name="governance_health_daily",
    job=governance_health_job,
    cron_schedule="15 5 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily governance health checks at 05:15 UTC (after retention at 03:30 and the orphan report it triggers).",
)


def _orphan_job():
    from ..orphans.assets import orphan_report_job

    return orphan_report_job


def _retention_job():
    from ..retention.sensors import retention_job

    return retention_job


@dg.run_status_sensor(
    name="orphan_report_after_retention",
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[_retention_job()],
    request_job=_orphan_job(),
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Runs the orphan report once after each successful retention run, so the scan never overlaps the purge.",
)
def orphan_report_after_retention(context: dg.RunStatusSensorContext):
    return dg.RunRequest(run_key=f"orphans_after:{context.dagster_run.run_id}", tags={"aisg/after_run": context.dagster_run.run_id})
