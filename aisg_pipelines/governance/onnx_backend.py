"""ONNX Runtime backends for embed_versions: `onnx` (fp32) and `onnx-int8` (quantized).

The sentence-transformers model (transformer + its own pooling/normalize modules) is exported
locally from the bundled weights with `torch.onnx.export` (legacy exporter, dynamic batch and
sequence axes), and int8 models are quantized from that export with onnxruntime's quantizer.
No network: everything is built from the model directory on disk.

Exports are cached under `<data dir>/models/onnx/<key>/` where `key` hashes the weights'
fingerprint, the backend, the opset, the export format and the quantization settings (the
same values that go into the version's fingerprint). A build is written into a temporary
directory next to the cache and renamed into place in one step, with a `manifest.json`
(sha256 and size of every file) written last; a cache entry whose manifest is missing,
whose key differs or whose files do not match it is treated as corrupt and rebuilt.
Builds of the same key are serialised with an flock.

Encoding tokenizes with the model's own `tokenizer.json` (the `tokenizers` library, as
sentence-transformers' fast tokenizer does, truncated at max_seq_length) and runs
onnxruntime; torch is imported only when an export has to be built.

torch, onnx and onnxruntime are imported inside functions only (the code location is
imported by every Dagster process).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BACKENDS = ("torch", "onnx", "onnx-int8")
QUANTIZED = ("onnx-int8",)
OPSET = 17
EXPORT_FORMAT = 2  # bump when the export's graph changes (2: eager attention + onnxruntime BERT fusion)
CACHE_ENV = "AISG_MODEL_CACHE_DIR"

# Quantization settings of onnx-int8 (docs/benchmarks.md "ONNX Runtime backends" lists what was
# tried and what each gave). The default is `matmul_nbits`: every weight MatMul becomes
# onnxruntime's MatMulNBits with 8-bit weights quantized per block of `block_size` input
# channels, run with int8 compute (accuracy_level 4), which quantizes the activations per block
# too, so GELU/LayerNorm outlier channels no longer set one scale for a whole tensor: mean cosine
# 0.9993 to fp32 and recall@10 0.98 where the best per-tensor-activation setting (`dynamic`,
# per-channel, FFN down-projections fp32) reached 0.996 and 0.90. The fused Attention's Q/K/V
# projections stay fp32 (MatMulNBits cannot replace them inside Attention).
QUANT_METHODS = ("matmul_nbits", "dynamic", "static")
NBITS_DEFAULTS: dict = {
    "method": "matmul_nbits",
    "block_size": 128,  # input channels per weight scale (and per activation scale at accuracy_level 4); 32: slower, recall 0.987
    "accuracy_level": 4,  # 4 = int8 compute; 0 = dequantize the weights and compute in fp32
    "exclude_layers": [],  # encoder layer indices whose MatMuls stay fp32
    "exclude_nodes": [],  # node-name patterns (regex, searched) that stay fp32
}
# onnxruntime's quantize_dynamic / quantize_static (MatMulInteger / QDQ: per-tensor activations);
# kept for existing versions and comparisons, none passed the gate on the sample corpus.
QUANT_DEFAULTS: dict = {
    "method": "dynamic",  # dynamic | static (static: QDQ, MinMax calibration on `calibration_texts` sample texts)
    "weight_type": "QInt8",  # QInt8 | QUInt8
    "per_channel": True,  # per-tensor weights: mean cosine 0.87 to fp32; per-channel: 0.988
    "reduce_range": False,
    "preprocess": False,  # onnxruntime.quantization.quant_pre_process (shape inference + graph optimisation) first
    # op types quantized ([] = every type the quantizer supports, Gather/embeddings included);
    # Attention = the fused self-attention (its Q/K/V projection weights)
    "op_types": ["Attention", "MatMul"],
    "const_b_only": True,  # quantize only MatMuls with a weight operand; attention's activation x activation MatMuls stay fp32
    "exclude_layers": [],  # encoder layer indices whose MatMuls stay fp32 (sensitive layers)
    # node-name patterns (regex, searched) whose ops stay fp32: the FFN down-projections, whose
    # GELU inputs have outliers that per-tensor u8 activations clip (0.988 -> 0.996 mean cosine).
    # Node names are those of the export (e.g. /model/model.0/encoder/layer.3/output/dense/MatMul).
    "exclude_nodes": [r"layer\.\d+/output/dense"],
    "calibration_texts": 64,  # static only
}


def validate_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, not {backend!r}")
    return backend


def canonical_quantization(backend: str, quantization) -> str:
    """The quantization settings of a version as canonical JSON ("" for fp32 backends).

    `quantization` is a mapping (from embed_versions.yaml), a JSON string, or empty; unknown
    keys are refused; the method's defaults fill the rest, so `{}` and the full default spell
    the same version (`{}` is matmul_nbits; `{"method": "dynamic"}` takes QUANT_DEFAULTS).
    """
    validate_backend(backend)
    if isinstance(quantization, str):
        quantization = json.loads(quantization) if quantization.strip() else {}
    quantization = dict(quantization or {})
    if backend not in QUANTIZED:
        if quantization:
            raise ValueError(f"quantization settings apply to {list(QUANTIZED)} only, not backend {backend!r}")
        return ""
    method = quantization.get("method", NBITS_DEFAULTS["method"])
    if method not in QUANT_METHODS:
        raise ValueError(f"quantization method must be one of {list(QUANT_METHODS)}, not {method!r}")
    # each method takes its own keys only, so the canonical JSON of dynamic/static versions is what it was
    defaults = NBITS_DEFAULTS if method == "matmul_nbits" else QUANT_DEFAULTS
    unknown = set(quantization) - set(defaults)
    if unknown:
        which = " for matmul_nbits" if method == "matmul_nbits" else ""
        raise ValueError(f"unknown quantization keys {sorted(unknown)}{which}; allowed: {sorted(defaults)}")
    q = {**defaults, **quantization}
    if method == "matmul_nbits":
        q["block_size"], q["accuracy_level"] = int(q["block_size"]), int(q["accuracy_level"])
        if q["block_size"] not in (16, 32, 64, 128, 256):
            raise ValueError(f"matmul_nbits block_size must be 16, 32, 64, 128 or 256, not {q['block_size']}")
        if q["accuracy_level"] not in (0, 1, 2, 3, 4):
            raise ValueError(f"matmul_nbits accuracy_level must be 0..4, not {q['accuracy_level']}")
    else:
        if q["weight_type"] not in ("QInt8", "QUInt8"):
            raise ValueError(f"quantization weight_type must be QInt8 or QUInt8, not {q['weight_type']!r}")
        q["op_types"] = sorted(str(x) for x in q["op_types"])
        for k in ("per_channel", "reduce_range", "preprocess", "const_b_only"):
            q[k] = bool(q[k])
        q["calibration_texts"] = int(q["calibration_texts"])
    q["exclude_layers"] = sorted(int(x) for x in q["exclude_layers"])
    q["exclude_nodes"] = sorted(str(x) for x in q["exclude_nodes"])
    return json.dumps(q, sort_keys=True, separators=(",", ":"))


def export_meaning(weights_fingerprint: str, backend: str, quantization: str) -> dict:
    """What an export *is*: the cache key and part of the version's fingerprint."""
    return {"weights_fingerprint": weights_fingerprint, "backend": backend, "opset": OPSET, "export_format": EXPORT_FORMAT,
            "quantization": quantization}


def export_key(weights_fingerprint: str, backend: str, quantization: str) -> str:
    return hashlib.sha256(json.dumps(export_meaning(weights_fingerprint, backend, quantization), sort_keys=True).encode()).hexdigest()


def default_cache_dir() -> Path:
    """$AISG_MODEL_CACHE_DIR, else <data dir>/models/onnx."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    from ..settings import Settings

    return Settings.from_env().data_dir / "models" / "onnx"


# -- the cache -----------------------------------------------------------------------------
def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@functools.lru_cache(maxsize=16)
def _verified(dir_: str, key: str, stamp: tuple) -> str | None:
    """None when the entry verifies, else why not (cached per files' size + mtime)."""
    d = Path(dir_)
    mf = d / "manifest.json"
    if not mf.exists():
        return "no manifest (partial export)"
    try:
        manifest = json.loads(mf.read_text())
    except (OSError, ValueError) as exc:
        return f"unreadable manifest: {exc}"
    if manifest.get("key") != key:
        return f"manifest key {manifest.get('key')!r} is not {key!r}"
    files = manifest.get("files") or {}
    if "model.onnx" not in files:
        return "manifest lists no model.onnx"
    for name, want in files.items():
        p = d / name
        if not p.is_file():
            return f"{name} missing"
        if p.stat().st_size != want["size"]:
            return f"{name} has {p.stat().st_size} bytes, manifest says {want['size']}"
        if _sha256_file(p) != want["sha256"]:
            return f"{name} does not match its sha256"
    return None


def verify_export(dir_: Path, key: str) -> str | None:
    """None if `dir_` holds a complete export for `key`, else the reason it does not."""
    d = Path(dir_)
    if not d.is_dir():
        return "missing"
    stamp = tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in d.iterdir() if p.is_file()))
    return _verified(str(d.resolve()), key, stamp)


@dataclass(frozen=True)
class ExportInfo:
    path: Path  # the model.onnx
    key: str
    built: bool  # built by this call (False: reused from the cache)
    rebuilt_reason: str | None  # why an existing entry was discarded
    seconds: float


def ensure_export(model_path: str, backend: str, quantization: str = "", *, cache_dir: Path | None = None, weights_fingerprint: str | None = None) -> ExportInfo:
    """The cached export for (weights, backend, opset, quantization); built (atomically) if absent or corrupt."""
    import fcntl

    from .models import weights_fingerprint as _wfp

    t0 = time.perf_counter()
    validate_backend(backend)
    if backend == "torch":
        raise ValueError("the torch backend has no export")
    quantization = canonical_quantization(backend, quantization)
    fp = weights_fingerprint or _wfp(model_path)
    key = export_key(fp, backend, quantization)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    final = root / key[:24]
    if verify_export(final, key) is None:
        return ExportInfo(final / "model.onnx", key, False, None, time.perf_counter() - t0)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{key[:24]}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder per key; the others wait and reuse its result
        reason = verify_export(final, key)
        if reason is None:
            return ExportInfo(final / "model.onnx", key, False, None, time.perf_counter() - t0)
        tmp = root / f".tmp-{key[:24]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            meaning = export_meaning(fp, backend, quantization)
            if backend in QUANTIZED:
                src = ensure_export(model_path, "onnx", "", cache_dir=root, weights_fingerprint=fp).path
                _quantize(src, tmp / "model.onnx", json.loads(quantization), model_path)
            else:
                _export_fp32(model_path, tmp / "model.onnx")
            files = {p.name: {"sha256": _sha256_file(p), "size": p.stat().st_size} for p in sorted(tmp.iterdir()) if p.is_file()}
            manifest = {"key": key, "meaning": meaning, "model_path": str(model_path), "files": files, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "versions": _tool_versions()}
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
            _fsync_dir(tmp)
            if final.exists():  # corrupt or partial: move it aside first (rename is atomic, rmtree is not)
                trash = root / f".trash-{key[:24]}-{uuid.uuid4().hex[:8]}"
                os.rename(final, trash)
                shutil.rmtree(trash, ignore_errors=True)
            os.rename(tmp, final)
            _fsync_dir(root)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return ExportInfo(final / "model.onnx", key, True, None if reason == "missing" else reason, time.perf_counter() - t0)


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def _tool_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("torch", "onnx", "onnxruntime", "sentence-transformers", "transformers"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _input_names(model_path: str) -> list[str]:
    cfg = json.loads((Path(model_path) / "config.json").read_text())
    names = ["input_ids", "attention_mask"]
    if cfg.get("model_type") == "bert" or int(cfg.get("type_vocab_size", 0)) > 1:
        names.append("token_type_ids")
    return names


def _export_fp32(model_path: str, out: Path) -> None:
    """torch.onnx.export of the whole sentence-transformers pipeline (transformer, pooling, normalize)."""
    import torch

    from .models import ModelSpec, load_model

    st = load_model(ModelSpec(model_path))
    names = _input_names(model_path)

    class Wrapper(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            return self.model(dict(zip(names, inputs)))["sentence_embedding"]

    wrapper = Wrapper(st).eval()
    enc = st.tokenizer(["an export sample", "a second, longer export sample text"], padding=True, return_tensors="pt")
    args = tuple(enc[n] for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["sentence_embedding"] = {0: "batch"}
    # The eager attention exports as the classic BERT pattern, which onnxruntime's transformer
    # optimizer fuses into Attention / SkipLayerNormalization / BiasGelu kernels; the sdpa
    # default exports as a chain of masks and MatMuls that no fusion recognises (measured:
    # no faster than torch, 1.7x its memory). The model is shared with the torch backend of
    # this process, so the setting is restored afterwards.
    auto = getattr(st[0], "auto_model", None)
    before = getattr(getattr(auto, "config", None), "_attn_implementation", None)
    raw = out.with_name("raw.onnx")
    try:
        if auto is not None and hasattr(auto, "set_attn_implementation"):
            auto.set_attn_implementation("eager")
        with torch.no_grad():
            torch.onnx.export(wrapper, args, str(raw), input_names=names, output_names=["sentence_embedding"], dynamic_axes=axes,
                              opset_version=OPSET, do_constant_folding=True, dynamo=False)
    finally:
        if auto is not None and before and hasattr(auto, "set_attn_implementation"):
            auto.set_attn_implementation(before)
    _fuse(raw, out, model_path)
    raw.unlink()


def _fuse(src: Path, out: Path, model_path: str) -> None:
    """onnxruntime's transformer optimizer (offline, portable opt_level 0) for BERT-type models."""
    cfg = json.loads((Path(model_path) / "config.json").read_text())
    if cfg.get("model_type") != "bert":
        shutil.copyfile(src, out)
        return
    from onnxruntime.transformers.optimizer import optimize_model

    opt = optimize_model(str(src), model_type="bert", num_heads=int(cfg["num_attention_heads"]), hidden_size=int(cfg["hidden_size"]), opt_level=0)
    opt.save_model_to_file(str(out))


def _layer_of(node_name: str) -> int | None:
    import re

    m = re.search(r"layer[./_](\d+)[./_]", node_name)
    return int(m.group(1)) if m else None


def _matmul_nbits(src: Path, out: Path, q: dict) -> None:
    """Every MatMul with a 2-D weight initializer -> com.microsoft MatMulNBits, 8-bit weights,
    symmetric per block of `block_size` input channels (zero point 128), int8 compute at
    accuracy_level 4. Written directly (onnxruntime's MatMulNBitsQuantizer needs onnx_ir)."""
    import re

    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    patterns = [re.compile(p) for p in q["exclude_nodes"]]
    block = q["block_size"]
    nodes = list(g.node)
    for pos, n in enumerate(nodes):
        if n.op_type != "MatMul" or n.input[1] not in inits or _layer_of(n.name) in set(q["exclude_layers"]) or any(p.search(n.name) for p in patterns):
            continue
        w = numpy_helper.to_array(inits[n.input[1]]).astype(np.float32)
        if w.ndim != 2:
            continue
        k, cols = w.shape
        blocks_per_col = -(-k // block)
        padded = np.zeros((blocks_per_col * block, cols), np.float32)
        padded[:k] = w
        blocks = padded.T.reshape(cols, blocks_per_col, block)
        scale = np.abs(blocks).max(axis=2) / 127.0
        scale[scale == 0] = 1.0
        qw = (np.clip(np.rint(blocks / scale[:, :, None]), -127, 127) + 128).astype(np.uint8)
        names = (f"{n.name}_nbits_B", f"{n.name}_nbits_scales", f"{n.name}_nbits_zp")
        g.initializer.extend([numpy_helper.from_array(qw, names[0]), numpy_helper.from_array(scale.reshape(-1).astype(np.float32), names[1]),
                              numpy_helper.from_array(np.full(cols * blocks_per_col, 128, np.uint8), names[2])])
        attrs = {"K": k, "N": cols, "bits": 8, "block_size": block}
        if q["accuracy_level"]:
            attrs["accuracy_level"] = q["accuracy_level"]
        nodes[pos] = onnx.helper.make_node("MatMulNBits", [n.input[0], *names], list(n.output), name=f"{n.name}_nbits", domain="com.microsoft", **attrs)
    del g.node[:]
    g.node.extend(nodes)
    used = {i for n in g.node for i in n.input}
    kept = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(kept)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(out))


def _quantize(src: Path, out: Path, q: dict, model_path: str) -> None:
    if q["method"] == "matmul_nbits":
        _matmul_nbits(src, out, q)
        return
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    work = out.parent
    source = src
    if q["preprocess"]:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        source = work / "preprocessed.onnx"
        quant_pre_process(str(src), str(source), skip_symbolic_shape=True)
    graph = onnx.load(str(source), load_external_data=False).graph
    import re

    patterns = [re.compile(p) for p in q["exclude_nodes"]]
    exclude = [n.name for n in graph.node if (not q["op_types"] or n.op_type in q["op_types"])
               and (_layer_of(n.name) in set(q["exclude_layers"]) or any(p.search(n.name) for p in patterns))]
    wtype = getattr(QuantType, q["weight_type"])
    if q["method"] == "dynamic":
        quantize_dynamic(str(source), str(out), weight_type=wtype, per_channel=q["per_channel"], reduce_range=q["reduce_range"],
                         op_types_to_quantize=q["op_types"] or None, nodes_to_exclude=exclude,
                         extra_options={"MatMulConstBOnly": q["const_b_only"], "DefaultTensorType": onnx.TensorProto.FLOAT})
    else:
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

        tok = Tokenizer(model_path, 256)
        from ..sample_data import generate_labelled_texts

        texts = [t.text[:1500] for t in generate_labelled_texts(max(1, q["calibration_texts"]), seed=1234)][: max(1, q["calibration_texts"])]

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.items = iter([tok.batch([t]) for t in texts])

            def get_next(self):
                return next(self.items, None)

        quantize_static(str(source), str(out), Reader(), quant_format=QuantFormat.QDQ, weight_type=wtype, activation_type=QuantType.QUInt8,
                        per_channel=q["per_channel"], reduce_range=q["reduce_range"], op_types_to_quantize=q["op_types"] or None, nodes_to_exclude=exclude,
                        extra_options={"MatMulConstBOnly": q["const_b_only"], "DefaultTensorType": onnx.TensorProto.FLOAT})
    if source != src and source.exists():
        source.unlink()
    for extra in work.iterdir():  # the quantizer's scratch files (e.g. augmented models) are not part of the export
        if extra.name != out.name and extra.is_file():
            extra.unlink()


# -- encoding ------------------------------------------------------------------------------
class Tokenizer:
    """The model's tokenizer.json through `tokenizers` (what sentence-transformers' fast tokenizer runs)."""

    def __init__(self, model_path: str, max_seq_length: int):
        from tokenizers import Tokenizer as _T

        self.names = _input_names(model_path)
        tok = _T.from_file(str(Path(model_path) / "tokenizer.json"))
        tok.no_padding()
        tok.enable_truncation(max_length=int(max_seq_length))
        self.tok = tok
        special = json.loads((Path(model_path) / "special_tokens_map.json").read_text()) if (Path(model_path) / "special_tokens_map.json").exists() else {}
        pad = special.get("pad_token", "[PAD]")
        pad = pad["content"] if isinstance(pad, dict) else pad
        self.pad_id = tok.token_to_id(pad) or 0

    def encode(self, texts: list[str]):
        return self.tok.encode_batch(list(texts), add_special_tokens=True)

    def lengths(self, texts: list[str]) -> np.ndarray:
        return np.fromiter((len(e.ids) for e in self.encode(texts)), dtype=np.int64, count=len(texts))

    def pad(self, encs) -> dict[str, np.ndarray]:
        n, width = len(encs), max(len(e.ids) for e in encs)
        ids = np.full((n, width), self.pad_id, dtype=np.int64)
        mask = np.zeros((n, width), dtype=np.int64)
        types = np.zeros((n, width), dtype=np.int64)
        for i, e in enumerate(encs):
            k = len(e.ids)
            ids[i, :k] = e.ids
            mask[i, :k] = 1
            types[i, :k] = e.type_ids
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        return {k: feed[k] for k in self.names}

    def batch(self, texts: list[str]) -> dict[str, np.ndarray]:
        return self.pad(self.encode(texts))


class OnnxEncoder:
    def __init__(self, model_path: str, backend: str, quantization: str, max_seq_length: int, *, cache_dir: Path | None = None, threads: int | None = None):
        import onnxruntime as ort

        from ..settings import enforce_offline

        enforce_offline()
        self.export = ensure_export(model_path, backend, quantization, cache_dir=cache_dir)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = int(threads or (os.cpu_count() or 1))
        so.inter_op_num_threads = 1
        # No spin-waiting between ops: on shared cores (Dagster workers, other jobs) spinning
        # threads burn CPU others need, and batches of 32 x up to 256 tokens gain nothing from it.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3
        self.session = ort.InferenceSession(str(self.export.path), so, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer(model_path, max_seq_length)
        self.dims = int(self.session.get_outputs()[0].shape[-1]) if isinstance(self.session.get_outputs()[0].shape[-1], int) else None

    def run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self.session.run(None, feed)[0], dtype=np.float32)

    def encode_encodings(self, encs) -> np.ndarray:
        return self.run(self.tokenizer.pad(encs))


@functools.lru_cache(maxsize=4)
def get_encoder(model_path: str, backend: str, quantization: str, max_seq_length: int, cache_dir: str | None = None) -> OnnxEncoder:
    return OnnxEncoder(model_path, backend, quantization, max_seq_length, cache_dir=Path(cache_dir) if cache_dir else None)
