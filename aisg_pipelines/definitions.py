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
from .defs.resources import build_resources  # noqa: E402
from .settings import enforce_offline  # noqa: E402

enforce_offline()

AREAS = [ingest.defs, embeddings.defs]


def build_defs() -> dg.Definitions:
    """All areas plus resources read from the environment *now* (tests re-point env vars)."""
    return dg.Definitions.merge(*AREAS, dg.Definitions(resources=build_resources()))


defs = build_defs()
