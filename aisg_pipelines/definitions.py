"""The code location: composes each area's definitions with the shared resources.

Imported by the webserver, the daemon and every run worker, so nothing heavy is imported
here (torch, sentence-transformers, presidio and GX load inside the functions using them).
"""

import warnings

import dagster as dg

# Partitioned asset checks are marked preview in Dagster 1.13; we rely on them knowingly.
# (Set before the areas are imported: the warning fires when the checks are defined.)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)

from .defs import embeddings, ingest  # noqa: E402
from .defs import orphans  # noqa: E402
from .defs import reports  # noqa: E402
from .defs import retention  # noqa: E402
from .defs import erasure  # noqa: E402
from .defs import ledger  # noqa: E402
from .defs import access  # noqa: E402
from .defs import operations  # noqa: E402
from .defs.resources import build_resources  # noqa: E402
from .settings import enforce_offline  # noqa: E402

enforce_offline()

AREAS = [ingest.defs, embeddings.defs, orphans.defs, reports.defs, retention.defs, erasure.defs, ledger.defs, access.defs, operations.defs]


def build_defs() -> dg.Definitions:
    """All areas plus resources read from the environment *now* (tests re-point env vars)."""
    from .defs.operations.lineage import annotate  # dependencies on the scanned stores, owners, code versions

    merged = dg.Definitions.merge(*AREAS, dg.Definitions(resources=build_resources(), executor=_run_executor()))
    defs = merged.map_asset_specs(func=annotate)
    reports.register_code_location(defs)  # in-process report runs see every check of the location
    return defs


def _run_executor() -> dg.ExecutorDefinition | None:
    """AISG_RUN_EXECUTOR=in_process (deploy/: one process per run, heavy imports paid once,
    partitions are the unit of parallelism); unset keeps Dagster's default (a process per step)."""
    import os

    return dg.in_process_executor if os.environ.get("AISG_RUN_EXECUTOR") == "in_process" else None


defs = build_defs()
