"""Code-location load time: `import aisg_pipelines.definitions` vs bare `import dagster`.

Whole cold processes, interleaved, repeated; reports medians and the ratio (goal <= 2).
One command: `.venv/bin/python benchmarks/load_time.py [--repeats 7]`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402


def _time_process(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    cases = {
        "import dagster": "import dagster",
        "import aisg_pipelines.definitions": "import aisg_pipelines.definitions",
    }
    for code in cases.values():  # warm the OS file cache once
        _time_process(code)
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.repeats):
        for name, code in cases.items():
            times[name].append(_time_process(code))
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["import aisg_pipelines.definitions"] / med["import dagster"]
    print(f"machine: {machine()}\n")
    print("| process | median s | min s | max s |\n|---|---|---|---|")
    for k, v in times.items():
        print(f"| `{k}` | {med[k]:.3f} | {min(v):.3f} | {max(v):.3f} |")
    print(f"\nratio definitions/dagster: **{ratio:.2f}** (goal <= 2.0)")
    print(json.dumps({"benchmark": "load_time", "ratio": round(ratio, 3), **{k: round(v, 3) for k, v in med.items()}}))
    # Heavy libraries must not be imported by loading the code location.
    leaked = subprocess.run(
        [sys.executable, "-c", "import sys, aisg_pipelines.definitions; print(','.join(m for m in ('torch','sentence_transformers','presidio_analyzer','presidio_anonymizer','great_expectations','lancedb','matplotlib','reportlab') if m in sys.modules))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    print(f"heavy modules imported at load: {leaked or 'none'}")


if __name__ == "__main__":
    main()
