"""Render a compliance report summary (from `reports.collect_report`) into its exports.

- `report.html`: one self-contained file (inline CSS, charts as base64 PNG), readable offline;
- `report.pdf`: reportlab (platypus), A4, title, period, status, sections, tables and charts;
- `summary.json`: the summary itself;
- one CSV per section (`retention.csv`, `erasure.csv`, `pii.csv`, `orphans.csv`,
  `embeddings.csv`, `data_quality.csv`, `ledger.csv`, `storage.csv`).

matplotlib (Agg backend) and reportlab are imported inside the functions that use them.
Every file is written to a temporary name and renamed, so a re-run replaces it whole.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import os
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .periods import parse_ts

SECTIONS = ("retention", "erasure", "pii", "orphans", "embeddings", "data_quality", "ledger", "storage")
SECTION_TITLES = {
    "retention": "1. Retention",
    "erasure": "2. Erasure requests",
    "pii": "3. PII scrubbing",
    "orphans": "4. Orphans",
    "embeddings": "5. Embeddings",
    "data_quality": "6. Data quality",
    "ledger": "7. Audit ledger integrity",
    "storage": "8. Storage",
}
CATEGORY_LABELS = {
    "user_content": "User content",
    "system_logs": "System logs",
    "metrics": "Metrics",
    "audit_ledger": "Audit ledger",
    "retired_embed_versions": "Retired embed_versions",
}
PALETTE = ["#1f5f99", "#e07b39", "#3a9a5b", "#b8415a", "#7a5cb0", "#8c6d31", "#4aa3b5", "#999999"]


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_exports(summary: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    charts = render_charts(summary)
    for name, data in section_csvs(summary).items():
        p = out_dir / f"{name}.csv"
        _write_atomic(p, data.encode("utf-8"))
        paths[f"csv_{name}"] = p
    p = out_dir / "summary.json"
    _write_atomic(p, json.dumps(summary, indent=2, sort_keys=False, default=str).encode("utf-8"))
    paths["json"] = p
    p = out_dir / "report.html"
    _write_atomic(p, render_html(summary, charts).encode("utf-8"))
    paths["html"] = p
    p = out_dir / "report.pdf"
    _write_atomic(p, render_pdf(summary, charts))
    paths["pdf"] = p
    return paths


# -- formatting helpers ---------------------------------------------------------------------
def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _local(ts: str | None, tz: str) -> str:
    if not ts:
        return "-"
    return parse_ts(ts).astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


def _short(h: str | None, n: int = 12) -> str:
    return (h[:n] + "…") if h and len(h) > n else (h or "-")


def _pct(r: float | None) -> str:
    return "-" if r is None else f"{r * 100:.1f}%"


def section_tables(s: dict[str, Any]) -> dict[str, list[tuple[str, list[str], list[list[str]]]]]:
    """Per section: [(caption, headers, rows)] shared by the HTML and the PDF."""
    tz = s["period"]["timezone"]
    out: dict[str, list[tuple[str, list[str], list[list[str]]]]] = {}
    ret = s["retention"]
    out["retention"] = [(
        f"Policy source: {ret['policy_source']}",
        ["Category", "Policy", "Runs", "Rows deleted", "Bytes freed", "Past period", "Held", "Not held", "Oldest (days)", "Status"],
        [[CATEGORY_LABELS.get(r["category"], r["category"]), r["policy"], _fmt(r["runs_in_period"]), _fmt(r["deleted_rows"]),
          fmt_bytes(r["bytes_reclaimed"]), _fmt(r["remaining_past_period"]), _fmt(r["held"]), _fmt(r["unexplained_past_period"]),
          _fmt(r["oldest_remaining_age_days"]), r["status"]] for r in ret["categories"]],
    ), (
        "What remains past its period, and where the figure comes from (past periods: the last purge run before the period end)",
        ["Category", "Basis", "Last purge run"],
        [[CATEGORY_LABELS.get(r["category"], r["category"]), r["remaining_basis"], _local(r["last_purge_at"], tz)] for r in ret["categories"]],
    )]
    er = s["erasure"]
    ttc = er["time_to_certification_days"]
    out["erasure"] = [(
        "Requests in the period" + ("" if er["available"] else f" (not available: {er.get('reason')})"),
        ["Received", "Certified", "Failed", "Open at period end", "Open > 30 days", "Median days to certify", "Max days to certify", "Certified late"],
        [[_fmt(er["received"]), _fmt(er["certified"]), _fmt(er["failed"]), _fmt(er["open"]), _fmt(er["overdue_open"]),
          _fmt(ttc["median"]), _fmt(ttc["max"]), _fmt(ttc["over_deadline"])]],
    )]
    reqs = sorted(er["requests"], key=lambda r: (not r["overdue"], "open" not in r["in_period"], -(r["days_to_certify"] or r["age_days"] or 0)))
    certs = sorted(er["certificates"], key=lambda c: c["verification"] == "verified")
    if er["requests"]:
        out["erasure"].append((
            "Requests (subjects as salted hashes only)"
            + (f"; the {MAX_TABLE_ROWS} most urgent of {len(reqs)}, all in erasure.csv" if len(reqs) > MAX_TABLE_ROWS else ""),
            ["Request", "Subject hash", "Status", "Received", "Certified", "Age / days to certify", "Overdue"],
            [[_short(r["request_id"], 14), _short(r["subject_hash"], 16), r["status"], _local(r["requested_at"], tz), _local(r["certified_at"], tz),
              _fmt(r["days_to_certify"] if r["days_to_certify"] is not None else r["age_days"]), "OVERDUE" if r["overdue"] else "no"] for r in reqs[:MAX_TABLE_ROWS]],
        ))
    out["erasure"].append((
        f"Certificates certified in the period, signatures re-verified now ({er.get('verifier', 'verification unavailable')})"
        + (f"; {MAX_TABLE_ROWS} of {len(certs)} shown (unverified first), all in erasure.csv" if len(certs) > MAX_TABLE_ROWS else ""),
        ["Certificate", "Request", "Subject hash", "Certified", "Days", "Signature"],
        [[_short(c["certificate_id"], 18), _short(c["request_id"], 14), _short(c["subject_hash"], 16), _local(c["certified_at"], tz),
          _fmt(c["days_to_certify"]), c["verification"]] for c in certs[:MAX_TABLE_ROWS]] or [["none", "", "", "", "", ""]],
    ))
    acc = s.get("access") or {}
    if acc:
        out["erasure"].append((
            "Access requests (GDPR Art. 15/20: signed exports)" + ("" if acc.get("available") else f" (not available: {acc.get('reason')})"),
            ["Received", "Delivered", "Rejected", "Open", "Open > 30 days", "Delivered late"],
            [[_fmt(acc["received"]), _fmt(acc["delivered"]), _fmt(acc["rejected"]), _fmt(acc["open"]), _fmt(acc["overdue"]), _fmt(acc["delivered_late"])]],
        ))
        if acc.get("requests"):
            out["erasure"].append((
                "Access requests (subjects as salted hashes only)",
                ["Request", "Subject hash", "Status", "Requested", "Delivered", "Days", "Overdue"],
                [[_short(r["request_id"], 14), _short(r["subject_hash"], 16), r["status"], _local(r["requested_at"], tz), _local(r["delivered_at"], tz),
                  _fmt(r["days"]), "OVERDUE" if r["overdue"] else "no"] for r in acc["requests"][:MAX_TABLE_ROWS]],
            ))
    pii = s["pii"]
    out["pii"] = [
        (f"{_fmt(pii['documents_ingested'])} documents ingested in {_fmt(pii['batches'])} batches",
         ["Entity type", "Removed"], [[k, _fmt(v)] for k, v in pii["entities_removed_by_type"].items()] + [["Total", _fmt(pii["entities_removed_total"])]]),
        ("Documents quarantined by reason", ["Reason", "Documents"],
         [[k, _fmt(v)] for k, v in pii["quarantined_by_reason"].items()] + [["Total", _fmt(pii["quarantined_total"])]]),
    ]
    orph = s["orphans"]
    out["orphans"] = [
        (f"Counts by kind at the last report before the period end ({_local(orph['latest_report_at'], tz)})"
         + ("" if orph["available"] else f" - not available: {orph.get('reason')}"),
         ["Kind", "Count"], [[k, _fmt(v)] for k, v in orph["latest_counts"].items()] + [["Total", _fmt(orph["latest_total"])]]),
        (f"Cleanups done in the period ({_fmt(orph['deleted_total'])} records)", ["When", "Kind", "Deleted"],
         [[_local(c["at"], tz), c["kind"], _fmt(c["deleted"])] for c in orph["cleanups"][-MAX_TABLE_ROWS:]] or [["none", "", ""]]),
    ]
    emb = s["embeddings"]
    cov = emb["coverage"]
    out["embeddings"] = [
        ("Active version and coverage over all chunks", ["Active now", "Active at period end", "Chunks", "Embedded", "Missing", "Coverage"],
         [[_fmt(emb["active_version"]), _fmt(emb["active_at_period_end"]), _fmt(cov["chunks"]), _fmt(cov["embedded"]), _fmt(cov["missing"]), _pct(cov["ratio"])]]),
        ("Activations and rollbacks in the period", ["When", "Action", "Version", "Previous"],
         [[_local(c["at"], tz), c["action"], _fmt(c["name"]), _fmt(c["previous"])] for c in emb["changes"]] or [["none", "", "", ""]]),
    ]
    dq = s["data_quality"]
    out["data_quality"] = [(
        "Asset check executions in the period" + ("" if dq["available"] else f" - not available: {dq.get('reason')}"),
        ["Asset", "Passed", "Failed"],
        [[r["asset"], _fmt(r["passed"]), _fmt(r["failed"])] for r in dq["per_asset"]] + [["Total", _fmt(dq["passed"]), _fmt(dq["failed"])]],
    )]
    if dq.get("failing_at_period_end") or dq.get("resolved_in_period"):
        out["data_quality"].append((
            "Checks with failures: still failing at their last execution (a finding), or resolved in the period",
            ["Asset", "Check", "State"],
            [[c["asset"], c["check"], "FAILING"] for c in dq.get("failing_at_period_end", [])]
            + [[c["asset"], c["check"], f"resolved ({c['failed']} failed execution(s), then passed)"] for c in dq.get("resolved_in_period", [])],
        ))
    led = s["ledger"]
    out["ledger"] = [(
        "Hash chain verified when the report was built",
        ["Chain", "Events (total)", "Events in period", "Pruned after 7 years", "Head hash"],
        [["OK" if led["chain_ok"] else f"BROKEN ({led['problem_count']} problems)", _fmt(led["events_total"]), _fmt(led["events_in_period"]),
          _fmt(led.get("events_pruned_by_retention", 0)), _short(led["head_hash"], 24)]],
    ), ("Events in the period by area", ["Area", "Events"], [[k, _fmt(v)] for k, v in led["events_in_period_by_area"].items()] or [["none", ""]])]
    st = s["storage"]
    out["storage"] = [(
        "Sizes on disk when the report was built",
        ["Store", "Table / directory", "Size"],
        [["LanceDB", k, fmt_bytes(v)] for k, v in st["lancedb_tables"].items()]
        + [["Files", k, fmt_bytes(v)] for k, v in st["directories"].items()]
        + [["Total", "", fmt_bytes(st["total_bytes"])]],
    )]
    return out


def section_csvs(s: dict[str, Any]) -> dict[str, str]:
    def to_csv(headers: list[str], rows: list[list[Any]]) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(headers)
        w.writerows(["" if v is None else v for v in r] for r in rows)
        return buf.getvalue()

    label = s["period"]["label"]
    out: dict[str, str] = {}
    r = s["retention"]
    keys = ["category", "policy_days", "runs_in_period", "deleted_rows", "deleted_items", "bytes_reclaimed", "remaining_past_period", "held",
            "unexplained_past_period", "unit", "oldest_remaining_age_days", "last_purge_at", "remaining_basis", "status"]
    out["retention"] = to_csv(["period"] + keys, [[label] + [c[k] for k in keys] for c in r["categories"]])
    e = s["erasure"]
    keys = ["request_id", "subject_hash", "status", "requested_at", "certified_at", "age_days", "days_to_certify", "overdue", "certificate_id", "verification"]
    out["erasure"] = to_csv(["period", "in_period"] + keys, [[label, "|".join(q["in_period"])] + [q[k] for k in keys] for q in e["requests"]])
    p = s["pii"]
    out["pii"] = to_csv(["period", "measure", "key", "count"],
                        [[label, "entities_removed", k, v] for k, v in p["entities_removed_by_type"].items()]
                        + [[label, "quarantined", k, v] for k, v in p["quarantined_by_reason"].items()]
                        + [[label, "documents_ingested", "", p["documents_ingested"]], [label, "batches", "", p["batches"]]])
    o = s["orphans"]
    out["orphans"] = to_csv(["period", "record", "at", "kind", "count"],
                            [[label, "report", t["at"], k, n] for t in o["trend"] for k, n in sorted(t["counts"].items())]
                            + [[label, "cleanup", c["at"], c["kind"], c["deleted"]] for c in o["cleanups"]]
                            + [[label, "latest", o["latest_report_at"], k, n] for k, n in o["latest_counts"].items()])
    m = s["embeddings"]
    cov = m["coverage"]
    out["embeddings"] = to_csv(["period", "record", "at", "action", "version", "previous", "chunks", "embedded", "coverage"],
                               [[label, "change", c["at"], c["action"], c["name"], c["previous"], None, None, None] for c in m["changes"]]
                               + [[label, "coverage", s["generated_at"], None, m["active_version"], None, cov["chunks"], cov["embedded"], cov["ratio"]]])
    d = s["data_quality"]
    out["data_quality"] = to_csv(["period", "asset", "check", "passed", "failed"],
                                 [[label, c["asset"], c["check"], c["passed"], c["failed"]] for c in d.get("per_check", [])])
    led = s["ledger"]
    out["ledger"] = to_csv(["period", "chain_ok", "events_total", "events_in_period", "events_pruned_by_retention", "head_hash", "problem_count"],
                           [[label, led["chain_ok"], led["events_total"], led["events_in_period"], led.get("events_pruned_by_retention", 0),
                             led["head_hash"], led["problem_count"]]])
    st = s["storage"]
    out["storage"] = to_csv(["period", "store", "name", "bytes"],
                            [[label, "lancedb", k, v] for k, v in st["lancedb_tables"].items()]
                            + [[label, "directory", k, v] for k, v in st["directories"].items()])
    return out


# -- charts -------------------------------------------------------------------------------
def _period_days(s: dict[str, Any]) -> list[date]:
    start = datetime.fromisoformat(s["period"]["start"]).date()
    end = datetime.fromisoformat(s["period"]["end"]).date()
    return [start + timedelta(days=i) for i in range((end - start).days)]


def render_charts(s: dict[str, Any]) -> dict[str, bytes]:
    """PNG bytes per chart: deletions over time, erasure time to certification, orphan trend, PII."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.titlesize": 11, "axes.spines.top": False, "axes.spines.right": False})
    tz = ZoneInfo(s["period"]["timezone"])
    charts: dict[str, bytes] = {}

    def save(fig, name):
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
        plt.close(fig)
        charts[name] = buf.getvalue()

    def empty(ax, text):
        ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666666", fontsize=10)

    # 1. deletions over time: stacked bars of rows deleted per day and category
    days = _period_days(s)
    fig, ax = plt.subplots(figsize=(7.2, 2.8))
    by = s["retention"]["deletions_by_day"]
    cats = sorted({d["category"] for d in by})
    bottom = [0] * len(days)
    idx = {d.isoformat(): i for i, d in enumerate(days)}
    for ci, cat in enumerate(cats):
        vals = [0] * len(days)
        for d in by:
            if d["category"] == cat and d["date"] in idx:
                vals[idx[d["date"]]] += d["rows"]
        ax.bar(days, vals, bottom=bottom, color=PALETTE[ci % len(PALETTE)], label=CATEGORY_LABELS.get(cat, cat), width=0.8)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_title("Retention: rows deleted per day")
    ax.set_ylabel("rows deleted")
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))
    if len(days) > 10:
        ax.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, len(days) // 10)))
    else:
        ax.xaxis.set_major_locator(mdates.DayLocator())
    ax.set_xlim(days[0] - timedelta(days=0.6), days[-1] + timedelta(days=0.6))
    if cats:
        ax.legend(fontsize=8, frameon=False, loc="upper left")
    else:
        empty(ax, "No retention deletions recorded in this period")
        ax.set_ylim(0, 1)
        ax.set_yticks([])
    save(fig, "deletions_over_time")

    # 2. erasure: days to certification (certified) and age so far (open) vs the 30-day deadline
    er = s["erasure"]
    deadline = er["deadline_days"]
    bars = [(f"{(r['certificate_id'] or r['request_id'] or '?')[:14]}", r["days_to_certify"], "certified") for r in er["requests"] if r["days_to_certify"] is not None]
    bars += [(f"{(r['request_id'] or '?')[:14]} (open)", r["age_days"], "open") for r in er["requests"] if r["age_days"] is not None]
    fig, ax = plt.subplots(figsize=(7.2, max(2.4, 0.35 * len(bars) + 1.2) if len(bars) <= MAX_BARS else 3.0))
    if len(bars) > MAX_BARS:  # too many requests for one bar each: distribution of days
        cert_days = [v for _, v, kind in bars if kind == "certified"]
        open_days = [v for _, v, kind in bars if kind == "open"]
        top = max(v for _, v, _ in bars)
        bins = [i * max(1.0, top / 30) for i in range(32)]
        ax.hist([cert_days, open_days], bins=bins, stacked=True, color=["#3a9a5b", "#e0a039"], label=["certified: days to certification", "open: age at period end"])
        ax.legend(fontsize=8, frameon=False, loc="upper right")
        ax.set_ylabel("requests")
        ax.set_xlim(0, max(deadline * 1.15, top * 1.05))
    elif bars:
        colors = ["#b8415a" if v > deadline else ("#3a9a5b" if kind == "certified" else "#e0a039") for _, v, kind in bars]
        y = range(len(bars))
        ax.barh(list(y), [v for _, v, _ in bars], color=colors, height=0.6)
        ax.set_yticks(list(y), [b[0] for b in bars], fontsize=7)
        ax.invert_yaxis()
        for yi, (_, v, _) in zip(y, bars):
            ax.text(v, yi, f" {v:.1f} d", va="center", fontsize=7)
        ax.set_xlim(0, max(deadline * 1.15, max(v for _, v, _ in bars) * 1.2))
    else:
        empty(ax, "No erasure requests certified or open in this period")
        ax.set_xlim(0, deadline * 1.15)
        ax.set_yticks([])
    ax.axvline(deadline, color="#b8415a", linestyle="--", linewidth=1)
    ax.text(deadline, 1.0, f" {deadline}-day deadline", color="#b8415a", fontsize=8, transform=ax.get_xaxis_transform(), va="bottom")
    ax.set_xlabel("days (certified: time to certification; open: age at period end)")
    ax.set_title("Erasure requests: time to certification", pad=14)
    save(fig, "erasure_time_to_certification")

    # 3. orphan trend: one line per kind over the orphan reports in the period
    orph = s["orphans"]
    fig, ax = plt.subplots(figsize=(7.2, 2.8))
    trend = orph["trend"]
    if trend:
        xs = [parse_ts(t["at"]).astimezone(tz).replace(tzinfo=None) for t in trend]
        kinds = [k for k in orph["kinds"] if any(t["counts"].get(k, 0) for t in trend)] or orph["kinds"][:1]
        for ki, k in enumerate(kinds):
            ax.plot(xs, [t["counts"].get(k, 0) for t in trend], marker="o", markersize=3, label=k, color=PALETTE[ki % len(PALETTE)])
        ax.plot(xs, [sum(t["counts"].values()) for t in trend], linestyle="--", color="#333333", linewidth=1, label="total")
        ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        p0 = datetime.fromisoformat(s["period"]["start"]).replace(tzinfo=None)
        p1 = datetime.fromisoformat(s["period"]["end"]).replace(tzinfo=None)
        ax.set_xlim(p0, p1)
        ax.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, (p1 - p0).days // 10)))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))
        ax.set_ylim(bottom=0)
    else:
        empty(ax, "No orphan reports recorded in this period")
        ax.set_ylim(0, 1)
        ax.set_xticks([])
    ax.set_title("Orphans by kind (orphan reports in the period)")
    ax.set_ylabel("records")
    save(fig, "orphan_trend")

    # 4. PII entities removed by type
    pii = s["pii"]["entities_removed_by_type"]
    fig, ax = plt.subplots(figsize=(7.2, max(2.2, 0.3 * len(pii) + 1.0)))
    if pii:
        items = sorted(pii.items(), key=lambda kv: kv[1])
        ax.barh([k for k, _ in items], [v for _, v in items], color=PALETTE[0], height=0.6)
        for i, (_, v) in enumerate(items):
            ax.text(v, i, f" {v}", va="center", fontsize=7)
    else:
        empty(ax, "No documents ingested in this period")
        ax.set_yticks([])
    ax.set_title("PII entities removed by type")
    save(fig, "pii_removed")
    return charts


MAX_BARS = 40  # above this the erasure chart is a histogram
MAX_TABLE_ROWS = 200  # longer lists are cut in the HTML/PDF (open/overdue/unverified first); the CSV has every row

CHART_TITLES = {
    "deletions_over_time": "Retention deletions over time",
    "erasure_time_to_certification": "Erasure time to certification",
    "orphan_trend": "Orphan trend",
    "pii_removed": "PII entities removed by type",
}
SECTION_CHARTS = {"retention": ["deletions_over_time"], "erasure": ["erasure_time_to_certification"], "pii": ["pii_removed"], "orphans": ["orphan_trend"]}


# -- HTML -----------------------------------------------------------------------------------


def _kf_cards(s: dict[str, Any]) -> list[tuple[str, str]]:
    k = s["key_figures"]
    return [
        ("Rows deleted (retention)", _fmt(k["retention_deleted_rows"])),
        ("Unexplained past retention", _fmt(k["retention_unexplained_past_period"])),
        ("Erasure requests received", _fmt(k["erasure_received"])),
        ("Erasure certified", _fmt(k["erasure_certified"])),
        ("Erasure open / overdue", f"{_fmt(k['erasure_open'])} / {_fmt(k['erasure_overdue_open'])}"),
        ("Access requests received / delivered / overdue", f"{_fmt(k.get('access_received'))} / {_fmt(k.get('access_delivered'))} / {_fmt(k.get('access_overdue_open'))}"),
        ("Days to certify (median / max)", f"{_fmt(k['erasure_median_days_to_certify'])} / {_fmt(k['erasure_max_days_to_certify'])}"),
        ("PII entities removed", _fmt(k["pii_entities_removed"])),
        ("Documents quarantined", _fmt(k["documents_quarantined"])),
        ("Orphans (latest report)", _fmt(k["orphans_latest_total"])),
        ("Active embed_version", _fmt(k["embed_version_active"])),
        ("Embedding coverage", _pct(k["embedding_coverage"])),
        ("Checks passed / failed", f"{_fmt(k['checks_passed'])} / {_fmt(k['checks_failed'])}"),
        ("Ledger chain", "OK" if k["ledger_chain_ok"] else "BROKEN"),
        ("Ledger events (period / total)", f"{_fmt(k['ledger_events_in_period'])} / {_fmt(k['ledger_events_total'])}"),
        ("Storage total", fmt_bytes(k["storage_total_bytes"])),
        ("Generated", _local(s["generated_at"], s["period"]["timezone"])),
    ]


def _is_num(v: str) -> bool:
    t = v.replace(",", "").replace(".", "").replace("%", "").replace(" ", "").replace("/", "")
    return t.isdigit()


def render_html(s: dict[str, Any], charts: dict[str, bytes]) -> str:
    """report.html from templates/compliance_report.html.j2 (Jinja2, autoescape on)."""
    from .html_templates import render

    p = s["period"]
    tz = p["timezone"]
    tables = section_tables(s)
    sections = [{
        "id": sec,
        "title": SECTION_TITLES[sec],
        "charts": [{"alt": CHART_TITLES[c], "png_base64": base64.b64encode(charts[c]).decode("ascii")} for c in SECTION_CHARTS.get(sec, [])],
        "tables": [{"caption": caption, "headers": headers, "rows": [[(c, _is_num(c)) for c in r] for r in rows]} for caption, headers, rows in tables[sec]],
    } for sec in SECTIONS]
    return render(
        "compliance_report.html.j2",
        title=s["title"], period=p, tz=tz,
        start_local=_local(p["start_utc"], tz), end_local=_local(p["end_utc"], tz), generated_local=_local(s["generated_at"], tz),
        findings=s["findings"], notes=s.get("notes") or [], key_figures=_kf_cards(s), sections=sections, schema_version=s["schema_version"],
    )


# -- PDF ------------------------------------------------------------------------------------
def render_pdf(s: dict[str, Any], charts: dict[str, bytes]) -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.enums import TA_LEFT
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import Image, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    e = html.escape
    p = s["period"]
    tz = p["timezone"]
    styles = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=styles["BodyText"], fontSize=9, leading=12)
    small = ParagraphStyle("small", parent=body, fontSize=7.5, leading=9.5)
    cell = ParagraphStyle("cell", parent=body, fontSize=7.5, leading=9, alignment=TA_LEFT)
    head = ParagraphStyle("head", parent=cell, fontName="Helvetica-Bold")
    h1 = ParagraphStyle("h1", parent=styles["Title"], fontSize=18, leading=22, alignment=TA_LEFT, spaceAfter=4)
    h2 = ParagraphStyle("h2", parent=styles["Heading2"], fontSize=13, leading=16, textColor=colors.HexColor("#1f5f99"), spaceBefore=10, spaceAfter=4)
    cap = ParagraphStyle("cap", parent=body, fontName="Helvetica-Bold", fontSize=8.5, spaceBefore=4, spaceAfter=2)
    width = A4[0] - 3.6 * cm

    def auto_widths(headers, rows):
        # proportional to the longest unbreakable word / cell (clamped), so names do not wrap mid-word
        weights = []
        for i, h in enumerate(headers):
            longest_word = max(len(w) for w in str(h).split() or [""]) * 1.25  # bold header font is wider
            longest_cell = max([min(len(str(r[i])), 28) * 1.1 for r in rows] or [0])
            weights.append(max(longest_word, longest_cell, 6) + 2)
        total = sum(weights)
        return [width * w / total for w in weights]

    def table(headers, rows, col_widths=None):
        data = [[Paragraph(e(h), head) for h in headers]] + [[Paragraph(e(str(c)), cell) for c in r] for r in rows]
        t = Table(data, colWidths=col_widths or auto_widths(headers, rows), repeatRows=1, hAlign="LEFT")
        t.setStyle(TableStyle([
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eef2f6")),
            ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#b8c2cc")),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
        ]))
        return t

    def chart(name):
        from reportlab.lib.utils import ImageReader

        data = charts[name]
        iw, ih = ImageReader(io.BytesIO(data)).getSize()
        w, h = width, width * ih / iw
        max_h = A4[1] - 6 * cm
        if h > max_h:
            w, h = w * max_h / h, max_h
        return Image(io.BytesIO(data), width=w, height=h)

    story: list = [
        Paragraph(e(s["title"]), h1),
        Paragraph(
            f"<b>Period {e(p['label'])}</b> ({e(p['kind'])}): {e(_local(p['start_utc'], tz))} to {e(_local(p['end_utc'], tz))} {e(tz)} "
            f"(UTC {e(p['start_utc'][:16])} to {e(p['end_utc'][:16])}).<br/>Generated {e(_local(s['generated_at'], tz))} {e(tz)}. "
            "Subjects appear only as salted hashes; this report contains no personal data.", body),
        Spacer(1, 6),
    ]
    if s["findings"]:
        status = [[Paragraph("<b>NOT WITHIN POLICY</b> - findings:<br/>" + "<br/>".join("&bull; " + e(f) for f in s["findings"]), body)]]
        bg = "#fbe9ec"
    else:
        status = [[Paragraph("<b>WITHIN POLICY</b> - no findings for this period.", body)]]
        bg = "#e6f4ea"
    st = Table(status, colWidths=[width])
    st.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, -1), colors.HexColor(bg)), ("BOX", (0, 0), (-1, -1), 0.6, colors.HexColor("#888888")),
                            ("LEFTPADDING", (0, 0), (-1, -1), 6), ("TOPPADDING", (0, 0), (-1, -1), 5), ("BOTTOMPADDING", (0, 0), (-1, -1), 5)]))
    story.append(st)
    if s.get("notes"):
        story.append(Paragraph("<b>Not available in this report:</b> " + "; ".join(e(n) for n in s["notes"]), small))
    story.append(Paragraph("Key figures", h2))
    cards = _kf_cards(s)
    rows = [[cards[i][0], cards[i][1], cards[i + 1][0], cards[i + 1][1]] for i in range(0, len(cards) - 1, 2)]
    story.append(table(["Figure", "Value", "Figure", "Value"], rows, [width * 0.32, width * 0.18, width * 0.32, width * 0.18]))
    tables = section_tables(s)
    for sec in SECTIONS:
        block: list = [Paragraph(e(SECTION_TITLES[sec]), h2)]
        for i, (caption, headers, rws) in enumerate(tables[sec]):
            tbl = [Paragraph(e(caption), cap), table(headers, rws)]
            if len(rws) > 25:  # a long table splits over pages (header row repeated); never pushed whole
                story += (block if i == 0 else []) + tbl
            elif i == 0:
                story.append(KeepTogether(block + tbl))
            else:
                story.append(KeepTogether(tbl))
        for name in SECTION_CHARTS.get(sec, []):
            story += [Spacer(1, 4), KeepTogether([chart(name)])]
    story += [Spacer(1, 10), Paragraph(f"aisg_pipelines compliance report, schema v{s['schema_version']}. Exported with an HTML version, summary JSON and one CSV per section.", small)]

    def footer(canvas, doc):
        canvas.saveState()
        canvas.setFont("Helvetica", 7.5)
        canvas.setFillColor(colors.HexColor("#666666"))
        canvas.drawString(1.8 * cm, 1.0 * cm, f"AISG compliance report {p['label']}")
        canvas.drawRightString(A4[0] - 1.8 * cm, 1.0 * cm, f"page {doc.page}")
        canvas.restoreState()

    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=1.8 * cm, rightMargin=1.8 * cm, topMargin=1.6 * cm, bottomMargin=1.6 * cm,
                            title=s["title"], author="aisg_pipelines", subject=f"Compliance report {p['label']}", invariant=1)
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buf.getvalue()


def summary_markdown(s: dict[str, Any], paths: dict[str, Path] | None = None) -> str:
    """Short markdown for the Dagster UI (asset metadata) and the CLI."""
    k = s["key_figures"]
    p = s["period"]
    lines = [
        f"**{s['title']}** ({p['kind']}, {p['start'][:10]} to {p['end'][:10]} {p['timezone']}): "
        + ("**within policy**" if s["within_policy"] else f"**NOT within policy** ({len(s['findings'])} findings)"),
        "",
    ]
    lines += [f"- {f}" for f in s["findings"]]
    lines += [f"- not available: {n}" for n in s.get("notes", [])]
    lines += [
        "",
        "| figure | value |", "|---|---|",
        f"| retention rows deleted | {_fmt(k['retention_deleted_rows'])} ({fmt_bytes(k['retention_bytes_reclaimed'])}) |",
        f"| past retention, unexplained | {_fmt(k['retention_unexplained_past_period'])} |",
        f"| erasure received / certified / failed | {k['erasure_received']} / {k['erasure_certified']} / {k['erasure_failed']} |",
        f"| erasure open / overdue | {k['erasure_open']} / {k['erasure_overdue_open']} |",
        f"| days to certify median / max | {_fmt(k['erasure_median_days_to_certify'])} / {_fmt(k['erasure_max_days_to_certify'])} |",
        f"| PII entities removed | {_fmt(k['pii_entities_removed'])} |",
        f"| documents quarantined | {_fmt(k['documents_quarantined'])} |",
        f"| orphans (latest) / deleted | {_fmt(k['orphans_latest_total'])} / {_fmt(k['orphans_deleted'])} |",
        f"| active embed_version / coverage | {_fmt(k['embed_version_active'])} / {_pct(k['embedding_coverage'])} |",
        f"| checks passed / failed | {k['checks_passed']} / {k['checks_failed']} |",
        f"| ledger chain / events in period | {'OK' if k['ledger_chain_ok'] else 'BROKEN'} / {k['ledger_events_in_period']} |",
    ]
    if paths:
        lines += ["", "**Exports**", ""] + [f"- `{v}`" for _, v in sorted(paths.items(), key=lambda kv: str(kv[1]))]
    return "\n".join(lines)


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "n/a"
    if n < 1024:
        return f"{n} B"
    exp = min(int(math.log(n, 1024)), 4)
    return f"{n / 1024 ** exp:.1f} {'BKMGT'[exp]}{'iB' if exp else ''}"
