"""Property: whatever sequence of ingest, replace, erase, retention and orphan cleanup runs on a
multi-subject store, with kills between and inside the deletion steps followed by re-runs,

- no row, line or file of another subject (of anything the operation did not select) changes;
- there are no duplicate chunk ids, and every chunk has exactly one vector in each version;
- the ledger verifies, no cascade intent is left open, and the intents recorded during an
  operation account for exactly the rows it removed from every table;
- an erased subject's content is nowhere under the data directory, in no table and no version.

Real LanceDB and ledger in a temporary directory; the vectors are synthetic (no model), the
telemetry rows are written the way `telemetry.ingest_days` writes them (same row ids).
Kills are raised from the cascade's step hook (the state on disk is that of a process killed
at that step; `test_erasure.test_sigkill_mid_run_then_rerun` kills a real process).
Examples: AISG_PROPERTY_EXAMPLES (default 200; the benchmark runs more).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from aisg_pipelines.governance import cascade
from aisg_pipelines.governance import erasure as er
from aisg_pipelines.governance.ids import chunk_id_for, sha256_hex
from aisg_pipelines.governance.ledger import Ledger
from aisg_pipelines.governance.store import CHUNKS, CHUNKS_SCHEMA, DOCUMENTS, DOCUMENTS_SCHEMA, SYSTEM_LOGS, LanceStore, embeddings_schema
from aisg_pipelines.governance.telemetry import SYSTEM_LOGS_SCHEMA, row_id_for

from .conftest import settings_for

AS_OF = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
# "INFO" is also a log level, "subj-1" a prefix of "subj-10": matching must be on structured fields
SUBJECTS = ["INFO", "subj-1", "subj-10"]
VERSIONS = ("embeddings_v1", "embeddings_v2")
DIMS = 4
LOG_REL = "aisg-2026-11-19.jsonl"
EXAMPLES = int(os.environ.get("AISG_PROPERTY_EXAMPLES", "200"))


class Killed(Exception):
    pass


class Parts:
    """The dynamic partition keys (what the Dagster instance holds)."""

    def __init__(self):
        self.keys: set[str] = set()

    def delete(self, key):
        self.keys.discard(key)

    def add(self, keys):
        self.keys.update(keys)


class World:
    def __init__(self, root: Path):
        self.s = settings_for(root)
        for d in (self.s.landing_dir, self.s.logs_dir, self.s.metrics_dir, self.s.exports_dir, self.s.quarantine_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.store = LanceStore(self.s.lancedb_uri, unverified_grace_seconds=0)
        self.ledger = Ledger(self.s.ledger_url)
        self.parts = Parts()
        self.n = 0
        self.markers: dict[str, list[str]] = {}  # subject -> content markers (doc and chunk texts)

    # -- writing data the way ingest does ------------------------------------------------
    def ingest(self, subject: str, age_days: int, n_chunks: int) -> str:
        self.n += 1
        doc_id = f"d{self.n:04d}"
        batch = f"20260101-{self.n:08x}"
        rel = f"{batch}/{doc_id}.txt"
        marker = f"MARK{sha256_hex(doc_id + subject)[:20]}"
        uploaded = AS_OF - timedelta(days=age_days)
        text = f"{marker} document of {doc_id}"
        p = self.s.landing_dir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
        Path(str(p) + ".meta.json").write_text(json.dumps({"doc_id": doc_id, "subject_id": subject, "uploaded_at": uploaded.isoformat(),
                                                           "category": "user_content", "source": "test"}), encoding="utf-8")
        self.ledger.record_batch(batch, [rel], {rel: p.stat().st_mtime_ns})
        self.parts.add([batch])
        now = AS_OF
        doc = {"doc_id": doc_id, "subject_id": subject, "batch_id": batch, "category": "user_content", "source": "test",
               "uploaded_at": uploaded, "legal_hold": False, "file_path": rel, "file_sha256": sha256_hex(text), "media_type": "text/plain",
               "text": text, "text_sha256": sha256_hex(text), "n_chars": len(text), "pii_counts": "{}", "pii_total": 0, "ingested_at": now}
        self.store.append(DOCUMENTS, DOCUMENTS_SCHEMA, pa.Table.from_pylist([doc], schema=DOCUMENTS_SCHEMA))
        self.write_chunks(doc_id, subject, batch, uploaded, marker, n_chunks)
        self.markers.setdefault(subject, []).append(marker)
        line = json.dumps({"timestamp": "2026-11-19T10:00:00+00:00", "level": "INFO", "message": f"{marker} seen", "user_id": subject})
        self.append_log(line)
        return doc_id

    def write_chunks(self, doc_id, subject, batch, uploaded, marker, n_chunks, gen=0):
        rows, vecs = [], []
        for i in range(n_chunks):
            cid = chunk_id_for(doc_id, i)
            text = f"{marker}-g{gen}-c{i}"
            rows.append({"chunk_id": cid, "doc_id": doc_id, "subject_id": subject, "batch_id": batch, "chunk_index": i, "text": text,
                         "content_sha256": sha256_hex(text), "n_chars": len(text), "uploaded_at": uploaded})
            h = hashlib.sha256(text.encode()).digest()
            vecs.append({"chunk_id": cid, "doc_id": doc_id, "batch_id": batch, "content_sha256": sha256_hex(text),
                         "vector": [b / 255.0 for b in h[:DIMS]], "embedded_at": AS_OF})
        self.store.upsert(CHUNKS, CHUNKS_SCHEMA, "chunk_id", pa.Table.from_pylist(rows, schema=CHUNKS_SCHEMA))
        for t in VERSIONS:
            schema = embeddings_schema(DIMS)
            self.store.upsert(t, schema, "chunk_id", pa.Table.from_pylist(vecs, schema=schema))

    def append_log(self, line: str):
        path = self.s.logs_dir / LOG_REL
        with path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
        obj = json.loads(line)
        row = {"row_id": row_id_for("system_logs", LOG_REL, line.encode()), "day": "2026-11-19",
               "timestamp": datetime.fromisoformat(obj["timestamp"]), "level": obj["level"], "service": None, "message": obj["message"],
               "request_id": None, "trace_id": None, "user_id": obj.get("user_id"), "job_id": None, "duration_ms": None,
               "source_file": LOG_REL, "ingested_at": AS_OF}
        self.store.upsert(SYSTEM_LOGS, SYSTEM_LOGS_SCHEMA, "row_id", pa.Table.from_pylist([row], schema=SYSTEM_LOGS_SCHEMA))

    # -- what the invariants compare -------------------------------------------------------
    def snapshot(self) -> dict[tuple, object]:
        out: dict[tuple, object] = {}
        cols = {DOCUMENTS: ("doc_id", ["subject_id", "text", "batch_id"]), CHUNKS: ("chunk_id", ["doc_id", "subject_id", "text"]),
                SYSTEM_LOGS: ("row_id", ["user_id", "message", "level"])}
        for t in VERSIONS:
            cols[t] = ("chunk_id", ["doc_id", "content_sha256"])
        for t, (key, rest) in cols.items():
            for r in self.store.scan(t, [key, *rest]).to_pylist():
                out[(t, r[key])] = tuple(r[c] for c in rest)
        for base, tag in ((self.s.landing_dir, "file"),):  # the log file is compared line by line below
            for p in sorted(base.rglob("*")):
                if p.is_file():
                    out[(tag, str(p.relative_to(self.s.data_dir)))] = p.read_bytes()
        for line in (self.s.logs_dir / LOG_REL).read_bytes().split(b"\n") if (self.s.logs_dir / LOG_REL).exists() else []:
            if line:
                out[("line", line)] = True
        out[("partitions",)] = tuple(sorted(self.parts.keys))
        return out

    def check_invariants(self):
        ch = self.store.scan(CHUNKS, ["chunk_id"])["chunk_id"].to_pylist()
        assert len(ch) == len(set(ch)), "duplicate chunk ids"
        for t in VERSIONS:
            v = self.store.scan(t, ["chunk_id"])["chunk_id"].to_pylist()
            assert sorted(v) == sorted(ch), f"{t}: not exactly one vector per chunk"
        assert self.ledger.verify_chain().ok
        assert cascade.open_intents(self.ledger) == []
        intents = {e.details["cascade_id"] for e in self.ledger.events("cascade.intent")}
        results = {e.details["cascade_id"] for e in self.ledger.events("cascade.result")}
        assert intents == results


def _removed_per_table(before: dict, after: dict) -> dict[str, int]:
    out: dict[str, int] = {}
    for k, v in before.items():
        if k[0] in (DOCUMENTS, CHUNKS, SYSTEM_LOGS, *VERSIONS) and after.get(k) != v:
            out[k[0]] = out.get(k[0], 0) + 1
    return out


def _planned_since(ledger: Ledger, seq: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in ledger.events("cascade.intent"):
        if e.seq > seq:
            for t, n in e.details["planned"].items():
                if t in (DOCUMENTS, CHUNKS, SYSTEM_LOGS, *VERSIONS):
                    out[t] = out.get(t, 0) + n
    return out


def _head(ledger: Ledger) -> int:
    ev = ledger.events()
    return ev[-1].seq if ev else 0


def _killer(at: int | None):
    seen = {"n": 0}

    def hook(step):
        seen["n"] += 1
        if at is not None and seen["n"] == at:
            raise Killed(step)

    return hook


# -- the operations -----------------------------------------------------------------------
def op_erase(w: World, subject: str, kill_at: int | None):
    def once(hook):
        # what process_requests does: complete a killed run's intent, discover, delete, purge
        cascade.resume_open(w.store, w.ledger, causes=["erasure"], partitions=w.parts)
        found, _ = er.discover(w.s, w.store, {subject: "r"})
        plan = er._cascade_plan(w.s, w.store, found.values())
        if not plan.is_empty():
            cascade.run_cascade(w.store, w.ledger, plan, cause="erasure", actor="pytest", partitions=w.parts, on_step=hook, purge=False)
        cascade.purge_tables(w.store, w.store.table_names())

    try:
        once(_killer(kill_at))
    except Killed:
        once(None)


def op_retention(w: World, kill_at: int | None):
    from aisg_pipelines.governance.retention import Retention

    def once(hook):
        Retention(w.s, now=AS_OF, hook=hook, store=w.store, ledger=w.ledger).run()

    try:
        once(_killer(kill_at))
    except Killed:
        once(None)


def op_replace(w: World, doc_id: str, n_chunks: int, gen: int, kill_at: int | None):
    doc = w.store.scan(DOCUMENTS, ["doc_id", "subject_id", "batch_id", "uploaded_at", "text"]).to_pylist()
    d = next(r for r in doc if r["doc_id"] == doc_id)
    old = [r["chunk_id"] for r in w.store.scan(CHUNKS, ["chunk_id", "doc_id"]).to_pylist() if r["doc_id"] == doc_id]
    try:
        cascade.delete_documents(w.store, w.ledger, [doc_id], chunk_ids=old, cause="replacement", actor="pytest", purge=False,
                                 on_step=_killer(kill_at))
    except Killed:
        cascade.resume_open(w.store, w.ledger, causes=["replacement"])
    marker = d["text"].split()[0]
    w.write_chunks(doc_id, d["subject_id"], d["batch_id"], d["uploaded_at"], marker, n_chunks, gen=gen)


def op_orphans(w: World, kill_at: int | None):
    from aisg_pipelines.governance import orphans as O

    w.n += 1
    ghost = f"ghost{w.n:04d}"
    w.write_chunks(ghost, None, "20260101-ffffffff", AS_OF, f"GHOST{w.n}", 1)
    scope = O.OrphanScope(store=w.store, landing_dir=w.s.landing_dir, quarantine_dir=w.s.quarantine_dir, exports_dir=w.s.exports_dir,
                          grace_seconds=1e9)
    before = w.snapshot()
    seq = _head(w.ledger)
    try:
        O.cleanup_orphans(scope, O.detect_orphans(scope, sorted(w.parts.keys)), dry_run=False, partitions=w.parts, ledger=w.ledger,
                          on_step=_killer(kill_at))
    except Killed:
        O.cleanup_orphans(scope, O.detect_orphans(scope, sorted(w.parts.keys)), dry_run=False, partitions=w.parts, ledger=w.ledger)
    return before, seq, ghost


OPS = st.one_of(
    st.tuples(st.just("ingest"), st.sampled_from(SUBJECTS), st.integers(0, 400), st.integers(1, 3)),
    st.tuples(st.just("replace"), st.integers(0, 50), st.integers(1, 3), st.one_of(st.none(), st.integers(1, 4))),
    st.tuples(st.just("erase"), st.sampled_from(SUBJECTS), st.one_of(st.none(), st.integers(1, 9))),
    st.tuples(st.just("retention"), st.one_of(st.none(), st.integers(1, 9))),
    st.tuples(st.just("orphans"), st.one_of(st.none(), st.integers(1, 3))),
)


# no shrinking by default (each example is a real store: shrinking a failure took minutes);
# AISG_PROPERTY_SHRINK=1 turns it on to minimise a failing example
_PHASES = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if os.environ.get("AISG_PROPERTY_SHRINK") == "1" else [])


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), phases=_PHASES,
          derandomize=os.environ.get("CI") == "true")
@given(initial=st.lists(st.tuples(st.sampled_from(SUBJECTS), st.integers(0, 400), st.integers(1, 3)), min_size=2, max_size=5),
       ops=st.lists(OPS, min_size=1, max_size=4))
def test_cascade_never_touches_another_subject_and_accounts_for_every_row(initial, ops):
    with tempfile.TemporaryDirectory() as tmp:
        w = World(Path(tmp))
        for subject, age, n in initial:
            w.ingest(subject, age, n)
        # a log line of no subject, at level INFO, that no erasure may take
        w.append_log(json.dumps({"timestamp": "2026-11-19T09:00:00+00:00", "level": "INFO", "message": "system INFO subj-1 started"}))
        w.check_invariants()
        gen = 0
        for op in ops:
            kind = op[0]
            before = w.snapshot()
            seq = _head(w.ledger)
            docs = {r["doc_id"]: r for r in w.store.scan(DOCUMENTS, ["doc_id", "subject_id", "uploaded_at", "batch_id", "file_path"]).to_pylist()}
            if kind == "ingest":
                w.ingest(op[1], op[2], op[3])
                after = w.snapshot()
                assert all(after.get(k) == v for k, v in before.items() if k[0] != "partitions"), "ingest changed existing data"
            elif kind == "replace":
                if not docs:
                    continue
                doc_id = sorted(docs)[op[1] % len(docs)]
                gen += 1
                op_replace(w, doc_id, op[2], gen, op[3])
                after = w.snapshot()
                mine = {k for k, v in before.items() if (k[0] in (CHUNKS, *VERSIONS) and v[0] == doc_id)}
                assert {k: v for k, v in after.items() if k not in mine and not (k[0] in (CHUNKS, *VERSIONS) and after[k][0] == doc_id)} == \
                    {k: v for k, v in before.items() if k not in mine}, "replace touched another document"
                assert _planned_since(w.ledger, seq) == {t: len([k for k in mine if k[0] == t]) for t in (CHUNKS, *VERSIONS) if any(k[0] == t for k in mine)}
            elif kind == "erase":
                subject = op[1]
                op_erase(w, subject, op[2])
                after = w.snapshot()
                gone_docs = {d for d, r in docs.items() if r["subject_id"] == subject}
                mine = {k for k, v in before.items()
                        if (k[0] == DOCUMENTS and v[0] == subject) or (k[0] == CHUNKS and (v[1] == subject or v[0] in gone_docs))
                        or (k[0] in VERSIONS and v[0] in gone_docs) or (k[0] == SYSTEM_LOGS and v[0] == subject)
                        or (k[0] == "line" and json.loads(k[1]).get("user_id") == subject)
                        or (k[0] == "file" and any(f"/{d}." in k[1] for d in gone_docs))}
                emptied = {docs[d]["batch_id"] for d in gone_docs} - {r["batch_id"] for d, r in docs.items() if d not in gone_docs}
                expected = {k: v for k, v in before.items() if k not in mine and k[0] != "partitions"}
                assert {k: v for k, v in after.items() if k[0] != "partitions"} == expected, "erasure touched another subject"
                assert set(after[("partitions",)]) == set(before[("partitions",)]) - emptied
                _assert_erased(w, subject)
                assert _planned_since(w.ledger, seq) == _removed_per_table(before, after)
            elif kind == "retention":
                op_retention(w, op[1])
                after = w.snapshot()
                cutoff = AS_OF - timedelta(days=180)
                gone_docs = {d for d, r in docs.items() if r["uploaded_at"] < cutoff}
                mine = {k for k, v in before.items()
                        if (k[0] == DOCUMENTS and k[1] in gone_docs) or (k[0] in (CHUNKS, *VERSIONS) and v[0] in gone_docs)
                        or (k[0] == "file" and any(f"/{d}." in k[1] for d in gone_docs))}
                assert {k: v for k, v in after.items() if k[0] != "partitions"} == {k: v for k, v in before.items() if k not in mine and k[0] != "partitions"}
                assert _planned_since(w.ledger, seq) == _removed_per_table(before, after)
            elif kind == "orphans":
                before, seq, ghost = op_orphans(w, op[1])
                after = w.snapshot()
                mine = {k for k, v in before.items() if k[0] in (CHUNKS, *VERSIONS) and v[0] == ghost}
                assert len(mine) == 3
                assert {k: v for k, v in after.items() if k[0] != "partitions"} == {k: v for k, v in before.items() if k not in mine and k[0] != "partitions"}
                assert _planned_since(w.ledger, seq) == _removed_per_table(before, after)
            w.check_invariants()


def _assert_erased(w: World, subject: str):
    """No table version holds the subject in a subject column, and none of their content
    markers is in any file under the data directory (the purge ran)."""
    import lance

    for t in w.store.table_names():
        ds0 = w.store.dataset(t)
        for v in ds0.versions():
            ds = lance.dataset(ds0.uri, version=v["version"])
            for c in ("subject_id", "user_id"):
                if c in ds.schema.names:
                    assert subject not in ds.to_table(columns=[c])[c].to_pylist(), f"{t}@{v['version']}"
    markers = [m.encode() for m in w.markers.get(subject, [])]
    for p in Path(w.s.data_dir).rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            for m in markers:
                assert m not in data, f"{m!r} in {p}"
