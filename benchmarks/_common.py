"""What every benchmark prints about the machine it ran on (docs/benchmarks.md quotes it)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> str:
    """e.g. 'Linux x86_64, 2 cores (Intel(R) Xeon(R) Processor), 24 GiB RAM, Python 3.11.7, load 1.2'."""
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = os.getloadavg()[0]
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu_model()}), {mem:.0f} GiB RAM, "
        f"Python {platform.python_version()}, load {load:.1f}"
    )


def peak_rss_mib() -> float:
    """This process's own peak RSS in MiB (VmHWM: imports included, counted from exec).

    `getrusage(RUSAGE_SELF).ru_maxrss` is not that in a child process: Linux carries the
    parent's high-water mark across fork + exec, so a small measuring child of a parent that
    just built a 1M-row store reports the parent's peak. Falls back to ru_maxrss off Linux.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sample_chunks(n: int, seed: int) -> list[tuple[int, int, str]]:
    """The benchmarks' corpus: the first `n` chunks (document number, chunk index, text) of the
    generated PII-laden Korean/English sample texts, cut by the project chunker."""
    from aisg_pipelines.governance.chunking import ChunkerParams, chunk_text
    from aisg_pipelines.sample_data import generate_labelled_texts

    params = ChunkerParams()
    out: list[tuple[int, int, str]] = []
    k = 0
    while len(out) < n:
        for lt in generate_labelled_texts(200, seed=seed + k):
            out.extend((k, i, text) for i, text in enumerate(chunk_text(lt.text, params)))
            k += 1
            if len(out) >= n:
                break
    return out[:n]
