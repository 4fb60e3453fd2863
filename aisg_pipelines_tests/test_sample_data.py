"""Synthetic labelled texts and the landing-zone generator."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from aisg_pipelines.sample_data import (
    ENTITY_TYPES,
    LabelledSpan,
    LabelledText,
    generate_labelled_texts,
    generate_landing_zone,
    make_card,
    make_rrn,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
DOC_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
SUBJECT_ID_RE = re.compile(r"^[A-Za-z0-9._@:+-]{1,128}$")
REQUIRED = ("doc_id", "subject_id", "uploaded_at", "category", "source")
RRN_SHAPE = re.compile(r"(?<!\d)\d{6}-\d{7}(?!\d)")


def _rrn_ok(rrn: str) -> bool:
    d = rrn.replace("-", "")
    s = sum(int(c) * w for c, w in zip(d[:12], [2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5]))
    return (11 - s % 11) % 10 == int(d[12])


def _luhn_ok(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def test_value_generators() -> None:
    import random

    rng = random.Random(1)
    for _ in range(200):
        assert _rrn_ok(make_rrn(rng))
        assert not _rrn_ok(make_rrn(rng, valid=False))
        assert _luhn_ok(make_card(rng))


def test_labelled_texts_shape_and_spans() -> None:
    texts = generate_labelled_texts(60)
    assert len(texts) == 60
    assert {t.language for t in texts} == {"ko", "en"}
    kinds = Counter()
    for lt in texts:
        assert isinstance(lt, LabelledText)
        assert 300 <= len(lt.text) <= 1700, len(lt.text)
        assert lt.text.count(".") + lt.text.count("다") >= 3  # multi-sentence
        prev_end = -1
        for sp in lt.spans:
            assert isinstance(sp, LabelledSpan)
            assert lt.text[sp.start:sp.end] == sp.value
            assert sp.entity_type in ENTITY_TYPES
            assert sp.start >= prev_end  # sorted, non-overlapping
            prev_end = sp.end
            kinds[sp.entity_type] += 1
            if sp.entity_type == "KR_RRN":
                assert _rrn_ok(sp.value)
            if sp.entity_type == "CREDIT_CARD":
                assert _luhn_ok(sp.value)
    assert set(kinds) == set(ENTITY_TYPES)
    assert min(kinds.values()) >= 10


def test_labelled_texts_contain_near_misses() -> None:
    texts = generate_labelled_texts(60)
    bad_rrns = [
        m.group()
        for lt in texts
        for m in RRN_SHAPE.finditer(lt.text)
        if not any(s.start == m.start() for s in lt.spans)
    ]
    assert bad_rrns and not any(_rrn_ok(r) for r in bad_rrns)
    joined = "\n".join(t.text for t in texts)
    assert re.search(r"(?<![\d.])\d\.\d{1,2}\.\d{1,3}(?![\d.])", joined)  # version numbers
    assert re.search(r"\b20\d\d-\d\d-\d\d\b", joined)  # dates
    assert re.search(r"\d{1,3}(,\d{3})+", joined)  # prices


def test_labelled_texts_deterministic() -> None:
    a = generate_labelled_texts(12, seed=3)
    b = generate_labelled_texts(12, seed=3)
    c = generate_labelled_texts(12, seed=4)
    assert a == b
    assert [t.text for t in a] != [t.text for t in c]


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    root = tmp_path_factory.mktemp("landing")
    manifest = generate_landing_zone(root, now=NOW, max_file_bytes=50_000)
    return root, manifest


def test_landing_zone_documents(landing) -> None:
    root, manifest = landing
    docs = manifest["documents"]
    assert len(docs) == 24
    assert {Path(d["path"]).suffix for d in docs} == {".txt", ".md", ".html", ".json"}
    assert len({d["doc_id"] for d in docs}) == 24
    for d in docs:
        path = root / d["path"]
        sidecar = Path(str(path) + ".meta.json")
        assert path.is_file() and sidecar.is_file()
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        for key in REQUIRED:
            assert key in meta
        assert DOC_ID_RE.match(meta["doc_id"]) and meta["doc_id"] == d["doc_id"]
        assert SUBJECT_ID_RE.match(meta["subject_id"]) and meta["subject_id"] == d["subject_id"]
        assert meta["category"] == "user_content"
        assert meta["source"] in {"aisg-web", "aisg-api", "aisg-mobile"}
        assert meta.get("legal_hold", False) == d["legal_hold"]
        uploaded = datetime.fromisoformat(meta["uploaded_at"])
        assert meta["uploaded_at"] == d["uploaded_at"] and meta["uploaded_at"].endswith("+00:00")
        assert uploaded.utcoffset() == timedelta(0)
        assert NOW - timedelta(days=200, hours=11) <= uploaded <= NOW
        assert path.parent.name == uploaded.strftime("%Y-%m-%d")
        assert path.name == f"{d['doc_id']}{path.suffix}"
        assert os.stat(path).st_mtime == uploaded.timestamp()
        assert 1000 <= path.stat().st_size <= 4096 + 512
        raw = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            obj = json.loads(raw)
            assert set(obj) == {"title", "body"}
        if path.suffix == ".html":
            assert raw.startswith("<!DOCTYPE html>") and "</html>" in raw
        assert set(d["pii"]) == set(ENTITY_TYPES)
        assert d["pii"]["EMAIL_ADDRESS"] >= 1 and d["pii"]["KR_RRN"] >= 1
        assert sum(d["pii"].values()) >= 3
        assert d["language"] in {"ko", "en"}


def test_landing_zone_covers_all_kinds(landing) -> None:
    _, manifest = landing
    totals = Counter()
    for d in manifest["documents"]:
        totals.update(d["pii"])
    assert all(totals[e] >= 1 for e in ENTITY_TYPES), totals


def test_landing_zone_ages_and_legal_hold(landing) -> None:
    _, manifest = landing
    docs = manifest["documents"]
    ages = [(NOW - datetime.fromisoformat(d["uploaded_at"])).days for d in docs]
    assert max(ages) > 180 and min(ages) < 30
    held = [d for d in docs if d["legal_hold"]]
    assert len({d["subject_id"] for d in held}) == 1
    assert any((NOW - datetime.fromisoformat(d["uploaded_at"])).days > 180 for d in held)
    assert manifest["legal_hold_subject"] == held[0]["subject_id"]
    subjects = manifest["subjects"]
    assert len(subjects) == 6
    assert {s["subject_id"] for s in subjects} == {d["subject_id"] for d in docs}
    assert all(SUBJECT_ID_RE.match(s["subject_id"]) for s in subjects)
    assert [s["subject_id"] for s in subjects if s["legal_hold"]] == [manifest["legal_hold_subject"]]


def test_landing_zone_bad_inputs(landing) -> None:
    root, manifest = landing
    bad = {b["expected_reason"]: root / b["path"] for b in manifest["bad_inputs"]}
    assert set(bad) == {
        "no_sidecar", "invalid_sidecar_json", "missing_fields", "not_utf8", "binary", "empty", "too_large",
    }
    for reason, path in bad.items():
        assert path.is_file()
        sidecar = Path(str(path) + ".meta.json")
        if reason == "no_sidecar":
            assert not sidecar.exists()
            continue
        assert sidecar.is_file()
        if reason == "invalid_sidecar_json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(sidecar.read_text())
            continue
        meta = json.loads(sidecar.read_text())
        if reason == "missing_fields":
            assert not all(k in meta for k in REQUIRED)
            continue
        assert all(k in meta for k in REQUIRED)
        assert DOC_ID_RE.match(meta["doc_id"]) and SUBJECT_ID_RE.match(meta["subject_id"])
    with pytest.raises(UnicodeDecodeError):
        bad["not_utf8"].read_bytes().decode("utf-8")
    bad["not_utf8"].read_bytes().decode("cp949")
    assert bad["binary"].read_bytes().startswith(b"\x89PNG") and b"\x00" in bad["binary"].read_bytes()
    assert bad["empty"].stat().st_size == 0
    assert bad["too_large"].stat().st_size > 50_000
    # the good documents stay under the limit
    assert all((root / d["path"]).stat().st_size <= 50_000 for d in manifest["documents"])


def _tree(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), int(p.stat().st_mtime))
        for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_landing_zone_deterministic(tmp_path: Path) -> None:
    m1 = generate_landing_zone(tmp_path / "a", now=NOW, max_file_bytes=20_000)
    m2 = generate_landing_zone(tmp_path / "b", now=NOW, max_file_bytes=20_000)
    assert m1 == m2
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    m3 = generate_landing_zone(tmp_path / "c", now=NOW, seed=43, include_bad_inputs=False)
    assert m3["bad_inputs"] == []
    assert [d["uploaded_at"] for d in m3["documents"]] != [d["uploaded_at"] for d in m1["documents"]]


def test_landing_zone_pii_counts_match_scrubber(landing) -> None:
    from aisg_pipelines.governance.pii import get_scrubber

    root, manifest = landing
    scrubber = get_scrubber()
    for d in manifest["documents"]:
        raw = (root / d["path"]).read_text(encoding="utf-8")
        text = json.loads(raw)["body"] if d["path"].endswith(".json") else raw
        counts = scrubber.scrub(text).counts
        assert counts == d["pii"], d["path"]
