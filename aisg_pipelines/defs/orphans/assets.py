"""orphan_report: what drifted between documents, chunks, every embed_version, the landing
zone and the ingest_batches partitions. The logic is in governance/orphans.py."""

import json

import dagster as dg

from ..retry import aisg_retry
from ..metadata import md_table
from ..resources import GovernanceResource

INGEST_BATCHES = "ingest_batches"
CHECK_NAME = "no_cleanable_orphans"


class OrphanReportConfig(dg.Config):
    landing_grace_seconds: float = 3600.0  # landing files younger than this are pending, not orphans


def build_scope(governance: GovernanceResource, grace: float):
    """(ledger, OrphanScope) of the run's runtime context."""
    from ...governance.orphans import OrphanScope

    gov = governance.context()
    return gov.ledger, OrphanScope.from_settings(gov, grace_seconds=grace)


class DagsterPartitions:
    """PartitionOps over the instance's `ingest_batches` dynamic partitions."""

    def __init__(self, instance: dg.DagsterInstance):
        self.instance = instance

    def keys(self) -> list[str]:
        return list(self.instance.get_dynamic_partitions(INGEST_BATCHES))

    def delete(self, key: str) -> None:
        if self.instance.has_dynamic_partition(INGEST_BATCHES, key):
            self.instance.delete_dynamic_partition(INGEST_BATCHES, key)

    def add(self, keys) -> None:
        self.instance.add_dynamic_partitions(INGEST_BATCHES, list(keys))


def report_metadata(report, csv_path) -> dict:
    from ...governance.orphans import KINDS

    counts = report.counts
    meta: dict = {f"orphans/{k}": counts[k] for k in KINDS}
    meta.update(
        {
            "dagster/row_count": report.total,
            "cleanable_total": report.cleanable_total,
            "reported_only_kinds": [k for k, v in KINDS.items() if v.reported_only],
            "sample_ids": dg.MetadataValue.json(report.samples(5)),
            "csv_export": dg.MetadataValue.path(str(csv_path)),
            "active_version": report.active_version or "-",
            "embedding_tables": report.embedding_tables,
            "rows_scanned": dg.MetadataValue.json(report.rows_scanned),
            "seconds": round(report.seconds, 3),
            "summary": dg.MetadataValue.md(
                f"**{report.total} orphans** ({report.cleanable_total} cleanable by `orphan_cleanup`).\n\n" + report.markdown()
            ),
        }
    )
    return meta


@dg.asset(
    group_name="governance",
    kinds={"lancedb", "numpy"},
    check_specs=[
        dg.AssetCheckSpec(
            CHECK_NAME,
            asset="orphan_report",
            description="Fails while any kind that orphan_cleanup fixes is non-zero (reported-only kinds do not fail it).",
        )
    ],
    description=(
        "Orphans across documents, chunks, every embeddings_<version> table (retired included), the landing "
        "zone and the ingest_batches partitions, found by anti-joins on id/hash columns (vectors and text are "
        "never read). Each kind is counted separately; a CSV of every orphan id is written under exports/orphans/."
    ),
    tags={"aisg/area": "orphans"},
)
@aisg_retry
def orphan_report(
    context: dg.AssetExecutionContext,
    config: OrphanReportConfig,
    governance: GovernanceResource,
) -> dg.MaterializeResult:
    from ...governance.orphans import CLEANABLE, audit_report, detect_orphans

    led, scope = build_scope(governance, config.landing_grace_seconds)
    report = detect_orphans(scope, DagsterPartitions(context.instance).keys())
    csv_path = report.write_csv(scope.exports_dir)
    audit_report(led, report, csv_path)
    counts = report.counts
    failing = {k: counts[k] for k in CLEANABLE if counts[k]}
    return dg.MaterializeResult(
        metadata=report_metadata(report, csv_path),
        check_results=[
            dg.AssetCheckResult(
                check_name=CHECK_NAME,
                passed=not failing,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "failing_kinds": dg.MetadataValue.json(failing),
                    "counts": dg.MetadataValue.md(md_table(["kind", "count"], sorted(counts.items()))),
                },
            )
        ],
    )


class OrphanCleanupConfig(dg.Config):
    dry_run: bool = True
    landing_grace_seconds: float = 3600.0


@dg.op(
    description="Detect orphans now and clean the cleanable kinds (dry_run: true by default: count only).",
    tags={"aisg/area": "orphans"},
)
@aisg_retry
def clean_orphans(
    context: dg.OpExecutionContext,
    config: OrphanCleanupConfig,
    governance: GovernanceResource,
) -> dg.Output[dict]:
    from ...governance.orphans import detect_orphans

    led, scope = build_scope(governance, config.landing_grace_seconds)
    parts = DagsterPartitions(context.instance)
    report = detect_orphans(scope, parts.keys())
    csv_path = report.write_csv(scope.exports_dir)
    from ...governance.orphans import cleanup_orphans

    res = cleanup_orphans(scope, report, dry_run=config.dry_run, partitions=parts, ledger=led, actor=f"dagster:{context.run_id}")
    verb = "would clean" if res.dry_run else "cleaned"
    context.log.info(f"orphan_cleanup dry_run={res.dry_run}: {verb} {res.total}: {json.dumps(res.deleted)}")
    value = {"dry_run": res.dry_run, "deleted": res.deleted, "rows_deleted": res.rows_deleted, "found": report.counts}
    return dg.Output(
        value,
        metadata={
            "dry_run": res.dry_run,
            "dagster/row_count": res.total,
            **{f"cleaned/{k}": v for k, v in res.deleted.items()},
            "rows_deleted_per_table": dg.MetadataValue.json(res.rows_deleted),
            "purge": dg.MetadataValue.json(res.purge),
            "csv_export": dg.MetadataValue.path(str(csv_path)),
            "summary": dg.MetadataValue.md(f"**dry_run={res.dry_run}**: {verb} {res.total}.\n\n" + res.markdown() + "\n\nFound:\n\n" + report.markdown()),
        },
    )


@dg.job(
    name="orphan_cleanup",
    description="Clean orphans: vectors (every version) and chunks by id list, landing files to quarantine, the shared "
    "physical purge, empty partitions. Config `dry_run: true` (default) only reports what it would do.",
    tags={"aisg/job": "orphans"},
)
def orphan_cleanup():
    clean_orphans()


orphan_report_job = dg.define_asset_job(
    "orphan_report_job", selection=dg.AssetSelection.assets("orphan_report"), description="Materialise orphan_report.", tags={"aisg/job": "orphans"}
)

# No fixed-time schedule: the orphan report runs after each successful retention run
# (sensor orphan_report_after_retention in defs/operations/health.py), never during the purge.
