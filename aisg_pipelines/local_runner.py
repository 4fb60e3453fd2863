"""Run sensors and jobs in this process against a real Dagster instance (CLI, demo and tests).

Runs are tagged with the sensor's run_key the way the daemon tags them, so a daemon
started later (`make dev`) sees them and does not launch the same run again.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from .settings import Settings

RUN_KEY_TAG = "dagster/run_key"
SENSOR_NAME_TAG = "dagster/sensor_name"


def ensure_dagster_home(data_dir: Path) -> Path:
    """DAGSTER_HOME under ./var with the project's top-level dagster.yaml (sqlite storage)."""
    home = Path(os.environ.get("DAGSTER_HOME") or data_dir / "dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists():
        source = Path(__file__).resolve().parent.parent / "dagster.yaml"
        if source.exists():
            shutil.copy(source, target)
        else:
            target.write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def open_instance(settings: Settings) -> dg.DagsterInstance:
    """The Dagster instance under settings.data_dir (or $DAGSTER_HOME): what the CLI and the demo run against."""
    ensure_dagster_home(settings.data_dir)
    return dg.DagsterInstance.get()


def ingest_pending(defs: dg.Definitions, instance: dg.DagsterInstance) -> dict:
    """One landing-sensor tick (one run over its batches, which embeds them too), then one
    embed-sensor tick for whatever that run left unembedded, each run executed in-process."""
    ingest = tick_sensor(defs, instance, "landing_zone_sensor")
    embed = tick_sensor(defs, instance, "embed_new_batches_sensor")
    failed = [r.run_id for r in ingest.launched + embed.launched if not r.is_success]
    batches = sum(len([b for b in r.tags.get("aisg/batches", "").split(",") if b]) for r in ingest.launched)
    return {"batches": batches, "runs": len(ingest.launched), "embedded": len(embed.launched), "failed": len(failed), "failed_runs": failed}


@dataclass
class TickOutcome:
    launched: list[dg.DagsterRun] = field(default_factory=list)
    skipped_existing: list[str] = field(default_factory=list)
    skip_reason: str | None = None
    cursor: str | None = None

    @property
    def all_succeeded(self) -> bool:
        return all(r.is_success for r in self.launched)


def _existing_success(instance: dg.DagsterInstance, sensor_name: str, run_key: str) -> bool:
    runs = instance.get_runs(filters=dg.RunsFilter(tags={RUN_KEY_TAG: run_key, SENSOR_NAME_TAG: sensor_name}))
    return any(r.is_success for r in runs)


def tick_sensor(defs: dg.Definitions, instance: dg.DagsterInstance, sensor_name: str, cursor: str | None = None) -> TickOutcome:
    """Evaluate a sensor once and execute each requested run in-process."""
    repo = defs.get_repository_def()
    sensor = repo.get_sensor_def(sensor_name)
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, sensor_name=sensor_name, definitions=defs, resources=dict(defs.resources or {}))
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        data = sensor.evaluate_tick(ctx)
    for req in data.dynamic_partitions_requests or []:
        if isinstance(req, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        else:
            for key in req.partition_keys:
                instance.delete_dynamic_partition(req.partitions_def_name, key)
    out = TickOutcome(skip_reason=data.skip_message, cursor=data.cursor)
    for rr in data.run_requests or []:
        if rr.run_key and _existing_success(instance, sensor_name, rr.run_key):
            out.skipped_existing.append(rr.run_key)
            continue
        job = repo.get_job(rr.job_name or sensor.job_name)
        tags = {**(rr.tags or {}), SENSOR_NAME_TAG: sensor_name}
        if rr.run_key:
            tags[RUN_KEY_TAG] = rr.run_key
        result = job.execute_in_process(
            instance=instance, partition_key=rr.partition_key, tags=tags, run_config=quiet(rr.run_config), raise_on_error=False
        )
        out.launched.append(result.dagster_run if hasattr(result, "dagster_run") else instance.get_run_by_id(result.run_id))
    return out


def quiet(run_config: dict | None) -> dict:
    """Console logs at WARNING for in-process runs; the full event log is still in the instance."""
    cfg = dict(run_config or {})
    cfg.setdefault("loggers", {"console": {"config": {"log_level": "WARNING"}}})
    return cfg


def run_job(defs: dg.Definitions, instance: dg.DagsterInstance, job_name: str, *, run_config: dict | None = None, partition_key: str | None = None, tags: dict | None = None, raise_on_error: bool = True):
    job = defs.get_repository_def().get_job(job_name)  # resolved, so asset jobs need no extra resolution step
    return job.execute_in_process(instance=instance, run_config=quiet(run_config), partition_key=partition_key, tags=tags, raise_on_error=raise_on_error)
