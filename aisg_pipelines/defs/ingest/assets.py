"""documents and chunks: one partition per ingest batch, many batches per run.

A run covers a range of `ingest_batches` partitions (single-run backfill policy: the landing
sensor coalesces the batches of a tick into one run, `sensors.py`). Each batch still gets its
own materialization, metadata and check results, so the UI shows one per batch partition.

`chunks` also runs the ingest checks and embeds its new chunks under the active embed_version,
all in one op of one process (the model, presidio and GX are loaded once per run):

    per batch: documents_valid + documents_pii_free -> chunk -> chunks_valid
    then every batch that passed: vectors of the active version (`embed_batches`), and per batch
    an `embeddings` materialization (partition <batch>|<version>) and its embeddings_valid result.

A batch whose blocking check fails goes no further, the others do, and the step fails at the
end (Dagster raises for a failed blocking check). The `@asset_check` definitions in checks.py
stay for running a check on one partition from the UI; the ingest job runs none of them as
separate steps.
"""


import dagster as dg

from ...governance.chunking import ChunkerParams
from ..retry import aisg_retry
from ..metadata import column_schema, counts_table, embedded_batch_metadata, md_table
from ..partitions import embed_versions, embeddings_key, ingest_batches
from ..resources import EmbeddingModelResource, GovernanceResource, PiiScrubberResource


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
    backfill_policy=dg.BackfillPolicy.single_run(),
)
@aisg_retry
def documents(
    context: dg.AssetExecutionContext,
    governance: GovernanceResource,
    pii: PiiScrubberResource,
) -> dg.MaterializeResult:
    from ...governance.store import DOCUMENTS_SCHEMA

    tag_worker(context)
    gov = governance.context()
    led, store, salt = gov.ledger, gov.store, gov.salt
    scrubber = pii.get_scrubber()
    keys = context.partition_keys
    for batch_id in keys:
        context.add_asset_metadata(
            _ingest_batch(context, store, led, gov, scrubber, salt, batch_id, DOCUMENTS_SCHEMA), partition_key=batch_id
        )
    return dg.MaterializeResult(metadata={"batches_in_run": len(keys)})


def _ingest_batch(context, store, led, gov, scrubber, salt, batch_id: str, schema) -> dict:
    from ...governance.pipeline import ingest_documents

    files = led.batch_files(batch_id)
    res = ingest_documents(
        store, led, landing_dir=gov.landing_dir, quarantine_dir=gov.quarantine_dir,
        batch_id=batch_id, files=files, max_file_bytes=gov.max_file_bytes, scrubber=scrubber,
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
    return {
        "dagster/row_count": res.documents,
        "dagster/column_schema": column_schema(schema),
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


@dg.asset(
    partitions_def=ingest_batches,
    group_name="ingest",
    kinds={"lancedb", "python"},
    deps=[documents],
    description=(
        "Sentence-aware chunks of the scrubbed documents (LanceDB table `chunks`), each with a "
        "stable chunk_id (hash of doc_id and position) and the sha256 of its content. The same op "
        "runs the documents and chunks checks per batch and embeds the new chunks under the "
        "active embed_version (materializations of `embeddings` <batch>|<version>)."
    ),
    tags={"aisg/area": "ingest"},
    backfill_policy=dg.BackfillPolicy.single_run(),
    output_required=False,  # materializations are reported per batch that passed its document checks
)
@aisg_retry
def chunks(
    context: dg.AssetExecutionContext,
    governance: GovernanceResource,
    pii: PiiScrubberResource,
    embedding_model: EmbeddingModelResource,
):
    from ...governance.checks import check_chunks, check_documents, check_documents_pii_free
    from ...governance.pipeline import chunk_documents
    from ...governance.store import CHUNKS_SCHEMA
    from ...governance.versions import VersionRegistry, ensure_bootstrap_version

    tag_worker(context)
    gov = governance.context()
    store = gov.store
    active = ensure_bootstrap_version(VersionRegistry(gov.ledger), embedding_model.resolved_model_path())
    params = ChunkerParams(active.chunk_size, active.chunk_overlap)
    scrubber = pii.get_scrubber()
    chunked: list[str] = []
    for batch_id in context.partition_keys:
        valid = check_documents(store, batch_id)
        pii_free, hits = check_documents_pii_free(store, batch_id, scrubber)
        yield check_evaluation("documents", "documents_valid", batch_id, valid)
        yield check_evaluation("documents", "documents_pii_free", batch_id, pii_free, {"residual_pii_by_type": hits})
        if not (valid.passed and pii_free.passed):
            context.log.error(f"batch {batch_id}: a blocking documents check failed; not chunked or embedded")
            continue
        res = chunk_documents(store, batch_id, params)
        yield dg.AssetMaterialization(
            asset_key="chunks",
            partition=batch_id,
            metadata={
                "dagster/row_count": res.chunks,
                "dagster/column_schema": column_schema(CHUNKS_SCHEMA),
                "documents": res.documents,
                "chunk_size": params.chunk_size,
                "chunk_overlap": params.chunk_overlap,
                "rows_written": res.write,
                "summary": dg.MetadataValue.md(f"{res.chunks} chunks from {res.documents} documents (size {params.chunk_size}, overlap {params.chunk_overlap})."),
            },
        )
        q = check_chunks(store, batch_id)
        yield check_evaluation("chunks", "chunks_valid", batch_id, q)
        if q.passed:
            chunked.append(batch_id)
    if chunked:
        yield from embed_active(context, store, active, chunked, embedding_model.batch_size)


def embed_active(context, store, version, batch_ids: list[str], batch_size: int):
    """Vectors of `batch_ids` under `version` (incremental), one `embeddings` materialization per
    batch as soon as its vectors are written, then embeddings_valid per batch."""
    from ...governance.checks import check_embeddings
    from ...governance.pipeline import embed_batches

    if not context.instance.has_dynamic_partition(embed_versions.name, version.name):
        context.instance.add_dynamic_partitions(embed_versions.name, [version.name])
    done: list[str] = []

    def on_batch(r) -> None:
        done.append(r.batch_id)
        context.log_event(
            dg.AssetMaterialization(
                asset_key="embeddings",
                partition=str(embeddings_key(version.name, r.batch_id)),
                description=f"embedded by the ingest run under the active version {version.name}",
                metadata=embedded_batch_metadata(version, r),
            )
        )

    embed_batches(store, version, batch_ids, batch_size=batch_size, on_batch=on_batch)
    for batch_id in done:
        q = check_embeddings(store, version, batch_id)
        yield check_evaluation("embeddings", "embeddings_valid", str(embeddings_key(version.name, batch_id)), q)


def check_evaluation(asset: str, check: str, partition: str, q, extra: dict | None = None) -> dg.AssetCheckEvaluation:
    """The result of one of the ingest checks for one partition, reported from the ingest op
    (blocking: a failure fails the step once every batch has been handled)."""
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey(asset),
        check_name=check,
        passed=q.passed,
        partition=partition,
        blocking=True,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "failing_ids": q.failing_ids[:100],
            "failing_count": len(q.failing_ids),
            "expectations": dg.MetadataValue.md(q.summary_markdown()),
            **(extra or {}),
        },
    )


def tag_worker(context) -> None:
    """Tag the run with this process (host:pid:start) when every step runs in it, so the landing
    sensor can tell a run whose worker was killed from a running one (erasure does the same)."""
    from ..erasure.sensors import WORKER_TAG, worker_identity

    if context.op_execution_context.job_def.executor_def.name not in ("in_process", "execute_in_process_executor"):
        return  # steps in processes of their own: a step's pid says nothing about the run
    ident = worker_identity()
    if context.run.tags.get(WORKER_TAG) != ident:
        context.instance.add_run_tags(context.run_id, {WORKER_TAG: ident})
