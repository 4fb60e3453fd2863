"""The runtime context: one `Governance` object per process or run, holding what every
governance action needs: the settings, the store and the ledger (each opened once, on first
use, then reused), the subject-hash salt and the signing-key paths.

Plain Python (no Dagster). `Governance.from_env()` is where a deployment's configuration is
read (`Settings.from_env`; the signing-key variables are read at use, in one place:
`secrets.signing_key_path/public_key_path`); the Dagster resource
(`defs/resources.GovernanceResource`) and the CLI build one, and the governance modules take
it, or the store and ledger it holds. Functions that take `settings` also accept a
`Governance` (it answers every `Settings` attribute), and `as_governance(x)` turns either into
a context, so a test's plain `Settings` still works.

Process-level knobs stay where they are used and are listed in `settings.ENV_VARS`: those read
when the code location loads (sensor, alert and metrics intervals, AISG_MAX_BATCHES_PER_RUN,
the report timezone, the run executor), and per-module tuning or outside-service knobs read at
use (AISG_PURGE_UNVERIFIED_GRACE_SECONDS, AISG_READER_REFRESH_SECONDS, AISG_RETRY_DELAYS_SECONDS,
AISG_MODEL_CACHE_DIR, AISG_EMBED_VERSIONS_FILE, AISG_INBOX_HMAC_KEY_FILE,
AISG_LEDGER_CHECKPOINT_DIR, AISG_PROMETHEUS_TEXTFILE, the alert webhook and UI URL; Dagster's
own DAGSTER_HOME). None of them names a store or the ledger.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..settings import Settings

if TYPE_CHECKING:
    from .ledger import Ledger
    from .store import LanceStore

class Governance:
    """Settings + lazily opened store and ledger + salt + key paths (see the module doc)."""

    def __init__(self, settings: Settings, *, store: LanceStore | None = None, ledger: Ledger | None = None,
                 shared_ledger: bool = False):
        self.settings = settings
        self._store = store
        self._ledger = ledger
        self._shared_ledger = shared_ledger  # one engine per ledger URL in this process (Dagster resource)
        self._salt: bytes | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, **kwargs) -> Governance:
        return cls(Settings.from_env(), **kwargs)

    def __getattr__(self, name: str) -> Any:  # a Governance is accepted wherever a Settings is
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.settings, name)

    def __repr__(self) -> str:
        return f"Governance(lancedb_uri={self.settings.lancedb_uri!r}, ledger_url={self.settings.ledger_url!r})"

    @property
    def store(self) -> LanceStore:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    from .store import LanceStore

                    self._store = LanceStore(self.settings.lancedb_uri, self.settings.lancedb_storage_options or None)
        return self._store

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            with self._lock:
                if self._ledger is None:
                    if self._shared_ledger:
                        self._ledger = _process_ledger(self.settings.ledger_url)
                    else:
                        from .ledger import Ledger

                        self._ledger = Ledger(self.settings.ledger_url)
        return self._ledger

    @property
    def salt(self) -> bytes:
        """The subject-hash salt (`secrets.load_or_create_salt`), read once."""
        if self._salt is None:
            from .secrets import load_or_create_salt

            self._salt = load_or_create_salt(self.settings)
        return self._salt

    @property
    def signing_key_path(self) -> Path:
        from .secrets import signing_key_path

        return signing_key_path(self.settings)

    @property
    def public_key_path(self) -> Path:
        from .secrets import public_key_path

        return public_key_path(self.settings)


def as_governance(obj: Governance | Settings) -> Governance:
    """`obj` itself when it is a context, else a new context over those settings."""
    return obj if isinstance(obj, Governance) else Governance(obj)


@functools.lru_cache(maxsize=8)
def _process_ledger(url: str) -> Ledger:
    from .ledger import Ledger

    return Ledger(url)


# -- shared arithmetic --------------------------------------------------------------------
def age_seconds(now: datetime, then: datetime | str) -> float:
    """Seconds from `then` (a datetime or an ISO-8601 string; naive means UTC) to `now`: the
    one age computation of requests (SLA checks, gauges, the assets' tables)."""
    if isinstance(then, str):
        then = datetime.fromisoformat(then.replace("Z", "+00:00"))
    if then.tzinfo is None:
        then = then.replace(tzinfo=timezone.utc)
    return (now - then).total_seconds()


def age_days(now: datetime, then: datetime | str | None, *, ndigits: int | None = 2) -> float | None:
    """`age_seconds` in days (rounded to `ndigits`, unless None); None when `then` is empty."""
    if then is None or then == "":
        return None
    days = age_seconds(now, then) / 86400
    return round(days, ndigits) if ndigits is not None else days


def open_request_ages(now: datetime, rows: Iterable[Any], open_statuses: Iterable[str]) -> list[float]:
    """Age in seconds of each open request (rows with `status` and `requested_at`, as mappings
    or attributes): the SLA gauges and the oldest-open figures."""
    wanted = set(open_statuses)
    out = []
    for r in rows:
        status = r["status"] if isinstance(r, dict) else r.status
        requested = r["requested_at"] if isinstance(r, dict) else r.requested_at
        if status in wanted and requested:
            out.append(age_seconds(now, requested))
    return out
