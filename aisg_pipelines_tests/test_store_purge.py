"""The shared physical purge next to a writer in another process (real LanceDB).

Leftovers of a write that never committed are removed only after the grace period, so a
commit in progress is never broken; deleted rows' bytes leave the disk either way.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow as pa

from aisg_pipelines.governance.store import LanceStore

SCHEMA = pa.schema([("row_id", pa.string()), ("text", pa.string())])


def _rows(prefix: str, n: int) -> pa.Table:
    return pa.table({"row_id": [f"{prefix}{i:04d}" for i in range(n)], "text": [f"{prefix}-MARKER-{i:04d} lorem ipsum" for i in range(n)]}, schema=SCHEMA)


def _files_with(root: Path, needle: bytes) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and needle in p.read_bytes())


def _uncommitted_fragment(store: LanceStore, name: str, rows: pa.Table):
    """What a writer in another process has on disk between writing its data file and committing."""
    from lance.fragment import LanceFragment

    return LanceFragment.create(store.dataset(name).uri, rows, schema=SCHEMA)


def test_purge_keeps_a_commit_in_progress_and_removes_old_leftovers(tmp_path):
    store = LanceStore(str(tmp_path / "db"), unverified_grace_seconds=900)
    store.append("t", SCHEMA, _rows("keep", 50))
    store.append("t", SCHEMA, _rows("gone", 50))
    assert store.delete_ids("t", "row_id", [f"gone{i:04d}" for i in range(50)]) == 50
    table_dir = Path(store.dataset("t").uri)

    in_flight = _uncommitted_fragment(store, "t", _rows("inflight", 10))  # written just now
    _uncommitted_fragment(store, "t", _rows("killed", 10))  # a writer killed an hour ago
    (killed_file,) = [p for p in (table_dir / "data").iterdir() if b"killed-MARKER" in p.read_bytes()]
    an_hour_ago = time.time() - 3600
    os.utime(killed_file, (an_hour_ago, an_hour_ago))

    stats = store.purge(["t"])
    entry = stats.tables["t"]
    assert entry["unverified_files"]["removed"] == 1 and entry["unverified_files"]["kept_in_grace"] == 1
    assert _files_with(table_dir, b"gone-MARKER") == []  # deleted rows: bytes gone
    assert _files_with(table_dir, b"killed-MARKER") == []  # an old leftover: gone
    assert len(_files_with(table_dir, b"inflight-MARKER")) == 1  # a commit in progress: kept

    # the other process now commits its fragment: the table is intact and holds its rows
    import lance

    ds = store.dataset("t")
    lance.LanceDataset.commit(ds.uri, lance.LanceOperation.Append([in_flight]), read_version=ds.version)
    ids = sorted(store.scan("t", ["row_id"])["row_id"].to_pylist())
    assert ids == sorted([f"keep{i:04d}" for i in range(50)] + [f"inflight{i:04d}" for i in range(10)])


def test_grace_zero_removes_every_unreferenced_file(tmp_path, monkeypatch):
    monkeypatch.setenv("AISG_PURGE_UNVERIFIED_GRACE_SECONDS", "0")
    store = LanceStore(str(tmp_path / "db"))
    assert store.unverified_grace_seconds == 0
    store.append("t", SCHEMA, _rows("keep", 20))
    _uncommitted_fragment(store, "t", _rows("killed", 5))
    time.sleep(0.01)
    entry = store.purge(["t"]).tables["t"]
    assert (entry["unverified_files"]["removed"], entry["unverified_files"]["kept_in_grace"]) == (1, 0)
    table_dir = Path(store.dataset("t").uri)
    assert _files_with(table_dir, b"killed-MARKER") == [] and len(_files_with(table_dir, b"keep-MARKER")) == 1
    assert store.count("t") == 20
