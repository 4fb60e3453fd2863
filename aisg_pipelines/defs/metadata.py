"""Small helpers that turn typed results into Dagster UI metadata."""


from collections.abc import Mapping, Sequence

import dagster as dg
import pyarrow as pa


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def counts_table(counts: Mapping[str, int], key: str = "type", value: str = "count") -> str:
    return md_table([key, value], sorted(counts.items()))


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in schema])
