"""PII scrubber: real presidio recognizers and anonymizer, no mocks."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from aisg_pipelines.governance import pii  # noqa: E402
from aisg_pipelines.governance.pii import (  # noqa: E402
    ENTITY_TYPES,
    PiiScrubber,
    PiiSpan,
    ScrubResult,
    baseline_detect,
    get_scrubber,
)
from aisg_pipelines.governance.sample_data import generate_labelled_texts  # noqa: E402

ENCRYPT_KEY = "WmZq4t7w!z%C&F)J"  # 16 bytes (AES-128)


@pytest.fixture(scope="module")
def scrubber() -> PiiScrubber:
    return PiiScrubber()


@pytest.fixture(scope="module")
def labelled():
    return generate_labelled_texts(60)


# (entity type, text, the PII value inside the text)
POSITIVE = [
    ("KR_RRN", "제 주민등록번호는 900101-1234568 입니다.", "900101-1234568"),
    ("KR_RRN", "My Korean RRN is 9001011234568 for the form.", "9001011234568"),
    ("EMAIL_ADDRESS", "회신은 이메일 hong.gildong@example.co.kr 로 부탁드립니다.", "hong.gildong@example.co.kr"),
    ("EMAIL_ADDRESS", "Please write to jane.doe@example.com today.", "jane.doe@example.com"),
    ("PHONE_NUMBER", "급한 일은 휴대폰 010-2345-6789 로 연락 주세요.", "010-2345-6789"),
    ("PHONE_NUMBER", "연락처: 02-312-4567 (본사)", "02-312-4567"),
    ("PHONE_NUMBER", "Call me at +1 415 555 0132 after 6 pm.", "+1 415 555 0132"),
    ("PHONE_NUMBER", "My London phone is +44 20 7946 0958 if needed.", "+44 20 7946 0958"),
    ("CREDIT_CARD", "결제한 신용카드 번호는 4111-1111-1111-1111 입니다.", "4111-1111-1111-1111"),
    ("CREDIT_CARD", "I paid with card 5500 0000 0000 0004 yesterday.", "5500 0000 0000 0004"),
    ("IP_ADDRESS", "접속 기록을 보면 IP 192.168.10.23 에서 로그인했습니다.", "192.168.10.23"),
    ("IP_ADDRESS", "The server listens on 2001:db8::8a2e:370:7334 now.", "2001:db8::8a2e:370:7334"),
    ("URL", "자세한 내용은 홈페이지 https://www.example.com/about 를 참고하세요.", "https://www.example.com/about"),
    ("URL", "See www.example.org/docs for the details.", "www.example.org/docs"),
    ("KR_BANK_ACCOUNT", "환불은 신한은행 계좌 110-123-456789 로 입금해 주세요.", "110-123-456789"),
    ("KR_BANK_ACCOUNT", "계좌번호 1002-123-456789 (우리은행)", "1002-123-456789"),
    ("KR_BANK_ACCOUNT", "카카오뱅크 계좌 3333-01-1234567 로 송금했습니다.", "3333-01-1234567"),
    ("KR_BANK_ACCOUNT", "Please wire it to bank account 123-456-789012 today.", "123-456-789012"),
    ("KR_PASSPORT", "여권번호 M123A4567 로 예약했습니다.", "M123A4567"),
    ("KR_PASSPORT", "My Korean passport number is M12345678 and it is valid.", "M12345678"),
    ("KR_DRIVER_LICENSE", "운전면허번호 11-22-333333-44 를 알려 주었습니다.", "11-22-333333-44"),
    ("KR_DRIVER_LICENSE", "My Korean driver's license number is 13-19-123456-70 for the rental.", "13-19-123456-70"),
]

NEAR_MISSES = [
    "주민등록번호 900101-1234567 은 검증에 실패한 번호입니다.",  # bad checksum
    "Korean RRN 850505-2345679 fails its checksum.",
    "이번 분기 주문은 총 327건이고 그중 6건은 아직 배송 전입니다.",
    "We processed 48213 orders in 2025 and 1,204 in 2026.",
    "견적 금액은 5,141,000원이며 부가세는 별도입니다.",
    "The quote comes to $38,535.37 before tax.",
    "We tested everything on Python 3.11.7 and presidio 2.2.366.",
    "회의는 2026-11-20 오후 4시에 진행합니다. 연락처 업데이트는 2026-11-21 입니다.",
    "The review is scheduled for 2026-11-20 at 10:00.",
    "Revenue grew 17% compared to last year; version 1.13.27 shipped on 2026-05-01.",
    "계좌 개설은 3건, 입금은 2025년 12월 1일에 했습니다.",
]


def _values(text: str, spans: list[PiiSpan]) -> set[tuple[str, str]]:
    return {(s.entity_type, text[s.start:s.end]) for s in spans}


def test_entity_types_exact() -> None:
    assert ENTITY_TYPES == (
        "KR_RRN", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IP_ADDRESS",
        "URL", "KR_BANK_ACCOUNT", "KR_PASSPORT", "KR_DRIVER_LICENSE",
    )
    assert {e for e, _, _ in POSITIVE} == set(ENTITY_TYPES)
    from aisg_pipelines.governance import sample_data

    assert sample_data.ENTITY_TYPES == ENTITY_TYPES


def test_high_confidence_means_validated_or_context(scrubber: PiiScrubber) -> None:
    text = (
        "Visit https://www.example.com/x and IP 10.0.0.7; 전화 010-2345-6789. "
        "This sentence only keeps the next number far enough from any context word: 10.1.2.3"
    )
    hi = _values(text, scrubber.high_confidence_matches(text))
    assert hi == {("IP_ADDRESS", "10.0.0.7"), ("PHONE_NUMBER", "010-2345-6789")}
    # URL without a context word (0.6) and the last IP (no context, 0.6) are below 0.8
    assert ("URL", "https://www.example.com/x") in _values(text, scrubber.detect(text))
    assert ("IP_ADDRESS", "10.1.2.3") in _values(text, scrubber.detect(text))


@pytest.mark.parametrize(("entity", "text", "value"), POSITIVE, ids=[f"{e}-{i}" for i, (e, _, _) in enumerate(POSITIVE)])
def test_each_kind_detected(scrubber: PiiScrubber, entity: str, text: str, value: str) -> None:
    spans = scrubber.detect(text)
    assert (entity, value) in _values(text, spans)
    assert len(spans) == 1, spans
    # The fast path and the bare baseline agree.
    assert spans == baseline_detect(text)


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_not_flagged(scrubber: PiiScrubber, text: str) -> None:
    assert scrubber.detect(text) == []
    assert baseline_detect(text) == []


def test_invalid_rrn_is_seen_by_presidio_but_not_counted(scrubber: PiiScrubber) -> None:
    text = "주민등록번호 900101-1234567"
    raw = pii._recognizers().rrn.analyze(text, ["KR_RRN"], None)
    assert [r.score for r in raw] == [0.5]  # presidio: unvalidated
    assert scrubber.detect(text) == []


def test_weak_patterns_need_context(scrubber: PiiScrubber) -> None:
    # Bank account / passport / phone formats without any context word score low.
    assert scrubber.detect("Reference 110-123-456789 was closed.") == []
    assert scrubber.detect("Item M12345678 is back in stock.") == []
    # ... and are found with a lower threshold.
    low = PiiScrubber(score_threshold=0.05)
    assert ("KR_BANK_ACCOUNT", "110-123-456789") in _values(
        "Reference 110-123-456789 was closed.", low.detect("Reference 110-123-456789 was closed.")
    )


def test_overlap_driver_licence_beats_phone(scrubber: PiiScrubber) -> None:
    text = "운전면허번호 11-22-333333-44, 전화 010-2345-6789"
    phone_raw = pii._recognizers().phone.analyze(text, ["PHONE_NUMBER"], None)
    assert any(text[r.start:r.end] == "11-22-333333-44" for r in phone_raw)  # the overlap is real
    spans = scrubber.detect(text)
    assert _values(text, spans) == {
        ("KR_DRIVER_LICENSE", "11-22-333333-44"),
        ("PHONE_NUMBER", "010-2345-6789"),
    }
    assert [s.start for s in spans] == sorted(s.start for s in spans)


def test_overlap_email_beats_url_domain(scrubber: PiiScrubber) -> None:
    text = "메일 주소 kim@example.com 입니다."
    assert _values(text, scrubber.detect(text)) == {("EMAIL_ADDRESS", "kim@example.com")}


def test_resolve_overlaps_rule() -> None:
    spans = [
        PiiSpan("PHONE_NUMBER", 0, 15, 0.8),
        PiiSpan("KR_BANK_ACCOUNT", 0, 15, 0.8),   # tie on score: priority wins
        PiiSpan("URL", 20, 30, 0.6),
        PiiSpan("URL", 20, 35, 0.6),              # same type and score: longer wins
        PiiSpan("IP_ADDRESS", 40, 50, 0.95),
        PiiSpan("URL", 38, 52, 0.6),              # lower score loses
    ]
    assert pii._resolve_overlaps(spans) == [
        PiiSpan("KR_BANK_ACCOUNT", 0, 15, 0.8),
        PiiSpan("URL", 20, 35, 0.6),
        PiiSpan("IP_ADDRESS", 40, 50, 0.95),
    ]


# ----------------------------------------------------------------------------
# Operators
# ----------------------------------------------------------------------------

EMAIL = "hong@example.com"
OP_TEXT = f"메일 {EMAIL} 으로 주세요."


def test_replace_default(scrubber: PiiScrubber) -> None:
    res = scrubber.scrub(OP_TEXT)
    assert isinstance(res, ScrubResult)
    assert res.text == "메일 <EMAIL_ADDRESS> 으로 주세요."
    assert res.counts == {**{e: 0 for e in ENTITY_TYPES}, "EMAIL_ADDRESS": 1}
    assert res.spans == [PiiSpan("EMAIL_ADDRESS", 3, 3 + len(EMAIL), 1.0)]


def test_replace_custom_value() -> None:
    s = PiiScrubber(operators={"EMAIL_ADDRESS": {"type": "replace", "new_value": "[메일]"}})
    assert s.scrub(OP_TEXT).text == "메일 [메일] 으로 주세요."


def test_mask() -> None:
    s = PiiScrubber(operators={"EMAIL_ADDRESS": {"type": "mask", "masking_char": "*", "chars_to_mask": 100, "from_end": False}})
    assert s.scrub(OP_TEXT).text == f"메일 {'*' * len(EMAIL)} 으로 주세요."
    s2 = PiiScrubber(operators={"EMAIL_ADDRESS": {"type": "mask", "masking_char": "#", "chars_to_mask": 4, "from_end": True}})
    assert s2.scrub(OP_TEXT).text == "메일 hong@example#### 으로 주세요."


def test_hash_with_salt() -> None:
    salt = "0123456789abcdef-salt"
    s = PiiScrubber(operators={"EMAIL_ADDRESS": {"type": "hash", "hash_type": "sha256", "salt": salt}})
    digest = hashlib.sha256(EMAIL.encode() + salt.encode()).hexdigest()
    assert s.scrub(OP_TEXT).text == f"메일 {digest} 으로 주세요."


def test_redact() -> None:
    s = get_scrubber('{"EMAIL_ADDRESS": {"type": "redact"}, "URL": {"type": "redact"}}')
    assert s.scrub(OP_TEXT).text == "메일  으로 주세요."


def test_encrypt_roundtrip() -> None:
    from presidio_anonymizer import DeanonymizeEngine
    from presidio_anonymizer.entities import OperatorConfig, OperatorResult

    s = PiiScrubber(operators={"EMAIL_ADDRESS": {"type": "encrypt"}}, encrypt_key=ENCRYPT_KEY)
    out = s.scrub(OP_TEXT).text
    prefix, suffix = "메일 ", " 으로 주세요."
    assert out.startswith(prefix) and out.endswith(suffix)
    token = out[len(prefix):-len(suffix)]
    assert token != EMAIL and EMAIL not in out
    restored = DeanonymizeEngine().deanonymize(
        out,
        [OperatorResult(start=len(prefix), end=len(prefix) + len(token), entity_type="EMAIL_ADDRESS")],
        {"DEFAULT": OperatorConfig("decrypt", {"key": ENCRYPT_KEY})},
    )
    assert restored.text == OP_TEXT


def test_default_operator_key() -> None:
    s = PiiScrubber(operators={"DEFAULT": {"type": "redact"}, "URL": {"type": "replace"}})
    text = "Mail kim@example.com or see https://example.org/x now."
    assert s.scrub(text).text == "Mail  or see <URL> now."


@pytest.mark.parametrize(
    ("operators", "kwargs", "message"),
    [
        ({"SSN": {"type": "replace"}}, {}, "Unknown PII entity type 'SSN'"),
        ({"EMAIL_ADDRESS": {"type": "shred"}}, {}, "Unknown operator type 'shred'"),
        ({"EMAIL_ADDRESS": {"masking_char": "*"}}, {}, "Unknown operator type None"),
        ({"EMAIL_ADDRESS": {"type": "encrypt"}}, {}, "needs a key"),
        ({"EMAIL_ADDRESS": {"type": "encrypt"}}, {"encrypt_key": "short"}, "Invalid operator config"),
        ({"EMAIL_ADDRESS": {"type": "mask", "masking_char": "**", "chars_to_mask": 3, "from_end": False}}, {}, "Invalid operator config"),
        ({"EMAIL_ADDRESS": {"type": "hash", "hash_type": "md5"}}, {}, "Invalid operator config"),
        ({"EMAIL_ADDRESS": 42}, {}, "must be a dict"),
    ],
)
def test_invalid_operator_config(operators, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        PiiScrubber(operators=operators, **kwargs)


def test_get_scrubber_cached_and_validated() -> None:
    assert get_scrubber() is get_scrubber(None)
    cfg = '{"URL": {"type": "redact"}}'
    assert get_scrubber(cfg) is get_scrubber(cfg)
    assert get_scrubber(cfg) is not get_scrubber()
    with pytest.raises(ValueError, match="not valid JSON"):
        get_scrubber("{nope")
    with pytest.raises(ValueError, match="JSON object"):
        get_scrubber("[1, 2]")


# ----------------------------------------------------------------------------
# Corpus-level properties
# ----------------------------------------------------------------------------


def test_recall_precision_on_labelled_texts(scrubber: PiiScrubber, labelled) -> None:
    tp = fp = fn = 0
    for lt in labelled:
        gold = {(s.start, s.end, s.entity_type) for s in lt.spans}
        pred = {(s.start, s.end, s.entity_type) for s in scrubber.detect(lt.text)}
        tp += len(gold & pred)
        fp += len(pred - gold)
        fn += len(gold - pred)
    recall = tp / (tp + fn)
    precision = tp / (tp + fp)
    assert recall >= 0.99, (recall, fn)
    assert precision >= 0.99, (precision, fp)


def test_fast_path_equals_baseline(scrubber: PiiScrubber, labelled) -> None:
    for lt in labelled[:30]:
        assert scrubber.detect(lt.text) == baseline_detect(lt.text)


def test_scrubbed_text_has_no_high_confidence_matches(scrubber: PiiScrubber, labelled) -> None:
    masker = PiiScrubber(operators={"DEFAULT": {"type": "mask", "masking_char": "*", "chars_to_mask": 100, "from_end": False}})
    for lt in labelled:
        assert scrubber.high_confidence_matches(lt.text), "fixture should contain PII"
        for s in (scrubber, masker):
            res = s.scrub(lt.text)
            assert sum(res.counts.values()) == len(lt.spans)
            assert scrubber.high_confidence_matches(res.text) == []
            assert scrubber.detect(res.text) == []
            for span in lt.spans:
                assert span.value not in res.text


def test_placeholders_do_not_match() -> None:
    text = " ".join(f"<{e}>" for e in ENTITY_TYPES)
    assert baseline_detect(text, score_threshold=0.05) == []


def test_empty_and_plain_text(scrubber: PiiScrubber) -> None:
    assert scrubber.detect("") == []
    res = scrubber.scrub("그냥 평범한 문장입니다.")
    assert res.text == "그냥 평범한 문장입니다." and res.spans == []
    assert set(res.counts) == set(ENTITY_TYPES) and not any(res.counts.values())


def test_no_network_during_construction_and_detection(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    pii._recognizers.cache_clear()
    try:
        s = PiiScrubber()
        text = "Mail kim@example.co.kr, see https://www.example.com/x and login from 10.0.0.7 (전화 010-2345-6789)."
        found = {e for e, _ in _values(text, s.detect(text))}
        assert found == {"EMAIL_ADDRESS", "URL", "IP_ADDRESS", "PHONE_NUMBER"}
        assert baseline_detect(text) == s.detect(text)
    finally:
        pii._recognizers.cache_clear()


def test_module_import_is_light() -> None:
    code = (
        "import sys, aisg_pipelines.governance.pii, aisg_pipelines.governance.sample_data\n"
        "heavy = [m for m in ('presidio_analyzer', 'presidio_anonymizer', 'tldextract', 'spacy', 'faker') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
