"""Benchmark: the deletion-cascade property test with many more examples than `make test` runs.

    .venv/bin/python benchmarks/cascade_property.py [--examples 1000] [--seed N]

Runs aisg_pipelines_tests/test_cascade_property.py (random ingest / replace / erase /
retention / orphan cleanup sequences with kills inside the cascade steps, on a real LanceDB
store and ledger) with AISG_PROPERTY_EXAMPLES examples and prints the time per example.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    env = {**os.environ, "AISG_PROPERTY_EXAMPLES": str(args.examples), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "aisg_pipelines_tests/test_cascade_property.py"]
    if args.seed is not None:
        cmd.append(f"--hypothesis-seed={args.seed}")
    print(machine(), flush=True)
    t0 = time.perf_counter()
    rc = subprocess.call(cmd, cwd=ROOT, env=env)
    dt = time.perf_counter() - t0
    print(f"{args.examples} examples: {'passed' if rc == 0 else 'FAILED'} in {dt:.1f} s ({dt / args.examples:.2f} s per example)")
    sys.exit(rc)


if __name__ == "__main__":
    main()
