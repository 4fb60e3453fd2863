import dagster as dg

from .assets import ErasureClockResource, erasure_requests, erasure_sla
from .sensors import erasure_inbox_sensor, erasure_job

defs = dg.Definitions(
    assets=[erasure_requests],
    asset_checks=[erasure_sla],
    jobs=[erasure_job],
    sensors=[erasure_inbox_sensor],
    resources={"erasure_clock": ErasureClockResource()},
)
