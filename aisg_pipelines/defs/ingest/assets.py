"""documents and chunks: one partition per ingest batch."""


import dagster as dg

from ...governance.chunking import ChunkerParams
from ..retry import aisg_retry
from ..metadata import column_schema, counts_table, md_table
from ..partitions import ingest_batches
from ..resources import (
    EmbeddingModelResource,
    GovernancePathsResource,
    LandingZoneResource,
    LanceStoreResource,
    LedgerResource,
    PiiScrubberResource,
    settings_from_resources,
)


@dg.asset(
    partitions_def=ingest_batches,
    group_name="ingest",
    kinds={"lancedb", "python"},
    description=(
        "Uploaded documents of one ingest batch: text extracted, normalised and PII-scrubbed "
        "(presidio, nine entity kinds) before it is written to LanceDB table `documents`. "
        "Bad uploads are moved to the quarantine directory with a reason file; links, hard links "
        "and special files are removed unread; a doc_id of another subject and a replay of an "
        "erased subject are refused; a file changing while read waits for the next tick. A "
        "changed document replaces its old chunks and vectors through the deletion cascade."
    ),
    tags={"aisg/area": "ingest"},
)
@aisg_retry
def documents(
    context: dg.AssetExecutionContext,
    lance: LanceStoreResource,
    ledger: LedgerResource,
    landing: LandingZoneResource,
    pii: PiiScrubberResource,
    paths: GovernancePathsResource,
) -> dg.MaterializeResult:
    from ...governance.pipeline import ingest_documents
    from ...governance.secrets import load_or_create_salt
    from ...governance.store import DOCUMENTS_SCHEMA

    batch_id = context.partition_key
    led = ledger.get_ledger()
    files = led.batch_files(batch_id)
    salt = load_or_create_salt(settings_from_resources(lance, ledger, landing, paths))
    res = ingest_documents(
        lance.get_store(), led, landing_dir=landing.landing, quarantine_dir=landing.quarantine,
        batch_id=batch_id, files=files, max_file_bytes=landing.max_file_bytes, scrubber=pii.get_scrubber(),
        subject_salt=salt,
    )
    for q in res.quarantined:
        context.log.warning(f"quarantined {q.rel_path}: {q.code} {q.detail}")
    if res.missing:
        context.log.warning(f"{len(res.missing)} manifest files are gone from the landing zone: {res.missing[:5]}")
    if res.deferred:
        context.log.info(f"{len(res.deferred)} files changed while read, left for the next tick: {res.deferred[:5]}")
    for key in res.emptied_batches:  # a replacement moved their last document here
        if context.instance.has_dynamic_partition(ingest_batches.name, key):
            context.instance.delete_dynamic_partition(ingest_batches.name, key)
            context.log.info(f"ingest batch {key} has no document left (replaced here): partition deleted")
    summary = (
        f"**Batch `{batch_id}`**: {res.documents} documents stored, {len(res.quarantined)} quarantined, "
        f"{len(res.deferred)} left for the next tick, {len(res.replaced)} replaced, "
        f"{sum(res.pii_counts.values())} PII entities removed.\n\n"
        + counts_table(res.pii_counts, "PII entity", "removed")
        + ("\n\n**Quarantined**\n\n" + md_table(["file", "reason", "detail"], [(q.rel_path, q.code, q.detail) for q in res.quarantined]) if res.quarantined else "")
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": res.documents,
            "dagster/column_schema": column_schema(DOCUMENTS_SCHEMA),
            "files_in_batch": len(files),
            "quarantined": len(res.quarantined),
            "quarantined_by_reason": res.quarantined_by_reason,
            "missing_from_landing": len(res.missing),
            "deferred_to_next_tick": len(res.deferred),
            "replaced_documents": len(res.replaced),
            "emptied_batches_deleted": res.emptied_batches,
            "pii_removed_total": sum(res.pii_counts.values()),
            "pii_removed_by_type": res.pii_counts,
            "rows_written": res.write,
            "summary": dg.MetadataValue.md(summary),
        }
    )


@dg.asset(
    partitions_def=ingest_batches,
    group_name="ingest",
    kinds={"lancedb", "python"},
    deps=[documents],
    description=(
        "Sentence-aware chunks of the scrubbed documents (LanceDB table `chunks`), each with a "
        "stable chunk_id (hash of doc_id and position) and the sha256 of its content."
    ),
    tags={"aisg/area": "ingest"},
)
@aisg_retry
def chunks(context: dg.AssetExecutionContext, lance: LanceStoreResource, ledger: LedgerResource, embedding_model: EmbeddingModelResource) -> dg.MaterializeResult:
    from ...governance.pipeline import chunk_documents
    from ...governance.store import CHUNKS_SCHEMA
    from ...governance.versions import VersionRegistry, ensure_bootstrap_version

    active = ensure_bootstrap_version(VersionRegistry(ledger.get_ledger()), embedding_model.resolved_model_path())
    params = ChunkerParams(active.chunk_size, active.chunk_overlap)
    res = chunk_documents(lance.get_store(), context.partition_key, params)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": res.chunks,
            "dagster/column_schema": column_schema(CHUNKS_SCHEMA),
            "documents": res.documents,
            "chunk_size": params.chunk_size,
            "chunk_overlap": params.chunk_overlap,
            "rows_written": res.write,
            "summary": dg.MetadataValue.md(f"{res.chunks} chunks from {res.documents} documents (size {params.chunk_size}, overlap {params.chunk_overlap})."),
        }
    )
