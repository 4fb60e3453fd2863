"""Loading the embedding model offline, fingerprinting its weights, and encoding.

torch and sentence-transformers cost seconds to import, so they are imported here inside
functions only; the Dagster code location never imports them at load time.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..settings import enforce_offline

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model")


@dataclass(frozen=True)
class ModelSpec:
    path: str
    max_seq_length: int = 256
    normalize: bool = True


@functools.lru_cache(maxsize=8)
def _fingerprint_cached(path: str, stamp: tuple) -> str:
    h = hashlib.sha256()
    root = Path(path)
    for f in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES):
        h.update(str(f.relative_to(root)).encode())
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def weights_fingerprint(path: str) -> str:
    """sha256 over the model directory's weight and config files (cached per mtime)."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"model directory {path} does not exist")
    stamp = tuple(sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()))
    return _fingerprint_cached(str(root.resolve()), stamp)


def model_name(path: str) -> str:
    """Human name from the directory (README/config), e.g. sentence-transformers/all-MiniLM-L6-v2."""
    readme = Path(path) / "README.md"
    if readme.exists():
        for line in readme.read_text(encoding="utf-8", errors="replace").splitlines():
            if "sentence-transformers/" in line:
                import re

                m = re.search(r"sentence-transformers/[A-Za-z0-9._-]+", line)
                if m:
                    return m.group(0)
    return Path(path).resolve().name


@functools.lru_cache(maxsize=4)
def load_model(spec: ModelSpec):
    enforce_offline()
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    transformers.utils.logging.disable_progress_bar()  # one "Loading weights" bar per load floods run logs

    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = SentenceTransformer(spec.path, device="cpu", local_files_only=True)
    model.max_seq_length = spec.max_seq_length
    return model


def model_dims(spec: ModelSpec) -> int:
    m = load_model(spec)
    get = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
    return int(get())


def encode(spec: ModelSpec, texts: list[str], batch_size: int = 32) -> np.ndarray:
    if not texts:
        return np.zeros((0, model_dims(spec)), dtype=np.float32)
    model = load_model(spec)
    vecs = model.encode(
        texts,
        batch_size=batch_size,
        normalize_embeddings=spec.normalize,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.asarray(vecs, dtype=np.float32)
