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
from aisg_pipelines.sample_data import generate_labelled_texts  # noqa: E402

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
    # No context word, glued particles, post-2020 RRNs, full-width digits, any TLD.
    ("PHONE_NUMBER", "01012345678로 문자 주세요", "01012345678"),
    ("PHONE_NUMBER", "새 번호 +82 10 1234 5678이야", "+82 10 1234 5678"),
    ("PHONE_NUMBER", "０１０－１２３４－５６７８으로 연락", "０１０－１２３４－５６７８"),
    ("PHONE_NUMBER", "사무실 031-123-4567에서 받아요", "031-123-4567"),
    ("PHONE_NUMBER", "인터넷전화 070.1234.5678 입니다", "070.1234.5678"),
    ("KR_RRN", "가입자 211013-3123456을 조회", "211013-3123456"),
    ("CREDIT_CARD", "3782 822463 10005로 결제", "3782 822463 10005"),
    ("EMAIL_ADDRESS", "문의는 help@startup.io로", "help@startup.io"),
    ("IP_ADDRESS", "fe80::1ff:fe23:4567:890a에서 접속", "fe80::1ff:fe23:4567:890a"),
    ("URL", "후기는 minji.blog/posts/12에 남겼어요", "minji.blog/posts/12"),
    ("URL", "(출처: http://photo-kim.museum/u/kim)", "http://photo-kim.museum/u/kim"),
]

# The strings of issue 11's "Why": each must come out with the value replaced whole.
WHY = [
    ("제 번호는 010-1234-5678 입니다", "제 번호는 <PHONE_NUMBER> 입니다"),
    ("Reach Kim on 010-9876-5432", "Reach Kim on <PHONE_NUMBER>"),
    ("01012345678 로 문자 주세요", "<PHONE_NUMBER> 로 문자 주세요"),
    ("+82-10-1234-5678", "<PHONE_NUMBER>"),
    ("주민번호 900101-1234567", "주민번호 <KR_RRN>"),
    ("203.0.113.7에서 접속", "<IP_ADDRESS>에서 접속"),
    ("kim@naver.com으로 보내주세요", "<EMAIL_ADDRESS>으로 보내주세요"),
    ("https://carter.biz/u/kristen", "<URL>"),
]

NEAR_MISSES = [
    "주민등록번호 901301-1234567 은 날짜가 아니라서 번호가 아닙니다.",  # month 13
    "Korean RRN 850505-9345679 has no valid gender digit.",
    "이번 분기 주문은 총 327건이고 그중 6건은 아직 배송 전입니다.",
    "We processed 48213 orders in 2025 and 1,204 in 2026.",
    "견적 금액은 5,141,000원이며 부가세는 별도입니다.",
    "The quote comes to $38,535.37 before tax.",
    "We tested everything on Python 3.11.7 and presidio 2.2.366.",
    "회의는 2026-11-20 오후 4시에 진행합니다. 연락처 업데이트는 2026-11-21 입니다.",
    "The review is scheduled for 2026-11-20 at 10:00.",
    "Revenue grew 17% compared to last year; version 1.13.27 shipped on 2026-05-01.",
    "계좌 개설은 3건, 입금은 2025년 12월 1일에 했습니다.",
    "run id 3f2a9c1e-0b7d-4e21-9c3a-501012345678 finished",
    "sha256 0101234567890abcdef0123456789abcdef0123456789abcdef0123456789ab",
    "배치 20261201123456 과 주문번호 ORD-20261201-0042, INV-2026-00417 처리 완료",
    "ISBN 978-89-123-4567-8 의 표 3-2 와 p. 123, 제3조 2항 참고",
    "build 1.010.1234.5678 released at 09:30:15",
    "See pii.py and README.md; df.info() prints the schema.",
]


def _values(text: str, spans: list[PiiSpan]) -> set[tuple[str, str]]:
    return {(s.entity_type, text[s.start:s.end]) for s in spans}


def test_entity_types_exact() -> None:
    assert ENTITY_TYPES == (
        "KR_RRN", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IP_ADDRESS",
        "URL", "KR_BANK_ACCOUNT", "KR_PASSPORT", "KR_DRIVER_LICENSE",
    )
    assert {e for e, _, _ in POSITIVE} == set(ENTITY_TYPES)
    from aisg_pipelines import sample_data

    assert sample_data.ENTITY_TYPES == ENTITY_TYPES


@pytest.mark.parametrize(("entity", "text", "value"), POSITIVE, ids=[f"{e}-{i}" for i, (e, _, _) in enumerate(POSITIVE)])
def test_each_kind_detected(scrubber: PiiScrubber, entity: str, text: str, value: str) -> None:
    spans = scrubber.detect(text)
    assert _values(text, spans) == {(entity, value)}


@pytest.mark.parametrize(("text", "scrubbed"), WHY)
def test_issue_strings_scrubbed_whole(scrubber: PiiScrubber, text: str, scrubbed: str) -> None:
    assert scrubber.scrub(text).text == scrubbed


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_not_flagged(scrubber: PiiScrubber, text: str) -> None:
    assert scrubber.detect(text) == []


def test_rrn_verdict_post_2020_numbers() -> None:
    assert pii.rrn_verdict("900101-1234568") is True  # pre-2020: the check digit validates
    assert pii.rrn_verdict("900101-1234567") is None  # valid date + gender digit: still an RRN
    assert pii.rrn_verdict("211013-3123456") is None  # born 2021
    assert pii.rrn_verdict("901301-1234567") is False  # month 13
    assert pii.rrn_verdict("900230-1234567") is False  # 30 February
    assert pii.rrn_verdict("900101-9234567") is False  # gender digit 9 (born 1800s)


def test_weak_patterns_need_context(scrubber: PiiScrubber) -> None:
    # Bank account / passport / compact licence formats without a context word are left.
    assert scrubber.detect("Reference 110-123-456789 was closed.") == []
    assert scrubber.detect("Item M12345678 is back in stock.") == []
    assert scrubber.detect("Ticket 112233333344 closed.") == []
    # ... are found with a lower threshold ...
    low = PiiScrubber(score_threshold=0.05)
    text = "Reference 110-123-456789 was closed."
    assert ("KR_BANK_ACCOUNT", "110-123-456789") in _values(text, low.detect(text))
    # ... and with a context word on either side of the value within the sentence,
    for text in ("신한 110-123-456789로 보내줘", "110-123-456789 (신한, 예금주 김민지)로 입금",
                 "110-123-456789로 송금했어요"):
        assert _values(text, scrubber.detect(text)) == {("KR_BANK_ACCOUNT", "110-123-456789")}, text
    # but not from another sentence, nor past another number that the word belongs to.
    assert scrubber.detect("신한은행에 다녀왔어요. 110-123-456789 는 주문번호입니다.") == []
    text = "국민 123456-01-123456, 주문 110-123-456789 확인"
    assert _values(text, scrubber.detect(text)) == {("KR_BANK_ACCOUNT", "123456-01-123456")}


def test_overlap_driver_licence_beats_phone(scrubber: PiiScrubber) -> None:
    text = "운전면허번호 11-22-333333-44, 전화 010-2345-6789"
    spans = scrubber.detect(text)
    assert _values(text, spans) == {
        ("KR_DRIVER_LICENSE", "11-22-333333-44"),
        ("PHONE_NUMBER", "010-2345-6789"),
    }
    assert [s.start for s in spans] == sorted(s.start for s in spans)


def test_overlap_email_beats_url_domain(scrubber: PiiScrubber) -> None:
    text = "메일 주소 kim@example.com 입니다."
    assert _values(text, scrubber.detect(text)) == {("EMAIL_ADDRESS", "kim@example.com")}


def test_card_after_another_number_is_found(scrubber: PiiScrubber) -> None:
    # presidio's non-overlapping finditer would consume "9133 4249 0319 9364" (fails Luhn).
    text = "build 2030.5.9133 4249 0319 9364 7906, exp 09/29"
    card = "4249 0319 9364 7906"
    assert pii.luhn_ok(card.replace(" ", ""))
    assert _values(text, scrubber.detect(text)) == {("CREDIT_CARD", card)}


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
# Recognizer configuration (registered by name, like the operators)
# ----------------------------------------------------------------------------


def test_recognizer_config_disable_extend_and_add() -> None:
    text = "봉급 110-123-456789, 여권 M12345678, 사번 EMP-778812"
    default = PiiScrubber()
    assert _values(text, default.detect(text)) == {("KR_PASSPORT", "M12345678")}
    s = PiiScrubber(recognizers={
        "KrPassportRecognizer": False,
        "KrBankAccountRecognizer": {"context": ["봉급"]},
        "EmployeeIdRecognizer": {"entity": "KR_BANK_ACCOUNT", "patterns": [{"regex": r"EMP-\d{6}", "score": 0.9}]},
    })
    assert "KrPassportRecognizer" not in s.recognizer_names and "EmployeeIdRecognizer" in s.recognizer_names
    assert _values(text, s.detect(text)) == {("KR_BANK_ACCOUNT", "110-123-456789"), ("KR_BANK_ACCOUNT", "EMP-778812")}
    cfg = '{"recognizers": {"KrPassportRecognizer": false}}'
    assert "KrPassportRecognizer" not in get_scrubber(cfg).recognizer_names


@pytest.mark.parametrize(("recognizers", "match"), [
    ({"NoSuchRecognizer": True}, "unknown recognizer"),
    ({"KrPhoneRecognizer": {"score": 2}}, "unknown option"),
    ({"KrPhoneRecognizer": {"context": "전화"}}, "list of non-empty strings"),
    ({"Mine": {"entity": "SSN", "patterns": [{"regex": "x"}]}}, "entity must be one of"),
    ({"Mine": {"entity": "URL", "patterns": [{"regex": "("}]}}, "not a valid regex"),
])
def test_recognizer_config_errors(recognizers: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PiiScrubber(recognizers=recognizers)


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


def test_scrubbed_text_has_no_matches(scrubber: PiiScrubber, labelled) -> None:
    masker = PiiScrubber(operators={"DEFAULT": {"type": "mask", "masking_char": "*", "chars_to_mask": 100, "from_end": False}})
    for lt in labelled:
        assert scrubber.detect(lt.text), "fixture should contain PII"
        for s in (scrubber, masker):
            res = s.scrub(lt.text)
            assert sum(res.counts.values()) == len(lt.spans)
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
    pii._recognizer_set.cache_clear()
    pii._tld_extractor.cache_clear()
    try:
        s = PiiScrubber()
        text = "Mail kim@example.co.kr, see https://www.example.com/x and login from 10.0.0.7 (전화 010-2345-6789)."
        found = {e for e, _ in _values(text, s.detect(text))}
        assert found == {"EMAIL_ADDRESS", "URL", "IP_ADDRESS", "PHONE_NUMBER"}
        assert {e for e, _ in _values(text, baseline_detect(text))} == found
    finally:
        pii._recognizer_set.cache_clear()
        pii._tld_extractor.cache_clear()


def test_module_import_is_light() -> None:
    code = (
        "import sys, aisg_pipelines.governance.pii, aisg_pipelines.sample_data\n"
        "heavy = [m for m in ('presidio_analyzer', 'presidio_anonymizer', 'tldextract', 'spacy', 'faker') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
