"""Synthetic uploads with PII for tests, demos and benchmarks.

Two entry points:

* :func:`generate_labelled_texts` - Korean and English multi-sentence texts
  with PII of all nine kinds (see ``aisg_pipelines.governance.pii``)
  embedded at exactly known character offsets, plus near misses that must
  NOT be flagged (an RRN with a bad checksum, order counts, years, prices,
  version numbers such as 3.11.7, dates such as 2026-11-20).
* :func:`generate_landing_zone` - writes a landing zone of uploads to disk.

Landing zone format
-------------------

Each upload is one file plus a JSON sidecar next to it::

    landing_dir/
      2026-05-01/
        doc-0001.txt
        doc-0001.txt.meta.json
        doc-0002.md
        doc-0002.md.meta.json
        doc-0003.html
        doc-0003.html.meta.json
        doc-0004.json
        doc-0004.json.meta.json

* Upload files are grouped in one folder per upload day (``YYYY-MM-DD``,
  UTC) and named ``<doc_id>.<ext>``, with ``ext`` one of ``txt``, ``md``,
  ``html`` (a small HTML page) or ``json`` (an object
  ``{"title": str, "body": str}``). Text is UTF-8.
* The sidecar is the upload's file name plus ``.meta.json`` and holds a JSON
  object::

      {"doc_id": "doc-0001",                  # ^[A-Za-z0-9._:-]{1,128}$
       "subject_id": "subj-ko-001",           # ^[A-Za-z0-9._@:+-]{1,128}$
       "uploaded_at": "2026-05-01T09:30:00+00:00",   # ISO-8601, UTC
       "category": "user_content",
       "source": "aisg-web",                  # or "aisg-api", "aisg-mobile"
       "legal_hold": true}                    # optional, default false

  ``doc_id``, ``subject_id``, ``uploaded_at``, ``category`` and ``source``
  are required.
* Both files' mtimes are set to ``uploaded_at``.

With ``include_bad_inputs=True`` one of each bad input is also written under
``landing_dir/<day>/`` (each, except the first, with an otherwise valid
sidecar): a file without sidecar (``no_sidecar``), a sidecar that is not
JSON (``invalid_sidecar_json``), a sidecar missing required fields
(``missing_fields``), a cp949-encoded file (``not_utf8``), PNG bytes with a
``.txt`` extension (``binary``), an empty file (``empty``) and a file larger
than ``max_file_bytes`` (``too_large``).
"""

from __future__ import annotations

import html
import json
import os
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from .governance.pii import ENTITY_TYPES  # the scrubber's kinds; pii imports only the stdlib at load

REQUIRED_SIDECAR_FIELDS = ("doc_id", "subject_id", "uploaded_at", "category", "source")
SOURCES = ("aisg-web", "aisg-api", "aisg-mobile")
EXTENSIONS = ("txt", "md", "html", "json")
LEGAL_HOLD_MIN_AGE_DAYS = 180


@dataclass(frozen=True)
class LabelledSpan:
    start: int
    end: int
    entity_type: str
    value: str


@dataclass
class LabelledText:
    text: str
    spans: list[LabelledSpan]
    language: str  # "ko" or "en"


# ---------------------------------------------------------------------------
# PII value generators
# ---------------------------------------------------------------------------


def _rrn_check_digit(first12: str) -> int:
    weights = [2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5]
    s = sum(int(d) * w for d, w in zip(first12, weights))
    return (11 - (s % 11)) % 10


def make_rrn(rng: random.Random, valid: bool = True) -> str:
    """A Korean RRN ``YYMMDD-GHIJKLX``; ``valid=False`` gives a number that is no RRN:
    a month 13-19 and a bad checksum (a valid date with any checksum is an RRN, since
    RRNs issued from October 2020 on carry no valid check digit)."""
    century2000 = rng.random() < 0.25
    yy = rng.randint(0, 19) if century2000 else rng.randint(50, 99)
    mm = rng.randint(1, 12) if valid else rng.randint(13, 19)
    dd = rng.randint(1, 28)
    g = rng.choice("34" if century2000 else "12")
    region = f"{rng.randint(0, 95):02d}"
    serial = f"{rng.randint(0, 999):03d}"
    first12 = f"{yy:02d}{mm:02d}{dd:02d}{g}{region}{serial}"
    check = _rrn_check_digit(first12)
    if not valid:
        check = (check + rng.randint(1, 9)) % 10
    return f"{first12[:6]}-{first12[6:]}{check}"


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    digits = prefix + "".join(str(rng.randint(0, 9)) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:  # doubled positions (check digit will be appended at the right)
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return digits + str((10 - total % 10) % 10)


def make_card(rng: random.Random) -> str:
    prefix = rng.choice(["4", "4", "51", "52", "53", "54", "55", "6011"])
    num = _luhn_complete(prefix, 16, rng)
    sep = rng.choice(["-", " ", ""])
    return sep.join(num[i:i + 4] for i in range(0, 16, 4))


def make_phone(rng: random.Random, lang: str) -> str:
    """A phone number that libphonenumber considers valid (allocated range)."""
    import phonenumbers

    for _ in range(100):
        value = _phone_candidate(rng, lang)
        try:
            parsed = phonenumbers.parse(value, "KR" if not value.startswith(("+", "(")) else "US")
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return value
    raise RuntimeError("could not generate a valid phone number")  # pragma: no cover


def _phone_candidate(rng: random.Random, lang: str) -> str:
    kind = rng.random()
    if lang == "ko" and kind < 0.75 or lang == "en" and kind < 0.2:
        sub = rng.random()
        if sub < 0.6:
            return f"010-{rng.randint(2000, 9999)}-{rng.randint(0, 9999):04d}"
        if sub < 0.8:
            return f"02-{rng.randint(300, 899)}-{rng.randint(0, 9999):04d}"
        return f"+82 10-{rng.randint(2000, 9999)}-{rng.randint(0, 9999):04d}"
    sub = rng.random()
    area = rng.choice(["415", "212", "646", "617", "206", "312"])
    line = f"{rng.randint(100, 199):04d}"
    if sub < 0.4:
        return f"+1 {area} 555 {line}"
    if sub < 0.6:
        return f"({area}) 555-{line}"
    if sub < 0.8:
        return f"+44 20 7946 0{rng.randint(0, 999):03d}"
    return f"+1-{area}-555-{line}"


_EMAIL_DOMAINS = (
    "example.com", "example.org", "example.co.kr", "naver.com", "gmail.com",
    "kakao.com", "daum.net", "mail.example.net", "aisg.example.com",
)


def make_email(rng: random.Random, fake_en) -> str:
    user = fake_en.user_name()
    if rng.random() < 0.3:
        user = f"{user}.{rng.randint(1, 99)}"
    return f"{user}@{rng.choice(_EMAIL_DOMAINS)}"


def make_url(rng: random.Random, fake_en) -> str:
    word = fake_en.domain_word()
    tld = rng.choice(["com", "org", "net", "co.kr", "kr", "io"])
    path = rng.choice(["", "/", f"/posts/{rng.randint(1, 9999)}", "/about", f"/item?id={rng.randint(1, 999)}"])
    if rng.random() < 0.7:
        scheme = rng.choice(["https://", "http://"])
        host = rng.choice(["www.", "", "blog."])
        return f"{scheme}{host}{word}.{tld}{path}"
    return f"www.{word}.{tld}{path}"


def make_ip(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.4:
        return f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    if r < 0.6:
        return f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    if r < 0.8:
        return f"203.0.113.{rng.randint(1, 254)}"
    return f"2001:db8:{rng.randint(1, 0xFFFF):x}::{rng.randint(1, 0xFFFF):x}"


def make_bank_account(rng: random.Random) -> str:
    def d(n: int) -> str:
        return "".join(str(rng.randint(0, 9)) for _ in range(n))

    fmt = rng.choice(["3-3-6", "4-3-6", "4-2-7", "3-6-2-3", "6-2-6"])
    if fmt == "3-3-6":
        return f"{rng.choice(['110', '123', '352', '301'])}-{d(3)}-{d(6)}"
    if fmt == "4-3-6":
        return f"1002-{d(3)}-{d(6)}"
    if fmt == "4-2-7":
        return f"3333-{d(2)}-{d(7)}"
    if fmt == "3-6-2-3":
        return f"{d(3)}-{d(6)}-{d(2)}-{d(3)}"
    return f"{d(6)}-{d(2)}-{d(6)}"


def make_passport(rng: random.Random) -> str:
    letter = rng.choice("MSRODM")
    if rng.random() < 0.6:
        return f"{letter}{rng.randint(0, 999):03d}{rng.choice('ABCDEFGHJKLMNPQRSTUVWXYZ')}{rng.randint(0, 9999):04d}"
    return f"{letter}{rng.randint(0, 99_999_999):08d}"


def make_driver_license(rng: random.Random) -> str:
    region = rng.choice(["11", "12", "13", "14", "15", "16", "17", "18", "19", "20",
                         "21", "22", "23", "24", "25", "26", "28"])
    return f"{region}-{rng.randint(0, 99):02d}-{rng.randint(0, 999_999):06d}-{rng.randint(0, 99):02d}"


# ---------------------------------------------------------------------------
# Sentence templates
# ---------------------------------------------------------------------------

# "{v}" marks the PII value. Every PII value is followed by a space or by
# punctuation that no recognizer absorbs, so label spans are exact.
_PII_TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "ko": {
        "KR_RRN": (
            "본인 확인을 위해 주민등록번호 {v} 를 함께 보내드립니다.",
            "{name} 님의 주민번호는 {v} 입니다.",
            "신청서에 적은 주민등록번호: {v}",
        ),
        "EMAIL_ADDRESS": (
            "회신은 이메일 {v} 로 부탁드립니다.",
            "담당자 {name} ({v}) 에게 문의하세요.",
            "메일 주소가 {v} 으로 변경되었습니다.",
        ),
        "PHONE_NUMBER": (
            "급한 일은 휴대폰 {v} 로 연락 주세요.",
            "연락처: {v} ({name})",
            "전화번호 {v} 로 오후에 통화 가능합니다.",
        ),
        "CREDIT_CARD": (
            "결제한 신용카드 번호는 {v} 입니다.",
            "카드 {v} 로 {price}원이 결제되었습니다.",
        ),
        "IP_ADDRESS": (
            "접속 기록을 보면 IP {v} 에서 로그인했습니다.",
            "서버 주소는 {v} 이고 방화벽을 열어 두었습니다.",
        ),
        "URL": (
            "자세한 내용은 홈페이지 {v} 를 참고하세요.",
            "링크: {v} 에 자료를 올렸습니다.",
        ),
        "KR_BANK_ACCOUNT": (
            "환불 금액은 계좌번호 {v} ({bank}) 로 입금해 주세요.",
            "{bank} 계좌 {v} 로 송금했습니다.",
            "입금 계좌: {v} 예금주 {name}",
        ),
        "KR_PASSPORT": (
            "여권번호 {v} 로 항공권을 예약했습니다.",
            "출국 수속 때 여권 {v} 를 제시했습니다.",
        ),
        "KR_DRIVER_LICENSE": (
            "운전면허번호 {v} 를 렌터카 업체에 알려 주었습니다.",
            "면허번호는 {v} 입니다.",
        ),
    },
    "en": {
        "KR_RRN": (
            "For the visa form I used my Korean RRN {v} as requested.",
            "Resident registration number: {v}",
        ),
        "EMAIL_ADDRESS": (
            "Please reply to {v} when you get a chance.",
            "You can email {name} at {v} about the invoice.",
        ),
        "PHONE_NUMBER": (
            "Call me at {v} after 6 pm.",
            "My mobile phone is {v} if anything comes up.",
            "Contact {name} by phone: {v}",
        ),
        "CREDIT_CARD": (
            "The credit card on file is {v} and it expires next year.",
            "I paid with my Visa card {v} yesterday.",
        ),
        "IP_ADDRESS": (
            "The login came from IP {v} according to the logs.",
            "Our staging server listens on {v} behind the VPN.",
        ),
        "URL": (
            "The full report is on our website {v} for anyone interested.",
            "Here is the link {v} to the shared folder.",
        ),
        "KR_BANK_ACCOUNT": (
            "Please wire the deposit to bank account {v} at {bank_en}.",
            "My account number at {bank_en} is {v} for the refund.",
        ),
        "KR_PASSPORT": (
            "My Korean passport number is {v} and it is valid until 2031.",
            "The passport {v} was scanned at check-in.",
        ),
        "KR_DRIVER_LICENSE": (
            "My Korean driver's license number is {v} for the rental.",
            "Driver license: {v}",
        ),
    },
}

_PROSE: dict[str, tuple[str, ...]] = {
    "ko": (
        "안녕하세요, {name} 입니다.",
        "지난주 {city} 지점 방문 때 말씀드린 건으로 연락드립니다.",
        "이번 분기 주문은 총 {count}건이고 그중 {small}건은 아직 배송 전입니다.",
        "{company} 와의 계약은 {year}년에 갱신될 예정입니다.",
        "견적 금액은 {price}원이며 부가세는 별도입니다.",
        "회의는 {date} 오후 {hour}시에 진행합니다.",
        "시스템은 Python {version} 버전에서 테스트했습니다.",
        "요청하신 자료는 정리되는 대로 다시 공유하겠습니다.",
        "문의하신 내용은 담당 부서에 전달했습니다.",
        "{catch} 프로젝트 관련 일정이 조금 늦어지고 있습니다.",
        "참고로 예시 번호 {bad_rrn} 는 검증에 실패한 번호라서 쓰면 안 됩니다.",
        "작년 대비 매출이 {pct}% 증가했습니다.",
        "배송지는 {address} 입니다.",
        "감사합니다. 좋은 하루 보내세요.",
    ),
    "en": (
        "Hi, this is {name_en} from {company_en}.",
        "Following up on our meeting in {city_en} last week.",
        "We processed {count} orders this quarter and {small} are still pending.",
        "The contract with {company_en} renews in {year}.",
        "The quote comes to ${price_en} before tax.",
        "The review is scheduled for {date} at {hour}:00.",
        "We tested everything on Python {version} and it worked.",
        "I will send the remaining documents once they are ready.",
        "Let me know if the timeline still works for your team.",
        "Note that the sample number {bad_rrn} fails validation and must not be used.",
        "Revenue grew {pct}% compared to last year.",
        "Thanks again for your patience.",
        "{sentence}",
    ),
}

_BANKS_KO = ("신한은행", "국민은행", "우리은행", "하나은행", "카카오뱅크", "농협은행")
_BANKS_EN = ("Shinhan Bank", "KB Kookmin Bank", "Woori Bank", "Hana Bank", "KakaoBank")


class _Composer:
    """Builds one text from fragments while tracking PII offsets."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.nbytes = 0
        self.spans: list[LabelledSpan] = []

    def add(self, s: str) -> None:
        self.parts.append(s)
        self.length += len(s)
        self.nbytes += len(s.encode("utf-8"))

    def add_template(self, template: str, fill: dict, entity: str | None = None, value: str | None = None) -> None:
        if entity is None:
            self.add(template.format_map(fill))
            return
        before, after = template.split("{v}", 1)
        self.add(before.format_map(fill))
        start = self.length
        self.add(value)
        self.spans.append(LabelledSpan(start, start + len(value), entity, value))
        self.add(after.format_map(fill))

    def text(self) -> str:
        return "".join(self.parts)


def _fakers(seed: int):
    from faker import Faker

    fake_ko = Faker("ko_KR")
    fake_en = Faker("en_US")
    fake_ko.seed_instance(seed)
    fake_en.seed_instance(seed + 1)
    return fake_ko, fake_en


def _make_value(entity: str, rng: random.Random, lang: str, fake_en) -> str:
    makers: dict[str, Callable[[], str]] = {
        "KR_RRN": lambda: make_rrn(rng),
        "EMAIL_ADDRESS": lambda: make_email(rng, fake_en),
        "PHONE_NUMBER": lambda: make_phone(rng, lang),
        "CREDIT_CARD": lambda: make_card(rng),
        "IP_ADDRESS": lambda: make_ip(rng),
        "URL": lambda: make_url(rng, fake_en),
        "KR_BANK_ACCOUNT": lambda: make_bank_account(rng),
        "KR_PASSPORT": lambda: make_passport(rng),
        "KR_DRIVER_LICENSE": lambda: make_driver_license(rng),
    }
    return makers[entity]()


class _LazyFill(dict):
    """Template slots, generated on first use (Faker is slow)."""

    def __init__(self, rng: random.Random, fake_ko, fake_en) -> None:
        super().__init__()
        self._rng, self._ko, self._en = rng, fake_ko, fake_en

    def __missing__(self, key: str):
        rng, ko, en = self._rng, self._ko, self._en
        makers = {
            "name": ko.name,
            "name_en": en.name,
            "company": ko.company,
            "company_en": en.company,
            "city": ko.city,
            "city_en": en.city,
            "catch": ko.catch_phrase,
            "address": ko.road_address if hasattr(ko, "road_address") else ko.city,
            "sentence": lambda: en.sentence(nb_words=10),
            "count": lambda: rng.randint(2, 480),
            "small": lambda: rng.randint(1, 9),
            "year": lambda: rng.randint(2019, 2031),
            "price": lambda: f"{rng.randint(1, 9_999) * 1000:,}",
            "price_en": lambda: f"{rng.randint(10, 99_999):,}.{rng.randint(0, 99):02d}",
            "date": lambda: f"{rng.randint(2024, 2027)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "hour": lambda: rng.randint(1, 11),
            "version": lambda: rng.choice(["3.11.7", "3.12.4", "3.10.14", "2.2.366", "1.13.27"]),
            "pct": lambda: rng.randint(2, 48),
            "bad_rrn": lambda: make_rrn(rng, valid=False),
            "bank": lambda: rng.choice(_BANKS_KO),
            "bank_en": lambda: rng.choice(_BANKS_EN),
        }
        value = makers[key]()
        self[key] = value
        return value


def _fill(rng: random.Random, fake_ko, fake_en) -> dict:
    return _LazyFill(rng, fake_ko, fake_en)


def _compose(
    rng: random.Random,
    fake_ko,
    fake_en,
    lang: str,
    entities: list[str],
    done: Callable[[_Composer], bool],
) -> LabelledText:
    """Interleave prose and PII sentences until ``done`` says stop (all
    ``entities`` are always placed)."""
    comp = _Composer()
    pending = list(entities)
    sep_sentence = " "
    n_sent = 0
    while pending or not done(comp):
        fill = _fill(rng, fake_ko, fake_en)
        if n_sent and n_sent % rng.randint(3, 5) == 0:
            comp.add("\n\n")
        elif n_sent:
            comp.add(sep_sentence)
        if pending and (rng.random() < 0.55 or done(comp)):
            entity = pending.pop(0)
            template = rng.choice(_PII_TEMPLATES[lang][entity])
            comp.add_template(template, fill, entity, _make_value(entity, rng, lang, fake_en))
        else:
            comp.add_template(rng.choice(_PROSE[lang]), fill)
        n_sent += 1
    return LabelledText(text=comp.text(), spans=comp.spans, language=lang)


def generate_labelled_texts(n: int, seed: int = 7) -> list[LabelledText]:
    """``n`` texts (alternating Korean / English, roughly 400-1500 chars) with
    exact PII spans. All nine entity kinds occur; deterministic for a seed."""
    rng = random.Random(seed)
    fake_ko, fake_en = _fakers(seed)
    out: list[LabelledText] = []
    rotation = 0
    for i in range(n):
        lang = "ko" if i % 2 == 0 else "en"
        k = rng.randint(3, 6)
        entities = [ENTITY_TYPES[(rotation + j) % len(ENTITY_TYPES)] for j in range(k)]
        rotation += k
        target = rng.randint(400, 1400)
        out.append(
            _compose(rng, fake_ko, fake_en, lang, entities, lambda c, t=target: c.length >= t)
        )
    return out


# ---------------------------------------------------------------------------
# Landing zone
# ---------------------------------------------------------------------------


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).replace(microsecond=0).isoformat()


def _render(ext: str, title: str, body: str, lang: str = "ko") -> str:
    if ext == "txt":
        return f"{title}\n\n{body}\n"
    if ext == "md":
        return f"# {title}\n\n{body}\n"
    if ext == "json":
        return json.dumps({"title": title, "body": body}, ensure_ascii=False, indent=2) + "\n"
    paras = "\n".join(f"<p>{html.escape(p, quote=False)}</p>" for p in body.split("\n\n"))
    return (
        f"<!DOCTYPE html>\n<html lang=\"{lang}\">\n<head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title></head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
        f"{paras}\n</body>\n</html>\n"
    )


def _write(path: Path, data: bytes, when: datetime) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    ts = when.timestamp()
    os.utime(path, (ts, ts))


def generate_landing_zone(
    landing_dir: Path,
    *,
    now: datetime,
    n_subjects: int = 6,
    docs_per_subject: int = 4,
    span_days: int = 200,
    seed: int = 42,
    include_bad_inputs: bool = True,
    max_file_bytes: int = 1_000_000,
) -> dict:
    """Write a landing zone (format in the module docstring) and return a
    manifest::

        {"documents": [{"doc_id", "subject_id", "path", "uploaded_at",
                        "legal_hold", "language", "pii": {entity_type: count}}],
         "bad_inputs": [{"path", "expected_reason"}],
         "subjects": [{"subject_id", "language", "doc_ids", "legal_hold"}],
         "legal_hold_subject": subject_id or None}

    ``path`` is relative to ``landing_dir`` (POSIX separators). Every
    document holds at least one e-mail address and one valid RRN plus 1-4
    other PII kinds (all nine kinds occur across the default 24 documents),
    and near misses that must not be flagged. Exactly one
    subject has ``legal_hold: true`` on at least one document older than 180
    days (if ``span_days`` allows such documents). Deterministic for
    ``seed`` and ``now``.
    """
    landing_dir = Path(landing_dir)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    now = now.astimezone(timezone.utc)
    rng = random.Random(seed)
    fake_ko, fake_en = _fakers(seed)

    subjects = []
    for s in range(n_subjects):
        lang = "ko" if s % 2 == 0 else "en"
        subjects.append({"subject_id": f"subj-{lang}-{s + 1:03d}", "language": lang, "doc_ids": []})

    n_docs = n_subjects * docs_per_subject
    # Evenly spread ages over span_days (shuffled), with minute-level jitter.
    ages = [span_days * (i + 0.5) / max(n_docs, 1) for i in range(n_docs)]
    rng.shuffle(ages)

    docs = []
    for i in range(n_docs):
        subj = subjects[i % n_subjects]
        lang = subj["language"]
        doc_id = f"doc-{i + 1:04d}"
        uploaded = (now - timedelta(days=ages[i], minutes=rng.randint(0, 600))).replace(
            second=0, microsecond=0
        )
        ext = EXTENSIONS[i % len(EXTENSIONS)]
        # Every upload carries an e-mail address and an RRN (the most common
        # PII in user uploads) plus 1-4 of the other kinds, rotating.
        others = [e for e in ENTITY_TYPES if e not in ("EMAIL_ADDRESS", "KR_RRN")]
        k = rng.randint(1, 4)
        entities = ["EMAIL_ADDRESS", "KR_RRN"] + [others[(i * 3 + j) % len(others)] for j in range(k)]
        rng.shuffle(entities)
        target_bytes = rng.randint(1100, 3300)
        lt = _compose(
            rng, fake_ko, fake_en, lang, entities,
            lambda c, t=target_bytes: c.nbytes >= t,
        )
        title = (fake_ko.catch_phrase() if lang == "ko" else fake_en.catch_phrase())
        pii = {et: 0 for et in ENTITY_TYPES}
        for sp in lt.spans:
            pii[sp.entity_type] += 1
        docs.append({
            "doc_id": doc_id,
            "subject_id": subj["subject_id"],
            "uploaded": uploaded,
            "ext": ext,
            "language": lang,
            "title": title,
            "body": lt.text,
            "pii": pii,
            "legal_hold": False,
            "source": rng.choice(SOURCES),
        })
        subj["doc_ids"].append(doc_id)

    # Legal hold: one subject, on its oldest document older than 180 days.
    hold_subject = None
    cutoff = now - timedelta(days=LEGAL_HOLD_MIN_AGE_DAYS)
    for subj in subjects:
        old = [d for d in docs if d["subject_id"] == subj["subject_id"] and d["uploaded"] < cutoff]
        if old:
            oldest = min(old, key=lambda d: d["uploaded"])
            oldest["legal_hold"] = True
            hold_subject = subj["subject_id"]
            break
    for subj in subjects:
        subj["legal_hold"] = subj["subject_id"] == hold_subject

    manifest_docs = []
    for n, d in enumerate(docs):
        day = d["uploaded"].strftime("%Y-%m-%d")
        rel = f"{day}/{d['doc_id']}.{d['ext']}"
        path = landing_dir / rel
        _write(path, _render(d["ext"], d["title"], d["body"], d["language"]).encode("utf-8"), d["uploaded"])
        sidecar = {
            "doc_id": d["doc_id"],
            "subject_id": d["subject_id"],
            "uploaded_at": _iso(d["uploaded"]),
            "category": "user_content",
            "source": d["source"],
        }
        if d["legal_hold"] or n % 2 == 0:
            sidecar["legal_hold"] = d["legal_hold"]
        _write(
            Path(str(path) + ".meta.json"),
            json.dumps(sidecar, ensure_ascii=False, indent=2).encode("utf-8"),
            d["uploaded"],
        )
        manifest_docs.append({
            "doc_id": d["doc_id"],
            "subject_id": d["subject_id"],
            "path": rel,
            "uploaded_at": sidecar["uploaded_at"],
            "legal_hold": d["legal_hold"],
            "language": d["language"],
            "pii": d["pii"],
        })

    bad_inputs = []
    if include_bad_inputs:
        bad_inputs = _write_bad_inputs(landing_dir, now, max_file_bytes)

    return {
        "documents": manifest_docs,
        "bad_inputs": bad_inputs,
        "subjects": subjects,
        "legal_hold_subject": hold_subject,
    }


def _write_bad_inputs(landing_dir: Path, now: datetime, max_file_bytes: int) -> list[dict]:
    when = (now - timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)
    day = when.strftime("%Y-%m-%d")
    subject = "subj-bad-001"
    good_text = "This upload is fine on its own; only its packaging is broken.\n".encode()
    png = (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
        b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00"
        b"\x00\x00\x00IEND\xaeB`\x82"
    )
    line = "An oversized upload line that repeats to exceed the size limit.\n".encode()
    too_large = line * (max_file_bytes // len(line) + 2)
    specs = [
        # (doc_id, ext, content, sidecar bytes or None, expected_reason)
        ("bad-no-sidecar", "txt", good_text, None, "no_sidecar"),
        ("bad-sidecar-json", "txt", good_text, b'{"doc_id": "bad-sidecar-json", "subject_id": ', "invalid_sidecar_json"),
        ("bad-missing-fields", "txt", good_text, "missing", "missing_fields"),
        ("bad-not-utf8", "txt", "안녕하세요. 이 파일은 CP949 로 저장되었습니다.\n".encode("cp949"), "ok", "not_utf8"),
        ("bad-binary", "txt", png, "ok", "binary"),
        ("bad-empty", "txt", b"", "ok", "empty"),
        ("bad-too-large", "txt", too_large, "ok", "too_large"),
    ]
    out = []
    for doc_id, ext, content, side, reason in specs:
        rel = f"{day}/{doc_id}.{ext}"
        path = landing_dir / rel
        _write(path, content, when)
        meta = {
            "doc_id": doc_id,
            "subject_id": subject,
            "uploaded_at": _iso(when),
            "category": "user_content",
            "source": "aisg-api",
        }
        if side == "ok":
            side_bytes = json.dumps(meta).encode()
        elif side == "missing":
            side_bytes = json.dumps({"doc_id": doc_id, "category": "user_content"}).encode()
        else:
            side_bytes = side
        if side_bytes is not None:
            _write(Path(str(path) + ".meta.json"), side_bytes, when)
        out.append({"path": rel, "expected_reason": reason})
    return out


__all__ = [
    "LabelledSpan",
    "LabelledText",
    "generate_labelled_texts",
    "generate_landing_zone",
    "make_rrn",
    "make_card",
]
