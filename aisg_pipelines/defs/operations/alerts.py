"""Alerts: a failed run or a failed asset check pages someone, once per incident.

`alert_on_run_failure` (a run-failure sensor) and `alert_on_check_failure` (reads the
instance's asset-check evaluations after its cursor) post to AISG_ALERT_WEBHOOK_URL through
governance/alerts.py, which records an `alert.sent` event in the ledger per incident and
never posts an incident twice. A check incident opens when a check turns red and closes when
it passes again: a check that stays red through many evaluations is one alert.

AISG_ALERT_SENSOR_INTERVAL_SECONDS (default 30) is how often both sensors look.
"""


import json

import dagster as dg

from ..resources import GovernanceResource
from ...settings import env_number

INTERVAL = env_number("AISG_ALERT_SENSOR_INTERVAL_SECONDS", 30, minimum=1)
_BATCH = 500


@dg.run_failure_sensor(
    name="alert_on_run_failure",
    minimum_interval_seconds=INTERVAL,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts one alert per failed run (any job of this code location) to AISG_ALERT_WEBHOOK_URL and records it in the ledger.",
)
def alert_on_run_failure(context: dg.RunFailureSensorContext, governance: GovernanceResource):
    from ...governance.alerts import Alert, send_alert, ui_link

    run = context.dagster_run
    message = (context.failure_event.message or "") if context.failure_event else ""
    steps = [e.step_key for e in context.get_step_failure_events() if e.step_key]
    fields = {"job": run.job_name, "run": run.run_id, "failed steps": ", ".join(steps) or "-"}
    for tag in ("dagster/partition", "dagster/schedule_name", "dagster/sensor_name", "dagster/retry_number"):
        if tag in run.tags:
            fields[tag.split("/", 1)[1]] = run.tags[tag]
    link = ui_link(f"runs/{run.run_id}")
    if link:
        fields["link"] = link
    sent = send_alert(governance.context().ledger, Alert(
        incident=f"run_failure:{run.run_id}", kind="run_failure", severity="error",
        title=f"Dagster run of {run.job_name} failed", text=message[:1500] or "the run failed", fields=fields,
    ))
    context.log.info(f"run {run.run_id} ({run.job_name}) failed: {'alert sent' if sent else 'already alerted'}")


def _run_unfinished(instance: dg.DagsterInstance, run_id: str) -> bool:
    run = instance.get_run_by_id(run_id)
    return run is not None and not run.is_finished


def check_evaluations(instance: dg.DagsterInstance, check_keys, seen: dict) -> list[dict]:
    """Completed evaluations newer than `seen[check]` (an execution-record id per check),
    oldest first. Works on every event-log storage (run-sharded sqlite included)."""
    from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluation
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus as Status

    out = []
    for key in check_keys:
        name = f"{key.asset_key.to_user_string()}/{key.name}"
        after = seen.get(name, 0)
        newer = [r for r in instance.event_log_storage.get_asset_check_execution_history(key, limit=_BATCH) if r.id > after]
        # a record still in progress is updated in place later (same id): stop before it
        pending = [r.id for r in newer if r.status not in (Status.SUCCEEDED, Status.FAILED) and _run_unfinished(instance, r.run_id)]
        for r in newer:
            if pending and r.id >= min(pending):
                continue
            ev = r.evaluation
            if not isinstance(ev, AssetCheckEvaluation):
                continue  # the check errored (then its run failed: alert_on_run_failure)
            md = {k: getattr(v, "value", v) for k, v in (ev.metadata or {}).items()}
            out.append({"check": name, "id": r.id, "passed": bool(ev.passed), "run_id": r.run_id, "description": ev.description or "",
                        "severity": getattr(ev.severity, "value", str(ev.severity)), "metadata": md})
    return sorted(out, key=lambda e: e["id"])


def plan_check_alerts(evaluations: list[dict], state: dict) -> tuple[list[dict], dict]:
    """Fold evaluations (oldest first) into the open incidents; return (incidents to alert, new state).

    state = {"seen": {check: record id}, "open": {check: incident}, "alerted": [incidents]}.
    An incident opens at a check's first red evaluation and closes at its next green one; it
    is alerted once, if still open at the end of the batch (red then green within one tick
    healed itself)."""
    seen = dict(state.get("seen", {}))
    open_ = dict(state.get("open", {}))
    alerted = set(state.get("alerted", []))
    latest: dict[str, dict] = {}
    for ev in evaluations:
        check = ev["check"]
        seen[check] = max(seen.get(check, 0), ev["id"])
        if ev["passed"]:
            open_.pop(check, None)
            latest.pop(check, None)
            continue
        open_.setdefault(check, f"check:{check}:{ev['id']}")
        latest[check] = {**ev, "incident": open_[check]}
    todo = [v for v in latest.values() if v["incident"] not in alerted]
    alerted &= set(open_.values())  # forget closed incidents
    return todo, {"seen": seen, "open": open_, "alerted": sorted(alerted)}


@dg.sensor(
    name="alert_on_check_failure",
    minimum_interval_seconds=INTERVAL,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts one alert per failing asset check (erasure SLA, retention, orphans, ledger chain, report freshness, "
    "data quality) to AISG_ALERT_WEBHOOK_URL when it turns red; nothing more while it stays red.",
)
def alert_on_check_failure(context: dg.SensorEvaluationContext, governance: GovernanceResource):
    from ...governance.alerts import Alert, send_alert, ui_link

    state = json.loads(context.cursor) if context.cursor else {}
    evaluations = check_evaluations(context.instance, context.repository_def.asset_graph.asset_check_keys, state.get("seen", {}))
    if not evaluations:
        return dg.SkipReason("no new asset-check evaluations")
    todo, new_state = plan_check_alerts(evaluations, state)
    led = governance.context().ledger
    alerted = set(new_state["alerted"])
    for inc in todo:
        md = {k: (json.dumps(v) if isinstance(v, (dict, list)) else str(v))[:200] for k, v in inc["metadata"].items()}
        link = ui_link(f"runs/{inc['run_id']}")
        sev = "error" if inc["severity"].upper() == "ERROR" else "warning"
        send_alert(led, Alert(
            incident=inc["incident"], kind="check_failure", severity=sev,
            title=f"Asset check {inc['check']} failed", text=inc["description"] or f"{inc['check']} is red",
            fields={**md, "run": inc["run_id"] or "-", **({"link": link} if link else {})},
        ))
        alerted.add(inc["incident"])
        # advance the cursor only past what is delivered: a webhook error raises and the tick is redone
    new_state["alerted"] = sorted(alerted)
    context.update_cursor(json.dumps(new_state, sort_keys=True))
    return dg.SkipReason(f"{len(evaluations)} evaluations, {len(todo)} new incident(s) alerted")
