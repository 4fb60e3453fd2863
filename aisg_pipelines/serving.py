"""The reader's side of blue-green: what AISG's retriever calls.

    from aisg_pipelines.serving import Retriever

    retriever = Retriever.from_env()          # same AISG_* variables as the code location
    answer = retriever.search("환불 규정", k=5)
    answer.version                            # "v2": the version every hit came from
    [h.text for h in answer.hits]

Contract (docs/serving.md):
- **One pointer.** The active embed_version is the one ledger row with status ``active``; it
  is switched in the same transaction as activation and rollback (``VersionRegistry.activate``),
  so a reader sees either the old or the new version, never none and never two.
- **Matching encoder.** Each version is served with its own encoder (model path, backend,
  ``max_seq_length``, normalisation), cached per version: a query is never embedded with
  another version's encoder.
- **Bounded staleness.** The pointer is re-read when ``refresh_seconds`` (default 5,
  ``AISG_READER_REFRESH_SECONDS``) have passed since the last read, so a switch is seen by
  every query that starts later than that after the switch, without a restart.
- **One version per query.** A query takes one snapshot (version, table, encoder) and uses
  it for both embedding and search.
- **Erased rows.** Tables are opened with ``read_consistency_interval = refresh_seconds``:
  a handle re-checks the table's latest version at most that long after a delete. Erasure
  waits the same bound between its delete and its certificate (``reader_grace_seconds``),
  so no reader serves a certified-erased row. A query whose data files were removed by a
  purge under an old handle is retried once on the latest version.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np

from .settings import DEFAULT_READER_REFRESH_SECONDS as DEFAULT_REFRESH_SECONDS
from .settings import reader_grace_seconds, reader_refresh_seconds


@dataclass(frozen=True)
class Hit:
    chunk_id: str
    doc_id: str
    distance: float
    text: str


@dataclass(frozen=True)
class Answer:
    version: str  # the embed_version every hit came from
    table: str
    encoder: str  # the encoder that embedded the query: "<version>:<backend>:<max_seq_length>"
    hits: list[Hit] = field(default_factory=list)


class Encoder:
    """A version's query encoder (same model, backend and max_seq_length as its vectors)."""

    def __init__(self, version) -> None:
        self.version = version.name
        self.spec = version.model
        self.key = f"{version.name}:{version.backend}:{version.max_seq_length}"

    def encode(self, texts: list[str]) -> np.ndarray:
        from .governance.embedding import encode

        return encode(self.spec, list(texts))


@dataclass(frozen=True)
class ServingVersion:
    """One consistent snapshot: a query uses exactly one of these."""

    name: str
    table_name: str
    activated_at: str
    metric: str
    encoder: Encoder
    table: Any  # lancedb Table


class Retriever:
    """Resolves the active version, embeds queries with its encoder and searches its table."""

    def __init__(self, lancedb_uri: str, ledger_url: str, *, storage_options: dict | None = None,
                 refresh_seconds: float = DEFAULT_REFRESH_SECONDS) -> None:
        from .governance.ledger import Ledger
        from .governance.versions import VersionRegistry

        self.lancedb_uri = lancedb_uri
        self.storage_options = storage_options or None
        self.refresh_seconds = float(refresh_seconds)
        self._registry = VersionRegistry(Ledger(ledger_url))
        self._lock = threading.Lock()
        self._current: ServingVersion | None = None
        self._checked_at = float("-inf")
        self._encoders: dict[str, Encoder] = {}
        self._db = None
        self._chunks_table = None

    @classmethod
    def from_env(cls, *, refresh_seconds: float | None = None) -> "Retriever":
        from .governance.context import Governance

        s = Governance.from_env().settings
        return cls(s.lancedb_uri, s.ledger_url, storage_options=s.lancedb_storage_options,
                   refresh_seconds=reader_refresh_seconds() if refresh_seconds is None else refresh_seconds)

    # -- the pointer -------------------------------------------------------------------
    def _connect(self):
        if self._db is None:
            import lancedb

            self._db = lancedb.connect(self.lancedb_uri, storage_options=self.storage_options,
                                       read_consistency_interval=timedelta(seconds=self.refresh_seconds))
        return self._db

    def _resolve(self) -> ServingVersion:
        active = self._registry.active()
        if active is None:
            raise LookupError("no active embed_version: run `make demo` or `aisg reindex` first")
        cur = self._current
        if cur is not None and cur.name == active.name and cur.activated_at == (active.activated_at or ""):
            return cur
        encoder = self._encoders.get(active.name)
        if encoder is None:
            encoder = self._encoders[active.name] = Encoder(active)
        table = self._connect().open_table(active.table)
        return ServingVersion(active.name, active.table, active.activated_at or "",
                              "cosine" if active.normalize else "l2", encoder, table)

    def current(self) -> ServingVersion:
        """The snapshot a query should use now (re-reads the pointer past the bound)."""
        now = time.monotonic()
        cur = self._current
        if cur is not None and now - self._checked_at < self.refresh_seconds:
            return cur
        with self._lock:
            if self._current is not None and time.monotonic() - self._checked_at < self.refresh_seconds:
                return self._current
            started = time.monotonic()
            sv = self._resolve()
            self._current = sv
            self._checked_at = started  # the pointer as of when the read began
            return sv

    # -- queries -------------------------------------------------------------------------
    def search(self, query: str, k: int = 5, *, with_text: bool = True) -> Answer:
        sv = self.current()
        vec = sv.encoder.encode([query])[0]
        return self._search(sv, vec, k, with_text)

    def search_vector(self, vector, k: int = 5, *, snapshot: ServingVersion | None = None, with_text: bool = True) -> Answer:
        """Search with a query vector already embedded by ``snapshot.encoder`` (benchmarks)."""
        return self._search(snapshot or self.current(), np.asarray(vector, dtype=np.float32), k, with_text)

    def _chunks(self):
        if self._chunks_table is None:
            from .governance.store import CHUNKS

            self._chunks_table = self._connect().open_table(CHUNKS)
        return self._chunks_table

    def _search(self, sv: ServingVersion, vec: np.ndarray, k: int, with_text: bool) -> Answer:
        rows = _on_latest_if_purged(sv.table, lambda t: t.search(vec).metric(sv.metric).limit(k)
                                    .select(["chunk_id", "doc_id", "_distance"]).to_list())
        if not with_text:
            return Answer(sv.name, sv.table_name, sv.encoder.key,
                          [Hit(r["chunk_id"], r["doc_id"], float(r["_distance"]), "") for r in rows])
        texts = self._texts([r["chunk_id"] for r in rows])
        # A vector whose chunk is gone (deleted after this handle's version) is not served.
        hits = [Hit(r["chunk_id"], r["doc_id"], float(r["_distance"]), texts[r["chunk_id"]])
                for r in rows if r["chunk_id"] in texts]
        return Answer(sv.name, sv.table_name, sv.encoder.key, hits)

    def _texts(self, chunk_ids: list[str]) -> dict[str, str]:
        if not chunk_ids:
            return {}
        from .governance.ids import in_filter

        rows = _on_latest_if_purged(self._chunks(), lambda t: t.search().where(in_filter("chunk_id", chunk_ids))
                                    .select(["chunk_id", "text"]).limit(len(chunk_ids)).to_list())
        return {r["chunk_id"]: r["text"] or "" for r in rows}


def _on_latest_if_purged(table, query):
    """``query(table)``; if a purge removed files this handle's version still referenced,
    once more on the table's latest version (the same version's current state is the right
    answer)."""
    try:
        return query(table)
    except (OSError, RuntimeError, ValueError):
        table.checkout_latest()
        return query(table)


__all__ = ["Answer", "Encoder", "Hit", "Retriever", "ServingVersion", "reader_grace_seconds"]
