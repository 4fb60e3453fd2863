import dagster as dg

from .assets import chunks, documents
from .checks import chunks_valid, documents_pii_free, documents_valid
from .sensors import ingest_batch_job, landing_zone_sensor

defs = dg.Definitions(
    assets=[documents, chunks],
    asset_checks=[documents_valid, documents_pii_free, chunks_valid],
    jobs=[ingest_batch_job],
    sensors=[landing_zone_sensor],
)
