"""Report periods: ISO weeks and calendar months in the report timezone, as half-open UTC ranges.

Periods are calendar periods in AISG_REPORT_TIMEZONE (default Asia/Seoul): ISO weeks Monday
00:00 to Monday 00:00 ("2026-W47") and months ("2026-11"). Ledger timestamps are UTC; an event
belongs to a period when start <= occurred_at < end.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(dt: datetime | None = None) -> str:
    """The ledger's timestamp format (UTC, microseconds). Lives here, not in ledger.py, so that
    the code location can read report periods without importing SQLAlchemy."""
    return (dt or utcnow()).astimezone(timezone.utc).isoformat(timespec="microseconds")


DEFAULT_TIMEZONE = "Asia/Seoul"
WEEK_RE = re.compile(r"^(\d{4})-W(\d{2})$")
MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


def report_timezone() -> str:
    return os.environ.get("AISG_REPORT_TIMEZONE") or DEFAULT_TIMEZONE


@dataclass(frozen=True)
class Period:
    """A half-open calendar period [start, end) in `tz`; `label` names its export directory."""

    kind: str  # "week" | "month"
    label: str  # "2026-W47" | "2026-11"
    start: datetime  # aware, in tz
    end: datetime
    tz: str

    @property
    def start_utc(self) -> str:
        return iso(self.start)

    @property
    def end_utc(self) -> str:
        return iso(self.end)

    def contains(self, ts: str | datetime | None) -> bool:
        if ts is None:
            return False
        dt = parse_ts(ts)
        return self.start <= dt < self.end

    def as_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind, "label": self.label, "timezone": self.tz,
            "start": self.start.isoformat(), "end": self.end.isoformat(),
            "start_utc": self.start_utc, "end_utc": self.end_utc,
        }


def week_period(label: str, tz: str | None = None) -> Period:
    m = WEEK_RE.fullmatch(label or "")
    if not m:
        raise ValueError(f"week {label!r} is not valid: use ISO week form YYYY-Www, e.g. 2026-W47")
    tzname = tz or report_timezone()
    try:
        monday = date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1)
    except ValueError as exc:
        raise ValueError(f"week {label!r} does not exist: {exc}") from None
    start = datetime.combine(monday, datetime.min.time(), ZoneInfo(tzname))
    return Period("week", label, start, _add_days(start, 7), tzname)


def month_period(label: str, tz: str | None = None) -> Period:
    m = MONTH_RE.fullmatch(label or "")
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ValueError(f"month {label!r} is not valid: use YYYY-MM, e.g. 2026-11")
    tzname = tz or report_timezone()
    y, mo = int(m.group(1)), int(m.group(2))
    start = datetime(y, mo, 1, tzinfo=ZoneInfo(tzname))
    end = datetime(y + (mo == 12), 1 if mo == 12 else mo + 1, 1, tzinfo=ZoneInfo(tzname))
    return Period("month", label, start, end, tzname)


def week_containing(moment: datetime, tz: str | None = None) -> Period:
    tzname = tz or report_timezone()
    y, w, _ = moment.astimezone(ZoneInfo(tzname)).isocalendar()
    return week_period(f"{y}-W{w:02d}", tzname)


def month_containing(moment: datetime, tz: str | None = None) -> Period:
    local = moment.astimezone(ZoneInfo(tz or report_timezone()))
    return month_period(f"{local.year}-{local.month:02d}", tz)


def period_for_partition(kind: str, partition_key: str, tz: str | None = None) -> Period:
    """Dagster time partition keys ("2026-11-16" week start / "2026-11-01" month start)."""
    d = date.fromisoformat(partition_key[:10])
    if kind == "week":
        y, w, _ = d.isocalendar()
        return week_period(f"{y}-W{w:02d}", tz)
    return month_period(f"{d.year}-{d.month:02d}", tz)


def _add_days(start: datetime, days: int) -> datetime:
    # wall-clock arithmetic in the zone (DST-safe): same local time `days` later
    local = start.replace(tzinfo=None) + timedelta(days=days)
    return local.replace(tzinfo=start.tzinfo)


def parse_ts(ts: str | datetime) -> datetime:
    dt = ts if isinstance(ts, datetime) else datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


