"""The 64-bit key mix shared by the erasure byte scanner (`bytescan.PatternScanner`: keys of
8-byte words read at sampled buffer positions) and the orphan detector's compact exact keys
(`orphans._Keys`: fixed-width id/hash columns). A key only narrows a lookup; both callers
confirm every hit on the full bytes, so results are exact whatever the collisions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio: Fibonacci hashing
_M2 = np.uint64(0xBF58476D1CE4E5B9)  # splitmix64's second multiplier


def mix64_words(words: Sequence[np.ndarray], seed: int) -> np.ndarray:
    """One uint64 per row from equally long uint64 word arrays (a splitmix64-style fold;
    wrap-around arithmetic). `seed` separates keys of different widths."""
    h = np.full(len(words[0]), np.uint64(seed), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for w in words:
            h = (h ^ w) * GOLDEN
            h ^= h >> np.uint64(31)
            h *= _M2
            h ^= h >> np.uint64(29)
    return h
