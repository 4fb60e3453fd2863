"""ConfigurableResources over the plain governance modules, with embedded defaults.

`governance` (GovernanceResource) is the one resource every asset, op, sensor and check takes:
it builds the runtime context (`governance.context.Governance`: settings, store, ledger, salt,
key paths). `embedding_model` and `pii` stay separate: they choose the model of the bootstrap
version and the scrubber's operators (heavy engines, used only by ingest and embedding), not
where data lives. Each value comes from its environment variable when set (shown as an EnvVar
in the UI), and otherwise from the embedded default under ./var.
"""


import json
import os
from pathlib import Path

import dagster as dg

from ..settings import Settings, parse_storage_options


def env_or(name: str, default) -> dg.EnvVar | str:
    return dg.EnvVar(name) if os.environ.get(name) else str(default)


class EmbeddingModelResource(dg.ConfigurableResource):
    """The model for the bootstrap version v1; blank means the bundled all-MiniLM-L6-v2."""

    model_path: str = ""
    batch_size: int = 32

    def resolved_model_path(self) -> str:
        from ..settings import bundled_model_path

        return self.model_path or bundled_model_path()


class PiiScrubberResource(dg.ConfigurableResource):
    """Anonymizer operator per entity type, as JSON; blank means replace with <ENTITY_TYPE>."""

    operators_json: str = ""

    def get_scrubber(self):
        from ..governance.pii import get_scrubber

        return get_scrubber(self.operators_json or None)


class GovernanceResource(dg.ConfigurableResource):
    """Where governed data lives (LanceDB, the ledger, the landing zone and the other
    directories): `context()` gives the run's `Governance` (store opened on first use, ledger
    engine shared per URL in this process)."""

    data_dir: str
    lancedb_uri: str
    lancedb_storage_options: str = ""  # JSON object (AISG_LANCEDB_STORAGE_OPTIONS)
    ledger_url: str
    landing_dir: str
    quarantine_dir: str
    logs_dir: str
    metrics_dir: str
    exports_dir: str
    erasure_inbox: str
    secrets_dir: str
    max_file_bytes: int = 5_000_000
    landing_settle_seconds: float = 10.0

    @classmethod
    def for_settings(cls, s: Settings) -> "GovernanceResource":
        """Plain values (no EnvVar) from a Settings: for tests and direct invocation."""
        return cls(
            data_dir=str(s.data_dir), lancedb_uri=s.lancedb_uri, ledger_url=s.ledger_url,
            lancedb_storage_options=json.dumps(s.lancedb_storage_options) if s.lancedb_storage_options else "",
            landing_dir=str(s.landing_dir), quarantine_dir=str(s.quarantine_dir), logs_dir=str(s.logs_dir),
            metrics_dir=str(s.metrics_dir), exports_dir=str(s.exports_dir), erasure_inbox=str(s.erasure_inbox),
            secrets_dir=str(s.secrets_dir), max_file_bytes=s.max_file_bytes, landing_settle_seconds=s.landing_settle_seconds,
        )

    def to_settings(self) -> Settings:
        return Settings(
            data_dir=Path(self.data_dir), lancedb_uri=self.lancedb_uri, ledger_url=self.ledger_url,
            landing_dir=Path(self.landing_dir), quarantine_dir=Path(self.quarantine_dir),
            logs_dir=Path(self.logs_dir), metrics_dir=Path(self.metrics_dir), exports_dir=Path(self.exports_dir),
            erasure_inbox=Path(self.erasure_inbox), secrets_dir=Path(self.secrets_dir),
            max_file_bytes=self.max_file_bytes, landing_settle_seconds=self.landing_settle_seconds,
            lancedb_storage_options=parse_storage_options(self.lancedb_storage_options),
        )

    def context(self):
        """A new runtime context for this run or tick (its store opens on first use)."""
        from ..governance.context import Governance

        return Governance(self.to_settings(), shared_ledger=True)


def build_resources(settings: Settings | None = None) -> dict[str, dg.ConfigurableResource]:
    if settings is None:
        from ..governance.context import Governance

        settings = Governance.from_env().settings
    s = settings
    return {
        "governance": GovernanceResource(
            data_dir=env_or("AISG_DATA_DIR", s.data_dir),
            lancedb_uri=env_or("AISG_LANCEDB_URI", s.lancedb_uri),
            lancedb_storage_options=env_or("AISG_LANCEDB_STORAGE_OPTIONS", ""),
            ledger_url=env_or("AISG_LEDGER_URL", s.ledger_url),
            landing_dir=env_or("AISG_LANDING_DIR", s.landing_dir),
            quarantine_dir=env_or("AISG_QUARANTINE_DIR", s.quarantine_dir),
            logs_dir=env_or("AISG_LOGS_DIR", s.logs_dir),
            metrics_dir=env_or("AISG_METRICS_DIR", s.metrics_dir),
            exports_dir=env_or("AISG_EXPORTS_DIR", s.exports_dir),
            erasure_inbox=env_or("AISG_ERASURE_INBOX", s.erasure_inbox),
            secrets_dir=env_or("AISG_SECRETS_DIR", s.secrets_dir),
            max_file_bytes=s.max_file_bytes,
            landing_settle_seconds=s.landing_settle_seconds,
        ),
        "embedding_model": EmbeddingModelResource(model_path=env_or("AISG_MODEL_PATH", ""), batch_size=s.embed_batch_size),
        "pii": PiiScrubberResource(operators_json=env_or("AISG_PII_OPERATORS", "")),
    }
