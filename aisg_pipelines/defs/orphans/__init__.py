import dagster as dg

from .assets import orphan_cleanup, orphan_report, orphan_report_job

defs = dg.Definitions(
    assets=[orphan_report],
    jobs=[orphan_cleanup, orphan_report_job],
)
