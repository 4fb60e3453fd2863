"""Compliance reports: the figures for one period (a week or a month), collected in one place.

Plain module (no Dagster): `collect_report` reads the governance ledger (audit events through
`events.py`, erasure requests through `erasure_intake`), the LanceDB store and the file system,
plus optional asset-check results passed in as plain data; `build_report` also renders the
exports (HTML, PDF, CSV per section, summary.json) through `report_render`, and
`write_prometheus_textfile` writes the key gauges through `prometheus.py`.

Everything a report shows is a count, a duration, a salted subject hash, a request or
certificate id, or a path: never a subject id, document text or any other personal data.

Periods (`periods.py`) are calendar periods in the report timezone: an event belongs to a
period when start <= occurred_at < end, in UTC.

Sections whose source does not exist yet (no orphans report recorded, no Dagster instance for
the check history) are reported as `available: false` with a reason, and count as zero.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from . import prometheus
from .context import age_days, as_governance, open_request_ages
from .erasure_intake import OPEN_STATUSES, SLA_DAYS as ERASURE_DEADLINE_DAYS, list_requests as list_erasure_requests
from .events import EmbedVersionSwitch, IngestDocuments, OrphansCleanup, OrphansReport, ReportExported, RetentionPurge, record
from .ledger import Ledger, iso
from .store import dir_size as store_dir_size
from .report_render import CATEGORY_LABELS, fmt_bytes  # noqa: F401 - fmt_bytes re-exported
from .retention_policy import CATEGORIES as RETENTION_CATEGORIES, DEFAULT_POLICY_FILE, load_policies
from .periods import (  # noqa: F401 - re-exported: callers name periods through reports
    DEFAULT_TIMEZONE, Period, month_containing, month_period, parse_ts, period_for_partition, report_timezone, week_containing, week_period,
)

SCHEMA_VERSION = 1


def _by_time(events):
    """Ledger events in time order (seq order, except for events recorded with a past occurred_at)."""
    return sorted(events, key=lambda e: (e.occurred_at, e.seq))


# -- the report ---------------------------------------------------------------------------
@dataclass
class ReportResult:
    period: Period
    summary: dict[str, Any]
    out_dir: Path | None = None
    paths: dict[str, Path] = field(default_factory=dict)
    prometheus_path: Path | None = None

    @property
    def key_figures(self) -> dict[str, Any]:
        return self.summary["key_figures"]


def collect_report(
    settings,
    period: Period,
    *,
    now: datetime | None = None,
    check_results: list[dict[str, Any]] | None = None,
    ledger: Ledger | None = None,
    store=None,
) -> dict[str, Any]:
    """All figures for `period`, as a JSON-serialisable dict (what summary.json holds).

    `check_results` are asset-check executions as plain dicts
    {"asset": str, "check": str, "passed": bool, "occurred_at": ISO str}; None means the
    caller had no Dagster instance to read them from ("not available").
    """
    gov = as_governance(settings)
    now = now or datetime.now(timezone.utc)
    ledger = ledger or gov.ledger
    store = store or gov.store
    events = _by_time(ledger.events(since=period.start_utc, until=period.end_utc))
    as_of = min(now, period.end)  # "open" ages and live checks are measured at this moment

    summary: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "title": f"AISG compliance report {period.label}",
        "period": period.as_dict(),
        "generated_at": iso(now),
        "as_of": iso(as_of),
    }
    summary["retention"] = _retention(settings, ledger, store, period, events, now)
    summary["erasure"] = _erasure(ledger, period, events, as_of, settings)
    summary["access"] = _access(ledger, period, as_of)
    summary["pii"] = _pii(events)
    summary["orphans"] = _orphans(ledger, period, events)
    summary["embeddings"] = _embeddings(ledger, store, period, events)
    summary["data_quality"] = _data_quality(check_results, period)
    summary["ledger"] = _ledger_integrity(ledger, events)
    summary["storage"] = _storage(settings, store)
    summary["key_figures"] = _key_figures(summary)
    summary["findings"] = _findings(summary)
    summary["within_policy"] = not summary["findings"]
    summary["notes"] = [
        f"{name}: {summary[name].get('reason')}" for name in ("erasure", "orphans", "data_quality")
        if not summary[name].get("available")
    ] + ([f"erasure certificates: {summary['erasure']['verifier']}"]
         if summary["erasure"].get("available") and summary["erasure"].get("verifier") != "governance.certificates" else [])
    return summary


def build_report(
    settings,
    period: Period,
    *,
    now: datetime | None = None,
    check_results: list[dict[str, Any]] | None = None,
    exports_dir: Path | None = None,
    write_prometheus: bool = True,
) -> ReportResult:
    """Collect and write every export to `<exports_dir>/compliance/<period>/` (idempotent:
    files are written to temporary names and renamed, so a re-run replaces them whole)."""
    from .report_render import write_exports

    now = now or datetime.now(timezone.utc)
    ledger = as_governance(settings).ledger
    summary = collect_report(settings, period, now=now, check_results=check_results, ledger=ledger)
    base = Path(exports_dir or settings.exports_dir)
    out_dir = base / "compliance" / period.label
    paths = write_exports(summary, out_dir)
    result = ReportResult(period=period, summary=summary, out_dir=out_dir, paths=paths)
    if write_prometheus:
        result.prometheus_path = write_prometheus_textfile(settings, now=now, ledger=ledger, exports_dir=base)
    record(ledger, ReportExported(period=period.label, kind=period.kind, files=sorted(p.name for p in paths.values()),
                                  within_policy=summary["within_policy"], findings=len(summary["findings"])))
    from .checkpoints import checkpoint_after

    checkpoint_after(settings, ledger, "report")  # signed, outside the ledger (issue 18)
    return result


# -- retention ----------------------------------------------------------------------------
def retention_policy() -> tuple[dict[str, float], str]:
    """Retention days per category from governance.retention_policy (the configured policy file);
    when that file is invalid (itself a finding), the periods of the shipped default file."""
    try:
        pol = load_policies()
        source = str(pol.source)
    except Exception as exc:  # noqa: BLE001 - an invalid policy file must not stop the report
        pol = load_policies(DEFAULT_POLICY_FILE)
        source = f"defaults (policy file could not be loaded: {type(exc).__name__})"
    return {c: p.days for c, p in pol.policies.items()}, source


def _policy_text(days: float) -> str:
    if days >= 365 and days % 365 in (0, 1, 2):  # 7 years = 2555..2557 days depending on leap days
        return f"{int(days // 365)} years ({days:g} days)"
    return f"{days:g} days"


def live_retention(settings, now: datetime) -> tuple[dict[str, dict[str, Any]], str | None]:
    """What a retention dry run finds right now, per category ({} and a reason when unavailable)."""
    from .retention import overdue_report

    out: dict[str, dict[str, Any]] = {}
    for cat in RETENTION_CATEGORIES:
        try:
            r = overdue_report(settings, cat, now=now)
        except Exception as exc:  # noqa: BLE001 - one category failing must not hide the others
            out[cat] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
            continue
        out[cat] = {"expired": int(r.expired), "held": int(r.held), "overdue": int(max(r.overdue, 0)),
                    "oldest_remaining_age_days": r.oldest_remaining_age_days, "unit": r.unit}
    return out, None


def _retention(settings, ledger: Ledger, store, period: Period, events, now: datetime) -> dict[str, Any]:
    policy, source = retention_policy()
    purges = [(e, RetentionPurge.from_payload(e.details)) for e in events if e.action == RetentionPurge.ACTION]
    # State at the end of a past period: the last real (not dry-run) purge at or before its end.
    last_before_end: dict[str, Any] = {}
    for e in _by_time(ledger.events(RetentionPurge.ACTION, until=period.end_utc)):
        ev = RetentionPurge.from_payload(e.details)
        if not ev.dry_run:
            last_before_end[ev.category] = (e, ev)
    # For the period that contains `now`, what remains is measured now (a retention dry run).
    live, live_reason = live_retention(settings, now) if period.contains(now) else ({}, None)
    per_cat: dict[str, dict[str, Any]] = {}
    by_day: Counter = Counter()
    for e, ev in purges:
        if ev.dry_run:
            continue
        cat = ev.category
        c = per_cat.setdefault(cat, {"runs": 0, "deleted_rows": 0, "deleted_items": 0, "bytes_reclaimed": 0})
        c["runs"] += 1
        c["deleted_rows"] += int(ev.deleted_rows)
        c["deleted_items"] += int(ev.deleted)
        c["bytes_reclaimed"] += int(ev.bytes_reclaimed)
        day = parse_ts(e.occurred_at).astimezone(ZoneInfo(period.tz)).date().isoformat()
        by_day[(day, cat)] += int(ev.deleted_rows)
    rows = []
    for cat in list(RETENTION_CATEGORIES) + sorted(set(per_cat) - set(RETENTION_CATEGORIES)):
        days = policy.get(cat)
        c = per_cat.get(cat, {"runs": 0, "deleted_rows": 0, "deleted_items": 0, "bytes_reclaimed": 0})
        last, last_ev = last_before_end.get(cat, (None, None))
        lv = live.get(cat)
        unit = "rows"
        if lv is not None and "error" not in lv:
            remaining, held = lv["expired"], lv["held"]
            unexplained = lv["overdue"]
            oldest = lv["oldest_remaining_age_days"]
            unit = lv.get("unit") or unit
            basis = f"measured {iso(now)[:16]}Z (retention dry run)"
        elif last_ev is not None:
            held = int(last_ev.held)
            remaining = last_ev.remaining_past_period
            unexplained = max(remaining - held, 0)
            oldest = last_ev.oldest_remaining_age_days
            unit = last_ev.unit or unit
            basis = f"last purge run {last.occurred_at[:16]}Z"
        else:
            remaining = held = unexplained = 0
            oldest = None
            basis = "no purge run recorded" + (f" ({lv['error']})" if lv else "")
        rows.append({
            "category": cat,
            "label": CATEGORY_LABELS.get(cat, cat),
            "policy_days": days,
            "policy": _policy_text(days) if days is not None else "not set",
            "runs_in_period": c["runs"],
            "deleted_rows": c["deleted_rows"],
            "deleted_items": c["deleted_items"],
            "bytes_reclaimed": c["bytes_reclaimed"],
            "remaining_past_period": remaining,
            "held": held,
            "unexplained_past_period": unexplained,
            "unit": unit,
            "oldest_remaining_age_days": round(oldest, 2) if isinstance(oldest, (int, float)) else oldest,
            "last_purge_at": last.occurred_at if last is not None else None,
            "remaining_basis": basis,
            "status": "ok" if unexplained == 0 else "PAST RETENTION",
        })
    return {
        "available": True,
        "policy_source": source,
        "live_measurement": bool(live) and not live_reason,
        "live_reason": live_reason,
        "categories": rows,
        "deleted_rows_total": sum(r["deleted_rows"] for r in rows),
        "bytes_reclaimed_total": sum(r["bytes_reclaimed"] for r in rows),
        "unexplained_past_period_total": sum(r["unexplained_past_period"] for r in rows),
        "deletions_by_day": [{"date": d, "category": c, "rows": n} for (d, c), n in sorted(by_day.items())],
    }


# -- access requests (GDPR Art. 15/20, governance/access.py) --------------------------------
def _access(ledger: Ledger, period: Period, as_of: datetime) -> dict[str, Any]:
    try:
        from .access import report_summary

        return {"available": True, **report_summary(ledger, period.start_utc, period.end_utc, as_of)}
    except Exception as exc:  # noqa: BLE001 - the access area is optional here
        return {"available": False, "reason": f"{type(exc).__name__}: {str(exc)[:200]}", "received": 0, "delivered": 0, "rejected": 0,
                "open": 0, "overdue": 0, "delivered_late": 0, "requests": []}


# -- erasure ------------------------------------------------------------------------------
def signing_public_key_path(settings) -> Path:
    """Where governance.secrets keeps the certificate-signing public key (never created here)."""
    from .secrets import public_key_path

    return public_key_path(settings)


def certificate_verifier(settings):
    """callable(certificate path) -> Verification from governance/certificates.py, or None."""
    try:
        from .certificates import verify_file
    except Exception:  # noqa: BLE001 - the erasure area is optional here
        return None
    pub = signing_public_key_path(settings)
    return lambda path: verify_file(Path(path), pub)


def verify_certificate(verifier, row: dict[str, Any], settings) -> str:
    """'verified', 'INVALID: …', or why it could not be checked; re-run at every report build."""
    if verifier is None:
        return "verification unavailable"
    path = row.get("certificate_path")
    if not path:
        return "INVALID: no certificate file recorded"
    p = Path(path)
    if not p.is_absolute():
        p = next((b / p for b in (Path(settings.exports_dir), Path(settings.data_dir)) if (b / p).exists()), p)
    try:
        v = verifier(p)
    except Exception as exc:  # noqa: BLE001
        return f"INVALID: verification raised {type(exc).__name__}"
    if v.ok and v.certificate_id not in (None, row.get("certificate_id")):
        return "INVALID: certificate id does not match the ledger"
    return "verified" if v.ok else (v.message.split(":", 1)[0] + ": " + v.message.split(":", 1)[-1].strip()[:160] if ":" in v.message else v.message)


def _erasure(ledger: Ledger, period: Period, events, as_of: datetime, settings) -> dict[str, Any]:
    # keyed by verb ("received", not "erasure.received": dotted names read like domain names to a URL detector)
    event_counts = Counter(e.action.removeprefix("erasure.") for e in events if e.action.startswith("erasure."))
    base = {
        "deadline_days": ERASURE_DEADLINE_DAYS,
        "events_in_period": dict(sorted(event_counts.items())),
    }
    rows = list_erasure_requests(ledger)  # governance/erasure_intake.py: the erasure_requests rows
    verifier = certificate_verifier(settings)
    received = certified = failed = 0
    ttc: list[float] = []
    requests_out: list[dict[str, Any]] = []
    certs: list[dict[str, Any]] = []
    open_ages: list[float] = []
    for r in sorted(rows, key=lambda r: str(r.get("requested_at") or "")):
        req_at = parse_ts(r["requested_at"]) if r.get("requested_at") else None
        cert_at = parse_ts(r["certified_at"]) if r.get("certified_at") else None
        status = str(r.get("status") or "")
        in_recv = req_at is not None and period.start <= req_at < period.end
        in_cert = cert_at is not None and period.start <= cert_at < period.end
        fail_ts = r.get("failed_at")
        fail_at = parse_ts(fail_ts) if fail_ts else req_at
        in_fail = status == "failed" and fail_at is not None and period.start <= fail_at < period.end
        is_open = (
            req_at is not None and req_at < period.end
            and (cert_at is None or cert_at >= period.end)
            and not (status == "failed" and fail_at is not None and fail_at < period.end)
        )
        received += in_recv
        certified += in_cert
        failed += in_fail
        row: dict[str, Any] = {
            "request_id": r.get("request_id"),
            "subject_hash": r.get("subject_hash"),
            "status": status,
            "requested_at": iso(req_at) if req_at else None,
            "certified_at": iso(cert_at) if cert_at else None,
            "certificate_id": r.get("certificate_id"),
            "in_period": [k for k, v in (("received", in_recv), ("certified", in_cert), ("failed", in_fail), ("open", is_open)) if v],
            "age_days": None,
            "days_to_certify": None,
            "overdue": False,
            "verification": None,
        }
        if is_open:
            age = age_days(as_of, req_at)
            row["age_days"] = age
            row["overdue"] = age > ERASURE_DEADLINE_DAYS
            open_ages.append(age)
        if in_cert:
            dtc = age_days(cert_at, req_at)
            row["days_to_certify"] = dtc
            row["overdue"] = dtc is not None and dtc > ERASURE_DEADLINE_DAYS
            if dtc is not None:
                ttc.append(dtc)
            row["verification"] = verify_certificate(verifier, r, settings)
            certs.append({k: row[k] for k in ("certificate_id", "request_id", "subject_hash", "certified_at", "days_to_certify", "verification")})
        if row["in_period"]:
            requests_out.append(row)
    return {
        **base,
        "available": True,
        "verifier": "governance.certificates" if verifier else "verification unavailable",
        "received": received,
        "certified": certified,
        "failed": failed,
        "open": len(open_ages),
        "overdue_open": sum(1 for a in open_ages if a > ERASURE_DEADLINE_DAYS),
        "oldest_open_age_days": max(open_ages) if open_ages else None,
        "time_to_certification_days": {
            "count": len(ttc),
            "median": round(statistics.median(ttc), 2) if ttc else None,
            "max": max(ttc) if ttc else None,
            "over_deadline": sum(1 for d in ttc if d > ERASURE_DEADLINE_DAYS),
        },
        "requests": requests_out,
        "certificates": certs,
        "certificates_failing_verification": sum(1 for c in certs if c["verification"] != "verified"),
    }


# -- PII, orphans, embeddings ---------------------------------------------------------------
def _pii(events) -> dict[str, Any]:
    removed: Counter = Counter()
    quarantined: Counter = Counter()
    docs = missing = batches = 0
    for e in events:
        if e.action != IngestDocuments.ACTION:
            continue
        ev = IngestDocuments.from_payload(e.details)
        batches += 1
        docs += int(ev.documents)
        missing += int(ev.missing)
        removed.update({str(k): int(v) for k, v in ev.pii_removed.items()})
        quarantined.update({str(k): int(v) for k, v in ev.quarantined_by_reason.items()})
    return {
        "available": True,
        "batches": batches,
        "documents_ingested": docs,
        "missing_from_landing": missing,
        "entities_removed_by_type": dict(sorted(removed.items())),
        "entities_removed_total": sum(removed.values()),
        "quarantined_by_reason": dict(sorted(quarantined.items())),
        "quarantined_total": sum(quarantined.values()),
    }


def _orphan_counts(details: dict[str, Any]) -> dict[str, int]:
    return {str(k): int(v) for k, v in OrphansReport.from_payload(details).counts.items()}


def _orphans(ledger: Ledger, period: Period, events) -> dict[str, Any]:
    trend = [
        {"at": e.occurred_at, "counts": _orphan_counts(e.details)}
        for e in events if e.action == OrphansReport.ACTION
    ]
    cleanups = [
        {"at": e.occurred_at, "kind": ev.kind, "deleted": int(ev.deleted)}
        for e, ev in ((e, OrphansCleanup.from_payload(e.details)) for e in events if e.action == OrphansCleanup.ACTION) if not ev.dry_run
    ]
    before_end = _by_time(ledger.events(OrphansReport.ACTION, until=period.end_utc))
    latest = _orphan_counts(before_end[-1].details) if before_end else {}
    kinds = sorted({k for t in trend for k in t["counts"]} | set(latest) | {c["kind"] for c in cleanups})
    deleted_by_kind = Counter()
    for c in cleanups:
        deleted_by_kind[c["kind"]] += c["deleted"]
    return {
        "available": bool(before_end) or bool(cleanups),
        "reason": None if (before_end or cleanups) else "no orphans.report event recorded yet",
        "kinds": kinds,
        "latest_counts": {k: latest.get(k, 0) for k in kinds},
        "latest_report_at": before_end[-1].occurred_at if before_end else None,
        "latest_total": sum(latest.values()),
        "reports_in_period": len(trend),
        "trend": trend,
        "cleanups": cleanups,
        "deleted_by_kind": dict(sorted(deleted_by_kind.items())),
        "deleted_total": sum(deleted_by_kind.values()),
    }


def _embeddings(ledger: Ledger, store, period: Period, events) -> dict[str, Any]:
    from .versions import VersionRegistry

    changes = [
        {"at": e.occurred_at, "action": e.action.split(".", 1)[1], "name": ev.name or None, "previous": ev.previous}
        for e, ev in ((e, EmbedVersionSwitch.from_payload(e.details)) for e in events if e.action in EmbedVersionSwitch.ACTIONS)
    ]
    before_end = [e for e in _by_time(ledger.events("embed_version.", until=period.end_utc)) if e.action in EmbedVersionSwitch.ACTIONS]
    active_at_end = (EmbedVersionSwitch.from_payload(before_end[-1].details).name or None) if before_end else None
    try:
        active = VersionRegistry(ledger).active()
    except Exception:  # noqa: BLE001
        active = None
    active_name = active.name if active else None
    coverage = embedding_coverage(store, active_name) if active_name else {"chunks": 0, "embedded": 0, "missing": 0, "ratio": None}
    return {
        "available": True,
        "active_version": active_name,
        "active_at_period_end": active_at_end,
        "changes": changes,
        "activations": sum(1 for c in changes if c["action"] in ("activate", "bootstrap")),
        "rollbacks": sum(1 for c in changes if c["action"] == "rollback"),
        "coverage": coverage,
    }


def embedding_coverage(store, version: str) -> dict[str, Any]:
    """Share of chunk_ids in `chunks` that have a row in `embeddings_<version>` (ids only)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from .store import CHUNKS, embeddings_table

    table = embeddings_table(version)
    chunk_ids = store.scan(CHUNKS, ["chunk_id"])["chunk_id"] if store.has_table(CHUNKS) else pa.array([], pa.string())
    emb_ids = store.scan(table, ["chunk_id"])["chunk_id"] if store.has_table(table) else pa.array([], pa.string())
    n = len(chunk_ids)
    if n == 0:
        return {"version": version, "chunks": 0, "embedded": 0, "missing": 0, "ratio": None}
    present = pc.sum(pc.is_in(chunk_ids, value_set=pa.chunked_array(emb_ids).combine_chunks() if isinstance(emb_ids, pa.ChunkedArray) else emb_ids)).as_py() or 0
    return {"version": version, "chunks": n, "embedded": int(present), "missing": n - int(present), "ratio": round(present / n, 6)}


# -- data quality, ledger, storage ----------------------------------------------------------
def _data_quality(check_results: list[dict[str, Any]] | None, period: Period) -> dict[str, Any]:
    if check_results is None:
        return {"available": False, "reason": "no Dagster instance given: asset check history not read",
                "per_asset": [], "passed": 0, "failed": 0}
    per: dict[str, Counter] = defaultdict(Counter)
    per_check: dict[tuple[str, str], Counter] = defaultdict(Counter)
    latest: dict[tuple[str, str], tuple[str, int, bool]] = {}  # (occurred_at, input order, passed)
    for i, r in enumerate(check_results):
        if r.get("occurred_at") and not period.contains(r["occurred_at"]):
            continue
        k = "passed" if r.get("passed") else "failed"
        key = (str(r["asset"]), str(r.get("check")))
        per[key[0]][k] += 1
        per_check[key][k] += 1
        stamp = (str(r.get("occurred_at") or ""), i, bool(r.get("passed")))
        if key not in latest or stamp[:2] > latest[key][:2]:
            latest[key] = stamp
    rows = [{"asset": a, "passed": c["passed"], "failed": c["failed"]} for a, c in sorted(per.items())]
    # A check whose last execution in the period failed is a finding; one that failed and then
    # passed again (e.g. orphans found, then cleaned up) is an incident resolved in the period.
    failing = [{"asset": a, "check": ch} for (a, ch), (_, _, ok) in sorted(latest.items()) if not ok]
    resolved = [{"asset": a, "check": ch, "failed": per_check[(a, ch)]["failed"]}
                for (a, ch), (_, _, ok) in sorted(latest.items()) if ok and per_check[(a, ch)]["failed"]]
    return {
        "available": True,
        "per_asset": rows,
        "per_check": [{"asset": a, "check": ch, "passed": c["passed"], "failed": c["failed"]} for (a, ch), c in sorted(per_check.items())],
        "passed": sum(r["passed"] for r in rows),
        "failed": sum(r["failed"] for r in rows),
        "failing_at_period_end": failing,
        "resolved_in_period": resolved,
    }


def _ledger_integrity(ledger: Ledger, events) -> dict[str, Any]:
    v = ledger.verify_chain()
    return {
        "available": True,
        "chain_ok": v.ok,
        "events_total": v.events,
        "events_in_period": len(events),
        "events_in_period_by_area": dict(sorted(Counter(e.action.split(".", 1)[0] for e in events).items())),
        "head_hash": v.head_hash,
        "head_seq": v.head_seq,  # with head_hash: an anchor `aisg verify-ledger` checks
        "events_pruned_by_retention": v.pruned_events,  # older than 7 years, behind a checkpoint
        "anchor_hash": v.anchor_hash,
        "problems": v.problems[:20],
        "problem_count": len(v.problems),
    }


dir_size = store_dir_size  # the one directory-size helper (governance/store.py)


def _storage(settings, store) -> dict[str, Any]:
    try:
        tables = dict(sorted(store.table_sizes().items()))
    except Exception:  # noqa: BLE001
        tables = {}
    dirs = {
        "landing": dir_size(settings.landing_dir),
        "quarantine": dir_size(settings.quarantine_dir),
        "exports": dir_size(settings.exports_dir),
    }
    ledger_bytes = None
    if settings.ledger_url.startswith("sqlite:///"):
        lp = Path(settings.ledger_url.removeprefix("sqlite:///"))
        ledger_bytes = lp.stat().st_size if lp.exists() else None
    dirs["ledger (sqlite)"] = ledger_bytes
    return {
        "available": True,
        "lancedb_uri_is_local": store.local_root() is not None,
        "lancedb_tables": tables,
        "lancedb_total_bytes": sum(tables.values()),
        "directories": dirs,
        "total_bytes": sum(tables.values()) + sum(v for v in dirs.values() if v),
    }


# -- key figures and findings ------------------------------------------------------------
def _key_figures(s: dict[str, Any]) -> dict[str, Any]:
    er, ret, orph, emb, dq, led = s["erasure"], s["retention"], s["orphans"], s["embeddings"], s["data_quality"], s["ledger"]
    return {
        "retention_deleted_rows": ret["deleted_rows_total"],
        "retention_bytes_reclaimed": ret["bytes_reclaimed_total"],
        "retention_unexplained_past_period": ret["unexplained_past_period_total"],
        "erasure_received": er["received"],
        "erasure_certified": er["certified"],
        "erasure_failed": er["failed"],
        "erasure_open": er["open"],
        "erasure_overdue_open": er["overdue_open"],
        "erasure_median_days_to_certify": er["time_to_certification_days"]["median"],
        "erasure_max_days_to_certify": er["time_to_certification_days"]["max"],
        "access_received": s.get("access", {}).get("received", 0),
        "access_delivered": s.get("access", {}).get("delivered", 0),
        "access_overdue_open": s.get("access", {}).get("overdue", 0),
        "pii_entities_removed": s["pii"]["entities_removed_total"],
        "documents_quarantined": s["pii"]["quarantined_total"],
        "orphans_latest_total": orph["latest_total"],
        "orphans_deleted": orph["deleted_total"],
        "embed_version_active": emb["active_version"],
        "embed_version_changes": len(emb["changes"]),
        "embedding_coverage": emb["coverage"]["ratio"],
        "checks_passed": dq["passed"],
        "checks_failed": dq["failed"],
        "ledger_chain_ok": led["chain_ok"],
        "ledger_events_total": led["events_total"],
        "ledger_events_in_period": led["events_in_period"],
        "storage_total_bytes": s["storage"]["total_bytes"],
    }


def _findings(s: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for r in s["retention"]["categories"]:
        if r["unexplained_past_period"]:
            out.append(f"Retention: {r['unexplained_past_period']} {r['label'].lower()} {r['unit']} past their {r['policy']} period, not under legal hold.")
    er = s["erasure"]
    if er["overdue_open"]:
        out.append(f"Erasure: {er['overdue_open']} open request(s) older than the {ERASURE_DEADLINE_DAYS}-day deadline.")
    if er["time_to_certification_days"]["over_deadline"]:
        out.append(f"Erasure: {er['time_to_certification_days']['over_deadline']} request(s) certified after the {ERASURE_DEADLINE_DAYS}-day deadline.")
    if er["failed"]:
        out.append(f"Erasure: {er['failed']} request(s) failed in the period.")
    acc = s.get("access") or {}
    if acc.get("overdue"):
        out.append(f"Access: {acc['overdue']} open access request(s) older than the {ERASURE_DEADLINE_DAYS}-day deadline.")
    if acc.get("delivered_late"):
        out.append(f"Access: {acc['delivered_late']} access export(s) delivered after the {ERASURE_DEADLINE_DAYS}-day deadline.")
    if er.get("certificates_failing_verification"):
        out.append(f"Erasure: {er['certificates_failing_verification']} certificate(s) not verified when the report was built.")
    dq = s["data_quality"]
    if dq.get("failing_at_period_end"):
        names = ", ".join(f"{c['asset']}/{c['check']}" for c in dq["failing_at_period_end"])
        out.append(f"Data quality: {len(dq['failing_at_period_end'])} asset check(s) failing at their last execution in the period ({names}).")
    if not s["ledger"]["chain_ok"]:
        out.append(f"Audit ledger: hash chain BROKEN ({s['ledger']['problem_count']} problem(s)).")
    cov = s["embeddings"]["coverage"]
    if cov.get("missing"):
        out.append(f"Embeddings: {cov['missing']} chunk(s) have no embedding under the active version {s['embeddings']['active_version']}.")
    return out


# -- Prometheus textfile ----------------------------------------------------------------------
def current_gauges(settings, *, now: datetime | None = None, ledger: Ledger | None = None) -> dict[str, Any]:
    """The state right now (not of a period): what the Prometheus textfile exports."""
    now = now or datetime.now(timezone.utc)
    ledger = ledger or as_governance(settings).ledger
    g: dict[str, Any] = {"open_erasure_requests": 0, "oldest_open_request_age_seconds": 0.0,
                         "erasure_available": 0, "overdue_retention": {}, "orphans": {}, "active_embed_version": None}
    g["erasure_available"] = 1  # the ledger always has erasure_requests (the gauge stays for the dashboards)
    ages = open_request_ages(now, list_erasure_requests(ledger, OPEN_STATUSES), OPEN_STATUSES)
    g["open_erasure_requests"] = len(ages)
    g["oldest_open_request_age_seconds"] = max(ages) if ages else 0.0
    try:  # access requests (governance/access.py): open = received, not yet delivered
        from .access import sla_status as access_sla

        st = access_sla(ledger, now)
        g["open_access_requests"] = len(st.open)
        g["oldest_open_access_request_age_seconds"] = max((r["age_days"] * 86400 for r in st.open), default=0.0)
    except Exception:  # noqa: BLE001 - the access area is optional here
        pass
    live, _ = live_retention(settings, now)
    last: dict[str, Any] = {}
    for e in _by_time(ledger.events(RetentionPurge.ACTION)):
        ev = RetentionPurge.from_payload(e.details)
        if not ev.dry_run:
            last[ev.category] = ev
    for cat in RETENTION_CATEGORIES:
        lv = live.get(cat)
        d = last.get(cat)
        if lv is not None and "error" not in lv:
            g["overdue_retention"][cat] = lv["overdue"]
        elif d:
            g["overdue_retention"][cat] = max(d.expired - d.deleted - d.held, 0)
        else:
            g["overdue_retention"][cat] = 0
    reports = _by_time(ledger.events(OrphansReport.ACTION))
    g["orphans"] = _orphan_counts(reports[-1].details) if reports else {}
    try:
        from .versions import VersionRegistry

        a = VersionRegistry(ledger).active()
        g["active_embed_version"] = a.name if a else None
    except Exception:  # noqa: BLE001
        pass
    from .checkpoints import ledger_gauges

    g["ledger"] = ledger_gauges(settings, ledger)  # head seq + newest signed checkpoint: Prometheus witnesses them
    return g


def update_ledger_gauges(settings, *, ledger: Ledger | None = None, exports_dir: Path | None = None, path: Path | None = None) -> Path:
    """Refresh only the aisg_ledger_* gauges in the textfile (the hourly checkpoint job: cheap,
    no retention dry run); the other gauges stay as the last full write left them."""
    from .checkpoints import ledger_gauges

    ledger = ledger or as_governance(settings).ledger
    target = Path(path) if path else prometheus.textfile_path(Path(exports_dir or settings.exports_dir))
    return prometheus.replace_ledger_gauges(target, ledger_gauges(settings, ledger))


def render_prometheus(g: dict[str, Any], now: datetime) -> str:
    return prometheus.render(g, now)


def write_prometheus_textfile(settings, *, now: datetime | None = None, ledger: Ledger | None = None,
                              exports_dir: Path | None = None, path: Path | None = None) -> Path:
    """The governance gauges as of `now`, written atomically (prometheus_client: temp file + rename)."""
    now = now or datetime.now(timezone.utc)
    target = Path(path) if path else prometheus.textfile_path(Path(exports_dir or settings.exports_dir))
    return prometheus.write(target, prometheus.governance_registry(current_gauges(settings, now=now, ledger=ledger), now))
