"""Data-quality validation with Great Expectations 1.x, run directly (dagster-ge needs GX < 1).

`validate(df, expectations, id_column)` runs real GX expectations on a pandas DataFrame and
returns which expectations failed with the ids of the failing rows, so an asset check
can show them in the Dagster UI.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field
from typing import Any

from .markdown import md_table

_counter = itertools.count()


@dataclass(frozen=True)
class Expect:
    """One expectation: a GX expectation class name and its keyword arguments."""

    name: str  # e.g. "ExpectColumnValuesToBeUnique"
    kwargs: dict[str, Any]
    label: str = ""

    @property
    def title(self) -> str:
        return self.label or f"{self.name}({', '.join(f'{k}={v}' for k, v in self.kwargs.items())})"


@dataclass
class ExpectationOutcome:
    title: str
    success: bool
    unexpected_count: int = 0
    failing_ids: list[str] = field(default_factory=list)
    observed: Any = None


@dataclass
class QualityResult:
    outcomes: list[ExpectationOutcome]

    @property
    def passed(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def failing_ids(self) -> list[str]:
        return sorted({i for o in self.outcomes for i in o.failing_ids})

    def summary_markdown(self) -> str:
        return md_table(
            ["expectation", "result", "unexpected", "sample failing ids"],
            [(o.title, "pass" if o.success else "FAIL", o.unexpected_count, ", ".join(o.failing_ids[:5])) for o in self.outcomes],
        )


@functools.lru_cache(maxsize=1)
def _context():
    import logging

    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    ctx = gx.get_context(mode="ephemeral")
    try:  # progress bars would flood run logs with one line per metric
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    except Exception:  # noqa: BLE001 - cosmetic only
        pass
    return ctx


def validate(df, expectations: list[Expect], id_column: str) -> QualityResult:
    import great_expectations as gx

    ctx = _context()
    n = next(_counter)
    source = ctx.data_sources.add_pandas(f"aisg_src_{n}")
    asset = source.add_dataframe_asset(name=f"frame_{n}")
    batch_def = asset.add_batch_definition_whole_dataframe(f"whole_{n}")
    suite = ctx.suites.add(gx.ExpectationSuite(name=f"suite_{n}"))
    for e in expectations:
        suite.add_expectation(getattr(gx.expectations, e.name)(**e.kwargs))
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(data=batch_def, suite=suite, name=f"vd_{n}"))
    result = vd.run(
        batch_parameters={"dataframe": df},
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [id_column], "partial_unexpected_count": 20},
    )
    outcomes = []
    for e, r in zip(expectations, result.results):
        res = r.result or {}
        failing: list[str] = []
        for item in res.get("unexpected_index_list") or []:
            failing.append(str(item.get(id_column)) if isinstance(item, dict) else str(item))
        outcomes.append(
            ExpectationOutcome(
                title=e.title, success=bool(r.success), unexpected_count=int(res.get("unexpected_count") or 0),
                failing_ids=sorted(set(failing))[:200], observed=res.get("observed_value"),
            )
        )
    # Ephemeral objects are per call; drop them so a long-lived worker does not accumulate them.
    ctx.validation_definitions.delete(f"vd_{n}")
    ctx.suites.delete(f"suite_{n}")
    ctx.data_sources.delete(f"aisg_src_{n}")
    return QualityResult(outcomes)
