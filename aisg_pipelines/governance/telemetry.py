"""AISG system logs and metric samples: JSON-lines files -> LanceDB tables, one partition per day.

Plain module (no Dagster). Input format (one JSON object per line, UTF-8):

* system logs (``Settings.logs_dir``): ``timestamp`` (ISO-8601 or epoch seconds), ``level``,
  ``message`` required; ``request_id``, ``trace_id``, ``user_id``, ``service``, ``job_id``,
  ``duration_ms`` optional; ``correlation_id``, ``span_id``, ``error_code`` optional. AISG's
  WideEvents (camelCase: ``requestId``, ``traceId``, ``correlationId``, ``durationMs``,
  ``error.code`` nested or dotted ...) are read too (``normalise_wide_event``).
* metric samples (``Settings.metrics_dir``): ``name``, ``value`` (number), ``timestamp``
  required; ``labels`` (object) optional.

A file belongs to the day (``YYYY-MM-DD``) found in its path relative to the directory
(``aisg-2026-05-01.jsonl`` or ``2026-05-01/worker.jsonl``), else to its mtime's UTC day.
Ingesting a day replaces exactly that day's rows (one merge_insert keyed by ``row_id`` =
hash of file path and line), so a re-ingest is idempotent. Malformed lines are counted and
written, with a reason, to ``<quarantine>/telemetry/<kind>/<day>.rejected.jsonl``; they never
stop the run.

PII: every free-text value is scrubbed before it is stored (the log message and service, a
metric's name and label values, a rejected line and its reason detail). ``user_id`` is the
structured subject field that retention holds and erasure match on, so it is kept as is.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa

from .ids import sha256_hex
from .store import METRICS, SYSTEM_LOGS, TS, LanceStore

DAY_RE = re.compile(r"(\d{4}-\d{2}-\d{2})")
STRICT_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SUFFIXES = (".jsonl", ".log", ".ndjson")
MAX_LINE_BYTES = 64_000

SYSTEM_LOGS_SCHEMA = pa.schema(
    [
        ("row_id", pa.string()),
        ("day", pa.string()),
        ("timestamp", TS),
        ("level", pa.string()),
        ("service", pa.string()),
        ("message", pa.string()),
        ("request_id", pa.string()),
        ("trace_id", pa.string()),
        ("user_id", pa.string()),
        ("job_id", pa.string()),
        ("duration_ms", pa.float64()),
        ("source_file", pa.string()),
        ("ingested_at", TS),
        # AISG WideEvents (camelCase) carry these too; added to existing tables on the next ingest
        ("correlation_id", pa.string()),
        ("span_id", pa.string()),
        ("error_code", pa.string()),
    ]
)
ADDED_LOG_COLUMNS = ("correlation_id", "span_id", "error_code")

METRICS_SCHEMA = pa.schema(
    [
        ("row_id", pa.string()),
        ("day", pa.string()),
        ("timestamp", TS),
        ("name", pa.string()),
        ("labels", pa.string()),  # JSON object, keys sorted
        ("value", pa.float64()),
        ("user_id", pa.string()),  # labels.user_id if present (for legal holds)
        ("source_file", pa.string()),
        ("ingested_at", TS),
    ]
)

KINDS = {"system_logs": (SYSTEM_LOGS, SYSTEM_LOGS_SCHEMA), "metrics": (METRICS, METRICS_SCHEMA)}

REASONS = {
    "not_json": "the line is not valid JSON",
    "not_object": "the line is JSON but not an object",
    "missing_fields": "required fields are missing",
    "bad_timestamp": "timestamp is not ISO-8601 or epoch seconds",
    "bad_value": "a field has the wrong type",
    "too_long": f"the line is longer than {MAX_LINE_BYTES} bytes",
    "not_utf8": "the line is not valid UTF-8",
}


class Malformed(Exception):
    def __init__(self, code: str, detail: str = ""):
        self.code = code
        self.detail = detail
        super().__init__(code)


def source_dir(settings, kind: str) -> Path:
    return Path(settings.logs_dir if kind == "system_logs" else settings.metrics_dir)


def quarantine_file(quarantine_dir: Path, kind: str, day: str) -> Path:
    return Path(quarantine_dir) / "telemetry" / kind / f"{day}.rejected.jsonl"


def day_of(rel_path: str, mtime: float) -> str:
    m = DAY_RE.search(rel_path)
    if m:
        return m.group(1)
    return datetime.fromtimestamp(mtime, timezone.utc).strftime("%Y-%m-%d")


def list_day_files(directory: Path) -> dict[str, list[str]]:
    """{day: [relative paths]} of every telemetry file in `directory`."""
    out: dict[str, list[str]] = {}
    directory = Path(directory)
    if not directory.exists():
        return out
    for root, _dirs, files in os.walk(directory):
        for name in files:
            if name.startswith(".") or not name.endswith(SUFFIXES):
                continue
            p = Path(root) / name
            rel = p.relative_to(directory).as_posix()
            try:
                mtime = p.stat().st_mtime
            except FileNotFoundError:
                continue
            out.setdefault(day_of(rel, mtime), []).append(rel)
    return {d: sorted(v) for d, v in sorted(out.items())}


def day_signature(directory: Path, files: list[str]) -> str:
    """Changes whenever a file of the day is added, removed, rewritten or appended to."""
    parts = []
    for rel in files:
        try:
            st = (Path(directory) / rel).stat()
        except FileNotFoundError:
            continue
        parts.append(f"{rel}\x1f{st.st_size}\x1f{st.st_mtime_ns}")
    return sha256_hex("\n".join(parts))[:16]


def parse_timestamp(value) -> datetime:
    if isinstance(value, bool):
        raise Malformed("bad_timestamp")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise Malformed("bad_timestamp")
        return datetime.fromtimestamp(float(value), timezone.utc)
    if not isinstance(value, str):
        raise Malformed("bad_timestamp")
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Malformed("bad_timestamp", value[:40]) from None
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def _opt_str(obj: dict, key: str) -> str | None:
    v = obj.get(key)
    if v is None:
        return None
    if isinstance(v, (dict, list)):
        raise Malformed("bad_value", key)
    return str(v)[:2000]


def row_id_for(kind: str, rel_path: str, raw_line: bytes) -> str:
    """Stable per (kind, file, line content): survives rewrites of the file that keep the line."""
    return sha256_hex(kind.encode() + b"\x1f" + rel_path.encode() + b"\x1f" + raw_line.rstrip(b"\r\n"))[:32]


# AISG's logging pipeline emits WideEvents: camelCase keys, nested or dotted objects
# ({"error": {"code": ...}} or "error.code"). They map onto the snake_case columns; a key
# present in both spellings keeps the snake_case value.
WIDE_EVENT_KEYS = {
    "requestId": "request_id", "traceId": "trace_id", "spanId": "span_id", "correlationId": "correlation_id",
    "userId": "user_id", "jobId": "job_id", "durationMs": "duration_ms", "serviceName": "service",
    "service.name": "service", "error.code": "error_code", "errorCode": "error_code", "error.message": "error_message",
    "@timestamp": "timestamp", "ts": "timestamp", "msg": "message", "severity": "level", "logLevel": "level",
}
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def _flatten(obj: dict, prefix: str = "", depth: int = 0) -> dict:
    out: dict = {}
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and depth < 2 and key in ("error", "service", "http", "context", "trace"):
            out.update(_flatten(v, key + ".", depth + 1))
        else:
            out[key] = v
    return out


def normalise_wide_event(obj: dict) -> dict:
    """A WideEvent (camelCase) as the snake_case fields parse_line reads; snake_case lines pass unchanged."""
    if not any(k in WIDE_EVENT_KEYS or _CAMEL.search(k) or "." in k or isinstance(v, dict) for k, v in obj.items()):
        return obj
    flat = _flatten(obj)
    out: dict = {}
    for k, v in flat.items():
        name = WIDE_EVENT_KEYS.get(k) or _CAMEL.sub(r"_\1", k).lower().replace(".", "_")
        if k != name and name in obj and not isinstance(obj[name], dict):
            continue  # the snake_case spelling wins
        out.setdefault(name, v)
    if out.get("message") in (None, "") and out.get("error_message"):
        out["message"] = out["error_message"]
    return out


def parse_line(kind: str, raw: bytes) -> dict:
    if len(raw) > MAX_LINE_BYTES:
        raise Malformed("too_long")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("not_utf8") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Malformed("not_json", exc.msg) from None
    if not isinstance(obj, dict):
        raise Malformed("not_object")
    if kind == "system_logs":
        obj = normalise_wide_event(obj)
        missing = [k for k in ("timestamp", "level", "message") if obj.get(k) in (None, "")]
        if missing:
            raise Malformed("missing_fields", ", ".join(missing))
        dur = obj.get("duration_ms")
        if dur is not None and (isinstance(dur, bool) or not isinstance(dur, (int, float))):
            raise Malformed("bad_value", "duration_ms")
        return {
            "timestamp": parse_timestamp(obj["timestamp"]),
            "level": str(obj["level"])[:16],
            "service": _opt_str(obj, "service"),
            "message": str(obj["message"])[:8000],
            "request_id": _opt_str(obj, "request_id"),
            "trace_id": _opt_str(obj, "trace_id"),
            "user_id": _opt_str(obj, "user_id"),
            "job_id": _opt_str(obj, "job_id"),
            "duration_ms": float(dur) if dur is not None else None,
            "correlation_id": _opt_str(obj, "correlation_id"),
            "span_id": _opt_str(obj, "span_id"),
            "error_code": _opt_str(obj, "error_code"),
        }
    missing = [k for k in ("name", "value", "timestamp") if obj.get(k) in (None, "")]
    if missing:
        raise Malformed("missing_fields", ", ".join(missing))
    value = obj["value"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise Malformed("bad_value", "value")
    labels = obj.get("labels") or {}
    if not isinstance(labels, dict):
        raise Malformed("bad_value", "labels")
    user = labels.get("user_id")
    return {
        "timestamp": parse_timestamp(obj["timestamp"]),
        "name": str(obj["name"])[:200],
        "labels": json.dumps(labels, sort_keys=True, ensure_ascii=False)[:4000],
        "value": float(value),
        "user_id": str(user) if user is not None else None,
    }


@dataclass
class TelemetryIngestResult:
    kind: str
    day: str
    files: int = 0
    lines: int = 0
    rows: int = 0
    duplicates: int = 0
    malformed: int = 0
    malformed_by_reason: dict[str, int] = field(default_factory=dict)
    quarantine_path: str | None = None
    write: dict[str, int] = field(default_factory=dict)


def _scrubber(scrubber=None):
    if scrubber is not None:
        return scrubber
    from .pii import env_scrubber

    return env_scrubber()


ERROR_CODE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,63}")


def scrub_parsed(kind: str, parsed: dict, scrubber) -> dict:
    """The row with its free-text fields scrubbed (ids and the subject field untouched)."""
    out = dict(parsed)
    if kind == "system_logs":
        for key in ("message", "service"):
            if out.get(key):
                out[key] = scrubber.scrub_text(out[key])
        if out.get("error_code") and not ERROR_CODE_RE.fullmatch(out["error_code"]):
            out["error_code"] = scrubber.scrub_text(out["error_code"])  # not a code: free text
        return out
    out["name"] = scrubber.scrub_text(out["name"])
    labels = json.loads(out["labels"])
    clean = {k: (v if k == "user_id" else scrubber.scrub_value(v)) for k, v in labels.items()}
    out["labels"] = json.dumps(clean, sort_keys=True, ensure_ascii=False)[:4000]
    return out


def read_day(kind: str, directory: Path, day: str, files: list[str], now: datetime, scrubber=None) -> tuple[pa.Table, list[dict]]:
    """(rows of the day, rejected lines with reasons), PII-scrubbed."""
    scrubber = _scrubber(scrubber)
    rows: dict[str, dict] = {}
    rejected: list[dict] = []
    for rel in files:
        path = Path(directory) / rel
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        for n, raw in enumerate(data.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                parsed = parse_line(kind, raw)
            except Malformed as m:
                rejected.append({"file": rel, "line_no": n, "reason": m.code, "explanation": REASONS[m.code],
                                 "detail": scrubber.scrub_text(m.detail),
                                 "raw": scrubber.scrub_text(raw[:2000].decode("utf-8", "replace"))})
                continue
            rid = row_id_for(kind, rel, raw)
            rows[rid] = {"row_id": rid, "day": day, **scrub_parsed(kind, parsed, scrubber), "source_file": rel, "ingested_at": now}
    schema = KINDS[kind][1]
    return pa.Table.from_pylist(list(rows.values()), schema=schema), rejected


def ingest_day(store: LanceStore, kind: str, directory: Path, quarantine_dir: Path, day: str, *, now: datetime | None = None) -> TelemetryIngestResult:
    """Make the table's rows of `day` exactly those parsed from the day's files (idempotent)."""
    return ingest_days(store, kind, directory, quarantine_dir, [day], now=now)[0]


def ingest_days(store: LanceStore, kind: str, directory: Path, quarantine_dir: Path, days: list[str], *, now: datetime | None = None,
                scrubber=None) -> list[TelemetryIngestResult]:
    """Make the rows of each of `days` exactly those parsed from its files, in ONE commit.

    Idempotent: rows are upserted by row_id and the days' other rows deleted. A day without
    any file is left alone (retention removes files together with rows).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown telemetry kind {kind!r}; expected one of {sorted(KINDS)}")
    for day in days:
        if not STRICT_DAY_RE.fullmatch(day):
            raise ValueError(f"day {day!r} is not YYYY-MM-DD")
    now = now or datetime.now(timezone.utc)
    scrubber = _scrubber(scrubber)
    by_day = list_day_files(directory)
    name, schema = KINDS[kind]
    results, tables, present = [], [], []
    for day in sorted(set(days)):
        files = by_day.get(day, [])
        res = TelemetryIngestResult(kind, day, files=len(files))
        results.append(res)
        if not files:
            continue
        present.append(day)
        table, rejected = read_day(kind, directory, day, files, now, scrubber)
        tables.append(table)
        res.rows = table.num_rows
        res.malformed = len(rejected)
        res.malformed_by_reason = dict(Counter(r["reason"] for r in rejected))
        for rel in files:
            try:
                res.lines += sum(1 for line in (Path(directory) / rel).read_bytes().splitlines() if line.strip())
            except FileNotFoundError:
                pass
        res.duplicates = res.lines - res.rows - res.malformed
        qf = quarantine_file(quarantine_dir, kind, day)
        if rejected:
            qf.parent.mkdir(parents=True, exist_ok=True)
            tmp = qf.with_name(qf.name + ".tmp")
            tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejected), encoding="utf-8")
            os.replace(tmp, qf)
            res.quarantine_path = str(qf)
        elif qf.exists():
            qf.unlink()
    if not present:
        return results
    tbl = store.ensure_table(name, schema)
    missing = [c for c in schema.names if c not in tbl.schema.names]
    if missing:  # a table from before WideEvents: add the id columns (null for old rows)
        tbl.add_columns({c: "CAST(NULL AS STRING)" for c in missing})
    # days matched STRICT_DAY_RE above: safe to quote directly
    day_filter = "day IN (" + ", ".join(f"'{d}'" for d in present) + ")"
    rows = pa.concat_tables(tables) if tables else pa.Table.from_pylist([], schema=schema)
    if rows.num_rows == 0:
        before = tbl.count_rows(day_filter)
        if before:
            tbl.delete(day_filter)
        write = {"inserted": 0, "updated": 0, "deleted": before}
    else:
        r = (
            tbl.merge_insert("row_id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete(day_filter)
            .execute(rows)
        )
        write = {"inserted": r.num_inserted_rows, "updated": r.num_updated_rows, "deleted": r.num_deleted_rows}
    for res in results:
        res.write = write
    return results


def ingest_all(settings, *, kinds=("system_logs", "metrics"), days: list[str] | None = None, now: datetime | None = None) -> list[TelemetryIngestResult]:
    """Ingest every day found (or only `days`) of each kind, one commit per kind."""
    from .pii import get_scrubber

    from .context import as_governance

    store = as_governance(settings).store
    scrubber = get_scrubber(getattr(settings, "pii_operators", None) or None)
    out = []
    for kind in kinds:
        d = source_dir(settings, kind)
        todo = [day for day in sorted(list_day_files(d)) if days is None or day in days]
        if todo:
            out += ingest_days(store, kind, d, settings.quarantine_dir, todo, now=now, scrubber=scrubber)
    return out


# -- sample data ----------------------------------------------------------------------

METRIC_NAMES = ("rag_queue_length", "rag_job_duration_ms", "dlq_entries_total", "embedding_api_latency_ms", "worker_active_jobs")
SERVICES = ("rag-api", "embed-worker", "ingest-worker", "retrieval")
LOG_MESSAGES = (
    ("INFO", "rag query answered"),
    ("INFO", "document ingested"),
    ("INFO", "embedding job finished"),
    ("WARN", "slow embedding api response"),
    ("ERROR", "job moved to dead-letter queue"),
    ("DEBUG", "cache hit for retrieval"),
)


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def generate_sample_telemetry(
    logs_dir: Path,
    metrics_dir: Path,
    *,
    now: datetime,
    subject_ids: list[str],
    span_days: int = 200,
    logs_per_day: int = 12,
    samples_per_metric: int = 4,
    seed: int = 7,
) -> dict:
    """Write one log file and one metric file per day for `span_days` days up to `now`.

    Log lines carry `user_id` values from `subject_ids` (every third line has none).
    A few deterministic malformed lines are included (every 25th day: one non-JSON log line,
    one log line without `message`, one metric with a string value). Files' mtimes are set
    to the end of their day. Returns a manifest with exact counts per day.
    """
    rng = random.Random(seed)
    logs_dir, metrics_dir = Path(logs_dir), Path(metrics_dir)
    now = now.astimezone(timezone.utc)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    manifest = {"days": [], "log_rows": 0, "metric_rows": 0, "malformed_logs": 0, "malformed_metrics": 0, "log_rows_by_user": {}}
    by_user: Counter[str] = Counter()
    for age in range(span_days - 1, -1, -1):
        start = today - timedelta(days=age)
        day = start.strftime("%Y-%m-%d")
        # the current day only up to `now`
        horizon = (now - start).total_seconds() if age == 0 else 86400.0
        horizon = max(horizon, 60.0)
        log_lines, metric_lines = [], []
        n_logs = 0
        for i in range(logs_per_day):
            ts = start + timedelta(seconds=horizon * (i + 0.5) / logs_per_day)
            level, msg = LOG_MESSAGES[(i + age) % len(LOG_MESSAGES)]
            user = subject_ids[(i + age) % len(subject_ids)] if subject_ids and i % 3 != 2 else None
            obj = {
                "timestamp": _iso(ts), "level": level, "message": msg, "service": SERVICES[i % len(SERVICES)],
                "request_id": f"req-{day}-{i:04d}", "trace_id": f"{rng.getrandbits(64):016x}", "job_id": f"job-{age:03d}-{i:02d}",
                "duration_ms": round(rng.uniform(5, 900), 2),
            }
            if user:
                obj["user_id"] = user
                by_user[user] += 1
            log_lines.append(json.dumps(obj))
            n_logs += 1
        n_metrics = 0
        for j, name in enumerate(METRIC_NAMES):
            for k in range(samples_per_metric):
                ts = start + timedelta(seconds=horizon * (k + 0.5) / samples_per_metric)
                metric_lines.append(json.dumps({"name": name, "labels": {"service": SERVICES[j % len(SERVICES)], "env": "prod"}, "value": round(rng.uniform(0, 500), 3), "timestamp": _iso(ts)}))
                n_metrics += 1
        bad_logs = bad_metrics = 0
        if age % 25 == 0:
            log_lines.insert(3, '{"timestamp": "' + _iso(start) + '", "level": "INFO", "message": "truncated')
            log_lines.append(json.dumps({"timestamp": _iso(start), "level": "INFO"}))
            metric_lines.append(json.dumps({"name": "rag_queue_length", "value": "many", "timestamp": _iso(start)}))
            bad_logs, bad_metrics = 2, 1
        end_of_day = (start + timedelta(seconds=horizon)).timestamp()
        for d, fname, lines in ((logs_dir, f"aisg-{day}.jsonl", log_lines), (metrics_dir, f"metrics-{day}.jsonl", metric_lines)):
            d.mkdir(parents=True, exist_ok=True)
            p = d / fname
            p.write_text("\n".join(lines) + "\n", encoding="utf-8")
            os.utime(p, (end_of_day, end_of_day))
        manifest["days"].append({"day": day, "age_days": age, "log_rows": n_logs, "metric_rows": n_metrics, "malformed_logs": bad_logs, "malformed_metrics": bad_metrics})
        manifest["log_rows"] += n_logs
        manifest["metric_rows"] += n_metrics
        manifest["malformed_logs"] += bad_logs
        manifest["malformed_metrics"] += bad_metrics
    manifest["log_rows_by_user"] = dict(sorted(by_user.items()))
    return manifest
