"""The governance gauges as a Prometheus textfile (node-exporter's textfile collector).

Written with prometheus_client (a CollectorRegistry per write, `write_to_textfile` writes a
temporary file and renames it, so the collector never reads half a file). The metric names and
labels are what `deploy/prometheus/alerts.yml` and the Grafana dashboards query. This module
only renders and writes: the figures are computed by `reports.current_gauges` and
`checkpoints.ledger_gauges`, so it imports neither.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest, write_to_textfile
from prometheus_client.parser import text_string_to_metric_families

LEDGER_PREFIX = "aisg_ledger_"


def textfile_path(exports_dir: Path) -> Path:
    """$AISG_PROMETHEUS_TEXTFILE, else <exports>/metrics/aisg_governance.prom."""
    raw = os.environ.get("AISG_PROMETHEUS_TEXTFILE")
    return Path(raw) if raw else Path(exports_dir) / "metrics" / "aisg_governance.prom"


def _gauge(registry: CollectorRegistry, name: str, doc: str, value: float | None = None, labelnames: Iterable[str] = ()) -> Gauge:
    g = Gauge(name, doc, labelnames=tuple(labelnames), registry=registry)
    if value is not None:
        g.set(value)
    return g


def add_ledger_gauges(registry: CollectorRegistry, lg: dict[str, Any]) -> None:
    """The audit ledger's witness gauges (issue 18): Prometheus's storage keeps what they were."""
    _gauge(registry, "aisg_ledger_head_seq",
           "Seq of the newest audit-ledger event (never decreases: a drop is a truncated or restored ledger).", lg["head_seq"])
    _gauge(registry, "aisg_ledger_checkpoint_number", "Number of the newest signed ledger checkpoint (never decreases).", lg["checkpoint_no"])
    _gauge(registry, "aisg_ledger_checkpoint_head_seq", "Ledger seq signed by the newest checkpoint.", lg["checkpoint_head_seq"])
    _gauge(registry, "aisg_ledger_checkpoint_timestamp_seconds",
           "When the newest signed ledger checkpoint was written (0: none).", round(lg["checkpoint_timestamp"]))


def governance_registry(g: dict[str, Any], now: datetime) -> CollectorRegistry:
    """Every governance gauge of `g` (the dict `reports.current_gauges` returns)."""
    r = CollectorRegistry()
    _gauge(r, "aisg_erasure_open_requests", "Erasure requests received and not yet certified or failed.", g["open_erasure_requests"])
    _gauge(r, "aisg_erasure_oldest_open_request_age_seconds", "Age of the oldest open erasure request (0 when none).",
           round(g["oldest_open_request_age_seconds"]))
    _gauge(r, "aisg_erasure_tracking_available", "1 when the ledger has the erasure_requests table.", g["erasure_available"])
    _gauge(r, "aisg_access_open_requests", "GDPR access requests received and not yet delivered (or failed).", g.get("open_access_requests", 0))
    _gauge(r, "aisg_access_oldest_open_request_age_seconds",
           "Age of the oldest open access request (0 when none); the deadline is 30 days.", round(g.get("oldest_open_access_request_age_seconds", 0)))
    overdue = _gauge(r, "aisg_retention_overdue_items",
                     "Items past their retention period, not held, still present, per category (retention dry run now).", labelnames=("category",))
    for category, n in sorted(g["overdue_retention"].items()):
        overdue.labels(category=category).set(n)
    orphans = _gauge(r, "aisg_orphans", "Orphaned records by kind (last orphans report).", labelnames=("kind",))
    for kind, n in sorted(g["orphans"].items()):
        orphans.labels(kind=kind).set(n)
    active = _gauge(r, "aisg_embed_version_active_info", "The active embed_version (value is always 1).", labelnames=("version",))
    if g["active_embed_version"]:
        active.labels(version=g["active_embed_version"]).set(1)
    if g.get("ledger"):
        add_ledger_gauges(r, g["ledger"])
    _gauge(r, "aisg_governance_report_timestamp_seconds", "When these gauges were computed.", round(now.timestamp()))
    return r


def render(g: dict[str, Any], now: datetime) -> str:
    return generate_latest(governance_registry(g, now)).decode("utf-8")


def write(target: Path, registry: CollectorRegistry) -> Path:
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(target), registry)  # temp file + rename
    return target


class _Parsed:
    """A collector that re-exports metric families read back from a textfile."""

    def __init__(self, families):
        self._families = list(families)

    def collect(self):
        return self._families


def replace_ledger_gauges(target: Path, lg: dict[str, Any]) -> Path:
    """Rewrite only the aisg_ledger_* gauges of the textfile; the other families stay as the
    last full write left them (the hourly checkpoint job: cheap, no retention dry run)."""
    target = Path(target)
    old = target.read_text(encoding="utf-8") if target.exists() else ""
    r = CollectorRegistry()
    r.register(_Parsed(f for f in text_string_to_metric_families(old) if not f.name.startswith(LEDGER_PREFIX)))
    add_ledger_gauges(r, lg)
    return write(target, r)


def read_samples(path: Path) -> dict[str, float]:
    """{'name' or 'name{label="v",...}': value} of a textfile ({} when it cannot be read)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return {}
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out
