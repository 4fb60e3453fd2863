import dagster as dg

from .assets import embeddings
from .checks import embeddings_valid
from .sensors import embed_batch_job, embed_new_batches_sensor

defs = dg.Definitions(
    assets=[embeddings],
    asset_checks=[embeddings_valid],
    jobs=[embed_batch_job],
    sensors=[embed_new_batches_sensor],
)
