"""The code location: composes each area's definitions with the shared resources.

Imported by the webserver, the daemon and every run worker, so nothing heavy is imported
here (torch, sentence-transformers, presidio and GX load inside the functions using them).
"""

import warnings

import dagster as dg

# The areas knowingly use three Dagster APIs that 1.13 marks preview or beta: partitioned asset
# checks (a check per batch/day partition), MultiToSingleDimensionPartitionMapping (embeddings
# depend on chunks along the batch dimension) and backfill_policy (many days in one run).
# Their warnings are silenced here, while the areas define them, and only those; every other
# warning stays visible.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning)
    warnings.filterwarnings("ignore", message=r"Class `MultiToSingleDimensionPartitionMapping`", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", message=r"Parameter `backfill_policy`", category=dg.BetaWarning)
    from .defs import access, embeddings, erasure, ingest, ledger, operations, orphans, reports, retention
from .defs.resources import build_resources
from .settings import enforce_offline

enforce_offline()

AREAS = [ingest.defs, embeddings.defs, orphans.defs, reports.defs, retention.defs, erasure.defs, ledger.defs, access.defs, operations.defs]


def build_defs() -> dg.Definitions:
    """All areas plus resources read from the environment *now* (tests re-point env vars)."""
    from .defs.operations.lineage import annotate  # dependencies on the scanned stores, owners, code versions

    merged = dg.Definitions.merge(*AREAS, dg.Definitions(resources=build_resources(), executor=_run_executor()))
    with warnings.catch_warnings():  # map_asset_specs is preview in 1.13: the one way to annotate every area's specs at once
        warnings.filterwarnings("ignore", message=r"Function `Definitions.map_(resolved_)?asset_specs`", category=dg.PreviewWarning)
        defs = merged.map_asset_specs(func=annotate)
    reports.register_code_location(defs)  # in-process report runs see every check of the location
    return defs


def _run_executor() -> dg.ExecutorDefinition | None:
    """in_process by default, locally as in deploy/: one process per run, the model, presidio and
    GX loaded once and shared by every step; runs (partition ranges) are the unit of parallelism.
    AISG_RUN_EXECUTOR=multiprocess gives Dagster's own default, a process per step."""
    import os

    return None if os.environ.get("AISG_RUN_EXECUTOR") == "multiprocess" else dg.in_process_executor


defs = build_defs()
