"""erasure_requests: processes pending GDPR erasure requests and shows every request's state.

Thin Dagster layer over governance/erasure.py. A materialization runs the requests given
in its config (the sensor passes the request ids it launches; empty = all pending), then
reports open requests with their age, and the certificates issued in this run.
"""

from datetime import datetime, timezone

import dagster as dg

from ..retry import aisg_retry
from ..metadata import md_table
from ..resources import GovernanceResource


class ErasureClockResource(dg.ConfigurableResource):
    """The clock of the SLA check: blank = now (UTC); an ISO timestamp to evaluate "as of" a date."""

    now_iso: str = ""

    def now(self) -> datetime:
        if not self.now_iso:
            return datetime.now(timezone.utc)
        dt = datetime.fromisoformat(self.now_iso)
        return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


class ErasureRunConfig(dg.Config):
    request_ids: list[str] = []
    process: bool = True


def requests_table(rows: list[dict], now: datetime) -> str:
    from ...governance.context import age_days

    out = []
    for r in rows:
        age = age_days(now, r["requested_at"], ndigits=None)
        out.append((r["request_id"], r["status"], f"{age:.1f}", (r["subject_hash"] or "-")[:12], r["certificate_path"] or "-", (r["failure"] or "-")[:120]))
    return md_table(["request", "status", "age (days)", "subject hash", "certificate", "failure"], out)


@dg.asset(
    group_name="erasure",
    kinds={"lancedb", "python"},
    description=(
        "GDPR Art. 17 erasure requests (ledger table `erasure_requests`). Materializing processes the "
        "pending requests: discovery in every store and embed_version, deletion by internal ids, the shared "
        "physical purge, API + byte-level verification, and a signed certificate per request."
    ),
    tags={"aisg/area": "erasure"},
)
@aisg_retry
def erasure_requests(
    context: dg.AssetExecutionContext,
    config: ErasureRunConfig,
    governance: GovernanceResource,
    erasure_clock: ErasureClockResource,
) -> dg.MaterializeResult:
    from ...governance.context import open_request_ages
    from ...governance.erasure import OPEN_STATUSES, list_requests, process_requests

    gov = governance.context()
    led = gov.ledger
    res = None
    if config.process:
        from .sensors import WORKER_TAG, worker_identity

        # who is doing the work: a tick that finds this process gone relaunches the requests
        context.instance.add_run_tags(context.run_id, {WORKER_TAG: worker_identity()})
        from ..orphans.assets import DagsterPartitions

        res = process_requests(gov, config.request_ids or None, actor=f"dagster:{context.run_id[:8]}",
                               partitions=DagsterPartitions(context.instance))
        if res.partitions_deleted:
            context.log.info(f"ingest_batches partitions left empty and deleted: {', '.join(res.partitions_deleted)}")
        for o in res.failed:
            context.log.error(f"erasure request {o.request_id} failed: {o.failure}")
        for o in res.certified:
            context.log.info(f"erasure request {o.request_id} certified: {o.certificate_path}")
    rows = list_requests(led)
    now = erasure_clock.now()
    open_rows = [r for r in rows if r["status"] in OPEN_STATUSES]
    by_status = {st: sum(r["status"] == st for r in rows) for st in ("received", "in_progress", "verified", "certified", "failed")}
    oldest = max(open_request_ages(now, open_rows, OPEN_STATUSES), default=0.0) / 86400
    md = (res.summary_markdown() + "\n\n" if res else "") + f"**Open requests: {len(open_rows)}** (oldest {oldest:.1f} days)\n\n" + requests_table(open_rows or rows[-20:], now)
    metadata = {
        "dagster/row_count": len(rows),
        "requests_by_status": by_status,
        "open_requests": len(open_rows),
        "oldest_open_request_age_days": round(oldest, 2),
        "summary": dg.MetadataValue.md(md),
    }
    if res is not None:
        metadata["processed"] = len(res.outcomes)
        metadata["partitions_deleted"] = len(res.partitions_deleted)
        metadata["certified"] = len(res.certified)
        metadata["failed"] = len(res.failed)
        metadata["timings_s"] = {k: round(v, 3) for k, v in res.timings.items()}
        metadata["bytes_scanned"] = int(res.scan.get("bytes_scanned", 0))
        metadata["files_scanned"] = int(res.scan.get("files_scanned", 0))
        metadata["certificates"] = dg.MetadataValue.json(
            [{"request_id": o.request_id, "certificate_id": o.certificate_id, "path": o.certificate_path,
              "items": sum(c.get("items", 0) for c in o.counts.values()), "commitment": o.commitment} for o in res.certified]
        )
        if len(res.certified) == 1:
            metadata["certificate_path"] = dg.MetadataValue.path(res.certified[0].certificate_path)
    return dg.MaterializeResult(metadata=metadata)


@dg.asset_check(
    asset=erasure_requests,
    description="SLA: every erasure request older than 30 days is certified (GDPR Art. 12(3)).",
)
def erasure_sla(context: dg.AssetCheckExecutionContext, governance: GovernanceResource, erasure_clock: ErasureClockResource) -> dg.AssetCheckResult:
    from ...governance.erasure import SLA_DAYS, sla_status

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
