"""Sentence-aware chunking with a size limit and sentence overlap (plain module)."""

from __future__ import annotations

import re
from dataclasses import dataclass

# A sentence ends at . ! ? … or the CJK full stop, followed by whitespace; also at blank lines.
_SENTENCE_END = re.compile(r"(?<=[.!?…。])\s+|\n\s*\n")


@dataclass(frozen=True)
class ChunkerParams:
    chunk_size: int = 500  # characters
    chunk_overlap: int = 100  # characters of trailing sentences carried into the next chunk

    def __post_init__(self):
        if self.chunk_size < 50:
            raise ValueError(f"chunk_size must be at least 50 characters, got {self.chunk_size}")
        if not 0 <= self.chunk_overlap < self.chunk_size // 2:
            raise ValueError(f"chunk_overlap must be between 0 and chunk_size/2, got {self.chunk_overlap}")


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def _hard_split(sentence: str, size: int) -> list[str]:
    """A sentence longer than a chunk is cut at whitespace (or anywhere if there is none)."""
    parts, rest = [], sentence
    while len(rest) > size:
        cut = rest.rfind(" ", 0, size)
        cut = cut if cut > size // 2 else size
        parts.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    if rest:
        parts.append(rest)
    return parts


def chunk_text(text: str, params: ChunkerParams = ChunkerParams()) -> list[str]:
    sentences: list[str] = []
    for s in split_sentences(text):
        sentences.extend(_hard_split(s, params.chunk_size) if len(s) > params.chunk_size else [s])
    chunks: list[str] = []
    current: list[str] = []
    length = 0
    for s in sentences:
        if current and length + 1 + len(s) > params.chunk_size:
            chunks.append(" ".join(current))
            # carry trailing sentences (up to chunk_overlap chars) into the next chunk
            carried: list[str] = []
            carried_len = 0
            for prev in reversed(current):
                if carried_len + len(prev) + 1 > params.chunk_overlap:
                    break
                carried.insert(0, prev)
                carried_len += len(prev) + 1
            current, length = carried, carried_len
        current.append(s)
        length += len(s) + 1
    if current:
        chunks.append(" ".join(current))
    return chunks
