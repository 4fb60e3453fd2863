"""ONNX Runtime backends of embed_versions: the export cache, parity with torch, the retrieval-parity gate.

The exports are built once per session into a temporary cache ($AISG_MODEL_CACHE_DIR), from the
bundled weights, with no network.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from aisg_pipelines.governance import onnx_backend as ob
from aisg_pipelines.governance.ledger import Ledger
from aisg_pipelines.governance.reindex import ValidationFailed, reindex
from aisg_pipelines.governance.store import CHUNKS, LanceStore
from aisg_pipelines.governance.versions import EmbedVersionSpec, VersionConflict, VersionRegistry

# A deliberately broken int8 setting: quantize_dynamic with per-tensor 7-bit weights (reduce_range)
# and the FFN down-projections quantized too (docs/benchmarks.md: mean cosine ~0.74 to fp32).
BROKEN_INT8 = {"method": "dynamic", "per_channel": False, "reduce_range": True, "exclude_nodes": []}


@pytest.fixture(scope="module", autouse=True)
def onnx_cache(tmp_path_factory):
    """One export cache for the module's tests (the fp32 export is built once, int8 from it)."""
    root = tmp_path_factory.mktemp("onnx_cache")
    old = os.environ.get(ob.CACHE_ENV)
    os.environ[ob.CACHE_ENV] = str(root)
    ob.get_encoder.cache_clear()
    yield root
    ob.get_encoder.cache_clear()
    if old is None:
        os.environ.pop(ob.CACHE_ENV, None)
    else:
        os.environ[ob.CACHE_ENV] = old


def _texts(n: int = 24) -> list[str]:
    from aisg_pipelines.governance.chunking import ChunkerParams, chunk_text
    from aisg_pipelines.sample_data import generate_labelled_texts

    out: list[str] = []
    for lt in generate_labelled_texts(12, seed=3):
        out += chunk_text(lt.text, ChunkerParams())
    out += ["짧은 문장", "short", "a " * 400]  # tiny, and longer than max_seq_length
    return out[: n - 3] + out[-3:]


def test_export_round_trip_cached_reused_rebuilt_when_corrupt(onnx_cache, model_path):
    fp32 = ob.ensure_export(model_path, "onnx")
    assert fp32.path.is_file() and fp32.path.parent.parent == onnx_cache
    manifest = json.loads((fp32.path.parent / "manifest.json").read_text())
    assert manifest["key"] == fp32.key and manifest["meaning"]["opset"] == ob.OPSET and manifest["files"]["model.onnx"]["size"] == fp32.path.stat().st_size
    again = ob.ensure_export(model_path, "onnx")
    assert (again.built, again.path, again.key) == (False, fp32.path, fp32.key)

    q = ob.canonical_quantization("onnx-int8", {})
    int8 = ob.ensure_export(model_path, "onnx-int8", q)
    assert int8.built and int8.key != fp32.key and int8.path.stat().st_size < 0.8 * fp32.path.stat().st_size
    assert ob.ensure_export(model_path, "onnx-int8", q).built is False
    # the default: MatMulNBits, 8-bit weights per block, int8 compute
    import onnx

    ops = [n.op_type for n in onnx.load(str(int8.path), load_external_data=False).graph.node]
    assert ops.count("MatMulNBits") == 18 and "MatMul" not in ops and ops.count("Attention") == 6
    # other quantization settings are another export (and another version fingerprint)
    others = [{"block_size": 32}, {"accuracy_level": 0}, {"exclude_layers": [0]}, {"method": "dynamic"}, {"method": "dynamic", "per_channel": False}]
    keys = {ob.export_key("w", "onnx-int8", ob.canonical_quantization("onnx-int8", o)) for o in others}
    assert len(keys) == len(others) and ob.export_key("w", "onnx-int8", q) not in keys
    tok = ob.Tokenizer(model_path, 256)
    feed = tok.batch(["한 문장", "a second sentence"])

    def run(path):
        import onnxruntime as ort

        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)[0]

    before = run(int8.path)

    # Corrupt in place (same size, other bytes): detected by the manifest's sha256, rebuilt.
    data = bytearray(int8.path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)
    int8.path.write_bytes(bytes(data))
    assert "sha256" in ob.verify_export(int8.path.parent, int8.key)
    rebuilt = ob.ensure_export(model_path, "onnx-int8", q)
    assert rebuilt.built and "sha256" in rebuilt.rebuilt_reason and ob.verify_export(rebuilt.path.parent, int8.key) is None
    np.testing.assert_allclose(run(rebuilt.path), before, atol=1e-6)
    fp32_out = run(fp32.path)
    assert ((before * fp32_out).sum(axis=1) / (np.linalg.norm(before, axis=1) * np.linalg.norm(fp32_out, axis=1))).min() >= 0.999

    # A partial export (killed before its manifest was written) is rebuilt; scratch dirs are ignored.
    (int8.path.parent / "manifest.json").unlink()
    (onnx_cache / f".tmp-{int8.key[:24]}-99999-dead").mkdir()
    assert ob.verify_export(int8.path.parent, int8.key) == "no manifest (partial export)"
    partial = ob.ensure_export(model_path, "onnx-int8", q)
    assert partial.built and partial.rebuilt_reason == "no manifest (partial export)"
    # A truncated fp32 file is caught by size without reading it all.
    import shutil

    copy = onnx_cache / "copy" / fp32.path.parent.name
    shutil.copytree(fp32.path.parent, copy)
    with open(copy / "model.onnx", "r+b") as fh:
        fh.truncate(1000)
    assert "bytes, manifest says" in ob.verify_export(copy, fp32.key)
    shutil.rmtree(copy.parent)
    assert sorted(p.name for p in onnx_cache.iterdir() if not p.name.startswith(".")) == sorted({fp32.key[:24], int8.key[:24]})


def test_onnx_matches_torch_on_test_corpus(model_path):
    from aisg_pipelines.governance.embedding import ModelSpec, encode, token_lengths

    texts = _texts()
    torch_spec = ModelSpec(model_path, 256, True)
    onnx_spec = ModelSpec(model_path, 256, True, "onnx")
    assert token_lengths(onnx_spec, texts).tolist() == token_lengths(torch_spec, texts).tolist()
    steps: list[int] = []
    a = encode(torch_spec, texts, batch_size=8)
    b = encode(onnx_spec, texts, batch_size=8, on_step=lambda: steps.append(1))
    assert b.shape == a.shape == (len(texts), 384) and b.dtype == np.float32 and len(steps) == -(-len(texts) // 8)
    cos = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cos.min() >= 0.9999, cos.min()
    # truncation at max_seq_length is the tokenizer's, as in sentence-transformers
    short = ModelSpec(model_path, 32, True, "onnx")
    assert token_lengths(short, texts).max() == 32
    assert float((encode(short, texts[-1:]) @ encode(ModelSpec(model_path, 32, True), texts[-1:]).T)[0, 0]) >= 0.9999


def test_backend_is_part_of_the_fingerprint(settings, model_path):
    reg = VersionRegistry(Ledger(settings.ledger_url))
    v1, _ = reg.register(EmbedVersionSpec("v1", model_path))
    v3, _ = reg.register(EmbedVersionSpec("v3", model_path, backend="onnx"))
    v4, _ = reg.register(EmbedVersionSpec("v4", model_path, backend="onnx-int8", quantization=json.dumps({"method": "dynamic", "per_channel": True})))
    v5, _ = reg.register(EmbedVersionSpec("v5", model_path, backend="onnx-int8"))
    v6, _ = reg.register(EmbedVersionSpec("v6", model_path, backend="onnx-int8", quantization={"block_size": 32}))
    assert len({v1.params_hash, v3.params_hash, v4.params_hash, v5.params_hash, v6.params_hash}) == 5 and (v3.backend, v4.backend) == ("onnx", "onnx-int8")
    assert v1.weights_fingerprint == v3.weights_fingerprint == v4.weights_fingerprint
    assert json.loads(v4.quantization) == json.loads(ob.canonical_quantization("onnx-int8", {"method": "dynamic"}))  # defaults filled in: the same version
    assert json.loads(v5.quantization) == {**ob.NBITS_DEFAULTS, "method": "matmul_nbits"} and json.loads(v6.quantization)["block_size"] == 32
    with pytest.raises(VersionConflict, match=r"backend.*onnx -> onnx-int8"):
        reg.register(EmbedVersionSpec("v3", model_path, backend="onnx-int8"))
    with pytest.raises(VersionConflict, match="quantization"):
        reg.register(EmbedVersionSpec("v4", model_path, backend="onnx-int8", quantization={"method": "dynamic", "per_channel": False}))
    with pytest.raises(ValueError, match="for matmul_nbits"):  # a quantize_dynamic key on the default method
        EmbedVersionSpec("v7", model_path, backend="onnx-int8", quantization={"per_channel": False})
    with pytest.raises(ValueError, match="backend must be one of"):
        EmbedVersionSpec("v5", model_path, backend="tensorrt")
    with pytest.raises(ValueError, match="unknown quantization keys"):
        EmbedVersionSpec("v5", model_path, backend="onnx-int8", quantization={"bits": 4})


def test_parity_gate_passes_onnx_and_rejects_a_degraded_int8_version(populated_settings, model_path):
    from aisg_pipelines.governance.reindex import parity_gate, parity_reference

    s, _ = populated_settings
    store, ledger = LanceStore(s.lancedb_uri), Ledger(s.ledger_url)
    reg = VersionRegistry(ledger)
    n = store.count(CHUNKS)
    assert reg.active().name == "v1" and reg.active().backend == "torch"

    # fp32 onnx: the same vectors as v1 (torch), recall@10 1.0 against it
    v3 = reindex(store, ledger, EmbedVersionSpec("v3", model_path, backend="onnx"), activate=False, sample_size=10, parity_queries=30)
    p = v3.validation.parity
    assert v3.status == "validated" and p.reference == "v1" and p.passed and p.recall_at_10 == 1.0 and p.cosine_min >= 0.9999
    assert p.queries == min(30, n) and p.pool == n
    assert ledger.events("embed_version.reindex")[-1].details["parity"]["recall_at_10"] == 1.0
    # without an fp32 table of the model, the reference is encoded in memory (fp32 onnx)
    alone = parity_gate(store, reg.require("v3"), None, queries=10)
    assert alone.reference.startswith("fp32 onnx") and alone.passed and alone.cosine_min >= 0.9999

    # A deliberately broken quantization: refused, stays building, v1 stays active, reasons in the ledger
    with pytest.raises(ValidationFailed) as exc:
        reindex(store, ledger, EmbedVersionSpec("v9", model_path, backend="onnx-int8", quantization=BROKEN_INT8), sample_size=10, parity_queries=30)
    assert "retrieval parity FAILED" in str(exc.value) and exc.value.report.parity.recall_at_10 < 0.95
    assert "Retrieval parity" in exc.value.report.summary_markdown()
    assert reg.active().name == "v1" and reg.require("v9").status == "building"
    with pytest.raises(VersionConflict):
        reg.activate("v9")
    failed = ledger.events("embed_version.validation_failed")[-1].details
    assert failed["name"] == "v9" and failed["parity"]["recall_at_10"] < 0.95
    assert ledger.events("embed_version.parity")[-1].details["passed"] is False

    # v3 goes live (blue-green switch); a later int8 compares against it
    reg.activate("v3")
    assert reg.active().name == "v3" and parity_reference(reg, reg.require("v9")).name == "v3"


def test_code_location_import_stays_light():
    code = (
        "import sys, aisg_pipelines.definitions, aisg_pipelines.governance.onnx_backend\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers', 'onnxruntime', 'onnx', 'tokenizers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
