"""Erasure verification: the Lance-API check of every table and version, and the byte scan
of every file under every storage root (plus the decoded string columns of every Lance
file, and every object version on object storage) for a subject's content fingerprints.

`PatternScanner` finds many byte patterns in large buffers with numpy; its 64-bit key mix
(`keyhash.mix64_words`) is the one the orphan detector's compact keys use.
"""

from __future__ import annotations

import mmap
import os
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .erasure_discovery import ROW_ID_COLUMNS, SUBJECT_COLUMNS, DiscoveryContext, Manifest, _is_in, discover_files
from .keyhash import GOLDEN, mix64_words
from .store import CHUNKS, DOCUMENTS, LanceStore

# -- byte-level scanning ------------------------------------------------------------------
_Q = 8
_TABLE_BITS = 22
_MULT = GOLDEN  # bitmap slots: the top bits of key * GOLDEN


def _key_hash(words: list[np.ndarray]) -> np.ndarray:
    """One uint64 of a q-byte key given as 2 or 3 uint64 words (the shared mix)."""
    return mix64_words(words, 8 * len(words))


def _byte_rank(b: int) -> int:
    """How common a byte is in our files (lower = rarer anchor): NUL/0xFF padding and
    letters/space in text are common; punctuation is rare."""
    if b in (0, 0xFF):
        return 4
    if 97 <= b <= 122 or 65 <= b <= 90 or b == 32:
        return 3
    if 48 <= b <= 57:
        return 2
    return 1


class PatternScanner:
    """Find many byte patterns in large buffers quickly (numpy, no per-byte Python).

    Patterns of 24+ bytes are grouped by length band. Within a group of minimum length L and
    key length q (16 for 24..47 bytes, 24 for 48+), every occurrence covers one of the
    sampled positions 0, s, 2s, ... with s = L - q + 1. At each sampled position the first
    8 bytes are looked up in a hash bitmap of the patterns' keys at offsets 0..s-1, then the
    next 8 bytes, then a hash of all q bytes (texts sharing a vocabulary pass the word-level
    stages; 24-byte keys of digit-rich windows rarely pass the last one), then an exact
    vectorised lookup of the key words; only those candidates are compared in full in Python.
    The cost is one vectorised pass over len/s positions per group, whatever the number of
    patterns. 8..23-byte patterns (identifiers) are found by their rarest byte (below);
    patterns shorter than 8 bytes use bytes.find.
    """

    def __init__(self, patterns: Iterable[bytes]):
        self.patterns = sorted({p for p in patterns if p})
        self.short = [i for i, p in enumerate(self.patterns) if len(p) < _Q]
        self.groups = []
        long_ = [i for i, p in enumerate(self.patterns) if len(p) >= 24]
        # 8..23 bytes (identifiers): sampling would need a step of len-7 (~4) positions, so
        # they are found by their rarest byte instead: one vectorised compare per anchor byte.
        # group key (anchor byte, its index j, pattern length L); lookup key = the LAST 8 bytes
        # (ids often share prefixes such as "user-00", rarely suffixes)
        self.anchors: dict[tuple[int, int, int], dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
        for i, p in enumerate(self.patterns):
            if _Q <= len(p) < 24:
                j = min(range(len(p)), key=lambda k: (_byte_rank(p[k]), k))
                self.anchors[(p[j], j, len(p))][int.from_bytes(p[-_Q:], "little")].append(i)
        self.anchor_keys = {k: np.array(sorted(v), dtype=np.uint64) for k, v in self.anchors.items()}
        self.anchor_bitmaps = {k: self._bitmap(v) for k, v in self.anchors.items()}
        for lo, hi, q in ((24, 48, 16), (48, 1 << 30, 24)):  # a few short texts must not slow the 48+ band
            idx = [i for i in long_ if lo <= len(self.patterns[i]) < hi]
            if idx:
                self.groups.append(self._group(idx, q))

    def _group(self, idx: list[int], q: int):
        """Sampling group for patterns idx (all >= L bytes, L = the shortest), key length q (16|24).

        Every occurrence covers a sampled position (multiple of s = L - q + 1) at some offset
        o in 0..s-1 of the pattern; the q bytes there are its key. Built vectorised: only the
        first L bytes of each pattern are needed. Filters: first 8 bytes, second 8 bytes, and a
        hash of all q bytes (texts sharing a vocabulary pass the word-level stages, rarely the
        whole key); then a sorted-key lookup checks the key words exactly, and only real
        candidates reach the full byte comparison."""
        L = min(len(self.patterns[i]) for i in idx)
        s = L - q + 1
        nw = q // 8
        P = np.frombuffer(b"".join(self.patterns[i][:L] for i in idx), dtype=np.uint8).reshape(len(idx), L)
        pid = np.array(idx, dtype=np.int64)
        words = [[] for _ in range(nw)]
        offs, pids = [], []
        for o in range(s):
            for w in range(nw):
                words[w].append(np.ascontiguousarray(P[:, o + 8 * w:o + 8 * w + 8]).view("<u8").ravel())
            offs.append(np.full(len(idx), o, dtype=np.int64))
            pids.append(pid)
        W = [np.concatenate(x) for x in words]
        off = np.concatenate(offs)
        pids_ = np.concatenate(pids)
        full = _key_hash(W)
        order = np.argsort(W[0], kind="stable")
        keys = tuple(x[order] for x in W)
        return (s, q, self._bitmap(W[0]), self._bitmap(W[1]), self._bitmap(full), keys, off[order], pids_[order])

    @staticmethod
    def _bitmap(keys: Iterable[int]):
        arr = np.unique(np.asarray(keys if isinstance(keys, np.ndarray) else sorted(keys), dtype=np.uint64))
        bits = min(28, max(_TABLE_BITS, int(len(arr) * 64).bit_length()))  # at most ~1.5% full
        bm = np.zeros(1 << bits, dtype=bool)
        shift = np.uint64(64 - bits)
        bm[(arr * _MULT) >> shift] = True
        return bm, shift

    def find(self, buf) -> list[tuple[int, int]]:
        """[(pattern index, start offset)] of every occurrence in `buf` (any buffer object)."""
        mv = memoryview(buf).cast("B")
        n = len(mv)
        hits: set[tuple[int, int]] = set()
        if n == 0 or not self.patterns:
            return []
        every = np.ndarray((n - 7,), dtype="<u8", buffer=mv, strides=(1,)) if n >= 8 else None
        for s, q, (bm1, sh1), (bm2, sh2), (bm3, sh3), keys, koff, kpid in self.groups:
            total = (n - q) // s + 1 if n >= q else 0
            step = 1 << 21
            for start in range(0, total, step):
                cnt = min(step, total - start)
                v = np.ndarray((cnt,), dtype="<u8", buffer=mv, offset=start * s, strides=(s,))
                h = v * _MULT
                np.right_shift(h, sh1, out=h)
                cand = np.flatnonzero(bm1[h])
                del v, h
                if cand.size == 0:
                    continue
                pos = (cand + start) * s
                v2 = every[pos + 8]
                ok = bm2[(v2 * _MULT) >> sh2]
                pos = pos[ok]
                if pos.size == 0:
                    continue
                ws = [every[pos + 8 * w] for w in range(q // 8)]
                ok = bm3[(_key_hash(ws) * _MULT) >> sh3]
                pos = pos[ok]
                if pos.size == 0:
                    continue
                ws = [w[ok] for w in ws]
                # exact key lookup, vectorised: every (pattern, offset) whose q key bytes equal these
                lo = np.searchsorted(keys[0], ws[0], side="left")
                hi = np.searchsorted(keys[0], ws[0], side="right")
                n_e = hi - lo
                if not n_e.any():
                    continue
                rep = np.repeat(np.arange(pos.size), n_e)
                ent = lo[rep] + (np.arange(rep.size) - np.repeat(np.cumsum(n_e) - n_e, n_e))
                good = np.ones(rep.size, dtype=bool)
                for w in range(1, q // 8):
                    good &= keys[w][ent] == ws[w][rep]
                st = pos[rep] - koff[ent]
                good &= st >= 0
                for i, s0 in zip(kpid[ent[good]].tolist(), st[good].tolist()):
                    pat = self.patterns[i]
                    if mv[s0:s0 + len(pat)] == pat:
                        hits.add((i, s0))
        if every is not None and self.anchors:
            arr = np.frombuffer(mv, dtype=np.uint8)
            block = 1 << 26
            for (b, j, length), keymap in self.anchors.items():
                keys = self.anchor_keys[(b, j, length)]
                ko = length - _Q
                for off in range(0, n, block):
                    c = np.flatnonzero(arr[off:off + block] == b)
                    if c.size == 0:
                        continue
                    st = c + (off - j)
                    st = st[(st >= 0) & (st <= n - length)]
                    if st.size == 0:
                        continue
                    vals = every[st + ko]
                    bm, sh = self.anchor_bitmaps[(b, j, length)]
                    pre = bm[(vals * _MULT) >> sh]
                    st, vals = st[pre], vals[pre]
                    ok = np.isin(vals, keys)
                    for p0, val in zip(st[ok].tolist(), vals[ok].tolist()):
                        for i in keymap[val]:
                            pat = self.patterns[i]
                            if mv[p0:p0 + len(pat)] == pat:
                                hits.add((i, p0))
            del arr
        del every
        if self.short:
            data = buf if hasattr(buf, "find") else bytes(mv)
            for i in self.short:
                pat = self.patterns[i]
                at = data.find(pat)
                while at != -1:
                    hits.add((i, at))
                    at = data.find(pat, at + 1)
        try:
            mv.release()
        except BufferError:
            pass
        return sorted(hits)


@dataclass
class ScanFinding:
    location: str  # file path (relative to its storage root) or "file::column"
    kind: str  # subject_id | document_text | chunk_text | raw_file | content_hash | chunk_id
    request_id: str
    count: int = 1


@dataclass
class ScanReport:
    files_scanned: int = 0
    bytes_scanned: int = 0
    lance_files_decoded: int = 0
    decoded_bytes_scanned: int = 0
    findings: list[ScanFinding] = field(default_factory=list)
    explained: int = 0  # hits that belong to other remaining data (shared text, longer ids)
    identifier_token_hits: dict[str, int] = field(default_factory=dict)  # location -> raw occurrences outside structured fields
    seconds: float = 0.0
    roots: list[str] = field(default_factory=list)


def storage_roots(settings, store: LanceStore) -> list[tuple[str, Path]]:
    roots = []
    lroot = store.local_root()
    if lroot is not None:
        roots.append(("lancedb", lroot))
    roots += [("landing", Path(settings.landing_dir)), ("quarantine", Path(settings.quarantine_dir)),
              ("logs", Path(settings.logs_dir)), ("metrics", Path(settings.metrics_dir)), ("exports", Path(settings.exports_dir))]
    if settings.ledger_url.startswith("sqlite:///"):
        roots.append(("ledger", Path(settings.ledger_url.removeprefix("sqlite:///"))))
    out, seen = [], set()
    for name, p in roots:
        rp = p.resolve()
        if rp in seen or not p.exists():
            continue
        seen.add(rp)
        out.append((name, p))
    return out


def byte_scan(settings, store: LanceStore, targets: dict[str, str], manifests: dict[str, Manifest],
              ctx: DiscoveryContext, removed_files: set[str]) -> ScanReport:
    """Scan every file under every storage root for the subject's content fingerprints, and
    check the identifier where it is structured.

    The identifier is a trace only in a structured subject field: a subject column of any
    Lance file on disk (decoded, exact value; versions are checked by `api_check`), a sidecar's
    subject_id, a JSON subject_id/user_id, a CSV subject column, a Prometheus label
    (`discover_files` run again). Elsewhere an identifier can be an ordinary token ("INFO",
    "prod", "v2"); raw-byte occurrences of identifiers of 8+ bytes are counted and listed
    (`identifier_token_hits`) for the operator, not treated as the subject's data."""
    t0 = time.perf_counter()
    rep = ScanReport()
    owners: dict[bytes, list[tuple[str, str, str]]] = defaultdict(list)  # pattern -> [(request_id, kind, subject)]
    for subj, rid in targets.items():
        if len(subj.encode("utf-8")) >= 8:
            owners[subj.encode("utf-8")].append((rid, "subject_id", subj))
        for hx, kind in manifests[rid].fingerprints.items():
            owners[bytes.fromhex(hx)].append((rid, kind, subj))
    scanner = PatternScanner(owners)
    pats = scanner.patterns
    raw_hits: list[tuple[str, bytes, int, Any]] = []  # (location, pattern, offset, buffer-getter)

    import threading

    lock = threading.Lock()

    def scan_buffer(location: str, buf, seen: int = 0) -> None:
        for i, off in scanner.find(buf):
            p = pats[i]
            if off + len(p) <= seen:  # whole in the overlap: found in the previous window of a stream
                continue
            for rid, kind, subj in owners[p]:
                if kind == "subject_id":
                    if not _explained_id(buf, off, subj, ctx.superstrings.get(subj, ())):
                        with lock:  # a token, not a structured field: listed, not a trace
                            rep.identifier_token_hits[location] = rep.identifier_token_hits.get(location, 0) + 1
                    continue
                with lock:
                    raw_hits.append((location, p, rid, kind))

    subject_values = pa.array(sorted(targets), pa.string())

    def check_subject_column(location: str, arr) -> None:
        """Exact values of a decoded subject column (never a substring)."""
        mask = _is_in(arr, subject_values.to_pylist())
        if pc.any(mask).as_py():
            for v in pc.unique(arr.filter(mask)).to_pylist():
                with lock:
                    raw_hits.append((location, v.encode("utf-8"), targets[v], "subject_id"))

    roots = storage_roots(settings, store)
    rep.roots = [name for name, _ in roots]
    jobs: list[tuple[str, Path, str]] = []
    for name, root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        jobs += [(name, p, f"{name}/{p.relative_to(root)}" if root.is_dir() else name) for p in files]

    def scan_file(job: tuple[str, Path, str]) -> None:
        name, p, loc = job
        try:
            size = p.stat().st_size
            with lock:
                rep.files_scanned += 1
                rep.bytes_scanned += size
            if size == 0:
                return
            with open(p, "rb") as fh:
                mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
                try:
                    scan_buffer(loc, mm)
                finally:
                    try:
                        mm.close()
                    except BufferError:
                        pass
        except (FileNotFoundError, PermissionError):
            return
        if name == "lancedb" and p.suffix == ".lance":
            _scan_lance_decoded(p, loc, rep, scan_buffer, lock, check_subject_column)

    # numpy and lance release the GIL: one thread per core; largest files first
    jobs.sort(key=lambda j: -j[1].stat().st_size if j[1].exists() else 0)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        list(pool.map(scan_file, jobs))
    if store.objects is not None:  # LanceDB on object storage: every object version under the prefix
        rep.roots.append(_scan_object_store(store, rep, scan_buffer, lock, check_subject_column,
                                            overlap=max(map(len, pats), default=1) - 1))
    # the identifier in structured fields of files: uploads whose sidecar names the subject,
    # lines whose subject field does (what discovery matches, run again after the deletion)
    leftover = {rid: Manifest() for rid in set(targets.values())}
    discover_files(settings, targets, leftover)
    for rid, m in leftover.items():
        for key in m.items:
            system, ident = key.split("\t", 1)
            raw_hits.append((f"{system}/{ident}", b"", rid, "subject_id"))
    # text fingerprints found outside our own removed files: shared with remaining data?
    text_kinds = {"document_text", "chunk_text", "raw_file"}
    suspicious = {p for loc, p, rid, kind in raw_hits if kind in text_kinds}
    shared = _shared_with_remaining(store, suspicious) if suspicious else set()
    agg: dict[tuple[str, str, str], int] = defaultdict(int)
    for loc, p, rid, kind in raw_hits:
        if kind in text_kinds and p in shared and not any(loc.endswith(f) for f in removed_files):
            rep.explained += 1
            continue
        agg[(loc, kind, rid)] += 1
    rep.findings = [ScanFinding(loc, kind, rid, n) for (loc, kind, rid), n in sorted(agg.items())]
    rep.seconds = time.perf_counter() - t0
    return rep


def _explained_id(buf, off: int, target: str, supers: Iterable[str]) -> bool:
    t = target.encode("utf-8")
    mv = memoryview(buf)
    try:
        for u in supers:
            ub = u.encode("utf-8")
            j = ub.find(t)
            while j != -1:
                st = off - j
                if st >= 0 and mv[st:st + len(ub)] == ub:
                    return True
                j = ub.find(t, j + 1)
        return False
    finally:
        mv.release()


def _scan_object_store(store: LanceStore, rep: ScanReport, scan_buffer, lock, check_subject_column, *, overlap: int) -> str:
    """Read every version of every object under the store's prefix: current objects and, on a
    versioned bucket, the noncurrent versions a purge's cleanup left (list_objects_v2 does not
    show them, their bytes are intact). Streamed in ranged GETs with `overlap` (longest needle
    - 1) bytes carried over, never a whole object in memory (`S3Objects.scan_versions`); .lance
    files are also spooled to a temporary file and decoded. Returns the root's label, s3://bucket/prefix."""
    objs = store.objects
    totals = objs.scan_versions(
        scan_buffer, overlap=overlap, label_prefix="lancedb/",
        on_spooled=lambda path, loc: _scan_lance_decoded(path, loc, rep, scan_buffer, lock, check_subject_column))
    with lock:
        rep.files_scanned += totals["files"]
        rep.bytes_scanned += totals["bytes"]
    return f"lancedb=s3://{objs.bucket}/{objs.prefix}"


def _scan_lance_decoded(path: Path, loc: str, rep: ScanReport, scan_buffer, lock, check_subject_column=None) -> None:
    """Decode the string columns of a Lance file (data or index) and scan their bytes."""
    try:
        from lance.file import LanceFileReader

        schema = LanceFileReader(str(path)).metadata().schema
        cols = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type) or pa.types.is_binary(f.type)]
        if not cols:
            return
        table = LanceFileReader(str(path), columns=cols).read_all(batch_size=65536).to_table()
    except Exception:  # not a readable Lance file (e.g. a manifest) - raw bytes were scanned already
        return
    with lock:
        rep.lance_files_decoded += 1
    for name in table.column_names:
        if check_subject_column is not None and name in SUBJECT_COLUMNS:
            check_subject_column(f"{loc}::{name}", table.column(name))
        for chunk in table.column(name).chunks:
            bufs = chunk.buffers()
            data = bufs[2] if len(bufs) > 2 else None
            if data is None or data.size == 0:
                continue
            with lock:
                rep.decoded_bytes_scanned += data.size
            scan_buffer(f"{loc}::{name}", data)


def _shared_with_remaining(store: LanceStore, patterns: set[bytes]) -> set[bytes]:
    """Which text fingerprints also occur in remaining documents/chunks (i.e. are not unique).

    One PatternScanner pass over the text columns' data buffers (a window spanning two
    adjacent values can only add a false "shared", which the raw hit still reports unless
    the text really is shared)."""
    scanner = PatternScanner(patterns)
    shared: set[bytes] = set()
    for table in (DOCUMENTS, CHUNKS):
        for b in store.scan_batches(table, ["text"]):
            col = b.column(0)
            data = col.buffers()[2]
            if data is None or data.size == 0:
                continue
            for i, _ in scanner.find(data):
                shared.add(scanner.patterns[i])
            if len(shared) == len(scanner.patterns):
                return shared
    return shared


# -- API verification ---------------------------------------------------------------------
@dataclass
class ApiCheck:
    tables_checked: int = 0
    versions_checked: int = 0
    matches: dict[str, int] = field(default_factory=dict)  # "table@version" -> rows


def api_check(store: LanceStore, targets: Iterable[str], manifests: Iterable[Manifest]) -> ApiCheck:
    import lance

    targets = list(targets)
    ids: dict[str, set[str]] = defaultdict(set)
    manifests = list(manifests)
    foreign = sorted({c for man in manifests for c in man.foreign_chunks})  # other subjects' chunks, kept on purpose
    for man in manifests:
        for table, cols in man.lance_ids.items():
            for col, vals in cols.items():
                ids[col].update(vals)
        ids["doc_id"].update(man.doc_ids)
    out = ApiCheck()
    for table in store.table_names():
        ds0 = store.dataset(table)
        out.tables_checked += 1
        for v in ds0.versions():
            ds = lance.dataset(ds0.uri, version=v["version"], storage_options=store.storage_options)
            names = ds.schema.names
            cols = [c for c in (*SUBJECT_COLUMNS, "doc_id", "chunk_id", *ROW_ID_COLUMNS) if c in names]
            out.versions_checked += 1
            n = 0
            for b in ds.to_batches(columns=cols, batch_size=131072):
                mask = None
                for c in cols:
                    vals = targets if c in SUBJECT_COLUMNS else ids.get(c, ())
                    if not vals:
                        continue
                    mc = _is_in(b.column(c), vals)
                    mask = mc if mask is None else pc.or_(mask, mc)
                if mask is not None and foreign and "chunk_id" in cols:
                    mask = pc.and_(mask, pc.invert(_is_in(b.column("chunk_id"), foreign)))
                if mask is not None:
                    n += pc.sum(pc.cast(mask, pa.int64())).as_py() or 0
            if n:
                out.matches[f"{table}@{v['version']}"] = n
    return out

