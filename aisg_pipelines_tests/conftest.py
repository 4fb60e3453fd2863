"""Shared fixtures: real LanceDB, real model (loaded once per session), real presidio and GX.

`populated_settings` gives each test its own copy of a store built once per session by
the real pipeline over a small generated landing zone: tests mutate their copy freely.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Readers in tests re-check on every query, so erasure needs no reader grace wait; the
# reader tests set their own bound.
os.environ.setdefault("AISG_READER_REFRESH_SECONDS", "0")

from aisg_pipelines.settings import Settings  # noqa: E402

# A fixed clock for the sample data: tests assert exact ages and expiry against it.
FIXED_NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)

# The real PostgreSQL server .ci/run starts (tests that need it skip with a reason when unset).
PG_URL = os.environ.get("AISG_TEST_PG_URL")


def pg_admin_connect(dbname: str | None = None):
    """An autocommit psycopg2 connection to the test server (CREATE/DROP DATABASE need it)."""
    from urllib.parse import urlsplit

    import psycopg2

    parts = urlsplit(PG_URL)
    conn = psycopg2.connect(
        host=parts.hostname, port=parts.port or 5432, user=parts.username, password=parts.password,
        dbname=dbname or parts.path.lstrip("/"), connect_timeout=5,
    )
    conn.autocommit = True
    return conn


def settings_for(root: Path) -> Settings:
    data = root / "var"
    return Settings(
        data_dir=data,
        lancedb_uri=str(data / "lancedb"),
        ledger_url=f"sqlite:///{data / 'ledger.db'}",
        landing_dir=data / "landing",
        quarantine_dir=data / "quarantine",
        logs_dir=data / "incoming" / "logs",
        metrics_dir=data / "incoming" / "metrics",
        exports_dir=data / "exports",
        erasure_inbox=data / "erasure_inbox",
        secrets_dir=data / "secrets",
        max_file_bytes=200_000,
        landing_settle_seconds=0,
    )


def env_for(s: Settings) -> dict[str, str]:
    """The environment variables that point the code location / CLI at `s`."""
    return {
        "AISG_DATA_DIR": str(s.data_dir),
        "AISG_LANCEDB_URI": s.lancedb_uri,
        "AISG_LEDGER_URL": s.ledger_url,
        "AISG_LANDING_DIR": str(s.landing_dir),
        "AISG_QUARANTINE_DIR": str(s.quarantine_dir),
        "AISG_LOGS_DIR": str(s.logs_dir),
        "AISG_METRICS_DIR": str(s.metrics_dir),
        "AISG_EXPORTS_DIR": str(s.exports_dir),
        "AISG_ERASURE_INBOX": str(s.erasure_inbox),
        "AISG_SECRETS_DIR": str(s.secrets_dir),
        "AISG_MAX_FILE_BYTES": str(s.max_file_bytes),
        "AISG_LANDING_SETTLE_SECONDS": "0",
    }


@pytest.fixture(scope="session")
def model_path() -> str:
    from aisg_pipelines.settings import bundled_model_path

    return bundled_model_path()


@pytest.fixture
def settings(tmp_path) -> Settings:
    s = settings_for(tmp_path)
    s.data_dir.mkdir(parents=True)
    return s


@pytest.fixture(scope="session")
def golden_store(tmp_path_factory) -> tuple[Path, dict]:
    """Built once: 3 subjects x 2 docs + bad inputs, ingested and embedded under v1."""
    from aisg_pipelines.governance.pipeline import ingest_all
    from aisg_pipelines.sample_data import generate_landing_zone

    root = tmp_path_factory.mktemp("golden")
    s = settings_for(root)
    manifest = generate_landing_zone(s.landing_dir, now=FIXED_NOW, n_subjects=3, docs_per_subject=2, max_file_bytes=s.max_file_bytes)
    ingest_all(s, now=FIXED_NOW)
    return root, manifest


@pytest.fixture
def populated_settings(golden_store, tmp_path) -> tuple[Settings, dict]:
    """A private copy of the golden store for one test."""
    root, manifest = golden_store
    shutil.copytree(root / "var", tmp_path / "var")
    return settings_for(tmp_path), manifest


@pytest.fixture
def code_location_env(monkeypatch):
    """Point build_resources()/Governance.from_env() at a Settings, and give a temp Dagster instance."""

    def apply(s: Settings):
        for k, v in env_for(s).items():
            monkeypatch.setenv(k, v)
        home = s.data_dir / "dagster_home"
        home.mkdir(parents=True, exist_ok=True)
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        return home

    return apply


def fresh_defs():
    """Definitions built now, from the current environment (resources read env at build time)."""
    from aisg_pipelines.definitions import build_defs

    return build_defs()
