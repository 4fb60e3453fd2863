"""Encode-only ceiling of each embedding backend against bare SentenceTransformer.encode (issue 15).

    python benchmarks/encode_ceiling.py [--chunks 400] [--rounds 3] [--batch-size 32] [--no-profile]

A whole reindex encodes every chunk and then does more (LanceDB reads and writes, the GX
validation gate, the retrieval-parity gate), so its throughput ratio to bare torch `encode`
can never exceed the ratio of the encode alone. This measures that upper bound per backend,
on the same generated chunks as `reindex_throughput.py`:

- `st`: bare `SentenceTransformer.encode(texts, batch_size)` (its own character-length sort):
  the issue's reference;
- `torch`, `onnx`, `onnx-int8`: `governance.embedding.encode` with that backend, exactly as a
  reindex calls it (token-length-sorted mini-batches), the int8 row with its default settings;
- `int8-fastest`: the fastest int8 setting tried (`quantize_dynamic`, per-tensor weights,
  every quantizable op, Attention included). It fails the parity gate (recall@10 ~0.70, see
  docs/benchmarks.md); it is here to show the ceiling of int8 on this CPU at any accuracy.

Every row runs in a fresh child process per round (model or session loaded and one batch
warmed up before the clock starts), rounds rotate the row order, and the ratio is the median
over rounds of st's time / the row's time in the same round. Also prints the cosine of each
row's vectors to torch's, a per-operator profile of the onnx sessions (onnxruntime's own
profiler), and the fp32 GEMM throughput of onnxruntime and torch on the model's largest
MatMul shape (32 x 256 tokens x 384 -> 1536), to show how close the fp32 path is to the
machine's GEMM limit.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, sample_chunks  # noqa: E402

# The fastest int8 setting tried: onnxruntime's quantize_dynamic defaults on every op type.
FASTEST_INT8 = {"method": "dynamic", "per_channel": False, "op_types": [], "exclude_nodes": []}
ROWS = {
    "st": ("torch", None),
    "torch": ("torch", None),
    "onnx": ("onnx", None),
    "onnx-int8": ("onnx-int8", None),
    "int8-fastest": ("onnx-int8", FASTEST_INT8),
}


def spec_of(row: str):
    from aisg_pipelines.governance.models import ModelSpec
    from aisg_pipelines.governance.onnx_backend import canonical_quantization
    from aisg_pipelines.settings import bundled_model_path

    backend, quant = ROWS[row]
    return ModelSpec(str(bundled_model_path()), backend=backend, quantization=canonical_quantization(backend, quant or {}))


def child(row: str, texts_file: str, out_file: str, batch_size: int, profile: bool) -> None:
    """Encode the texts once, timed; write the vectors; print CHILD_RESULT <json>."""
    import numpy as np

    texts = json.loads(Path(texts_file).read_text())
    spec = spec_of(row)
    if row == "st":
        from aisg_pipelines.governance.embedding import load_model

        model = load_model(spec)
        model.encode(texts[:batch_size], batch_size=batch_size)
        run = lambda: model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)  # noqa: E731
    else:
        from aisg_pipelines.governance.embedding import encode

        encode(spec, texts[:batch_size], batch_size)
        run = lambda: encode(spec, texts, batch_size)  # noqa: E731
    w0, c0 = time.perf_counter(), time.process_time()
    vecs = np.asarray(run(), dtype=np.float32)
    out = {"row": row, "wall": time.perf_counter() - w0, "cpu": time.process_time() - c0}
    np.save(out_file, vecs)
    if profile and spec.is_onnx:
        out["profile"] = _profile(spec, texts, batch_size)
    print("CHILD_RESULT " + json.dumps(out), flush=True)


def _profile(spec, texts: list[str], batch_size: int) -> dict[str, float]:
    """Seconds per operator type over one encode of the texts, from onnxruntime's profiler."""
    import onnxruntime as ort

    from aisg_pipelines.governance.onnx_backend import Tokenizer, ensure_export

    so = ort.SessionOptions()
    so.intra_op_num_threads = os.cpu_count() or 1
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.enable_profiling = True
    so.profile_file_prefix = str(Path(tempfile.gettempdir()) / f"aisg_ort_profile_{os.getpid()}")
    session = ort.InferenceSession(str(ensure_export(spec.path, spec.backend, spec.quantization).path), so, providers=["CPUExecutionProvider"])
    tok = Tokenizer(spec.path, spec.max_seq_length)
    encs = tok.encode(texts)
    order = sorted(range(len(encs)), key=lambda i: -len(encs[i].ids))
    padded = 0
    for s in range(0, len(order), batch_size):
        batch = [encs[i] for i in order[s:s + batch_size]]
        padded += len(batch) * max(len(e.ids) for e in batch)
        session.run(None, tok.pad(batch))
    path = session.end_profiling()
    per: dict[str, float] = {"padded_tokens": float(padded)}
    for e in json.loads(Path(path).read_text()):
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            op = e["args"].get("op_name", "?")
            per[op] = per.get(op, 0.0) + e["dur"] / 1e6
    Path(path).unlink()
    return dict(sorted(per.items(), key=lambda kv: -kv[1]))


def model_gemm_gflops(profile: dict[str, float], model_path: str) -> float | None:
    """fp32 GEMM throughput inside the onnx model: the weight MatMuls outside the fused Attention
    (attention output, FFN up and down: 2 x (h^2 + 2 h i) flops per token and layer) over
    their kernel time."""
    if not profile.get("MatMul"):
        return None
    cfg = json.loads((Path(model_path) / "config.json").read_text())
    h, i, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    return 2 * (h * h + 2 * h * i) * layers * profile["padded_tokens"] / profile["MatMul"] / 1e9


def gemm_gflops(reps: int = 30) -> dict[str, float]:
    """fp32 GEMM (8192 x 384) @ (384 x 1536), the FFN up-projection of a 32 x 256-token batch."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    a = rng.standard_normal((8192, 384), dtype=np.float32)
    w = rng.standard_normal((384, 1536), dtype=np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "w"], ["y"])], "gemm",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 384])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what onnxruntime 1.31 reads
    so = ort.SessionOptions()
    so.intra_op_num_threads = os.cpu_count() or 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    ta, tw = torch.from_numpy(a), torch.from_numpy(w)
    flops = 2 * 8192 * 384 * 1536
    out = {}
    for name, fn in (("onnxruntime", lambda: sess.run(None, {"a": a})), ("torch", lambda: ta @ tw)):
        for _ in range(3):
            fn()
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        out[name] = reps * flops / (time.perf_counter() - t) / 1e9
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chunks", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--texts", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.texts, args.out, args.batch_size, args.profile)
        return

    import numpy as np

    from aisg_pipelines.governance.onnx_backend import ensure_export

    rows = [r for r in args.rows.split(",") if r]
    unknown = set(rows) - set(ROWS)
    if unknown:
        ap.error(f"unknown rows {sorted(unknown)}; choose from {list(ROWS)}")
    rows = ["st"] + [r for r in rows if r != "st"]  # the reference of every ratio
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="aisg_ceiling_") as tmp:
        root = Path(tmp)
        os.environ["AISG_MODEL_CACHE_DIR"] = str(root / "onnx_cache")
        texts = [text for _, _, text in sample_chunks(args.chunks, args.seed)]
        (root / "texts.json").write_text(json.dumps(texts))
        for r in rows:  # exports are built here, so no child pays for (or imports torch for) a build
            s = spec_of(r)
            if s.is_onnx:
                e = ensure_export(s.path, s.backend, s.quantization)
                print(f"export {r}: {'built' if e.built else 'cached'} in {e.seconds:.1f}s")
        times: dict[str, list[dict]] = {r: [] for r in rows}
        profiles: dict[str, dict] = {}
        for k in range(args.rounds):
            order = rows[k % len(rows):] + rows[:k % len(rows)]
            for r in order:
                profile = not args.no_profile and k == 0 and ROWS[r][0] != "torch"
                cmd = [sys.executable, __file__, "--child", r, "--texts", str(root / "texts.json"), "--out", str(root / f"{r}.npy"),
                       "--batch-size", str(args.batch_size)] + (["--profile"] if profile else [])
                p = subprocess.run(cmd, capture_output=True, text=True)
                line = next((x for x in p.stdout.splitlines() if x.startswith("CHILD_RESULT ")), None)
                if line is None:
                    raise RuntimeError(f"row {r} failed:\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
                res = json.loads(line.removeprefix("CHILD_RESULT "))
                res["round"] = k
                times[r].append(res)
                if "profile" in res:
                    profiles[r] = res["profile"]
                print(f"round {k + 1} {r}: wall {res['wall']:.2f}s cpu {res['cpu']:.2f}s (load {os.getloadavg()[0]:.1f})", flush=True)
        vecs = {r: np.load(root / f"{r}.npy") for r in rows}
        gemm = gemm_gflops()

    def ratio(r: str, key: str) -> float:
        st = {x["round"]: x[key] for x in times["st"]}
        return statistics.median(st[x["round"]] / x[key] for x in times[r])

    ref = vecs.get("torch", vecs.get("st"))
    print(f"\n{args.chunks} chunks, batch size {args.batch_size}, {args.rounds} rounds, all-MiniLM-L6-v2 (max_seq_length 256)\n")
    print("| row | median wall s | median CPU s | × bare ST encode (wall, median of rounds) | × (CPU) | cosine to torch mean / min |")
    print("|---|---:|---:|---:|---:|---:|")
    summary = {"chunks": args.chunks, "rounds": args.rounds, "gemm_gflops": gemm}
    for r in rows:
        cos = (vecs[r] * ref).sum(axis=1) / (np.linalg.norm(vecs[r], axis=1) * np.linalg.norm(ref, axis=1))
        wall = statistics.median(x["wall"] for x in times[r])
        cpu = statistics.median(x["cpu"] for x in times[r])
        xw, xc = ratio(r, "wall"), ratio(r, "cpu")
        print(f"| {r} | {wall:.2f} | {cpu:.2f} | {xw:.2f} | {xc:.2f} | {cos.mean():.5f} / {cos.min():.5f} |")
        summary[r] = {"wall": wall, "cpu": cpu, "x_wall": xw, "x_cpu": xc, "cos_mean": float(cos.mean()), "cos_min": float(cos.min())}
    for r, per in profiles.items():
        ops = {op: s for op, s in per.items() if op != "padded_tokens"}
        total = sum(ops.values()) or 1.0
        print(f"\nprofile {r} (onnxruntime kernel time): " + ", ".join(f"{op} {s:.2f}s {100 * s / total:.0f}%" for op, s in list(ops.items())[:6]))
    print(f"\nfp32 GEMM (8192x384)@(384x1536) alone: onnxruntime {gemm['onnxruntime']:.0f} GFLOPS, torch {gemm['torch']:.0f} GFLOPS")
    inside = model_gemm_gflops(profiles.get("onnx", {}), spec_of("onnx").path) if "onnx" in profiles else None
    if inside:
        summary["onnx_model_gemm_gflops"] = inside
        print(f"fp32 weight MatMuls inside the onnx model (outside Attention): {inside:.0f} GFLOPS")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
