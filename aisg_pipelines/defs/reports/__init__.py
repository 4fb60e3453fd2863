import dagster as dg

from .assets import (
    compliance_report_monthly,
    compliance_report_monthly_job,
    compliance_report_monthly_schedule,
    compliance_report_weekly,
    compliance_report_weekly_job,
    compliance_report_weekly_schedule,
    register_code_location,
)

defs = dg.Definitions(
    assets=[compliance_report_weekly, compliance_report_monthly],
    jobs=[compliance_report_weekly_job, compliance_report_monthly_job],
    schedules=[compliance_report_weekly_schedule, compliance_report_monthly_schedule],
)
