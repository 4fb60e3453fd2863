"""GX checks on each embeddings partition."""


import dagster as dg

from ..partitions import embeddings_partitions
from ..resources import GovernanceResource
from .assets import embeddings


@dg.asset_check(
    asset=embeddings,
    partitions_def=embeddings_partitions,
    blocking=True,
    description="GX: one row per chunk of the batch, dims match the version, L2 norm ≈ 1, no NaN, unique chunk_id.",
)
def embeddings_valid(context: dg.AssetCheckExecutionContext, governance: GovernanceResource) -> dg.AssetCheckResult:
    from ...governance.checks import check_embeddings
    from ...governance.versions import VersionRegistry

    key = context.partition_key.keys_by_dimension
    gov = governance.context()
    version = VersionRegistry(gov.ledger).require(key["embed_version"])
    q = check_embeddings(gov.store, version, key["batch"])
    return dg.AssetCheckResult(
        passed=q.passed,
        metadata={
            "failing_ids": q.failing_ids[:100],
            "failing_count": len(q.failing_ids),
            "expectations": dg.MetadataValue.md(q.summary_markdown()),
        },
    )
