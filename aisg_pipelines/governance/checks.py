"""Data-quality checks of the stored tables (plain; the Dagster asset checks call these)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow.compute as pc

from .quality import Expect, ExpectationOutcome, QualityResult, validate
from .store import CHUNKS, DOCUMENTS, LanceStore


def check_documents(store: LanceStore, batch_id: str | None) -> QualityResult:
    cols = ["doc_id", "subject_id"]
    df = (store.batch_rows(DOCUMENTS, batch_id, cols) if batch_id else store.scan(DOCUMENTS, cols)).to_pandas()
    return validate(
        df,
        [
            Expect("ExpectColumnValuesToBeUnique", {"column": "doc_id"}, "doc_id is unique"),
            Expect("ExpectColumnValuesToNotBeNull", {"column": "subject_id"}, "subject_id is not null"),
        ],
        "doc_id",
    )


def check_documents_pii_free(store: LanceStore, batch_id: str | None, scrubber) -> tuple[QualityResult, dict[str, int]]:
    cols = ["doc_id", "text"]
    rows = (store.batch_rows(DOCUMENTS, batch_id, cols) if batch_id else store.scan(DOCUMENTS, cols)).to_pylist()
    failing, by_type = [], Counter()
    for r in rows:
        # The scrubber's own detector and threshold: anything scrub() would replace is a leak.
        hits = scrubber.detect(r["text"] or "")
        if hits:
            failing.append(r["doc_id"])
            by_type.update(h.entity_type for h in hits)
    outcome = ExpectationOutcome("scrubbed text has no PII the scrubber detects", not failing, len(failing), sorted(failing))
    return QualityResult([outcome]), dict(by_type)


def check_chunks(store: LanceStore, batch_id: str | None) -> QualityResult:
    cols = ["chunk_id", "doc_id", "text"]
    tbl = store.batch_rows(CHUNKS, batch_id, cols) if batch_id else store.scan(CHUNKS, cols)
    doc_ids = store.scan(DOCUMENTS, ["doc_id"])["doc_id"]
    df = tbl.to_pandas()
    df["doc_exists"] = pc.is_in(tbl["doc_id"], value_set=doc_ids).to_numpy(zero_copy_only=False)
    df["text_len"] = [len((t or "").strip()) for t in df["text"]]
    return validate(
        df.drop(columns=["text"]),
        [
            Expect("ExpectColumnValuesToBeUnique", {"column": "chunk_id"}, "chunk_id is unique"),
            Expect("ExpectColumnValuesToBeInSet", {"column": "doc_exists", "value_set": [True]}, "every chunk's document exists"),
            Expect("ExpectColumnValuesToBeBetween", {"column": "text_len", "min_value": 1}, "no empty text"),
        ],
        "chunk_id",
    )


def vector_row_expectations(version, norm_tolerance: float = 1e-3) -> list[Expect]:
    """Per-vector rules shared by the embeddings asset check and the reindex validation gate.

    Over a frame with columns chunk_id, dims, has_nan and norm (see `nan_and_norms`).
    """
    out = [
        Expect("ExpectColumnValuesToBeUnique", {"column": "chunk_id"}, "no duplicate chunk_id"),
        Expect("ExpectColumnValuesToBeInSet", {"column": "dims", "value_set": [version.dims]}, f"dims = {version.dims}"),
        Expect("ExpectColumnValuesToBeInSet", {"column": "has_nan", "value_set": [False]}, "no NaN"),
    ]
    if version.normalize:
        out.append(Expect("ExpectColumnValuesToBeBetween", {"column": "norm", "min_value": 1 - norm_tolerance, "max_value": 1 + norm_tolerance}, "L2 norm ≈ 1"))
    return out


def nan_and_norms(vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: whether it holds a NaN, and its L2 norm (-1 where it holds a NaN)."""
    has_nan = np.isnan(vecs).any(axis=1)
    return has_nan, np.where(has_nan, -1.0, np.linalg.norm(np.nan_to_num(vecs), axis=1))


def check_embeddings(store: LanceStore, version, batch_id: str | None, norm_tolerance: float = 1e-3) -> QualityResult:
    """One row per chunk of the batch, dims match the version, L2 norm ~ 1 (if normalised), no NaN."""
    ecols = ["chunk_id", "vector"]
    vt = store.batch_rows(version.table, batch_id, ecols) if batch_id else store.scan(version.table, ecols)
    ct = store.batch_rows(CHUNKS, batch_id, ["chunk_id"]) if batch_id else store.scan(CHUNKS, ["chunk_id"])
    df = vt.select(["chunk_id"]).to_pandas()
    vec_type = vt.schema.field("vector").type if vt.num_rows or "vector" in vt.schema.names else None
    dims = getattr(vec_type, "list_size", None)
    if vt.num_rows:
        arr = np.asarray(vt["vector"].combine_chunks().flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(vt.num_rows, -1)
        df["has_nan"], df["norm"] = nan_and_norms(arr)
    else:
        df["has_nan"], df["norm"] = [], []
    df["dims"] = dims if dims is not None else -1
    expectations = [
        Expect("ExpectTableRowCountToEqual", {"value": ct.num_rows}, f"one row per chunk ({ct.num_rows})"),
        *vector_row_expectations(version, norm_tolerance),
    ]
    result = validate(df, expectations, "chunk_id")
    missing = pc.invert(pc.is_in(ct["chunk_id"], value_set=vt["chunk_id"])) if ct.num_rows else None
    if missing is not None and pc.any(missing).as_py():
        ids = ct["chunk_id"].filter(missing).to_pylist()
        result.outcomes[0].failing_ids = sorted(ids)[:200]
    return result
