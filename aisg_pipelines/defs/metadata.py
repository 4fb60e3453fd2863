"""Small helpers that turn typed results into Dagster UI metadata."""


from collections.abc import Mapping

import dagster as dg
import pyarrow as pa

from ..governance.markdown import md_table  # noqa: F401 - re-exported for the areas


def counts_table(counts: Mapping[str, int], key: str = "type", value: str = "count") -> str:
    return md_table([key, value], sorted(counts.items()))


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in schema])
