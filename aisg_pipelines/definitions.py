"""The code location: composes each area's definitions with the shared resources.

Imported by the webserver, the daemon and every run worker, so nothing heavy is imported
here (torch, sentence-transformers, presidio and GX load inside the functions using them).
"""

import warnings

import dagster as dg

from .defs import embeddings, ingest
from .defs.resources import build_resources
from .settings import enforce_offline

enforce_offline()
# Partitioned asset checks are marked preview in Dagster 1.13; we rely on them knowingly.
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

AREAS = [ingest.defs, embeddings.defs]


def build_defs() -> dg.Definitions:
    """All areas plus resources read from the environment *now* (tests re-point env vars)."""
    return dg.Definitions.merge(*AREAS, dg.Definitions(resources=build_resources()))


defs = build_defs()
