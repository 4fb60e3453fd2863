"""Encoding with the embedding model (the model files, fingerprint and torch loader: models.py).

torch and sentence-transformers cost seconds to import, so they are imported here inside
functions only; the Dagster code location never imports them at load time.

A ModelSpec's `backend` picks the runtime: `torch` (sentence-transformers), or `onnx` /
`onnx-int8` (onnxruntime on a local export of the same weights, `onnx_backend.py`). Every
backend goes through the same token-length-sorted mini-batches.
"""

from __future__ import annotations

import numpy as np

from .models import (  # noqa: F401 - the model API is used through embedding too
    WEIGHT_SUFFIXES, ModelSpec, load_model, model_dims_from_config, model_name, weights_fingerprint,
)


def _onnx(spec: ModelSpec):
    from .onnx_backend import get_encoder

    return get_encoder(spec.path, spec.backend, spec.quantization, spec.max_seq_length)


def model_dims(spec: ModelSpec) -> int:
    if spec.is_onnx:
        return model_dims_from_config(spec.path)
    m = load_model(spec)
    get = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
    return int(get())


def token_lengths(spec: ModelSpec, texts: list[str]) -> np.ndarray:
    """Tokens per text after truncation to max_seq_length (special tokens included)."""
    if spec.is_onnx:
        return _onnx(spec).tokenizer.lengths(texts)
    model = load_model(spec)
    enc = model.tokenizer(
        list(texts), truncation=True, max_length=model.max_seq_length, return_attention_mask=False, return_token_type_ids=False
    )
    return np.fromiter((len(ids) for ids in enc["input_ids"]), dtype=np.int64, count=len(texts))


def encode(spec: ModelSpec, texts: list[str], batch_size: int = 32, *, on_step=None) -> np.ndarray:
    """Vectors for `texts`, in order, as float32 (n, dims).

    Mini-batches are formed by *token* count, not by character count: SentenceTransformer's
    own `encode` sorts by `len(text)`, which for mixed Korean/English chunks correlates
    poorly with the token count (r ~ 0.35 on our sample data): on 3000 sample chunks it makes
    the model process 756k (padded) tokens where a token-length sort processes 531k. So the texts are tokenized once to get their lengths, sorted
    longest first, and each mini-batch of `batch_size` goes through `model.encode` on its own
    (one mini-batch per call, so its internal sort does not reorder across mini-batches).
    The vectors are the same (max abs difference ~2e-7 from padding numerics).
    `on_step()` is called after every mini-batch (the embed pipeline uses it to collect
    write acknowledgements while the model keeps working).
    """
    if not texts:
        return np.zeros((0, model_dims(spec)), dtype=np.float32)
    if spec.is_onnx:
        return _encode_onnx(spec, texts, batch_size, on_step)
    model = load_model(spec)
    kw = dict(normalize_embeddings=spec.normalize, convert_to_numpy=True, show_progress_bar=False)
    if len(texts) <= batch_size:
        vecs = np.asarray(model.encode(list(texts), batch_size=batch_size, **kw), dtype=np.float32)
        if on_step is not None:
            on_step()
        return vecs
    order = np.argsort(-token_lengths(spec, texts), kind="stable")
    out: np.ndarray | None = None
    for start in range(0, len(texts), batch_size):
        idx = order[start:start + batch_size]
        vecs = model.encode([texts[i] for i in idx], batch_size=len(idx), **kw)
        if out is None:
            out = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
        out[idx] = vecs
        if on_step is not None:
            on_step()
    return out


def _encode_onnx(spec: ModelSpec, texts: list[str], batch_size: int, on_step) -> np.ndarray:
    """The same token-length-sorted mini-batches on onnxruntime (tokenized once, padded per batch)."""
    enc = _onnx(spec)
    encs = enc.tokenizer.encode(texts)
    order = np.argsort(-np.fromiter((len(e.ids) for e in encs), dtype=np.int64, count=len(encs)), kind="stable")
    out: np.ndarray | None = None
    for start in range(0, len(texts), batch_size):
        idx = order[start:start + batch_size]
        vecs = enc.encode_encodings([encs[i] for i in idx])
        if spec.normalize:
            norms = np.linalg.norm(vecs, axis=1, keepdims=True)
            vecs = vecs / np.maximum(norms, 1e-12)
        if out is None:
            out = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
        out[idx] = vecs
        if on_step is not None:
            on_step()
    return out
