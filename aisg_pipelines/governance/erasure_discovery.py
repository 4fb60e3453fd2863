"""Erasure discovery: everything one subject left in every store, as a `Manifest` of our own
ids (what the cascade deletes), content hashes (the certificate's commitment) and content
fingerprints (what the byte scan looks for).

The identifier is data, never code: subject columns are read with pyarrow and compared in
memory (`pc.is_in`); rows are fetched by our own ids with pyarrow expressions. Files are
matched on structured fields only (sidecar subject_id, JSON subject_id/user_id, a CSV
subject column, a Prometheus label), never on substrings.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .cascade import line_hash
from .erasure_intake import CERT_SUBDIR, _salt
from .ids import batched, in_filter, sha256_hex, subject_hash
from .landing import REASON_SUFFIX, SIDECAR_SUFFIX
from .ledger import canonical_json
from .store import CHUNKS, DOCUMENTS, EMBEDDINGS_PREFIX, LanceStore

# -- discovery ------------------------------------------------------------------------------
@dataclass
class Manifest:
    """Everything found for one subject: our ids, content hashes, files, fingerprints."""

    items: dict[str, str] = field(default_factory=dict)  # "system\tid" -> content sha256
    lance_ids: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # table -> column -> ids
    files: list[str] = field(default_factory=list)  # absolute paths to remove
    line_files: dict[str, list[int]] = field(default_factory=dict)  # (unused since the cascade; kept so old pending files load)
    line_hashes: dict[str, list[str]] = field(default_factory=dict)  # absolute path -> sha256 of the subject's lines
    telemetry_rows: dict[str, list[str]] = field(default_factory=dict)  # kind -> row ids (table rows and source lines)
    telemetry_files: dict[str, list[str]] = field(default_factory=dict)  # kind -> source files (relative) holding them
    landing_paths: list[str] = field(default_factory=list)  # landing-relative uploads: their ledger batch-file records go
    foreign_chunks: list[str] = field(default_factory=list)  # other subjects' chunks under this subject's doc ids: kept
    fingerprints: dict[str, str] = field(default_factory=dict)  # hex pattern -> kind
    doc_ids: list[str] = field(default_factory=list)
    held_documents: int = 0

    def add(self, system: str, ident: str, content_hash: str) -> None:
        self.items[f"{system}\t{ident}"] = content_hash

    def add_ids(self, table: str, column: str, ids: Iterable[str]) -> None:
        cur = self.lance_ids.setdefault(table, {}).setdefault(column, [])
        have = set(cur)
        for i in ids:
            if i not in have:
                have.add(i)
                cur.append(i)

    def merge(self, other: "Manifest") -> None:
        for k, v in other.items.items():
            self.items.setdefault(k, v)
        for t, cols in other.lance_ids.items():
            for c, ids in cols.items():
                self.add_ids(t, c, ids)
        self.files = sorted(set(self.files) | set(other.files))
        for f, lines in other.line_files.items():
            self.line_files[f] = sorted(set(self.line_files.get(f, [])) | set(lines))
        for f, hs in other.line_hashes.items():
            self.line_hashes[f] = sorted(set(self.line_hashes.get(f, [])) | set(hs))
        for k, ids in other.telemetry_rows.items():
            self.telemetry_rows[k] = sorted(set(self.telemetry_rows.get(k, [])) | set(ids))
        for k, fs in other.telemetry_files.items():
            self.telemetry_files[k] = sorted(set(self.telemetry_files.get(k, [])) | set(fs))
        self.landing_paths = sorted(set(self.landing_paths) | set(other.landing_paths))
        self.foreign_chunks = sorted(set(self.foreign_chunks) | set(other.foreign_chunks))
        self.fingerprints.update(other.fingerprints)
        self.doc_ids = sorted(set(self.doc_ids) | set(other.doc_ids))
        self.held_documents = max(self.held_documents, other.held_documents)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "Manifest":
        return cls(**d)

    def commitment(self) -> dict:
        """sha256 over the sorted (system, id, content sha256) lines of everything found."""
        lines = sorted(f"{k}\t{v}\n" for k, v in self.items.items())
        h = hashlib.sha256()
        for line in lines:
            h.update(line.encode("utf-8"))
        return {"algorithm": "sha256 over sorted lines 'system\\tid\\tcontent_sha256\\n'", "sha256": h.hexdigest(), "items": len(lines)}

    def counts(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for key in self.items:
            system = key.split("\t", 1)[0]
            if system.startswith("lancedb." + EMBEDDINGS_PREFIX):
                e = out.setdefault("lancedb.embeddings", {"items": 0, "per_version": {}})
                e["items"] += 1
                v = system.removeprefix("lancedb." + EMBEDDINGS_PREFIX)
                e["per_version"][v] = e["per_version"].get(v, 0) + 1
            else:
                out.setdefault(system, {"items": 0})["items"] += 1
        return dict(sorted(out.items()))


def distinctive_windows(data: bytes, n: int, width: int = 48) -> list[bytes]:
    """Up to n non-overlapping windows of `data`, preferring digit-rich, varied ones
    (random numbers are what makes a window unique to this subject's text)."""
    return distinctive_windows_many([data], n, width)[0]


def distinctive_windows_many(texts: list[bytes], n: int, width: int = 48) -> list[list[bytes]]:
    """`distinctive_windows` for many texts at once (one vectorised numpy pass over all of them).

    Candidate windows start at 0, width/4, ... of each text; a window is skipped if it holds a
    placeholder bracket or a newline or starts/ends with whitespace (layout and placeholders are
    shared by everyone). Score = 4 x digits + distinct bytes + 1000 if every 16-byte piece holds a
    digit (such windows make selective scan keys); the best non-overlapping ones are taken."""
    out: list[list[bytes]] = [[] for _ in texts]
    if n <= 0:
        return out
    big = []
    for i, d in enumerate(texts):
        if len(d) < 16:
            continue
        if len(d) <= width:
            out[i] = [d]
        else:
            big.append(i)
    if not big:
        return out
    lens = np.array([len(texts[i]) for i in big], dtype=np.int64)
    bases = np.concatenate(([0], np.cumsum(lens)[:-1]))
    buf = b"".join(texts[i] for i in big)
    arr = np.frombuffer(buf, dtype=np.uint8)
    step = max(1, width // 4)
    counts = (lens - width) // step + 1
    tid = np.repeat(np.arange(len(big)), counts)
    local = (np.arange(tid.size) - np.repeat(np.cumsum(counts) - counts, counts)) * step
    starts = bases[tid] + local
    isdig = (arr >= 48) & (arr <= 57)
    cs = np.concatenate(([0], np.cumsum(isdig, dtype=np.int64)))
    digits = cs[starts + width] - cs[starts]
    bad = (arr == 60) | (arr == 62) | (arr == 10)
    cb = np.concatenate(([0], np.cumsum(bad, dtype=np.int64)))
    ws_ = np.zeros(256, dtype=bool)
    ws_[list(b" \t\n\r\x0b\x0c")] = True
    ok = (cb[starts + width] == cb[starts]) & ~ws_[arr[starts]] & ~ws_[arr[starts + width - 1]]
    nodig16 = (cs[16:] - cs[:-16]) == 0  # 16-byte piece starting at k has no digit
    cz = np.concatenate(([0], np.cumsum(nodig16, dtype=np.int64)))
    dense = cz[starts + width - 15] == cz[starts]
    srt = np.sort(np.lib.stride_tricks.sliding_window_view(arr, width)[starts], axis=1)
    distinct = 1 + np.count_nonzero(np.diff(srt, axis=1), axis=1)
    score = digits * 4 + distinct + np.where(dense, 1000, 0)
    sel = np.flatnonzero(ok)
    order = sel[np.lexsort((local[sel], -score[sel], tid[sel]))]  # by text, best score, earliest
    t_sorted = tid[order]
    bounds = np.searchsorted(t_sorted, np.arange(len(big) + 1))
    loc_sorted = local[order].tolist()
    for k, i in enumerate(big):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        chosen: list[int] = []
        for st in loc_sorted[lo:hi] if n > 1 else loc_sorted[lo:min(hi, lo + 1)]:
            if all(abs(st - c) >= width for c in chosen):
                chosen.append(st)
                if len(chosen) >= n:
                    break
        d = texts[i]
        out[i] = [d[st:st + width] for st in sorted(chosen)]
    return out


def _is_in(arr: pa.ChunkedArray | pa.Array, values: Iterable[str]) -> pa.Array:
    vals = list(values)
    if not vals:
        return pa.array([False] * len(arr))
    return pc.fill_null(pc.is_in(arr, value_set=pa.array(vals, pa.string())), False)


FETCH_BATCH = 20_000


def _fetch(store: LanceStore, table: str, columns: list[str], column: str, ids: Iterable[str]) -> pa.Table:
    """Rows whose `column` (one of our own id columns) is in `ids`. The filter is a pyarrow
    expression, not SQL text: no string is parsed, and one call replaces many 1000-id IN lists."""
    return store.dataset(table).to_table(columns=columns, filter=pc.field(column).isin(pa.array(list(ids), pa.string())))


def _other_tables(store: LanceStore) -> list[str]:
    return [n for n in store.table_names() if n not in (DOCUMENTS, CHUNKS) and not n.startswith(EMBEDDINGS_PREFIX)]


ROW_ID_COLUMNS = ("row_id", "event_id", "sample_id", "log_id", "id")
SUBJECT_COLUMNS = ("subject_id", "user_id")


def _table_subject_columns(store: LanceStore, name: str) -> tuple[list[str], str | None]:
    schema = store.dataset(name).schema
    names = schema.names
    subj = [c for c in SUBJECT_COLUMNS if c in names and pa.types.is_string(schema.field(c).type)]
    idcol = next((c for c in ROW_ID_COLUMNS if c in names), None)
    return subj, idcol


@dataclass
class DiscoveryContext:
    """What discovery learned besides the manifests: identifiers that *contain* a target
    (a byte-scan hit inside one of them is another subject's data, not a trace)."""

    superstrings: dict[str, set[str]] = field(default_factory=dict)


def discover(settings, store: LanceStore, subjects: dict[str, str]) -> tuple[dict[str, Manifest], DiscoveryContext]:
    """subjects: {raw subject id: request_id} -> {request_id: Manifest}. One pass per table for all subjects."""
    manifests = {rid: Manifest() for rid in subjects.values()}
    ctx = DiscoveryContext({s: set() for s in subjects})
    targets = list(subjects)
    seen_ids: set[str] = set()

    def note_ids(values: Iterable[str]) -> None:
        for u in values:
            if u is None or u in seen_ids:
                continue
            seen_ids.add(u)
            for t in targets:
                if t in u and u != t:
                    ctx.superstrings[t].add(u)

    # documents: in-memory match on subject_id, then details fetched by our doc ids
    doc_owner: dict[str, str] = {}
    for b in store.scan_batches(DOCUMENTS, ["doc_id", "subject_id"]):
        note_ids(pc.unique(b.column(1)).to_pylist())
        m = _is_in(b.column(1), targets)
        if pc.any(m).as_py():
            f = b.filter(m)
            doc_owner.update(zip(f.column(0).to_pylist(), f.column(1).to_pylist()))
    for ids in batched(sorted(doc_owner), FETCH_BATCH):
        t = _fetch(store, DOCUMENTS, ["doc_id", "subject_id", "file_path", "file_sha256", "text", "text_sha256", "legal_hold"], "doc_id", ids)
        rows = t.to_pylist()
        windows = distinctive_windows_many([(r["text"] or "").encode("utf-8") for r in rows], 4)
        for r, wins in zip(rows, windows):
            if r["subject_id"] not in subjects:  # re-check in memory (the filter was on our ids only)
                continue
            man = manifests[subjects[r["subject_id"]]]
            man.add("lancedb.documents", r["doc_id"], r["text_sha256"] or sha256_hex(r["text"] or ""))
            man.add_ids(DOCUMENTS, "doc_id", [r["doc_id"]])
            man.doc_ids.append(r["doc_id"])
            if r["legal_hold"]:
                man.held_documents += 1
            for w in wins:
                man.fingerprints[w.hex()] = "document_text"
            for hx in (r["text_sha256"], r["file_sha256"]):
                if hx:
                    man.fingerprints[hx.encode().hex()] = "content_hash"
            if r["file_path"]:
                _add_upload(man, Path(settings.landing_dir), r["file_path"], "landing")
                _add_upload(man, Path(settings.quarantine_dir), r["file_path"], "quarantine")

    # chunks: by subject_id or by one of the subject's documents
    chunk_owner: dict[str, str] = {}
    for b in store.scan_batches(CHUNKS, ["chunk_id", "doc_id", "subject_id"]):
        note_ids(pc.unique(b.column(2)).to_pylist())
        m = pc.or_(_is_in(b.column(2), targets), _is_in(b.column(1), doc_owner))
        if pc.any(m).as_py():
            f = b.filter(m)
            for cid, did, sid in zip(f.column(0).to_pylist(), f.column(1).to_pylist(), f.column(2).to_pylist()):
                if sid is not None and sid not in subjects:
                    # another subject's chunk under one of this subject's doc ids (a doc_id taken
                    # over): never erased with this subject, and neither are its vectors
                    manifests[subjects[doc_owner[did]]].foreign_chunks.append(cid)
                    continue
                chunk_owner[cid] = sid if sid in subjects else doc_owner[did]
    foreign = {c for m in manifests.values() for c in m.foreign_chunks}
    chunk_doc: dict[str, str] = {}
    for ids in batched(sorted(chunk_owner), FETCH_BATCH):
        t = _fetch(store, CHUNKS, ["chunk_id", "doc_id", "text", "content_sha256"], "chunk_id", ids)
        rows = t.to_pylist()
        windows = distinctive_windows_many([(r["text"] or "").encode("utf-8") for r in rows], 1)
        for r, wins in zip(rows, windows):
            man = manifests[subjects[chunk_owner[r["chunk_id"]]]]
            chunk_doc[r["chunk_id"]] = r["doc_id"]
            man.add("lancedb.chunks", r["chunk_id"], r["content_sha256"] or sha256_hex(r["text"] or ""))
            man.add_ids(CHUNKS, "chunk_id", [r["chunk_id"]])
            for w in wins:
                man.fingerprints[w.hex()] = "chunk_text"
            if r["content_sha256"]:
                man.fingerprints[r["content_sha256"].encode().hex()] = "content_hash"

    # vectors in every embeddings_* table (retired versions included)
    for version, table in sorted(store.embedding_tables().items()):
        owner: dict[str, str] = {}
        for b in store.scan_batches(table, ["chunk_id", "doc_id"]):
            m = pc.or_(_is_in(b.column(0), chunk_owner), _is_in(b.column(1), doc_owner))
            if pc.any(m).as_py():
                f = b.filter(m)
                for cid, did in zip(f.column(0).to_pylist(), f.column(1).to_pylist()):
                    if cid in foreign:
                        continue
                    owner[cid] = chunk_owner.get(cid) or doc_owner[did]
        for ids in batched(sorted(owner), FETCH_BATCH):
            t = _fetch(store, table, ["chunk_id", "vector"], "chunk_id", ids)
            vec = t.column("vector").combine_chunks()
            flat = vec.flatten().to_numpy(zero_copy_only=False).reshape(len(vec), -1) if len(vec) else np.zeros((0, 0))
            for i, cid in enumerate(t.column("chunk_id").to_pylist()):
                man = manifests[subjects[owner[cid]]]
                man.add(f"lancedb.{table}", cid, hashlib.sha256(flat[i].astype("<f4").tobytes()).hexdigest())
                man.add_ids(table, "chunk_id", [cid])

    # any other table with a subject_id / user_id column (system_logs, metrics, ...)
    for table in _other_tables(store):
        subj_cols, idcol = _table_subject_columns(store, table)
        if not subj_cols:
            continue
        found: dict[Any, str] = {}
        ds = store.dataset(table)
        cols = subj_cols + ([idcol] if idcol else [])
        for b in ds.to_batches(columns=cols, with_row_id=idcol is None, batch_size=131072):
            mask = None
            for c in subj_cols:
                note_ids(pc.unique(b.column(c)).to_pylist())
                mc = _is_in(b.column(c), targets)
                mask = mc if mask is None else pc.or_(mask, mc)
            if not pc.any(mask).as_py():
                continue
            f = b.filter(mask)
            ids = f.column(idcol if idcol else "_rowid").to_pylist()
            owners = [next(v for v in vals if v in subjects) for vals in zip(*(f.column(c).to_pylist() for c in subj_cols))]
            found.update(zip(ids, owners))
        if not found:
            continue
        column = idcol or "_rowid"
        for chunk in batched(sorted(found, key=str), 1000):
            filt = in_filter(column, chunk) if idcol else f"_rowid IN ({', '.join(str(int(i)) for i in chunk)})"
            rows = ds.to_table(filter=filt, with_row_id=idcol is None).to_pylist()
            for r in rows:
                key = r[column]
                man = manifests[subjects[found[key]]]
                man.add(f"lancedb.{table}", str(key), sha256_hex(canonical_json({k: v for k, v in r.items() if k != "_rowid"})))
                man.add_ids(table, column, [str(key)])

    discover_files(settings, subjects, manifests, note_ids)
    for man in manifests.values():
        man.files = sorted(set(man.files))
        man.doc_ids = sorted(set(man.doc_ids))
    return manifests, ctx


def discover_files(settings, subjects: dict[str, str], manifests: dict[str, Manifest], note_ids: Callable[[Iterable[str]], None] = lambda _v: None) -> None:
    """The file part of discovery (also what verification re-runs after the deletion):
    uploads whose sidecar names the subject, and lines whose structured subject field does."""
    # sidecars in the landing zone and quarantine naming the subject
    targets = list(subjects)
    for base, system in ((Path(settings.landing_dir), "landing"), (Path(settings.quarantine_dir), "quarantine")):
        if not base.exists():
            continue
        for sc in base.rglob("*" + SIDECAR_SUFFIX):
            try:
                raw = sc.read_bytes()[:1_000_000]
            except OSError:
                continue
            owner = None
            try:
                meta = json.loads(raw.decode("utf-8"))
                sid = meta.get("subject_id") if isinstance(meta, dict) else None
                if isinstance(sid, str):
                    note_ids([sid])
                owner = sid if sid in subjects else None
            except (UnicodeDecodeError, json.JSONDecodeError):
                # malformed sidecar: only the subject_id field itself, never a substring of the bytes
                owner = next((t for t in targets if _sidecar_field(t).search(raw)), None)
            if owner:
                data_rel = str(sc.relative_to(base))[: -len(SIDECAR_SUFFIX)]
                _add_upload(manifests[subjects[owner]], base, data_rel, system)

    # access exports (governance/access.py) made for the subject hold its data: they go too
    salt = _salt(settings)
    by_hash = {subject_hash(t, salt): t for t in targets}
    for h, paths in export_files_of(settings, by_hash).items():
        man = manifests[subjects[by_hash[h]]]
        for p in paths:
            man.add("exports.access", str(p.relative_to(settings.exports_dir)), hashlib.sha256(p.read_bytes()).hexdigest())
            man.files.append(str(p))

    # Line files: incoming logs and metrics, telemetry rejects, exports. The subject is matched
    # on structured fields only (JSON subject_id/user_id at any depth, a CSV subject column, a
    # Prometheus label), never on a substring of a line or a file name: an id that is also an
    # ordinary token ("INFO", "prod", "v2") must not take other lines with it.
    from .telemetry import SUFFIXES as TELEMETRY_SUFFIXES

    line_roots = [(Path(settings.logs_dir), "logs_files", "system_logs"), (Path(settings.metrics_dir), "metrics_files", "metrics"),
                  (Path(settings.quarantine_dir) / "telemetry", "quarantine_telemetry", None), (Path(settings.exports_dir), "exports", None)]
    for base, system, kind in line_roots:
        for p, rel, n, line, owner in structured_lines(base, targets):
            man = manifests[subjects[owner]]
            man.add(system, f"{rel}#L{n + 1}", hashlib.sha256(line).hexdigest())
            if kind is not None and p.name.endswith(TELEMETRY_SUFFIXES):
                # telemetry source lines go by row id, with their rows (the cascade drops both)
                from .telemetry import row_id_for

                rid_ = row_id_for(kind, rel, line)
                man.telemetry_rows.setdefault(kind, []).append(rid_)
                man.telemetry_files.setdefault(kind, []).append(rel)
            else:
                man.line_hashes.setdefault(str(p), []).append(line_hash(line))
    for man in manifests.values():
        man.telemetry_rows = {k: sorted(set(v)) for k, v in man.telemetry_rows.items()}
        man.telemetry_files = {k: sorted(set(v)) for k, v in man.telemetry_files.items()}
        man.line_hashes = {k: sorted(set(v)) for k, v in man.line_hashes.items()}
        man.landing_paths = sorted(set(man.landing_paths))


ACCESS_EXPORT_SUBDIR = "access_exports"  # <exports>/access_exports/<export id>/ (governance/access.py)


def export_files_of(settings, subject_hashes: dict[str, str]) -> dict[str, list[Path]]:
    """{subject hash: files of its access exports} for the given {hash: anything}."""
    out: dict[str, list[Path]] = {}
    root = Path(settings.exports_dir) / ACCESS_EXPORT_SUBDIR
    if not root.exists() or not subject_hashes:
        return out
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            h = json.loads((d / "export.json").read_bytes()).get("subject_hash")
        except (OSError, ValueError):
            continue
        if h in subject_hashes:
            out.setdefault(h, []).extend(sorted(p for p in d.rglob("*") if p.is_file()))
    return out


SUBJECT_FIELDS = ("subject_id", "user_id")  # JSON keys (any depth) and Prometheus labels naming a subject
CSV_SUBJECT_COLUMNS = ("subject_id", "user_id", "subject")  # CSV/TSV header names of a subject column
STRUCTURED_LINE_SUFFIXES = (".jsonl", ".ndjson", ".log", ".json", ".csv", ".tsv", ".prom")
_PROM_LABEL = re.compile(rb'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _sidecar_field(target: str) -> re.Pattern[bytes]:
    """`"subject_id": "<target>"` in a sidecar that is not valid JSON: the field, not a substring."""
    return re.compile(rb'"subject_id"\s*:\s*"' + re.escape(target.encode("utf-8")) + rb'"')


def json_subjects(obj: Any, depth: int = 0) -> set[str]:
    """String values of subject fields anywhere in a JSON value (a rejected telemetry line's
    `raw` string is parsed too)."""
    out: set[str] = set()
    if depth > 32:
        return out
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in SUBJECT_FIELDS and isinstance(v, str):
                out.add(v)
            elif isinstance(v, (dict, list)):
                out |= json_subjects(v, depth + 1)
            elif k == "raw" and isinstance(v, str) and v.lstrip().startswith("{"):
                try:
                    out |= json_subjects(json.loads(v), depth + 1)
                except (json.JSONDecodeError, RecursionError):
                    pass
    elif isinstance(obj, list):
        for v in obj:
            out |= json_subjects(v, depth + 1)
    return out


def _line_subjects(fmt: str, line: bytes, cols: list[int], delim: str) -> set[str]:
    if not line.strip():
        return set()
    if fmt == "json":
        try:
            return json_subjects(json.loads(line.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            return set()
    if fmt == "csv":
        if not cols:
            return set()
        import csv

        try:
            row = next(csv.reader([line.decode("utf-8").rstrip("\r")], delimiter=delim))
        except (UnicodeDecodeError, csv.Error, StopIteration):
            return set()
        return {row[i] for i in cols if i < len(row)}
    if fmt == "prom":
        if line.lstrip().startswith(b"#") or b"{" not in line:
            return set()
        labels = line[line.index(b"{") + 1:line.rfind(b"}")] if b"}" in line else b""
        return {v.decode("utf-8", "replace") for k, v in _PROM_LABEL.findall(labels) if k.decode() in SUBJECT_FIELDS}
    return set()


def structured_lines(base: Path, targets: Iterable[str]):
    """(path, relative path, 0-based line number, line bytes, owner) of every line under `base`
    whose structured subject field equals one of `targets`. Files without a structure we know
    (text, HTML, PDF, ...) never match; certificates are skipped."""
    targets = set(targets)
    if not targets or not base.exists():
        return
    for p in sorted(base.rglob("*")):
        if not p.is_file() or p.is_symlink() or p.name.endswith(".tmp") or CERT_SUBDIR in p.parts or ACCESS_EXPORT_SUBDIR in p.parts:
            continue
        suffix = p.suffix.lower()
        if suffix not in STRUCTURED_LINE_SUFFIXES:
            continue
        try:
            data = p.read_bytes()
        except OSError:
            continue
        lines = data.split(b"\n")
        fmt, cols, delim = ("json", [], "")
        if suffix in (".csv", ".tsv"):
            import csv

            delim = "\t" if suffix == ".tsv" else ","
            try:
                header = next(csv.reader([lines[0].decode("utf-8").lstrip("\ufeff").rstrip("\r")], delimiter=delim))
            except (UnicodeDecodeError, csv.Error, StopIteration):
                continue
            cols = [i for i, h in enumerate(header) if h.strip().lower() in CSV_SUBJECT_COLUMNS]
            fmt = "csv"
            if not cols:
                continue
        elif suffix == ".prom":
            fmt = "prom"
        rel = str(p.relative_to(base))
        for n, line in enumerate(lines):
            if fmt == "csv" and n == 0:
                continue
            hit = _line_subjects(fmt, line, cols, delim) & targets
            if hit:
                yield p, rel, n, line, sorted(hit)[0]


def _add_upload(man: Manifest, base: Path, rel: str, system: str) -> None:
    data_path = base / rel
    for p, kind in ((data_path, "file"), (data_path.with_name(data_path.name + SIDECAR_SUFFIX), "sidecar"),
                    (data_path.with_name(data_path.name + REASON_SUFFIX), "reason")):
        if not p.is_file():
            continue
        data = p.read_bytes()
        man.add(f"{system}", f"{rel}#{kind}", hashlib.sha256(data).hexdigest())
        man.files.append(str(p))
        if system == "landing" and kind == "file":
            man.landing_paths.append(rel)
        if kind == "file":
            for w in distinctive_windows(data, 3):
                man.fingerprints[w.hex()] = "raw_file"
            man.fingerprints[hashlib.sha256(data).hexdigest().encode().hex()] = "content_hash"

