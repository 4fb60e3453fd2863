"""Markdown tables for summaries shown in the Dagster UI and printed by the CLI (plain module)."""

from __future__ import annotations

from collections.abc import Sequence


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)
