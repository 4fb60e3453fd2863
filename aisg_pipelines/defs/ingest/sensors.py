"""The landing-zone sensor: new uploads -> ingest batch partitions -> one run per tick.

The batches of a tick are coalesced into one run over a range of `ingest_batches` partitions
(at most AISG_MAX_BATCHES_PER_RUN per run; a set of batches that is not contiguous in the
partition order becomes one run per contiguous range). That run ingests, checks, chunks and
embeds them under the active version (assets.py), so a tick costs one run process, not two
per batch.

run_keys: `ingest:<batch>` for a run of one batch, `ingest:<first>..<last>:<sha8 of the set>`
for a range. The same pending set (a tick evaluated again before its cursor was stored) asks
for the same key, so it launches once.

A run whose worker was killed stays STARTED (the local run launcher has no health check). A
tick that finds a STARTED ingest run whose tagged worker process is gone reports it failed and
relaunches its batches once (run_key `ingest-relaunch:<run id>`); every step is idempotent
(batches are replaced, vectors are keyed by chunk id and content hash), so the relaunch
converges without duplicates.
"""


import hashlib
import json
import time

import dagster as dg

from ..partitions import embed_versions, ingest_batches
from ..erasure.sensors import WORKER_TAG, run_worker_dead
from ..resources import EmbeddingModelResource, GovernanceResource
from ...settings import env_number, sensor_interval_seconds

ingest_batch_job = dg.define_asset_job(
    "ingest_batch",
    # The checks run inside the chunks op (one process, warm presidio/GX), not as steps of their own.
    selection=dg.AssetSelection.assets("documents", "chunks").without_checks(),
    description=(
        "Ingest a range of batches in one run: documents (PII-scrubbed), their checks, chunks and "
        "vectors of the active embed_version, reported per batch partition."
    ),
    tags={"aisg/job": "ingest"},
)

BATCHES_TAG = "aisg/batches"
LOST_TAG = "aisg/worker_lost"
MAX_BATCHES_ENV = "AISG_MAX_BATCHES_PER_RUN"
_RANGE_START = "dagster/asset_partition_range_start"
_RANGE_END = "dagster/asset_partition_range_end"
_IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
]


def max_batches_per_run() -> int:
    return env_number(MAX_BATCHES_ENV, 20, minimum=1, maximum=10_000)


max_batches_per_run()  # a bad value stops the code location from loading, with the variable named, not a tick later


def ingest_requests(ordered_keys: list[str], pending: list[str], max_per_run: int) -> list[dg.RunRequest]:
    """One request per contiguous range of `pending` in the partition order, at most
    `max_per_run` batches each."""
    pos = {k: i for i, k in enumerate(ordered_keys)}
    keys = sorted((k for k in set(pending) if k in pos), key=pos.__getitem__)
    groups: list[list[str]] = []
    for k in keys:
        g = groups[-1] if groups else None
        if g and pos[k] == pos[g[-1]] + 1 and len(g) < max_per_run:
            g.append(k)
        else:
            groups.append([k])
    return [_request(g) for g in groups]


def _request(batches: list[str], run_key: str | None = None) -> dg.RunRequest:
    tags = {BATCHES_TAG: ",".join(batches)}
    if len(batches) == 1:
        return dg.RunRequest(run_key=run_key or f"ingest:{batches[0]}", partition_key=batches[0], tags={**tags, "aisg/batch": batches[0]})
    digest = hashlib.sha256(",".join(batches).encode()).hexdigest()[:8]
    return dg.RunRequest(
        run_key=run_key or f"ingest:{batches[0]}..{batches[-1]}:{digest}",
        tags={**tags, _RANGE_START: batches[0], _RANGE_END: batches[-1]},
    )


def run_batches(run: dg.DagsterRun) -> list[str]:
    """The batch partitions an ingest run covers (its tag, else its partition tags)."""
    if run.tags.get(BATCHES_TAG):
        return run.tags[BATCHES_TAG].split(",")
    if "dagster/partition" in run.tags:
        return [run.tags["dagster/partition"]]
    return [k for k in (run.tags.get(_RANGE_START), run.tags.get(_RANGE_END)) if k]


def batches_in_flight(instance: dg.DagsterInstance) -> set[str]:
    out: set[str] = set()
    for run in instance.get_runs(filters=dg.RunsFilter(job_name=ingest_batch_job.name, statuses=_IN_FLIGHT), limit=500):
        out.update(run_batches(run))
    return out


def batches_covered(instance: dg.DagsterInstance) -> set[str]:
    """Batches of recent ingest runs that are in flight or succeeded."""
    out: set[str] = set()
    statuses = [*_IN_FLIGHT, dg.DagsterRunStatus.SUCCESS]
    for run in instance.get_runs(filters=dg.RunsFilter(job_name=ingest_batch_job.name, statuses=statuses), limit=1000):
        out.update(run_batches(run))
    return out


def relaunch_lost_runs(context, ordered_keys: list[str]) -> list[dg.RunRequest]:
    """Report STARTED ingest runs whose worker is gone as failed; ask again for their batches
    (once per lost run: the run_key names it)."""
    instance = context.instance
    live = set(ordered_keys)
    out = []
    runs = list(instance.get_runs(filters=dg.RunsFilter(job_name=ingest_batch_job.name, tags={LOST_TAG: "1"}), limit=50))
    for run in instance.get_runs(filters=dg.RunsFilter(job_name=ingest_batch_job.name, statuses=[dg.DagsterRunStatus.STARTED]), limit=200):
        if run.tags.get(WORKER_TAG) and run_worker_dead(instance, run):
            instance.add_run_tags(run.run_id, {LOST_TAG: "1"})
            instance.report_run_failed(run, message=f"ingest run worker {run.tags[WORKER_TAG]} is gone; its batches are relaunched")
            context.log.warning(f"ingest run {run.run_id} was STARTED but its worker is gone: marked failed, batches relaunched")
            runs.append(run)
    seen = set()
    for run in runs:
        if run.run_id in seen:
            continue
        seen.add(run.run_id)
        batches = [b for b in run_batches(run) if b in live]
        for req in ingest_requests(ordered_keys, batches, max_batches_per_run()):
            key = f"ingest-relaunch:{run.run_id}:{req.run_key}"
            if not instance.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": key}), limit=1):
                out.append(_request(req.tags[BATCHES_TAG].split(","), run_key=key))
    return out


def decode_cursor(cursor: str | None) -> tuple[int, str] | None:
    if not cursor:
        return None
    data = json.loads(cursor)
    return (int(data["mtime_ns"]), str(data["path"]))


def encode_cursor(pos: tuple[int, str]) -> str:
    return json.dumps({"mtime_ns": pos[0], "path": pos[1]})


@dg.sensor(
    job=ingest_batch_job,
    minimum_interval_seconds=sensor_interval_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Watches the landing zone. New uploads (by mtime, past the cursor) become ingest "
        "batches (dynamic partitions); the batches of a tick go into one run over their partition "
        "range (at most AISG_MAX_BATCHES_PER_RUN), which also embeds them under the active "
        "version. Relaunches the batches of a run whose worker was killed. The cursor only "
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
    for batch_id, files in scan.batches.items():
        led.record_batch(batch_id, files, scan.mtimes_ns)  # idempotent; the run reads its manifest from here
    # Batches already recorded by an earlier tick whose cursor was not stored: the ones a run
    # already covers (in flight or succeeded) are not asked for again under a new set's run_key.
    existing = scan.existing_batches - batches_covered(context.instance) if scan.existing_batches else set()
    batches = sorted(set(scan.batches) | existing)
    # Partition keys are added here, not through SensorResult.dynamic_partitions_requests:
    # run requests are validated against the instance before those requests are applied.
    # Adding a key is idempotent, and a key left by a failed tick is re-used by the next.
    if batches:
        context.instance.add_dynamic_partitions(ingest_batches.name, batches)
        _ensure_active_version_key(context, led, embedding_model)
    ordered = context.instance.get_dynamic_partitions(ingest_batches.name)
    requests = ingest_requests(ordered, batches, max_batches_per_run()) + relaunch_lost_runs(context, ordered)
    if not requests:
        return dg.SkipReason(f"no new uploads ({scan.deferred} waiting for their sidecar)")
    return dg.SensorResult(
        run_requests=requests,
        cursor=encode_cursor(scan.new_cursor) if scan.new_cursor else context.cursor,
    )


def _ensure_active_version_key(context, led, embedding_model) -> None:
    from ...governance.versions import VersionRegistry, ensure_bootstrap_version

    active = ensure_bootstrap_version(VersionRegistry(led), embedding_model.resolved_model_path())
    if not context.instance.has_dynamic_partition(embed_versions.name, active.name):
        context.instance.add_dynamic_partitions(embed_versions.name, [active.name])
