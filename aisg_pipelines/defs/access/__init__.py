import dagster as dg

from .assets import access_export_job, access_requests, access_sla

defs = dg.Definitions(assets=[access_requests], asset_checks=[access_sla], jobs=[access_export_job])
