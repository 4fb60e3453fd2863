"""The embedding model on disk: its spec, weights fingerprint, name and dims, and the torch loader.

The layer under both runtimes: `embedding.py` (encoding, either backend) and `onnx_backend.py`
(exports of these weights) import it, and it imports neither. torch and sentence-transformers
are imported inside `load_model` only.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..settings import enforce_offline

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model")


@dataclass(frozen=True)
class ModelSpec:
    path: str
    max_seq_length: int = 256
    normalize: bool = True
    backend: str = "torch"  # torch | onnx | onnx-int8
    quantization: str = ""  # canonical JSON of the onnx-int8 settings (onnx_backend.canonical_quantization)

    @property
    def is_onnx(self) -> bool:
        return self.backend != "torch"


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


def model_dims_from_config(path: str) -> int:
    """Read dims from the sentence-transformers pooling config, without loading torch."""
    pooling = Path(path) / "1_Pooling" / "config.json"
    if pooling.exists():
        return int(json.loads(pooling.read_text())["word_embedding_dimension"])
    cfg = Path(path) / "config.json"
    return int(json.loads(cfg.read_text())["hidden_size"])
