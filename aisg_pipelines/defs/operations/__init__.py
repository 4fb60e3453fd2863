"""Operations: alerts, the governance_health job, run-after-run scheduling (the AISG retry policy is defs/retry.py)."""

import dagster as dg

from .alerts import alert_on_check_failure, alert_on_run_failure
from .lineage import EXTERNAL
from .metrics import prometheus_textfile_refresh
from .health import (
    audit_ledger,
    compliance_reports_fresh,
    governance_health_daily,
    governance_health_job,
    ledger_chain_intact,
    orphan_report_after_retention,
)

defs = dg.Definitions(
    assets=[audit_ledger, *EXTERNAL],
    asset_checks=[ledger_chain_intact, compliance_reports_fresh],
    jobs=[governance_health_job],
    schedules=[governance_health_daily],
    sensors=[alert_on_run_failure, alert_on_check_failure, orphan_report_after_retention, prometheus_textfile_refresh],
)
