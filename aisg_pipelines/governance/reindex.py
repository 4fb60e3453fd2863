"""Blue-green reindex of every chunk under a new embed_version, its validation gate, and rollback.

Plain module (no Dagster): the `reindex_all` / `rollback_embed_version` jobs, the CLI, the
demo, the tests and the benchmark all call these functions.

- Versions are declared in `embed_versions.yaml` (repo root, or $AISG_EMBED_VERSIONS_FILE)
  or given explicitly; `VersionRegistry.register` refuses a name re-declared with another
  meaning.
- `reindex()` embeds every batch with `pipeline.embed_batches` (incremental by chunk_id +
  content sha256; one token-length-sorted encode stream over windows of several batches,
  written per batch), so a killed reindex re-run only embeds what is missing, never writes a
  duplicate, and never touches the active version's table.
- `validate_version()` is the gate: real GX expectations over (a) one row per batch
  (row parity with `chunks`, every vector matching a current chunk), (b) one row per vector
  (unique chunk_id, dims, no NaN, L2 norm ~ 1) and (c) a retrieval sample (each sampled chunk,
  re-encoded by the version's model, finds itself as exact top-1 >= 99%). It streams the
  vectors in record batches, so memory stays bounded whatever the table size.
- The retrieval-parity gate (`parity_gate`) runs for every onnx / onnx-int8 version: its
  vectors are meant to equal (onnx) or approximate (onnx-int8) those of the same model in
  fp32. Held-out queries are sentences cut from sampled chunks; each is searched in the
  version's table and in the fp32 reference (the active version when it is that model, else
  an in-memory fp32 encoding of a chunk pool), and the top-10 lists must overlap >= 95%
  (recall@10); an fp32 onnx version's stored vectors must also have cosine >= 0.9999 to the
  reference's. The figures go into the report, the ledger and the run metadata.
- Activation is `VersionRegistry.activate`: one ledger transaction.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import events
from .ids import VERSION_NAME_RE, require
from .ledger import Ledger
from .quality import ExpectationOutcome, QualityResult
from .store import CHUNKS, LanceStore
from .versions import EmbedVersion, EmbedVersionSpec, VersionConflict, VersionRegistry

log = logging.getLogger(__name__)

VERSIONS_FILE_ENV = "AISG_EMBED_VERSIONS_FILE"
BUNDLED = "bundled"  # model_path value meaning the bundled all-MiniLM-L6-v2
SPEC_FIELDS = ("model_path", "max_seq_length", "normalize", "chunk_size", "chunk_overlap", "backend", "quantization")
MIN_SELF_TOP1 = 0.99
MIN_RECALL_AT_10 = 0.95  # retrieval-parity gate: top-10 overlap with the fp32 reference
RECALL_EPSILON = 1e-3  # ann-benchmarks' default: a neighbour within (1 + eps) x the k-th true distance counts
MIN_PARITY_COSINE = 0.9999  # an fp32 onnx version's vectors against the torch reference's
PARITY_QUERIES = 200


class ValidationFailed(RuntimeError):
    """The validation gate refused activation; `report.reasons` says why."""

    def __init__(self, version: str, report: "ValidationReport"):
        self.version = version
        self.report = report
        super().__init__(f"embed_version {version!r} failed validation, not activated: " + "; ".join(report.reasons))


# -- version declarations ------------------------------------------------------------------
def versions_file() -> Path:
    """$AISG_EMBED_VERSIONS_FILE, else `embed_versions.yaml` at the repo root (or cwd)."""
    env = os.environ.get(VERSIONS_FILE_ENV)
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "embed_versions.yaml").exists():
        return checkout / "embed_versions.yaml"
    return Path.cwd() / "embed_versions.yaml"


def _resolve_model_path(value: str | None, base: Path | None) -> str:
    from ..settings import bundled_model_path

    if not value or value == BUNDLED:
        return bundled_model_path()
    p = Path(os.path.expanduser(value))
    if not p.is_absolute() and base is not None:
        p = base / p
    return str(p)


def load_version_specs(path: Path | None = None) -> dict[str, EmbedVersionSpec]:
    """Parse the versions file: `versions: {name: {model_path, max_seq_length, ...}}`."""
    import yaml

    path = Path(path) if path else versions_file()
    if not path.exists():
        return {}
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    raw = doc.get("versions") or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: `versions` must be a mapping of name -> parameters")
    out: dict[str, EmbedVersionSpec] = {}
    for name, params in raw.items():
        params = dict(params or {})
        unknown = set(params) - set(SPEC_FIELDS) - {"description"}
        if unknown:
            raise ValueError(f"{path}: version {name!r} has unknown keys {sorted(unknown)}; allowed: {list(SPEC_FIELDS)}")
        params.pop("description", None)
        params["model_path"] = _resolve_model_path(params.get("model_path"), path.parent)
        try:
            out[str(name)] = EmbedVersionSpec(name=str(name), **params)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: version {name!r}: {exc}") from exc
    return out


def resolve_spec(name: str, overrides: dict[str, Any] | None = None, *, path: Path | None = None, registry: VersionRegistry | None = None) -> EmbedVersionSpec:
    """The spec for `name`: the versions file, else the registry, else defaults; then explicit overrides.

    Overrides that are None/"" are ignored. A name neither declared nor registered needs at
    least one override (otherwise it would silently be a copy of the defaults).
    """
    require(VERSION_NAME_RE, name, "embed_version name")
    overrides = {k: v for k, v in (overrides or {}).items() if v not in (None, "") and k in SPEC_FIELDS}
    if "model_path" in overrides:
        overrides["model_path"] = _resolve_model_path(overrides["model_path"], None)
    if "backend" in overrides and "quantization" not in overrides:
        overrides["quantization"] = ""  # the base's settings belong to the base's backend
    declared = load_version_specs(path).get(name)
    base = declared
    if base is None and registry is not None:
        existing = registry.get(name)
        base = existing.spec if existing else None
    if base is None:
        if not overrides:
            raise KeyError(
                f"embed_version {name!r} is not declared in {path or versions_file()} and not registered; "
                "declare it there or pass its parameters (model_path, max_seq_length, ...)"
            )
        base = EmbedVersionSpec(name=name, model_path=_resolve_model_path(None, None))
    return replace(base, **overrides)


def register_version(registry: VersionRegistry, spec: EmbedVersionSpec, on_registered: Callable[[str], None] | None = None) -> tuple[EmbedVersion, bool]:
    """Register (or confirm) a version; `on_registered(name)` adds its Dagster partition key."""
    version, created = registry.register(spec)
    if on_registered is not None:
        on_registered(version.name)
    return version, created


# -- the validation gate -------------------------------------------------------------------
@dataclass
class ValidationReport:
    version: str
    batches: int = 0
    chunks: int = 0
    vectors: int = 0
    sample_size: int = 0
    self_top1: float = 1.0
    reasons: list[str] = field(default_factory=list)
    expectations: list[ExpectationOutcome] = field(default_factory=list)
    seconds: float = 0.0
    parity: "ParityReport | None" = None

    @property
    def passed(self) -> bool:
        return not self.reasons

    def summary_markdown(self) -> str:
        md = QualityResult(self.expectations).summary_markdown()
        if self.parity is not None:
            md += "\n\n" + self.parity.summary_markdown()
        return md


@dataclass
class ParityReport:
    """The retrieval-parity gate of one version against its fp32 reference."""

    version: str
    reference: str  # a version name, or "fp32 <backend> (in memory, N-chunk pool)"
    queries: int = 0
    pool: int = 0  # chunks searched (the whole table, or the in-memory pool)
    recall_at_10: float = 1.0  # tie-aware (ann-benchmarks' epsilon rule), the gated figure
    recall_at_10_strict: float = 1.0  # plain overlap of the two top-10 id lists
    top1_agreement: float = 1.0  # queries whose top-1 chunk is the reference's top-1
    hit_at_10: float = 1.0  # the query's own chunk in the version's top 10
    reference_hit_at_10: float = 1.0
    self_top1: float = 1.0  # the query's own chunk as the version's top-1
    reference_self_top1: float = 1.0
    cosine_mean: float | None = None  # stored vectors vs the reference's, same chunks
    cosine_min: float | None = None
    min_recall_at_10: float = MIN_RECALL_AT_10
    min_cosine: float | None = None
    reasons: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.reasons

    def figures(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k not in ("reasons", "version")}
        return {k: round(v, 5) if isinstance(v, float) else v for k, v in d.items()}

    def summary_markdown(self) -> str:
        cos = f", stored-vector cosine mean {self.cosine_mean:.5f} / min {self.cosine_min:.5f}" if self.cosine_min is not None else ""
        head = (f"**Retrieval parity** against {self.reference}: {self.queries} held-out sentence queries over {self.pool} chunks; "
                f"recall@10 **{self.recall_at_10:.3f}** (needs >= {self.min_recall_at_10:.2f}; exact-id overlap {self.recall_at_10_strict:.3f}), top-1 agreement {self.top1_agreement:.1%}, "
                f"own chunk in top 10 {self.hit_at_10:.1%} (reference {self.reference_hit_at_10:.1%}), "
                f"own chunk top-1 {self.self_top1:.1%} (reference {self.reference_self_top1:.1%}){cos}.")
        if self.reasons:
            head += " **FAILED**: " + "; ".join(self.reasons)
        return head


def _chunk_index(store: LanceStore) -> pa.Table:
    return store.scan(CHUNKS, ["chunk_id", "batch_id", "content_sha256"])


def _key(t) -> pa.Array:
    return pc.binary_join_element_wise(t["chunk_id"], t["content_sha256"], ":")


def _vectors(rb, dims: int) -> np.ndarray:
    col = rb.column(rb.schema.get_field_index("vector"))
    flat = col.flatten() if hasattr(col, "flatten") else col.values
    return np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(len(rb), dims)


def validate_version(
    store: LanceStore,
    version: EmbedVersion,
    *,
    sample_size: int = 100,
    seed: int = 0,
    norm_tolerance: float = 1e-3,
    min_self_top1: float = MIN_SELF_TOP1,
    scan_rows: int = 16384,
) -> ValidationReport:
    """Run the gate's GX checks on one version's table; `report.reasons` empty means pass."""
    import pandas as pd

    from .embedding import encode
    from .checks import nan_and_norms, vector_row_expectations
    from .quality import Expect, validate

    t0 = time.perf_counter()
    rep = ValidationReport(version.name)
    chunks = _chunk_index(store)
    rep.chunks = chunks.num_rows
    if not store.has_table(version.table):
        if chunks.num_rows:
            rep.reasons.append(f"table {version.table} does not exist but there are {chunks.num_rows} chunks")
        rep.seconds = time.perf_counter() - t0
        return rep
    want = _key(chunks)

    # Retrieval sample: chunks re-encoded with this version's model, searched against the whole table.
    n = chunks.num_rows
    idx = sorted(random.Random(seed).sample(range(n), min(sample_size, n)))
    sample = chunks.take(pa.array(idx, pa.int64())) if idx else chunks.slice(0, 0)
    if idx:
        from .ids import in_filter

        ids = sample["chunk_id"].to_pylist()
        texts = {r["chunk_id"]: r["text"] for r in store.scan(CHUNKS, ["chunk_id", "text"], filter=in_filter("chunk_id", ids)).to_pylist()}
        queries = encode(version.model, [texts[i] for i in ids])
        if queries.shape[1] != version.dims:
            rep.reasons.append(f"model now produces {queries.shape[1]} dims, version declares {version.dims}")
            queries = np.zeros((len(ids), version.dims), np.float32)
    else:
        queries = np.zeros((0, version.dims), np.float32)
    q_sha = sample["content_sha256"].to_pylist()
    best = np.full(len(idx), -np.inf, np.float32)
    best_sha: list[str | None] = [None] * len(idx)
    if not version.normalize and len(idx):
        qn = (queries * queries).sum(axis=1)

    # One streaming pass over the vectors: per-row stats for GX, running top-1 for the sample.
    parts: list[pd.DataFrame] = []
    table_dims = store.open(version.table).schema.field("vector").type.list_size
    for rb in store.scan_batches(version.table, ["chunk_id", "batch_id", "content_sha256", "vector"], batch_size=scan_rows):
        if len(rb) == 0:
            continue
        vecs = _vectors(rb, table_dims)
        nan, norms = nan_and_norms(vecs)
        clean = np.where(nan[:, None], 0.0, vecs)
        t = pa.Table.from_batches([rb]).select(["chunk_id", "batch_id", "content_sha256"])
        current = pc.is_in(_key(t), value_set=want).to_numpy(zero_copy_only=False)
        parts.append(pd.DataFrame({"chunk_id": t["chunk_id"].to_numpy(zero_copy_only=False), "batch_id": t["batch_id"].to_numpy(zero_copy_only=False),
                                   "has_nan": nan, "norm": norms, "current": current}))
        if len(idx) and table_dims == queries.shape[1]:
            if version.normalize:
                sims = queries @ clean.T
            else:  # nearest by L2: maximise -(|q|^2 - 2 q.v + |v|^2)
                sims = -(qn[:, None] - 2 * (queries @ clean.T) + (clean * clean).sum(axis=1)[None, :])
            sims[:, nan] = -np.inf
            arg = sims.argmax(axis=1)
            top = sims[np.arange(len(idx)), arg]
            shas = t["content_sha256"].to_pylist()
            for i in np.nonzero(top > best)[0]:
                best[i] = top[i]
                best_sha[i] = shas[arg[i]]
    rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"chunk_id": [], "batch_id": [], "has_nan": [], "norm": [], "current": []})
    rows["dims"] = table_dims
    rep.vectors = len(rows)

    # Row parity per batch: vectors and vectors matching the batch's current chunks.
    want_batches = pd.Series(chunks["batch_id"].to_numpy(zero_copy_only=False)).value_counts()
    have = rows.groupby("batch_id").size() if len(rows) else pd.Series(dtype="int64")
    matched = rows[rows["current"]].groupby("batch_id").size() if len(rows) else pd.Series(dtype="int64")
    all_batches = sorted(set(want_batches.index) | set(have.index))
    per_batch = pd.DataFrame(
        {
            "batch_id": all_batches,
            "chunks": [int(want_batches.get(b, 0)) for b in all_batches],
            "vectors": [int(have.get(b, 0)) for b in all_batches],
            "matched": [int(matched.get(b, 0)) for b in all_batches],
        }
    )
    rep.batches = len(all_batches)

    hits = [best_sha[i] is not None and best_sha[i] == q_sha[i] for i in range(len(idx))]
    rep.sample_size = len(idx)
    rep.self_top1 = float(np.mean(hits)) if hits else 1.0
    retrieval = pd.DataFrame({"chunk_id": sample["chunk_id"].to_pylist(), "self_top1": [1.0 if h else 0.0 for h in hits]})

    checks: list[tuple[pd.DataFrame, list[Expect], str]] = []
    if len(per_batch):
        checks.append((per_batch, [
            Expect("ExpectColumnPairValuesToBeEqual", {"column_A": "chunks", "column_B": "vectors"}, "row parity with chunks per batch"),
            Expect("ExpectColumnPairValuesToBeEqual", {"column_A": "chunks", "column_B": "matched"}, "every chunk of the batch has its current vector"),
        ], "batch_id"))
    if len(rows):
        checks.append((rows.drop(columns=["batch_id", "current"]), vector_row_expectations(version, norm_tolerance), "chunk_id"))
    if len(retrieval):
        checks.append((retrieval, [
            Expect("ExpectColumnMeanToBeBetween", {"column": "self_top1", "min_value": min_self_top1, "max_value": 1.0},
                   f"retrieval sanity: sampled chunks find themselves as top-1 >= {min_self_top1:.0%}"),
        ], "chunk_id"))
    for df, expectations, id_col in checks:
        result = validate(df, expectations, id_col)
        for o in result.outcomes:
            failing = o.failing_ids
            if o.title.startswith("retrieval") and not o.success:
                failing = sorted(retrieval.loc[retrieval["self_top1"] < 1, "chunk_id"].tolist())
            rep.expectations.append(ExpectationOutcome(o.title, o.success, o.unexpected_count, failing[:20]))
            if not o.success:
                if o.title.startswith("retrieval"):
                    detail = f"{rep.self_top1:.1%} of {rep.sample_size} sampled chunks found themselves as top-1"
                elif id_col == "batch_id":
                    bad = per_batch[per_batch["batch_id"].isin(failing)]
                    detail = ", ".join(f"batch {r.batch_id}: {r.chunks} chunks, {r.vectors} vectors, {r.matched} current" for r in bad.head(5).itertuples())
                else:
                    detail = f"{o.unexpected_count or len(failing)} rows, e.g. {', '.join(failing[:3])}"
                rep.reasons.append(f"{o.title} FAILED ({detail})")
    rep.seconds = time.perf_counter() - t0
    return rep


# -- the retrieval-parity gate -------------------------------------------------------------
_SENTENCE_END = None


def query_sentence(text: str, rng: random.Random, min_chars: int = 20) -> str:
    """A held-out query cut from a chunk: one of its sentences (>= min_chars), else its middle half."""
    import re

    global _SENTENCE_END
    if _SENTENCE_END is None:
        _SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n+")
    parts = [p.strip() for p in _SENTENCE_END.split(text) if len(p.strip()) >= min_chars]
    parts = [p for p in parts if p != text.strip()] or parts
    if parts:
        return parts[rng.randrange(len(parts))]
    n = len(text)
    return text[n // 4: max(n // 4 + 1, 3 * n // 4)]


def same_model(a, b) -> bool:
    """Same weights and configuration: the vectors differ only by how the model is run."""
    return (a.weights_fingerprint, a.dims, a.normalize, a.max_seq_length) == (b.weights_fingerprint, b.dims, b.normalize, b.max_seq_length)


def parity_reference(registry: VersionRegistry, version: EmbedVersion) -> EmbedVersion | None:
    """The fp32 version of the same model to compare an onnx version with: the active one if it is
    that model, else the newest validated/active/retired one; None when there is none (the gate
    then encodes an fp32 reference in memory)."""
    candidates = [v for v in registry.all() if v.name != version.name and not v.quantized and same_model(v, version)
                  and v.status in ("active", "validated", "retired")]
    for v in candidates:
        if v.status == "active":
            return v
    return max(candidates, key=lambda v: v.validated_at or "", default=None)


def needs_parity(version: EmbedVersion) -> bool:
    return version.backend != "torch"


def _topk(store: LanceStore, table: str, queries: np.ndarray, k: int, normalize: bool, *, keep: set[str] | None = None, scan_rows: int = 16384) -> tuple[np.ndarray, int]:
    """Chunk ids of each query's k nearest rows in `table` (streamed), and the rows searched."""
    nq = len(queries)
    best_s = np.full((nq, 0), -np.inf, np.float32)
    best_i = np.empty((nq, 0), dtype=object)
    dims = store.open(table).schema.field("vector").type.list_size
    qn = (queries * queries).sum(axis=1) if not normalize else None
    seen = 0
    for rb in store.scan_batches(table, ["chunk_id", "vector"], batch_size=scan_rows):
        if len(rb) == 0:
            continue
        ids = np.asarray(rb.column(0).to_pylist(), dtype=object)
        vecs = _vectors(rb, dims)
        if keep is not None:
            m = np.fromiter((i in keep for i in ids), dtype=bool, count=len(ids))
            ids, vecs = ids[m], vecs[m]
            if not len(ids):
                continue
        seen += len(ids)
        sims = queries @ vecs.T if normalize else -(qn[:, None] - 2 * (queries @ vecs.T) + (vecs * vecs).sum(axis=1)[None, :])
        sims = np.nan_to_num(sims, nan=-np.inf)
        all_s = np.concatenate([best_s, sims.astype(np.float32)], axis=1)
        all_i = np.concatenate([best_i, np.broadcast_to(ids, (nq, len(ids)))], axis=1)
        kk = min(k, all_s.shape[1])
        part = np.argpartition(-all_s, kk - 1, axis=1)[:, :kk]
        best_s = np.take_along_axis(all_s, part, axis=1)
        best_i = np.take_along_axis(all_i, part, axis=1)
    order = np.argsort(-best_s, axis=1, kind="stable")
    return np.take_along_axis(best_i, order, axis=1), seen


def _stored_vectors(store: LanceStore, table: str, ids: list[str]) -> dict[str, np.ndarray]:
    from .ids import in_filter

    out: dict[str, np.ndarray] = {}
    for i in range(0, len(ids), 500):
        for r in store.scan(table, ["chunk_id", "vector"], filter=in_filter("chunk_id", ids[i:i + 500])).to_pylist():
            out[r["chunk_id"]] = np.asarray(r["vector"], dtype=np.float32)
    return out


def parity_gate(
    store: LanceStore,
    version: EmbedVersion,
    reference: EmbedVersion | None,
    *,
    queries: int = PARITY_QUERIES,
    seed: int = 0,
    k: int = 10,
    min_recall: float = MIN_RECALL_AT_10,
    pool_size: int = 1000,
) -> ParityReport:
    """Retrieval parity of `version` against its fp32 reference (see the module docstring)."""
    from dataclasses import replace as _replace

    from .embedding import encode
    from .ids import in_filter

    t0 = time.perf_counter()
    chunks = store.scan(CHUNKS, ["chunk_id"])
    all_ids = chunks["chunk_id"].to_pylist()
    rng = random.Random(seed)
    q_ids = sorted(rng.sample(all_ids, min(queries, len(all_ids))))
    # The reference's queries (and, without a reference table, its pool) are encoded by the fp32
    # ONNX export of the model: the same vectors as torch (cosine >= 0.9999, checked below on
    # the stored vectors when the reference table is torch's), and an onnx reindex never loads torch.
    ref_model = _replace(reference.model if reference is not None else version.model, backend="onnx", quantization="")
    rep = ParityReport(version.name, reference.name if reference is not None else "", queries=len(q_ids))
    rep.min_cosine = MIN_PARITY_COSINE if not version.quantized else None
    if not q_ids or not store.has_table(version.table):
        rep.seconds = time.perf_counter() - t0
        return rep
    texts = {r["chunk_id"]: r["text"] for r in store.scan(CHUNKS, ["chunk_id", "text"], filter=in_filter("chunk_id", q_ids)).to_pylist()}
    q_texts = [query_sentence(texts[i], random.Random(f"{seed}:{i}")) for i in q_ids]
    qv = encode(version.model, q_texts)
    # an fp32 onnx version *is* the reference's runtime: its query vectors serve both sides
    qr = qv if ref_model == version.model else encode(ref_model, q_texts)

    if reference is not None and store.has_table(reference.table):
        keep = None
        cand_top, rep.pool = _topk(store, version.table, qv, k, version.normalize)
        ref_top, _ = _topk(store, reference.table, qr, k, reference.normalize)
        ref_vecs = _stored_vectors(store, reference.table, q_ids)
    else:
        # No fp32 table of this model: an in-memory reference over a pool of chunks (the queries' own + a sample).
        rest = [i for i in all_ids if i not in set(q_ids)]
        pool = sorted(set(q_ids) | set(rng.sample(rest, min(len(rest), max(0, pool_size - len(q_ids))))))
        keep = set(pool)
        pool_texts = {r["chunk_id"]: r["text"] for j in range(0, len(pool), 500)
                      for r in store.scan(CHUNKS, ["chunk_id", "text"], filter=in_filter("chunk_id", pool[j:j + 500])).to_pylist()}
        pv = encode(ref_model, [pool_texts[i] for i in pool])
        rep.reference = f"fp32 {ref_model.backend} of the same model (in memory, {len(pool)}-chunk pool)"
        cand_top, rep.pool = _topk(store, version.table, qv, k, version.normalize, keep=keep)
        sims = qr @ pv.T if ref_model.normalize else -((qr[:, None, :] - pv[None, :, :]) ** 2).sum(axis=2)
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        ref_top = np.asarray(pool, dtype=object)[order]
        ref_vecs = {i: v for i, v in zip(pool, pv) if i in set(q_ids)}
    kk = max(1, min(k, rep.pool))
    # recall@10 as ann-benchmarks counts it: a returned chunk is a true neighbour when its
    # reference distance is within (1 + epsilon) of the reference's 10th distance, so exact
    # duplicates and ties (templated texts have many) are not counted as misses.
    need = sorted({i for row in cand_top for i in row} | {i for row in ref_top for i in row})
    if reference is not None and store.has_table(reference.table):
        rv = _stored_vectors(store, reference.table, need)
    else:
        rv = {i: v for i, v in zip(pool, pv)}

    def dist(q: np.ndarray, cid) -> float:
        v = rv.get(cid)
        if v is None:
            return np.inf
        return float(1.0 - q @ v) if ref_model.normalize else float(np.linalg.norm(q - v))

    recalls, strict = [], []
    for q, a, b in zip(qr, cand_top, ref_top):
        kth = max(dist(q, c) for c in b[:kk])
        recalls.append(sum(dist(q, c) <= kth * (1 + RECALL_EPSILON) + 1e-6 for c in a[:kk]) / kk)
        strict.append(len(set(a[:kk]) & set(b[:kk])) / kk)
    rep.recall_at_10 = float(np.mean(recalls))
    rep.recall_at_10_strict = float(np.mean(strict))
    rep.top1_agreement = float(np.mean([a[0] == b[0] for a, b in zip(cand_top, ref_top)]))
    rep.hit_at_10 = float(np.mean([q in set(a) for q, a in zip(q_ids, cand_top)]))
    rep.reference_hit_at_10 = float(np.mean([q in set(b) for q, b in zip(q_ids, ref_top)]))
    rep.self_top1 = float(np.mean([a[0] == q for q, a in zip(q_ids, cand_top)]))
    rep.reference_self_top1 = float(np.mean([b[0] == q for q, b in zip(q_ids, ref_top)]))
    mine = _stored_vectors(store, version.table, q_ids)
    cos = []
    for i in q_ids:
        a, b = mine.get(i), ref_vecs.get(i)
        if a is not None and b is not None:
            cos.append(float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)))
    if cos:
        rep.cosine_mean, rep.cosine_min = float(np.mean(cos)), float(np.min(cos))
    if rep.recall_at_10 < min_recall:
        rep.reasons.append(f"retrieval parity FAILED (recall@10 {rep.recall_at_10:.3f} < {min_recall:.2f} against {rep.reference}, {rep.queries} queries)")
    if rep.min_cosine is not None and rep.cosine_min is not None and rep.cosine_min < rep.min_cosine:
        rep.reasons.append(f"vector parity FAILED (min cosine {rep.cosine_min:.5f} < {rep.min_cosine} to {rep.reference}; an fp32 backend must reproduce its vectors)")
    rep.seconds = time.perf_counter() - t0
    return rep


# -- reindex -------------------------------------------------------------------------------
@dataclass
class BatchProgress:
    index: int  # 1-based
    batches: int
    batch_id: str
    chunks: int
    embedded: int
    skipped: int
    stale_removed: int
    seconds: float
    done_chunks: int  # chunks processed so far (embedded or already present)
    total_chunks: int
    embedded_so_far: int
    elapsed: float

    @property
    def chunks_per_second(self) -> float:
        return self.embedded_so_far / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta_seconds(self) -> float:
        rate = self.chunks_per_second
        left = self.total_chunks - self.done_chunks
        return left / rate if rate > 0 and left > 0 else 0.0

    def line(self) -> str:
        return (
            f"[{self.index}/{self.batches}] batch {self.batch_id}: {self.chunks} chunks, {self.embedded} embedded, "
            f"{self.skipped} already present, {self.stale_removed} stale removed | overall {self.done_chunks}/{self.total_chunks} chunks, "
            f"{self.chunks_per_second:.1f} chunks/s, ETA {self.eta_seconds:.0f}s"
        )


@dataclass
class ReindexResult:
    version: str
    previous_active: str | None
    status: str  # the version's status at the end
    activated: bool
    batches: int = 0
    chunks: int = 0
    embedded: int = 0
    skipped: int = 0
    stale_removed: int = 0
    embed_seconds: float = 0.0
    encode_seconds: float = 0.0
    validate_seconds: float = 0.0
    seconds: float = 0.0
    validation: ValidationReport | None = None
    per_batch: list[dict] = field(default_factory=list)
    gate_reused: bool = False  # nothing changed since the gate last passed: its result was reused

    @property
    def embedded_per_second(self) -> float:
        return self.embedded / self.embed_seconds if self.embed_seconds > 0 else 0.0

    @property
    def chunks_per_second_total(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["embedded_per_second"] = round(self.embedded_per_second, 2)
        return d

    def summary_markdown(self) -> str:
        head = (
            f"**{self.version}**: {self.batches} batches, {self.chunks} chunks, {self.embedded} embedded now, "
            f"{self.skipped} already present, {self.stale_removed} stale removed; "
            f"{self.embedded_per_second:.1f} chunks/s embedding, {self.seconds:.1f}s total. "
            f"Status **{self.status}**" + (f" (was active: {self.previous_active})" if self.activated else "") + "."
        )
        if self.gate_reused and self.validation is not None:
            head += (f"\n\n**Validation gate**: nothing changed since it last passed on this exact state "
                     f"(same Lance versions of `chunks` and the version's table), so that result stands: "
                     f"{self.validation.vectors} vectors, self top-1 {self.validation.self_top1:.1%}.")
            if self.validation.parity is not None:
                head += "\n\n" + self.validation.parity.summary_markdown()
        elif self.validation is not None:
            head += "\n\n**Validation gate**\n\n" + self.validation.summary_markdown()
            if self.validation.reasons:
                head += "\n\n**Activation refused**: " + "; ".join(self.validation.reasons)
        return head


def _batch_counts(store: LanceStore) -> dict[str, int]:
    t = store.scan(CHUNKS, ["batch_id"])
    if t.num_rows == 0:
        return {}
    vc = pc.value_counts(t["batch_id"])
    return dict(sorted(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist())))


def reindex(
    store: LanceStore,
    ledger: Ledger,
    spec: EmbedVersionSpec | str,
    *,
    activate: bool = True,
    batch_size: int = 32,
    write_rows: int = 1024,
    window: int = 2048,
    sample_size: int = 100,
    parity_queries: int = PARITY_QUERIES,
    on_registered: Callable[[str], None] | None = None,
    on_batch: Callable[[BatchProgress, Any], None] | None = None,
    embed_progress: Callable[[int, int, float], None] | None = None,
) -> ReindexResult:
    """Register/check, embed every batch, validate, and activate in one ledger transaction.

    Resumable: each batch is embedded incrementally (chunk_id + content sha256), so a re-run
    after a kill embeds only what is missing and writes no duplicate; the active version is
    only touched by the final `activate`. Raises ValidationFailed (version left `building`)
    when the gate refuses.
    """
    from .pipeline import embed_batches

    t0 = time.perf_counter()
    registry = VersionRegistry(ledger)
    if isinstance(spec, str):
        version = registry.require(spec)
        if on_registered:
            on_registered(version.name)
    else:
        version, _ = register_version(registry, spec, on_registered)
    active = registry.active()
    is_active = active is not None and active.name == version.name
    if active is not None and not is_active and (active.chunk_size, active.chunk_overlap) != (version.chunk_size, version.chunk_overlap):
        raise VersionConflict(
            f"embed_version {version.name!r} declares chunker ({version.chunk_size}, {version.chunk_overlap}) but the stored chunks "
            f"were cut with the active version's ({active.chunk_size}, {active.chunk_overlap}); chunks are shared by all versions, "
            "so a version must keep the active chunker parameters (vary the model or its configuration instead)"
        )
    if not is_active:
        version = registry.transition(version.name, "building")
    out = ReindexResult(version.name, active.name if active else None, version.status, False)

    counts = _batch_counts(store)
    total = sum(counts.values())
    done_batches: set[str] = set()
    t_embed = time.perf_counter()
    # A second pass picks up batches ingested while the first pass ran.
    for _ in range(3):
        todo = [b for b in counts if b not in done_batches]
        if not todo:
            break

        def finished(r) -> None:
            done_batches.add(r.batch_id)
            out.batches += 1
            out.chunks += r.chunks
            out.embedded += r.embedded
            out.skipped += r.skipped
            out.stale_removed += r.stale_removed
            out.encode_seconds += r.encode_seconds
            out.per_batch.append({"batch_id": r.batch_id, "chunks": r.chunks, "embedded": r.embedded, "skipped": r.skipped, "stale_removed": r.stale_removed, "seconds": round(r.seconds, 3)})
            if on_batch is not None:
                elapsed = time.perf_counter() - t_embed
                on_batch(BatchProgress(out.batches, max(len(counts), out.batches), r.batch_id, r.chunks, r.embedded, r.skipped, r.stale_removed,
                                       r.seconds, out.chunks, max(total, out.chunks), out.embedded, elapsed), r)

        # One length-sorted encode stream over windows of several batches, written per batch.
        embed_batches(store, version, todo, batch_size=batch_size, write_rows=write_rows, window=window, progress=embed_progress, on_batch=finished)
        counts = _batch_counts(store)
        total = sum(counts.values())
    # Vectors of batches that no longer have chunks (e.g. erased) are stale too.
    gone = [b for b in store.scan(version.table, ["batch_id"])["batch_id"].unique().to_pylist() if b not in counts] if store.has_table(version.table) else []
    for b in gone:
        out.stale_removed += store.delete_ids(version.table, "chunk_id", store.batch_rows(version.table, b, ["chunk_id"])["chunk_id"].to_pylist())
    out.embed_seconds = time.perf_counter() - t_embed

    version = registry.require(version.name)
    reference = parity_reference(registry, version) if needs_parity(version) else None
    state = gate_state(store, version, sample_size, reference=reference, parity_queries=parity_queries if needs_parity(version) else 0)
    prior = None
    if version.status in ("validated", "active") and out.embedded == 0 and out.stale_removed == 0:
        prior = _last_gate(ledger, version.name, state)
    if prior is not None:
        # Nothing was written and neither table has a new Lance version since the gate last
        # passed on this exact state: its result still holds, and re-running it would cost a
        # full scan of the vectors plus the retrieval sample for an identical answer.
        rep = ValidationReport(version.name, batches=prior.batches, chunks=prior.chunks, vectors=prior.vectors, sample_size=prior.sample_size,
                               self_top1=1.0 if prior.self_top1 is None else prior.self_top1)
        if prior.parity:
            rep.parity = ParityReport(version.name, **{k: v for k, v in prior.parity.items() if k in ParityReport.__dataclass_fields__})
        out.gate_reused = True
    else:
        rep = validate_version(store, version, sample_size=sample_size)
        if needs_parity(version):
            rep.parity = parity_gate(store, version, reference, queries=parity_queries)
            rep.reasons += rep.parity.reasons
            rep.seconds += rep.parity.seconds
            events.record(ledger, events.EmbedVersionParity(name=version.name, backend=version.backend, passed=rep.parity.passed,
                                                            reasons=rep.parity.reasons, figures=rep.parity.figures()))
    out.validation = rep
    out.validate_seconds = rep.seconds
    if not rep.passed:
        out.status = version.status
        out.seconds = time.perf_counter() - t0
        events.record(ledger, events.EmbedVersionValidationFailed(name=version.name, reasons=rep.reasons[:10], chunks=rep.chunks, vectors=rep.vectors,
                                                                  parity=rep.parity.figures() if rep.parity is not None else None))
        raise ValidationFailed(version.name, rep)
    if not is_active:
        version = registry.transition(version.name, "validated")
        if activate:
            version = registry.activate(version.name, reason="activate")
            out.activated = True
    out.status = version.status
    out.seconds = time.perf_counter() - t0
    events.record(ledger, events.EmbedVersionReindex(
        name=version.name, previous=out.previous_active, activated=out.activated, batches=out.batches, chunks=out.chunks,
        embedded=out.embedded, skipped=out.skipped, stale_removed=out.stale_removed, seconds=round(out.seconds, 3),
        chunks_per_second=round(out.embedded_per_second, 2), self_top1=rep.self_top1, sample_size=rep.sample_size,
        vectors=rep.vectors, gate_reused=out.gate_reused, gate_state=state, backend=version.backend,
        parity=rep.parity.figures() if rep.parity is not None else None,
    ))
    return out


def gate_state(store: LanceStore, version, sample_size: int, *, reference=None, parity_queries: int = 0) -> dict:
    """What the gate's answer depends on: both tables' Lance versions (any write, delete or
    purge makes a new one), the weights, and the gate's own parameters (with the parity gate:
    its reference version and that table's Lance version)."""
    def lance_version(name: str) -> int | None:
        return store.dataset(name).version if store.has_table(name) else None

    state = {"chunks_version": lance_version(CHUNKS), "table_version": lance_version(version.table),
             "weights_fingerprint": version.weights_fingerprint, "sample_size": sample_size, "min_self_top1": MIN_SELF_TOP1}
    if parity_queries:
        state.update(params_hash=version.params_hash, parity_queries=parity_queries, min_recall_at_10=MIN_RECALL_AT_10,
                     reference=reference.name if reference is not None else None,
                     reference_table_version=lance_version(reference.table) if reference is not None else None)
    return state


def _last_gate(ledger: Ledger, name: str, state: dict) -> events.EmbedVersionReindex | None:
    """The newest passed gate of `name` recorded on exactly `state`, if it is the newest event
    about that version (no rollback, retirement or failed gate since)."""
    for e in reversed(ledger.events("embed_version.")):
        if e.details.get("name") != name:
            continue
        if e.action == events.EmbedVersionReindex.ACTION:
            run = events.EmbedVersionReindex.from_payload(e.details, e.action)
            return run if run.gate_state == state else None
        return None
    return None


@dataclass
class RollbackResult:
    version: str  # re-activated
    previous: str | None  # the version that was active
    embedded: int  # catch-up vectors for chunks ingested after the switch
    validation: ValidationReport | None = None

    def summary_markdown(self) -> str:
        s = f"Re-activated **{self.version}** (was **{self.previous}**); {self.embedded} chunks embedded to catch up."
        if self.validation is not None:
            s += "\n\n" + self.validation.summary_markdown()
        return s


def rollback(store: LanceStore, ledger: Ledger, to_version: str | None = None, *, batch_size: int = 32, sample_size: int = 100) -> RollbackResult:
    """Re-activate the previous (or named) version, whose vectors were kept.

    Chunks ingested after the switch were embedded only under the newer version, so the
    target is caught up incrementally (usually nothing) and passes the same gate first.
    """
    from .pipeline import embed_batches

    registry = VersionRegistry(ledger)
    current = registry.active()
    target = registry.require(to_version) if to_version else registry.previous_active()
    if target is None:
        raise VersionConflict("no previous embed_version to roll back to")
    if current is not None and target.name == current.name:
        return RollbackResult(target.name, current.name, 0)
    if target.status not in ("retired", "validated"):
        raise VersionConflict(f"embed_version {target.name!r} is {target.status}; only a retired or validated version can be re-activated")
    embedded = sum(r.embedded for r in embed_batches(store, target, list(_batch_counts(store)), batch_size=batch_size))
    rep = validate_version(store, target, sample_size=sample_size)
    if not rep.passed:
        raise ValidationFailed(target.name, rep)
    registry.activate(target.name, reason="rollback")
    return RollbackResult(target.name, current.name if current else None, embedded, rep)
