"""PII detection throughput: bare presidio recognizers vs PiiScrubber.

    python benchmarks/pii_throughput.py [--mb 2] [--baseline-mb 0.5] [--seed 7]

Builds ``--mb`` MB (UTF-8) of labelled Korean/English text with
``generate_labelled_texts``, then in the same process measures MB/s of
``baseline_detect`` (every recognizer over the whole text, on the first
``--baseline-mb`` MB of the same texts) and of ``PiiScrubber.detect`` (all of
it), plus recall/precision of both against the labels (exact span and type).
Prints the machine, a markdown table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import cpu_model as _cpu_model  # noqa: E402
from aisg_pipelines.governance.pii import PiiScrubber, baseline_detect  # noqa: E402
from aisg_pipelines.governance.sample_data import generate_labelled_texts  # noqa: E402


def _build(mb: float, seed: int):
    target = int(mb * 1_000_000)
    texts, size, batch_seed = [], 0, seed
    while size < target:
        for lt in generate_labelled_texts(200, seed=batch_seed):
            texts.append(lt)
            size += len(lt.text.encode("utf-8"))
            if size >= target:
                break
        batch_seed += 1000
    return texts


def _timed(detect, texts):
    w0, c0 = time.perf_counter(), time.process_time()
    out = [detect(t.text) for t in texts]
    return time.perf_counter() - w0, time.process_time() - c0, out


def _quality(texts, outputs):
    tp = fp = fn = 0
    for lt, spans in zip(texts, outputs):
        gold = {(s.start, s.end, s.entity_type) for s in lt.spans}
        pred = {(s.start, s.end, s.entity_type) for s in spans}
        tp += len(gold & pred)
        fp += len(pred - gold)
        fn += len(gold - pred)
    return {
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "spans": tp + fn,
    }


def _nbytes(texts) -> int:
    return sum(len(t.text.encode("utf-8")) for t in texts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=2.0, help="MB of text for the scrubber")
    ap.add_argument("--baseline-mb", type=float, default=0.5, help="MB (prefix of the same texts) for the baseline")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    print(f"machine: nproc={os.cpu_count()} cpu={_cpu_model()!r} python={platform.python_version()}")
    t0 = time.perf_counter()
    texts = _build(args.mb, args.seed)
    print(f"built {len(texts)} texts, {sum(len(t.text.encode()) for t in texts) / 1e6:.2f} MB "
          f"in {time.perf_counter() - t0:.1f}s")

    scrubber = PiiScrubber()
    base_texts, size = [], 0
    for t in texts:
        if size >= args.baseline_mb * 1_000_000:
            break
        base_texts.append(t)
        size += len(t.text.encode("utf-8"))
    baseline_detect(base_texts[0].text)  # warm-up (recognizers, regex compilation)
    scrubber.detect(base_texts[0].text)

    # Other processes may share the CPUs: interleave the runs, keep the best
    # of each, and rate by CPU time of this process (wall time also shown).
    best = {}
    outs = {}
    for _ in range(args.repeats):
        for name, fn, tx in (
            ("baseline", baseline_detect, base_texts),
            ("scrubber_same", scrubber.detect, base_texts),
            ("scrubber_all", scrubber.detect, texts),
        ):
            wall, cpu, out = _timed(fn, tx)
            outs[name] = out
            w, c = best.get(name, (float("inf"), float("inf")))
            best[name] = (min(w, wall), min(c, cpu))
    results = {}
    for name, tx in (("baseline", base_texts), ("scrubber_same", base_texts), ("scrubber_all", texts)):
        mb = _nbytes(tx) / 1e6
        wall, cpu = best[name]
        results[name] = {"mb": mb, "wall": wall, "cpu": cpu, "mb_per_s": mb / cpu,
                         "wall_mb_per_s": mb / wall, **_quality(tx, outs[name])}
    base, same_run, fast = results["baseline"], results["scrubber_same"], results["scrubber_all"]
    same = sum(a == b for a, b in zip(outs["baseline"], outs["scrubber_same"]))
    ratio = same_run["mb_per_s"] / base["mb_per_s"]
    ratio_wall = same_run["wall_mb_per_s"] / base["wall_mb_per_s"]

    print()
    print("| detector | text MB | CPU s | MB/s (CPU) | MB/s (wall) | recall | precision | labelled spans |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in (
        ("baseline_detect (bare recognizers, whole text)", base),
        ("PiiScrubber.detect, same texts", same_run),
        ("PiiScrubber.detect, all texts", fast),
    ):
        print(f"| {name} | {r['mb']:.2f} | {r['cpu']:.2f} | {r['mb_per_s']:.3f} | {r['wall_mb_per_s']:.3f} | "
              f"{r['recall']:.4f} | {r['precision']:.4f} | {r['spans']} |")
    print()
    print(f"speed-up on the same texts: {ratio:.1f}x (CPU time), {ratio_wall:.1f}x (wall); "
          f"identical output on {same}/{len(base_texts)} texts")
    print(json.dumps({
        "baseline_mb_per_s": round(base["mb_per_s"], 4),
        "scrubber_mb_per_s": round(same_run["mb_per_s"], 4),
        "scrubber_all_mb_per_s": round(fast["mb_per_s"], 4),
        "ratio": round(ratio, 2),
        "ratio_wall": round(ratio_wall, 2),
        "baseline_recall": round(base["recall"], 4),
        "baseline_precision": round(base["precision"], 4),
        "scrubber_recall": round(fast["recall"], 4),
        "scrubber_precision": round(fast["precision"], 4),
        "baseline_mb": round(base["mb"], 3),
        "scrubber_mb": round(fast["mb"], 3),
        "identical_outputs": f"{same}/{len(base_texts)}",
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
    }))


if __name__ == "__main__":
    main()
