"""embeddings: one partition per (ingest batch, embed_version)."""


import dagster as dg

from ..retry import aisg_retry
from ..metadata import embedded_batch_metadata
from ..partitions import embeddings_partitions
from ..resources import EmbeddingModelResource, GovernanceResource


@dg.asset(
    partitions_def=embeddings_partitions,
    group_name="ingest",
    kinds={"lancedb", "pytorch"},
    deps=[
        dg.AssetDep(
            "chunks",
            partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="batch"),
        )
    ],
    description=(
        "Vectors of each chunk under one embed_version, in LanceDB table `embeddings_<version>` "
        "(one table per version: dropping a version is cheap and search never scans another). "
        "Incremental: keyed by (embed_version, chunk_id, content sha256), so unchanged chunks are not re-embedded."
    ),
    tags={"aisg/area": "embeddings"},
)
@aisg_retry
def embeddings(
    context: dg.AssetExecutionContext,
    governance: GovernanceResource,
    embedding_model: EmbeddingModelResource,
) -> dg.MaterializeResult:
    from ...governance.pipeline import embed_batch
    from ...governance.versions import VersionRegistry

    gov = governance.context()
    key = context.partition_key.keys_by_dimension
    version = VersionRegistry(gov.ledger).require(key["embed_version"])
    batch_id = key["batch"]

    def progress(done, total, elapsed):
        rate = done / elapsed if elapsed else 0.0
        eta = (total - done) / rate if rate else 0.0
        context.log.info(f"{version.name}|{batch_id}: {done}/{total} chunks, {rate:.1f} chunks/s, ETA {eta:.0f}s")

    store = gov.store
    res = embed_batch(store, version, batch_id, batch_size=embedding_model.batch_size, progress=progress)
    return dg.MaterializeResult(
        metadata={
            **embedded_batch_metadata(version, res),
            # commits retried after a conflict with another run writing the same table (parallel backfill)
            "commit_retries": store.commit_retries,
            "summary": dg.MetadataValue.md(
                f"**{version.name}** batch `{batch_id}`: {res.chunks} chunks, {res.embedded} embedded now, "
                f"{res.skipped} unchanged, {res.stale_removed} stale vectors removed, {res.chunks_per_second:.1f} chunks/s."
            ),
        }
    )
