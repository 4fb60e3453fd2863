"""access_requests: GDPR Art. 15/20 access exports (issue 17), a thin layer over governance/access.py.

The erasure inbox sensor launches the `access_export` job for requests of `"type": "access"`;
a materialization exports the requests in its config (empty = every pending one) and shows
every request's state. The `access_sla` check fails when a request is open past 30 days.
"""

import dagster as dg

from ..erasure.assets import ErasureClockResource
from ..retry import aisg_retry
from ..metadata import md_table
from ..resources import GovernanceResource

from .jobs import ACCESS_REQUESTS_TAG, access_export_job  # noqa: F401 - re-exported


class AccessRunConfig(dg.Config):
    request_ids: list[str] = []


@dg.asset(
    group_name="erasure",
    kinds={"lancedb", "python"},
    description=(
        "GDPR Art. 15/20 access requests (ledger events access.*). Materializing exports the pending requests: erasure's "
        "discovery, export.json signed with Ed25519 (checked by `aisg verify-certificate`), HTML and PDF in English and Korean."
    ),
    tags={"aisg/area": "access"},
)
@aisg_retry
def access_requests(
    context: dg.AssetExecutionContext,
    config: AccessRunConfig,
    governance: GovernanceResource,
    erasure_clock: ErasureClockResource,
) -> dg.MaterializeResult:
    from ...governance.access import expire_exports, list_requests, process_requests
    from ...governance.context import age_days

    s = governance.context()
    led = s.ledger
    outcomes = process_requests(s, config.request_ids or None, actor=f"dagster:{context.run_id[:8]}")
    for o in outcomes:
        if o["status"] == "delivered":
            context.log.info(f"access request {o['request_id']} delivered: {o['export_path']}")
        else:
            context.log.error(f"access request {o['request_id']}: {o['status']} {o.get('failure', '')}")
    expired = expire_exports(s, ledger=led)
    now = erasure_clock.now()
    rows = list_requests(led)
    table = [(r.request_id, r.status, f"{age_days(now, r.requested_at, ndigits=None):.1f}",
              (r.subject_hash or "-")[:12], r.export_path or r.failure or "-") for r in rows[-50:]]
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(rows),
        "delivered_this_run": sum(o["status"] == "delivered" for o in outcomes),
        "failed_this_run": sum(o["status"] == "failed" for o in outcomes),
        "open_requests": sum(r.status == "received" for r in rows),
        "exports_expired": len(expired),
        "exports": dg.MetadataValue.json([{k: o.get(k) for k in ("request_id", "status", "export_id", "export_path", "found")} for o in outcomes]),
        "summary": dg.MetadataValue.md(md_table(["request", "status", "age (days)", "subject hash", "export / failure"], table) if table else "no access requests"),
    })


@dg.asset_check(asset=access_requests, description="SLA: every access request older than 30 days is delivered (GDPR Art. 12(3)).")
def access_sla(context, governance: GovernanceResource, erasure_clock: ErasureClockResource) -> dg.AssetCheckResult:
    from ...governance.access import SLA_DAYS, sla_status

    now = erasure_clock.now()
    st = sla_status(governance.context().ledger, now)
    rows = [(r["request_id"], r["status"], r["age_days"], "OVERDUE" if r["overdue"] else "") for r in st.open]
    return dg.AssetCheckResult(
        passed=st.ok,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "overdue": st.overdue,
            "open_requests": len(st.open),
            "as_of": now.isoformat(),
            "sla_days": SLA_DAYS,
            "open": dg.MetadataValue.md(md_table(["request", "status", "age (days)", ""], rows) if rows else "no open requests"),
        },
    )
