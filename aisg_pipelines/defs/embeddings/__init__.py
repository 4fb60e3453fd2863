import dagster as dg

from .assets import embeddings
from .checks import embeddings_valid
from .reindex import reindex_all_job, rollback_embed_version_job
from .sensors import embed_batch_job, embed_new_batches_sensor

defs = dg.Definitions(
    assets=[embeddings],
    asset_checks=[embeddings_valid],
    jobs=[embed_batch_job, reindex_all_job, rollback_embed_version_job],
    sensors=[embed_new_batches_sensor],
)
