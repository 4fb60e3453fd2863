"""Great Expectations checks on documents and chunks, per ingest batch.

The ingest run evaluates these checks per batch inside its chunks op (assets.py) and its job
runs none of them as steps; these definitions run a check from the UI, on one partition or on a
range (then one result over every batch of the range).
"""


import dagster as dg

from ..partitions import ingest_batches
from ..resources import GovernanceResource, PiiScrubberResource
from .assets import chunks, documents


def _batches(context: dg.AssetCheckExecutionContext) -> list[str]:
    op = context.op_execution_context
    return list(op.partition_keys) if op.has_partition_key_range else [context.partition_key]


def _merged(results):
    from ...governance.quality import QualityResult

    return QualityResult([o for q in results for o in q.outcomes])


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

    store = governance.context().store
    return _result(_merged([check_documents(store, b) for b in _batches(context)]))


@dg.asset_check(
    asset=documents,
    partitions_def=ingest_batches,
    blocking=True,
    description="The scrubbed text matches none of the nine PII detectors at high confidence.",
)
def documents_pii_free(context: dg.AssetCheckExecutionContext, governance: GovernanceResource, pii: PiiScrubberResource) -> dg.AssetCheckResult:
    from ...governance.checks import check_documents_pii_free

    store, scrubber = governance.context().store, pii.get_scrubber()
    results = [check_documents_pii_free(store, b, scrubber) for b in _batches(context)]
    hits: dict[str, int] = {}
    for _, h in results:
        for k, v in h.items():
            hits[k] = hits.get(k, 0) + v
    return _result(_merged([q for q, _ in results]), {"residual_pii_by_type": hits})


@dg.asset_check(asset=chunks, partitions_def=ingest_batches, blocking=True, description="GX: chunk_id unique, every chunk's document exists, no empty text.")
def chunks_valid(context: dg.AssetCheckExecutionContext, governance: GovernanceResource) -> dg.AssetCheckResult:
    from ...governance.checks import check_chunks

    store = governance.context().store
    return _result(_merged([check_chunks(store, b) for b in _batches(context)]))
