"""The landing-zone sensor: new uploads -> a new ingest batch partition and one run each."""


import json
import os
import time

import dagster as dg

from ..partitions import embed_versions, ingest_batches
from ..resources import EmbeddingModelResource, GovernanceResource

ingest_batch_job = dg.define_asset_job(
    "ingest_batch",
    selection=dg.AssetSelection.assets("documents", "chunks"),
    description="Ingest one batch of uploads: documents (PII-scrubbed) and chunks, with their checks.",
    tags={"aisg/job": "ingest"},
)


def decode_cursor(cursor: str | None) -> tuple[int, str] | None:
    if not cursor:
        return None
    data = json.loads(cursor)
    return (int(data["mtime_ns"]), str(data["path"]))


def encode_cursor(pos: tuple[int, str]) -> str:
    return json.dumps({"mtime_ns": pos[0], "path": pos[1]})


@dg.sensor(
    job=ingest_batch_job,
    minimum_interval_seconds=int(os.environ.get("AISG_SENSOR_INTERVAL_SECONDS", "30")),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Watches the landing zone. New uploads (by mtime, past the cursor) become ingest "
        "batches: a dynamic partition and a run with run_key ingest:<batch>. The cursor only "
        "advances when the tick succeeds."
    ),
)
def landing_zone_sensor(
    context: dg.SensorEvaluationContext,
    governance: GovernanceResource,
    embedding_model: EmbeddingModelResource,
) -> dg.SensorResult | dg.SkipReason:
    from ...governance.landing import plan_batches

    gov = governance.context()
    led = gov.ledger
    scan = plan_batches(
        gov.landing_dir, decode_cursor(context.cursor), now_ns=time.time_ns(), settle_seconds=gov.landing_settle_seconds,
        already_batched=led.already_batched,
    )
    if not scan.batches and not scan.existing_batches:
        return dg.SkipReason(f"no new uploads ({scan.deferred} waiting for their sidecar)")
    for batch_id, files in scan.batches.items():
        led.record_batch(batch_id, files, scan.mtimes_ns)  # idempotent; the run reads its manifest from here
    batches = sorted(set(scan.batches) | scan.existing_batches)
    # Partition keys are added here, not through SensorResult.dynamic_partitions_requests:
    # run requests are validated against the instance before those requests are applied.
    # Adding a key is idempotent, and a key left by a failed tick is re-used by the next.
    context.instance.add_dynamic_partitions(ingest_batches.name, batches)
    _ensure_active_version_key(context, led, embedding_model)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"ingest:{b}", partition_key=b, tags={"aisg/batch": b}) for b in batches],
        cursor=encode_cursor(scan.new_cursor) if scan.new_cursor else context.cursor,
    )


def _ensure_active_version_key(context, led, embedding_model) -> None:
    from ...governance.versions import VersionRegistry, ensure_bootstrap_version

    active = ensure_bootstrap_version(VersionRegistry(led), embedding_model.resolved_model_path())
    if not context.instance.has_dynamic_partition(embed_versions.name, active.name):
        context.instance.add_dynamic_partitions(embed_versions.name, [active.name])
