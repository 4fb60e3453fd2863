"""Great Expectations checks on documents and chunks, per ingest batch."""


import dagster as dg

from ..partitions import ingest_batches
from ..resources import GovernanceResource, PiiScrubberResource
from .assets import chunks, documents


def _result(q, extra: dict | None = None) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=q.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "failing_ids": q.failing_ids[:100],
            "failing_count": len(q.failing_ids),
            "expectations": dg.MetadataValue.md(q.summary_markdown()),
            **(extra or {}),
        },
    )


@dg.asset_check(asset=documents, partitions_def=ingest_batches, blocking=True, description="GX: doc_id unique, subject_id not null.")
def documents_valid(context: dg.AssetCheckExecutionContext, governance: GovernanceResource) -> dg.AssetCheckResult:
    from ...governance.checks import check_documents

    return _result(check_documents(governance.context().store, context.partition_key))


@dg.asset_check(
    asset=documents,
    partitions_def=ingest_batches,
    blocking=True,
    description="The scrubbed text matches none of the nine PII detectors at high confidence.",
)
def documents_pii_free(context: dg.AssetCheckExecutionContext, governance: GovernanceResource, pii: PiiScrubberResource) -> dg.AssetCheckResult:
    from ...governance.checks import check_documents_pii_free

    q, hits = check_documents_pii_free(governance.context().store, context.partition_key, pii.get_scrubber())
    return _result(q, {"residual_pii_by_type": hits})


@dg.asset_check(asset=chunks, partitions_def=ingest_batches, blocking=True, description="GX: chunk_id unique, every chunk's document exists, no empty text.")
def chunks_valid(context: dg.AssetCheckExecutionContext, governance: GovernanceResource) -> dg.AssetCheckResult:
    from ...governance.checks import check_chunks

    return _result(check_chunks(governance.context().store, context.partition_key))
