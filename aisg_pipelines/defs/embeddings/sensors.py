"""Embeds ingested batches that lack vectors under the active embed_version.

The ingest run embeds its own batches (defs/ingest/assets.py), so this sensor only finds the
ones it could not: a batch whose embedding step failed, or chunks re-materialized from the UI.
Batches of an ingest run still in flight are left to that run.
"""



import dagster as dg

from ..partitions import embeddings_key
from ..resources import GovernanceResource
from ...settings import sensor_interval_seconds

embed_batch_job = dg.define_asset_job(
    "embed_batch",
    selection=dg.AssetSelection.assets("embeddings"),
    description="Embed one ingest batch under one embed_version.",
    tags={"aisg/job": "embed"},
)


@dg.sensor(
    job=embed_batch_job,
    minimum_interval_seconds=sensor_interval_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "For the active embed_version, requests an embed run for every batch whose chunks were "
        "materialised after its embeddings and that no ingest run in flight covers "
        "(run_key embed:<version>|<batch>:<chunks storage id>). Ingest runs embed their own batches."
    ),
)
def embed_new_batches_sensor(context: dg.SensorEvaluationContext, governance: GovernanceResource):
    from ...governance.versions import VersionRegistry

    active = VersionRegistry(governance.context().ledger).active()
    if active is None:
        return dg.SkipReason("no active embed_version yet")
    requests = plan_embed_requests(context.instance, active.name)
    return requests or dg.SkipReason(f"every ingested batch is embedded under {active.name}")


def plan_embed_requests(instance: dg.DagsterInstance, version: str) -> list[dg.RunRequest]:
    chunk_ids = instance.get_latest_storage_id_by_partition(dg.AssetKey("chunks"), dg.DagsterEventType.ASSET_MATERIALIZATION)
    emb_ids = instance.get_latest_storage_id_by_partition(dg.AssetKey("embeddings"), dg.DagsterEventType.ASSET_MATERIALIZATION)
    from ..ingest.sensors import batches_in_flight

    live = set(instance.get_dynamic_partitions("ingest_batches"))
    busy = batches_in_flight(instance) if chunk_ids else set()
    out = []
    for batch_id, chunk_sid in sorted(chunk_ids.items()):
        if batch_id not in live or batch_id in busy:
            continue
        key = embeddings_key(version, batch_id)
        if emb_ids.get(str(key), -1) > chunk_sid:
            continue
        out.append(dg.RunRequest(run_key=f"embed:{key}:{chunk_sid}", partition_key=str(key), tags={"aisg/batch": batch_id, "aisg/embed_version": version}))
    return out
