"""Telemetry assets (system_logs, metrics: one dynamic partition per day) and the retention report."""

from datetime import datetime, timezone

import dagster as dg

from ..retry import aisg_retry
from ..metadata import md_table
from ..resources import GovernanceResource, PiiScrubberResource
from .partitions import metric_days, system_log_days

CATEGORY_ORDER = ("user_content", "system_logs", "metrics", "audit_ledger", "retired_embed_versions")


def _telemetry(context: dg.AssetExecutionContext, kind: str, governance: GovernanceResource, pii) -> dg.MaterializeResult:
    from pathlib import Path

    from ...governance.telemetry import KINDS, ingest_days

    gov = governance.context()
    directory = Path(gov.logs_dir if kind == "system_logs" else gov.metrics_dir)
    quarantine = Path(gov.quarantine_dir)
    days = list(context.partition_keys)
    results = ingest_days(gov.store, kind, directory, quarantine, days, scrubber=pii.get_scrubber())
    rows = sum(r.rows for r in results)
    malformed = sum(r.malformed for r in results)
    by_reason: dict[str, int] = {}
    for r in results:
        for k, v in r.malformed_by_reason.items():
            by_reason[k] = by_reason.get(k, 0) + v
    if malformed:
        context.log.warning(f"{malformed} malformed {kind} lines quarantined under {quarantine / 'telemetry' / kind}")
    table = md_table(["day", "files", "rows", "malformed"], [(r.day, r.files, r.rows, r.malformed) for r in results[:60]])
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "days": len(days),
            "malformed_lines": malformed,
            "malformed_by_reason": by_reason,
            "days_without_files": sum(1 for r in results if r.files == 0),
            "table": KINDS[kind][0],
            "summary": dg.MetadataValue.md(f"{rows} {kind} rows from {len(days)} day(s), {malformed} malformed line(s) quarantined.\n\n" + table),
        }
    )


@dg.asset(
    partitions_def=system_log_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="telemetry",
    kinds={"lancedb", "python"},
    description=(
        "AISG structured JSON-lines system logs (timestamp, level, message, request_id, trace_id, user_id, "
        "service, job_id, duration_ms) from AISG_LOGS_DIR, one partition per day, LanceDB table `system_logs`. "
        "Malformed lines are quarantined with a reason, never fatal. Kept 90 days."
    ),
    tags={"aisg/area": "retention"},
)
@aisg_retry
def system_logs(context: dg.AssetExecutionContext, governance: GovernanceResource, pii: PiiScrubberResource) -> dg.MaterializeResult:
    return _telemetry(context, "system_logs", governance, pii)


@dg.asset(
    partitions_def=metric_days,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="telemetry",
    kinds={"lancedb", "python"},
    description=(
        "AISG metric samples (name, labels, value, timestamp: rag_queue_length, rag_job_duration_ms, "
        "dlq_entries_total, embedding_api_latency_ms, worker_active_jobs, ...) from AISG_METRICS_DIR, one "
        "partition per day, LanceDB table `metrics`. Kept 30 days."
    ),
    tags={"aisg/area": "retention"},
)
@aisg_retry
def metrics(context: dg.AssetExecutionContext, governance: GovernanceResource, pii: PiiScrubberResource) -> dg.MaterializeResult:
    return _telemetry(context, "metrics", governance, pii)


class RetentionConfig(dg.Config):
    dry_run: bool = False
    as_of: str = ""  # ISO-8601; blank = now (tests and demos pin the clock)
    policy_file: str = ""  # blank = the packaged aisg_pipelines/config/retention.yaml


def parse_as_of(value: str) -> datetime:
    if not value:
        return datetime.now(timezone.utc)
    ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


@dg.asset(
    group_name="retention",
    kinds={"lancedb", "python"},
    description=(
        "One retention run over every category (user content 180 d, system logs 90 d, metrics 30 d, "
        "audit ledger 7 y (expired prefix of the chain, behind a checkpoint), retired embed_versions 30 d after retirement): deletes by id lists, "
        "physically purges (LanceStore.purge), removes emptied dynamic partition keys, skips legal holds, "
        "and writes a retention.purge audit event per category."
    ),
    tags={"aisg/area": "retention"},
)
@aisg_retry
def retention_report(
    context: dg.AssetExecutionContext,
    config: RetentionConfig,
    governance: GovernanceResource,
) -> dg.MaterializeResult:
    from ...governance import events
    from ...governance.retention import PARTITIONS, load_policies, run_retention

    settings = governance.context()
    policies = load_policies(config.policy_file or None)
    instance = context.instance
    known = {name: list(instance.get_dynamic_partitions(name)) for name in PARTITIONS.values()}
    res = run_retention(settings, now=parse_as_of(config.as_of), dry_run=config.dry_run, policies=policies, known_partitions=known)
    removed: dict[str, int] = {}
    led = settings.ledger
    if not config.dry_run:
        for name, keys in res.partitions_emptied.items():
            live = set(known.get(name, []))
            n = 0
            for key in keys:
                if key in live:
                    instance.delete_dynamic_partition(name, key)
                    n += 1
                if name == "ingest_batches":
                    led.forget_batch(key)
            removed[name] = n
        if removed:
            events.record(led, events.RetentionPartitionsRemoved(removed=removed, as_of=res.as_of), actor="retention")
    md: dict = {
        "dagster/row_count": res.total_deleted_rows,
        "as_of": res.as_of,
        "dry_run": res.dry_run,
        "policy_file": policies.source,
        "bytes_reclaimed": res.bytes_reclaimed,
        "seconds": res.seconds,
        "partitions_removed": removed,
        "partitions_emptied": {k: len(v) for k, v in res.partitions_emptied.items()},
    }
    for cat in CATEGORY_ORDER:
        r = res.categories[cat]
        md[f"{cat}_expired"] = r.expired
        md[f"{cat}_deleted"] = r.deleted
        md[f"{cat}_held"] = r.held
        md[f"{cat}_bytes_reclaimed"] = r.bytes_reclaimed
        md[f"{cat}_oldest_remaining_age_days"] = r.oldest_remaining_age_days if r.oldest_remaining_age_days is not None else -1.0
        md[f"{cat}_rows_deleted"] = r.rows_deleted
        md[f"{cat}_partitions_removed"] = removed.get(PARTITIONS.get(cat, ""), 0)
    held = [(c, i) for c, r in res.categories.items() for i in r.held_items]
    summary = res.summary_markdown()
    if held:
        summary += "\n\n**Kept under hold**\n\n" + md_table(["category", "id"], held[:200])
    md["summary"] = dg.MetadataValue.md(summary)
    context.log.info(summary)
    return dg.MaterializeResult(metadata=md)
