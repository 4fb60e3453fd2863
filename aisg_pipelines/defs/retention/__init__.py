import dagster as dg

from .assets import metrics, retention_report, system_logs
from .checks import retention_checks
from .sensors import ingest_metrics_job, ingest_system_logs_job, retention_daily, retention_job, telemetry_sensor

defs = dg.Definitions(
    assets=[system_logs, metrics, retention_report],
    asset_checks=retention_checks,
    jobs=[ingest_system_logs_job, ingest_metrics_job, retention_job],
    sensors=[telemetry_sensor],
    schedules=[retention_daily],
)
