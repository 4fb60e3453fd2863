"""Recall and false positives of the scrubber on the labelled corpus (issue 11).

The thresholds apply to the held-out split (its own seed and templates, see
``pii_corpus``); the tuning and dev splits are reported too and must not regress.
"""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from aisg_pipelines.governance.pii import ENTITY_TYPES, PiiScrubber, baseline_detect, get_scrubber  # noqa: E402
from aisg_pipelines_tests import pii_corpus as corpus  # noqa: E402


@pytest.fixture(scope="module")
def scrubber() -> PiiScrubber:
    return get_scrubber()


@pytest.fixture(scope="module", params=["tuning", "dev", "heldout"])
def split(request):
    return request.param, corpus.build(request.param)


def test_corpus_composition(scrubber: PiiScrubber, split) -> None:
    name, docs = split
    entities = [(d, e) for d in docs for e in d.entities]
    assert len(entities) >= 1000
    assert {e.kind for _, e in entities} == set(ENTITY_TYPES)
    no_context = sum(1 for d, e in entities if not scrubber.has_context(d.text, e.kind, e.start, e.end))
    glued = sum(1 for _, e in entities if e.glued)
    print(f"\n{name}: {len(entities)} entities, {no_context / len(entities):.3f} without a context word, "
          f"{glued / len(entities):.3f} glued to a Hangul particle")
    if name != "dev":  # dev was composed before these targets; it is reported, not held to them
        assert no_context / len(entities) >= 0.6, (name, no_context / len(entities))
        assert glued / len(entities) >= 0.3, (name, glued / len(entities))
    assert sum(len(d.near_misses) for d in docs) >= 300


def test_splits_differ_in_seed_and_templates() -> None:
    assert len(set(corpus.SEEDS.values())) == 3
    tuned = {t for k in corpus.KINDS for group in corpus.TEMPLATES["tuning"][k] + corpus.TEMPLATES["dev"][k] for t in group}
    held = {t for k in corpus.KINDS for group in corpus.TEMPLATES["heldout"][k] for t in group}
    assert not tuned & held
    assert not set(corpus.NEAR_TEMPLATES["heldout"]) & (set(corpus.NEAR_TEMPLATES["tuning"]) | set(corpus.NEAR_TEMPLATES["dev"]))


def test_recall_and_false_positives(scrubber: PiiScrubber, split) -> None:
    name, docs = split
    score = corpus.score(docs, scrubber.detect)
    print(f"\n{name}: recall {score.recall:.4f}, near-miss FP {score.near_miss_fp_rate:.4f} "
          + ", ".join(f"{k} {score.kind_recall(k):.3f}" for k in corpus.KINDS))
    assert score.recall >= 0.995, (name, score.missed[:10])
    for kind in corpus.KINDS:
        assert score.kind_recall(kind) >= 0.99, (name, kind, [m for m in score.missed if m[0] == kind][:10])
    assert score.near_miss_fp_rate <= 0.01, (name, score.false_hits)


def test_beats_bare_presidio_on_heldout(scrubber: PiiScrubber) -> None:
    docs = corpus.build("heldout")[:120]
    ours = corpus.score(docs, scrubber.detect)
    bare = corpus.score(docs, baseline_detect)
    assert ours.recall > bare.recall + 0.2, (ours.recall, bare.recall)


# ----------------------------------------------------------------------------
# Properties
# ----------------------------------------------------------------------------

PARTICLES = st.sampled_from(corpus.PARTICLES + ("", " ", ".", ",", ")", "!", "\n"))
PREFIX = st.sampled_from(("", " ", "연락처 ", "보내줘 ", "(", "내꺼→", "note: ", "\n", "고객 "))
DISTINCT = st.sampled_from(corpus.DISTINCTIVE)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=DISTINCT, seed=st.integers(0, 2**32 - 1), prefix=PREFIX, suffix=PARTICLES)
def test_distinctive_values_found_whatever_follows(scrubber: PiiScrubber, kind: str, seed: int, prefix: str, suffix: str) -> None:
    """A distinctive value needs no context word and is found whole, whatever follows it."""
    value = corpus.VALUE[kind](random.Random(seed))
    text = f"{prefix}{value}{suffix} 확인 부탁"
    start = len(prefix)
    spans = scrubber.detect(text)
    assert any(s.start <= start and s.end >= start + len(value) for s in spans), (text, spans)
    out = scrubber.scrub(text).text
    assert value not in out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(alphabet=st.sampled_from(list("0123456789-. :@/abcxyz가나다으로에서+()_\n０１")), max_size=120))
def test_spans_are_sorted_disjoint_and_scrub_is_clean(scrubber: PiiScrubber, text: str) -> None:
    spans = scrubber.detect(text)
    assert all(0 <= s.start < s.end <= len(text) for s in spans)
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:]))
    res = scrubber.scrub(text)
    assert sum(res.counts.values()) == len(spans)
    for s in spans:
        assert text[s.start:s.end] not in res.text or len(text[s.start:s.end]) < 7
