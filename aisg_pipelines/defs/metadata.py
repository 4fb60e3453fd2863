"""Small helpers that turn typed results into Dagster UI metadata."""


from collections.abc import Mapping

import dagster as dg
import pyarrow as pa

from ..governance.markdown import md_table  # noqa: F401 - re-exported for the areas


def counts_table(counts: Mapping[str, int], key: str = "type", value: str = "count") -> str:
    return md_table([key, value], sorted(counts.items()))


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in schema])


def embedded_batch_metadata(version, result) -> dict:
    """Metadata of one `embeddings` <batch>|<version> materialization, whichever run embedded it:
    the embeddings asset itself, or an ingest run embedding under the active version."""
    from ..governance.store import embeddings_schema  # imports lancedb: not at code-location load

    return {
        "dagster/row_count": result.chunks,
        "dagster/column_schema": column_schema(embeddings_schema(version.dims)),
        "embed_version": version.name,
        "model_name": version.model_name,
        "weights_fingerprint": version.weights_fingerprint,
        "dims": version.dims,
        "embedded": result.embedded,
        "skipped_unchanged": result.skipped,
        "stale_removed": result.stale_removed,
        "chunks_per_second": round(result.chunks_per_second, 2),
        "seconds": round(result.seconds, 3),
    }
