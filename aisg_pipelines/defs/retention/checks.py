"""One asset check per retention category: fails while anything past its period remains unheld."""

import dagster as dg

from ..resources import GovernanceResource
from .assets import CATEGORY_ORDER, parse_as_of, retention_report


def _make_check(category: str):
    @dg.asset_check(
        asset=retention_report,
        name=f"{category}_within_retention",
        description=f"Nothing in category {category} is older than its retention period unless under legal hold (as of the last run's as_of).",
    )
    def _check(context: dg.AssetCheckExecutionContext, governance: GovernanceResource) -> dg.AssetCheckResult:
        from ...governance.retention import load_policies, overdue_report

        ev = context.instance.get_latest_materialization_event(retention_report.key)
        meta = ev.asset_materialization.metadata if ev and ev.asset_materialization else {}
        as_of = parse_as_of(meta["as_of"].value if "as_of" in meta else "")
        policy_file = meta["policy_file"].value if "policy_file" in meta else None
        r = overdue_report(governance.context(), category, now=as_of, policies=load_policies(policy_file))
        return dg.AssetCheckResult(
            passed=r.overdue == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "as_of": as_of.isoformat(),
                "period_days": r.period_days,
                "overdue": r.overdue,
                "held": r.held,
                "unit": r.unit,
                "oldest_remaining_age_days": r.oldest_remaining_age_days if r.oldest_remaining_age_days is not None else -1.0,
                "notes": "; ".join(r.notes) or "-",
            },
        )

    return _check


retention_checks = [_make_check(c) for c in CATEGORY_ORDER]
