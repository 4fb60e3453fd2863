"""reindex_all and rollback_embed_version: the blue-green path between embed_versions.

Thin layer over `governance.reindex`: config, progress logs, one AssetMaterialization of
`embeddings` per (batch, version) partition so the UI shows the version's partitions as
materialised, and the typed result as run metadata. Launching a backfill of `embeddings`
for `*|v2` by hand from the UI works too (the asset embeds one partition the same way); a
`reindex_all` run afterwards then embeds nothing and only validates and activates.
"""

from typing import Optional

import dagster as dg

from ..partitions import embed_versions, embeddings_key, ingest_batches
from ..retry import aisg_retry
from ..resources import EmbeddingModelResource, GovernanceResource

REINDEX_TAGS = {"aisg/job": "reindex", "aisg/area": "embeddings"}


class ReindexConfig(dg.Config):
    version: str
    model_path: str = ""  # blank: as declared in embed_versions.yaml (or registered)
    max_seq_length: Optional[int] = None
    normalize: Optional[bool] = None
    chunk_size: Optional[int] = None
    chunk_overlap: Optional[int] = None
    backend: str = ""  # blank: as declared; torch | onnx | onnx-int8
    quantization: str = ""  # onnx-int8 settings as JSON (blank: as declared, else the defaults)
    activate: bool = True
    retrieval_sample: int = 100
    parity_queries: int = 200  # held-out sentence queries of the retrieval-parity gate (onnx backends)


class RollbackConfig(dg.Config):
    to_version: str = ""  # blank: the version active before the current one


def ensure_partition_keys(instance: dg.DagsterInstance, name: str, keys: list[str]) -> None:
    existing = set(instance.get_dynamic_partitions(name))
    missing = [k for k in keys if k not in existing]
    if missing:
        instance.add_dynamic_partitions(name, missing)


def _parity_metadata(parity) -> dict:
    if parity is None:
        return {}
    md = {"parity_reference": parity.reference, "parity_recall_at_10": round(parity.recall_at_10, 4),
          "parity_top1_agreement": round(parity.top1_agreement, 4), "parity_queries": parity.queries, "parity_passed": parity.passed}
    if parity.cosine_min is not None:
        md["parity_cosine_min"] = round(parity.cosine_min, 6)
        md["parity_cosine_mean"] = round(parity.cosine_mean, 6)
    return md


def _summary_metadata(result, extra: Optional[dict] = None) -> dict:
    md = {
        "dagster/row_count": result.chunks,
        "embed_version": result.version,
        "previous_active": result.previous_active or "",
        "status": result.status,
        "activated": result.activated,
        "batches": result.batches,
        "chunks": result.chunks,
        "embedded": result.embedded,
        "skipped_unchanged": result.skipped,
        "stale_removed": result.stale_removed,
        "embed_chunks_per_second": round(result.embedded_per_second, 2),
        "reindex_seconds": round(result.seconds, 3),
        "validate_seconds": round(result.validate_seconds, 3),
        "summary": dg.MetadataValue.md(result.summary_markdown()),
    }
    if result.validation is not None:
        md["self_top1"] = round(result.validation.self_top1, 4)
        md["validation_sample"] = result.validation.sample_size
        md.update(_parity_metadata(result.validation.parity))
    md.update(extra or {})
    return md


@dg.op(
    description="Register/check the version, embed every batch (incremental, resumable), run the validation gate, activate atomically.",
    tags={"aisg/area": "embeddings"},
)
@aisg_retry
def reindex_all_op(
    context: dg.OpExecutionContext,
    config: ReindexConfig,
    governance: GovernanceResource,
    embedding_model: EmbeddingModelResource,
):
    from ...governance.reindex import ValidationFailed, reindex, resolve_spec
    from ...governance.versions import VersionConflict, VersionRegistry

    gov = governance.context()
    led, store = gov.ledger, gov.store
    instance = context.instance
    overrides = {k: getattr(config, k) for k in ("model_path", "max_seq_length", "normalize", "chunk_size", "chunk_overlap", "backend", "quantization")}
    try:
        spec = resolve_spec(config.version, overrides, registry=VersionRegistry(led))
    except (KeyError, ValueError) as exc:
        raise dg.Failure(description=str(exc)) from exc

    events: list = []

    def on_registered(name: str) -> None:
        ensure_partition_keys(instance, embed_versions.name, [name])

    def on_batch(p, r) -> None:
        context.log.info(f"{config.version} " + p.line())
        ensure_partition_keys(instance, ingest_batches.name, [p.batch_id])
        events.append(
            dg.AssetMaterialization(
                asset_key="embeddings",
                partition=str(embeddings_key(config.version, p.batch_id)),
                description=f"reindex_all {config.version}",
                metadata={
                    "dagster/row_count": r.chunks, "embed_version": config.version, "embedded": r.embedded,
                    "skipped_unchanged": r.skipped, "stale_removed": r.stale_removed,
                    "chunks_per_second": round(r.chunks_per_second, 2), "seconds": round(r.seconds, 3),
                },
            )
        )
        # Logged as each batch finishes, so the UI shows progress (and a killed run keeps what it logged).
        context.log_event(events[-1])

    try:
        result = reindex(
            store, led, spec, activate=config.activate, batch_size=embedding_model.batch_size,
            sample_size=config.retrieval_sample, parity_queries=config.parity_queries, on_registered=on_registered, on_batch=on_batch,
        )
    except ValidationFailed as exc:
        rep = exc.report
        raise dg.Failure(
            description=f"activation refused: {exc}",
            metadata={"reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in rep.reasons)), "expectations": dg.MetadataValue.md(rep.summary_markdown()),
                      "chunks": rep.chunks, "vectors": rep.vectors, "self_top1": rep.self_top1, **_parity_metadata(rep.parity)},
        ) from exc
    except VersionConflict as exc:
        raise dg.Failure(description=str(exc)) from exc
    context.log.info(
        f"{result.version}: {result.embedded} embedded, {result.skipped} already present in {result.batches} batches; "
        f"{result.embedded_per_second:.1f} chunks/s; validation {result.validate_seconds:.1f}s; status {result.status}"
    )
    context.add_output_metadata(_summary_metadata(result))
    return result.to_dict()


@dg.job(
    name="reindex_all",
    description=(
        "Blue-green reindex: register or check the embed_version (config `version`, parameters from "
        "embed_versions.yaml or config), embed every ingest batch under it while search keeps using the "
        "active version, run the GX validation gate (row parity, dims, norm, NaN, duplicates, retrieval "
        "self-top-1 >= 99%; onnx backends also the retrieval-parity gate: recall@10 >= 0.95 against fp32), "
        "then activate in one ledger transaction. Resumable after a kill."
    ),
    tags=REINDEX_TAGS,
)
def reindex_all_job():
    reindex_all_op()


@dg.op(description="Re-activate the previous (or named) embed_version after catching it up and validating it.", tags={"aisg/area": "embeddings"})
@aisg_retry
def rollback_embed_version_op(
    context: dg.OpExecutionContext,
    config: RollbackConfig,
    governance: GovernanceResource,
    embedding_model: EmbeddingModelResource,
):
    from ...governance.reindex import ValidationFailed, rollback
    from ...governance.versions import VersionConflict

    try:
        gov = governance.context()
        res = rollback(gov.store, gov.ledger, config.to_version or None, batch_size=embedding_model.batch_size)
    except (ValidationFailed, VersionConflict, KeyError) as exc:
        raise dg.Failure(description=f"rollback refused: {exc}") from exc
    context.log.info(f"re-activated {res.version} (was {res.previous}); {res.embedded} chunks caught up")
    context.add_output_metadata(
        {
            "dagster/row_count": res.validation.vectors if res.validation else 0,
            "embed_version": res.version,
            "previous_active": res.previous or "",
            "caught_up": res.embedded,
            "summary": dg.MetadataValue.md(res.summary_markdown()),
        }
    )
    return {"version": res.version, "previous": res.previous, "embedded": res.embedded}


@dg.job(
    name="rollback_embed_version",
    description="Re-activate the previously active embed_version (its vectors are kept until retention retires them).",
    tags=REINDEX_TAGS,
)
def rollback_embed_version_job():
    rollback_embed_version_op()
