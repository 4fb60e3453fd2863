"""The reader API (issue 19): 4 reader threads query while versions are switched, and a
subject is erased while readers run. Real LanceDB, real model, real ledger."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from aisg_pipelines.governance.embedding import encode
from aisg_pipelines.governance.ledger import Ledger
from aisg_pipelines.governance.reindex import reindex, rollback
from aisg_pipelines.governance.store import CHUNKS, LanceStore
from aisg_pipelines.governance.versions import EmbedVersionSpec, VersionRegistry
from aisg_pipelines.serving import Retriever

REFRESH = 0.5


def _retriever(s) -> Retriever:
    return Retriever(s.lancedb_uri, s.ledger_url, refresh_seconds=REFRESH)


@pytest.fixture
def two_versions(populated_settings, model_path):
    s, manifest = populated_settings
    store, ledger = LanceStore(s.lancedb_uri), Ledger(s.ledger_url)
    reindex(store, ledger, EmbedVersionSpec(name="v2", model_path=model_path, max_seq_length=128), activate=False, sample_size=10)
    return s, manifest, store, ledger


def _table_ids(store, table) -> set[str]:
    return set(store.scan(table, ["chunk_id"])["chunk_id"].to_pylist())


def test_readers_never_mix_versions_and_see_switches_within_the_bound(two_versions):
    s, _, store, ledger = two_versions
    reg = VersionRegistry(ledger)
    retriever = _retriever(s)
    queries = [t[:80] for t in store.scan(CHUNKS, ["text"])["text"].to_pylist()[:8]]
    ids = {"v1": _table_ids(store, "embeddings_v1"), "v2": _table_ids(store, "embeddings_v2")}
    log: list[tuple[float, float, str, str, str, tuple[str, ...], str]] = []  # start, end, version, table, encoder, ids, query
    errors: list[BaseException] = []
    stop = threading.Event()
    lock = threading.Lock()

    def reader(n: int) -> None:
        i = n
        while not stop.is_set():
            q = queries[i % len(queries)]
            i += 1
            t0 = time.monotonic()
            try:
                a = retriever.search(q, k=3)
            except BaseException as exc:  # noqa: BLE001 - every failure is a test failure
                errors.append(exc)
                return
            with lock:
                log.append((t0, time.monotonic(), a.version, a.table, a.encoder, tuple(h.chunk_id for h in a.hits), q))

    def wait_for(version: str, since: float) -> None:
        """Until some query that started after the switch answered from `version`."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with lock:
                if any(e[0] > since and e[2] == version for e in log):
                    return
            stop.wait(0.05)
        raise AssertionError(f"no reader saw {version}")

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    switches: list[tuple[float, float, str]] = []  # (action began, action returned, version expected)
    try:
        wait_for("v1", 0)
        for action, expect in (("activate", "v2"), ("rollback", "v1"), ("activate", "v2")):
            began = time.monotonic()
            if action == "activate":
                reg.activate("v2")
            else:
                assert rollback(store, ledger, sample_size=10).version == "v1"
            done = time.monotonic()
            switches.append((began, done, expect))
            wait_for(expect, done + REFRESH)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert errors == []
    assert len(log) >= 20
    for start, _end, version, table, enc, hit_ids, _q in log:
        assert table == f"embeddings_{version}"  # one version per answer: its table ...
        assert enc.startswith(f"{version}:")  # ... and its encoder
        assert set(hit_ids) <= ids[version]
        assert len(hit_ids) == 3
    # Every query that started more than the bound after a switch finished answered from
    # the new version, until the next switch *began*: that switch commits before its call
    # returns (rollback's commit is its last step), so a reader may see it from then on.
    for i, (_began, done, expect) in enumerate(switches):
        until = switches[i + 1][0] if i + 1 < len(switches) else float("inf")
        late = [e for e in log if done + REFRESH < e[0] < until]
        assert late and {e[2] for e in late} == {expect}
    # The encoder really is the version's: the query vector matches that version's model.
    v1, v2 = reg.require("v1"), reg.require("v2")
    long_q = " ".join(queries) * 3  # long enough that 128 vs 256 word pieces differ
    a, b = encode(v1.model, [long_q])[0], encode(v2.model, [long_q])[0]
    assert float(np.dot(a, b)) < 0.9999
    enc_v1 = retriever._encoders["v1"].encode([long_q])[0]
    enc_v2 = retriever._encoders["v2"].encode([long_q])[0]
    assert np.allclose(enc_v1, a, atol=1e-5) and np.allclose(enc_v2, b, atol=1e-5)


def test_no_reader_returns_an_erased_subject_after_the_certificate(populated_settings, monkeypatch):
    from aisg_pipelines.governance.erasure import erase_subject

    s, manifest = populated_settings
    monkeypatch.setenv("AISG_READER_REFRESH_SECONDS", str(REFRESH))
    store = LanceStore(s.lancedb_uri)
    victim = manifest["subjects"][0]["subject_id"]
    rows = store.scan(CHUNKS, ["chunk_id", "subject_id", "text"]).to_pylist()
    victim_chunks = {r["chunk_id"] for r in rows if r["subject_id"] == victim}
    assert victim_chunks
    queries = [r["text"][:80] for r in rows if r["subject_id"] == victim][:4]
    retriever = _retriever(s)
    log: list[tuple[float, set[str]]] = []
    errors: list[BaseException] = []
    stop = threading.Event()
    lock = threading.Lock()

    def reader(n: int) -> None:
        i = n
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                a = retriever.search(queries[i % len(queries)], k=10)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
                return
            i += 1
            with lock:
                log.append((t0, {h.chunk_id for h in a.hits}))

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 60
        while not any(ids & victim_chunks for _, ids in log) and time.monotonic() < deadline:
            stop.wait(0.05)
        assert any(ids & victim_chunks for _, ids in log), "readers should find the subject before the erasure"
        intake, result = erase_subject(s, victim, requested_by="dpo@example.com", reason="test")
        certified = time.monotonic()
        assert intake.accepted and [o.status for o in result.outcomes] == ["certified"], result
        assert 0 <= result.timings["reader_grace"] <= 1.5  # the certificate waited for the readers' bound
        deadline = time.monotonic() + 60
        while sum(1 for t0, _ in log if t0 > certified) < 10 and time.monotonic() < deadline:
            stop.wait(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert errors == []
    after = [ids for t0, ids in log if t0 > certified]
    assert len(after) >= 10
    assert not any(ids & victim_chunks for ids in after)
