"""The operations gauges, written with prometheus_client to a node-exporter textfile.

`build_registry` gathers, for deploy/prometheus/alerts.yml, what the governance textfile
(reports.write_prometheus_textfile: open erasure/access requests and their ages, retention
overdue, orphans, active embed_version, ledger head and checkpoint) does not have:

- aisg_erasure_sla_breaches / aisg_access_sla_breaches: open requests past the 30-day deadline;
- aisg_erasure_failed_requests{kind}: failed requests (kind=failed: processing failed,
  kind=rejected: the submission was refused);
- aisg_job_last_success_timestamp_seconds{job} / aisg_job_last_success_age_seconds{job}:
  per Dagster job (given by the Dagster layer, which has the instance);
- aisg_ledger_chain_ok: 1 when the audit ledger's hash chain verifies;
- aisg_pii_entities_scrubbed_total{entity_type}: a counter of PII entities removed at ingest
  (sum of the ledger's ingest.documents events);
- aisg_quarantined_files{reason}: files now in the quarantine, by reason code.

`write_textfile` writes them to `aisg_operations.prom` beside `aisg_governance.prom` (the
textfile collector reads every *.prom of the directory; no metric is in both) with
prometheus_client.write_to_textfile (temp file + rename: never half a file). The
`prometheus_textfile_refresh` sensor rewrites both files every 5 minutes.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter as PromCounter, Gauge, write_to_textfile

from .events import IngestDocuments
from .ledger import Ledger


def quarantined_by_reason(quarantine_dir: Path) -> dict[str, int]:
    """Files now in the quarantine by reason code (uploads: their .reason.txt; telemetry:
    one rejected line counts as one under reason telemetry_<kind>)."""
    from .landing import REASON_SUFFIX

    out: Counter = Counter()
    q = Path(quarantine_dir)
    if not q.exists():
        return {}
    for p in q.rglob(f"*{REASON_SUFFIX}"):
        try:
            first = p.read_text(encoding="utf-8", errors="replace").splitlines()[0]
        except (OSError, IndexError):
            continue
        out[first.removeprefix("reason:").strip().split()[0] if first.startswith("reason:") else "unknown"] += 1
    tel = q / "telemetry"
    if tel.exists():
        for p in tel.glob("*/*.rejected.jsonl"):
            try:
                with open(p, "rb") as f:
                    out[f"telemetry_{p.parent.name}"] += sum(1 for _ in f)
            except OSError:
                continue
    return dict(out)


def pii_scrubbed_totals(ledger: Ledger) -> dict[str, int]:
    totals: Counter = Counter()
    for e in ledger.events(IngestDocuments.ACTION):
        for k, v in IngestDocuments.from_payload(e.details).pii_removed.items():
            totals[str(k)] += int(v or 0)
    return dict(totals)


def build_registry(settings, *, now: datetime | None = None, ledger: Ledger | None = None,
                   last_success: Mapping[str, float | None] | None = None) -> CollectorRegistry:
    from .context import as_governance
    from .erasure import list_requests, sla_status

    now = now or datetime.now(timezone.utc)
    ledger = ledger or as_governance(settings).ledger
    reg = CollectorRegistry()

    def gauge(name: str, doc: str, value: float | None = None, labels: tuple[str, ...] = ()) -> Gauge:
        m = Gauge(name, doc, labels, registry=reg)
        if value is not None and not labels:
            m.set(value)
        return m

    sla = sla_status(ledger, now)
    gauge("aisg_erasure_sla_breaches", "Erasure requests older than 30 days and not certified (GDPR Art. 12(3)).", len(sla.overdue))
    try:
        from .access import sla_status as access_sla

        gauge("aisg_access_sla_breaches", "Access requests older than 30 days and not delivered.", len(access_sla(ledger, now).overdue))
    except Exception:  # noqa: BLE001 - the access area is optional here
        pass
    failed = gauge("aisg_erasure_failed_requests", "Erasure requests in status failed (kind=rejected: the submission was refused).", labels=("kind",))
    kinds = Counter("rejected" if (r["failure"] or "").startswith("rejected:") else "failed" for r in list_requests(ledger, ["failed"]))
    for k in ("failed", "rejected"):
        failed.labels(kind=k).set(kinds.get(k, 0))
    gauge("aisg_ledger_chain_ok", "1 when the audit ledger's hash chain verifies from its anchor, 0 when it does not.", 1 if ledger.verify_chain().ok else 0)
    pii = PromCounter("aisg_pii_entities_scrubbed", "PII entities removed from uploads at ingest, by entity type.", ("entity_type",), registry=reg)
    for k, n in sorted(pii_scrubbed_totals(ledger).items()):
        pii.labels(entity_type=k).inc(n)
    quar = gauge("aisg_quarantined_files", "Files now in the quarantine, by reason code.", labels=("reason",))
    for k, n in sorted(quarantined_by_reason(settings.quarantine_dir).items()):
        quar.labels(reason=k).set(n)
    if last_success is not None:
        ts = gauge("aisg_job_last_success_timestamp_seconds", "When the newest successful run of each Dagster job finished (0: never).", labels=("job",))
        age = gauge("aisg_job_last_success_age_seconds", "Seconds since the newest successful run of each Dagster job (-1: never).", labels=("job",))
        for job, t in sorted(last_success.items()):
            ts.labels(job=job).set(t or 0)
            age.labels(job=job).set(now.timestamp() - t if t else -1)
    gauge("aisg_operations_gauges_timestamp_seconds", "When these gauges were computed.", round(now.timestamp()))
    return reg


def operations_textfile_path(settings) -> Path:
    """Beside the governance textfile (the collector reads every *.prom of the directory)."""
    from .prometheus import textfile_path as prometheus_textfile_path

    return prometheus_textfile_path(Path(settings.exports_dir)).with_name("aisg_operations.prom")


def write_textfile(settings, *, path: Path | None = None, now: datetime | None = None, ledger: Ledger | None = None,
                   last_success: Mapping[str, float | None] | None = None) -> Path:
    target = Path(path) if path else operations_textfile_path(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    reg = build_registry(settings, now=now, ledger=ledger, last_success=last_success)
    Gauge("aisg_operations_gauges_seconds", "Time taken to compute these gauges.", registry=reg).set(round(time.monotonic() - t0, 3))
    write_to_textfile(str(target), reg)
    return target
