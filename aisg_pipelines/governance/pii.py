"""PII detection and scrubbing on presidio recognizers, tuned for real Korean text.

No spaCy model and no ``AnalyzerEngine`` NLP pipeline: the recognizers are presidio
``PatternRecognizer`` subclasses (plus presidio's libphonenumber ``PhoneRecognizer`` for
non-Korean numbers), called directly. Heavy imports (presidio, tldextract) happen inside
functions so that importing this module is cheap.

Why our own patterns: presidio's predefined ones use ``\\b`` at the value's edges, and
Python's ``\\b`` treats Hangul as a word character, so ``kim@naver.com으로`` or
``203.0.113.7에서`` (a particle glued to the value) are missed. Every pattern here bounds
the value with lookarounds on ASCII/full-width alphanumerics instead, so a value is found
whether a space, punctuation, the end of the text or a Hangul particle follows it. Every
quantifier is bounded and every pattern starts with a lookbehind, so each start position
costs a bounded amount of work: detection is linear in the text length (a 1 MB line
without spaces, a run of 100,000 digits).

Scoring (one policy for every recognizer):

1. A recognizer's pattern score, or 1.0 when its ``validate_result`` confirms the value
   (Luhn + issuer prefix, RRN checksum, public suffix, ``ipaddress``); ``False`` drops it.
   Distinctive formats score >= 0.5 without any context word: KR mobile / landline / 070
   numbers (0.7), RRN-shaped numbers with a valid birth date and gender digit 1-8
   (0.75; RRNs issued since October 2020 have no valid check digit), cards, e-mails,
   IPs, URLs. Ambiguous formats (bank accounts, passports, compact driver licences)
   score 0.1-0.3 and need a context word.
2. Context: a context word of the entity (the recognizer's ``context`` list) in the same
   sentence, at most ``CONTEXT_WINDOW`` characters before or after the value, raises
   the score to ``max(score + 0.35, 0.8)``.
3. Results under ``score_threshold`` (0.5) are dropped, then overlaps are resolved:
   higher score wins, then the specificity order in ``_PRIORITY``, then the longer
   span, then the earlier start.

Recognizers are registered by name (``RECOGNIZERS``) and configurable like the
operators: ``{"recognizers": {"KrPassportRecognizer": false}}`` disables one,
``{"KrBankAccountRecognizer": {"context": ["월급통장"]}}`` adds context words, and
``{"MyRecognizer": {"entity": "KR_BANK_ACCOUNT", "patterns": [{"regex": "...",
"score": 0.1}], "context": [...]}}`` adds a presidio ``PatternRecognizer``.
"""

from __future__ import annotations

import bisect
import functools
import ipaddress
import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable

ENTITY_TYPES: tuple[str, ...] = (
    "KR_RRN",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IP_ADDRESS",
    "URL",
    "KR_BANK_ACCOUNT",
    "KR_PASSPORT",
    "KR_DRIVER_LICENSE",
)

# Lower index = more specific, wins ties.
_PRIORITY: dict[str, int] = {
    name: i
    for i, name in enumerate(
        (
            "KR_RRN",
            "CREDIT_CARD",
            "KR_DRIVER_LICENSE",
            "KR_PASSPORT",
            "KR_BANK_ACCOUNT",
            "EMAIL_ADDRESS",
            "URL",
            "IP_ADDRESS",
            "PHONE_NUMBER",
        )
    )
}

CONTEXT_WINDOW = 80  # characters on either side, never past the sentence
# Ambiguous formats need their context word close by: chat runs sentences together
# without punctuation, and a bank name two messages away says nothing about a number.
CONTEXT_WINDOW_NEAR = 40
_NEAR_CONTEXT = frozenset({"KR_BANK_ACCOUNT", "KR_PASSPORT", "KR_DRIVER_LICENSE"})
CONTEXT_BOOST = 0.35
CONTEXT_MIN_SCORE = 0.8
DEFAULT_THRESHOLD = 0.5

CONTEXT_WORDS: dict[str, tuple[str, ...]] = {
    "KR_RRN": ("주민등록번호", "주민번호", "주민등록", "외국인등록번호", "rrn", "resident registration"),
    "EMAIL_ADDRESS": ("email", "e-mail", "mail", "이메일", "메일"),
    "PHONE_NUMBER": (
        "phone", "telephone", "tel", "cell", "cellphone", "mobile", "call", "fax", "contact", "text me",
        "전화", "전화번호", "연락처", "연락", "휴대폰", "핸드폰", "휴대전화", "팩스", "폰번호", "문자",
    ),
    "CREDIT_CARD": ("credit", "card", "visa", "mastercard", "amex", "카드", "신용카드", "체크카드", "결제"),
    "IP_ADDRESS": ("ip", "ipv4", "ipv6", "server", "host", "client", "서버", "접속", "아이피"),
    "URL": ("url", "website", "link", "site", "링크", "사이트", "홈페이지", "주소", "블로그"),
    "KR_BANK_ACCOUNT": (
        "계좌", "계좌번호", "은행", "입금", "송금", "이체", "예금주", "통장", "환불",
        "신한", "국민", "우리", "하나", "농협", "기업", "카카오뱅크", "카카오", "토스", "케이뱅크",
        "새마을", "우체국", "수협", "신협", "SC제일", "씨티", "대구", "부산", "경남", "광주", "전북", "제주",
        "KB", "NH", "IBK",
        "account", "bank", "deposit", "transfer", "wire", "iban", "routing",
    ),
    "KR_PASSPORT": ("passport", "여권", "여권번호"),
    "KR_DRIVER_LICENSE": (
        "운전면허", "운전면허번호", "면허번호", "면허", "driver license", "driver's license",
        "driving licence", "driver licence", "licence", "license",
    ),
}

# --- pattern building blocks ------------------------------------------------
_AN = r"0-9A-Za-z\uFF10-\uFF19\uFF21-\uFF3A\uFF41-\uFF5A"  # ASCII + full-width alphanumerics
_L = rf"(?<![{_AN}])"  # value starts here: no alphanumeric before (Hangul is fine)
_R = rf"(?![{_AN}])"  # value ends here: no alphanumeric after (a particle is fine)
_D = r"[0-9\uFF10-\uFF19]"  # ASCII or full-width digit
_H = r"[\-\u2010-\u2015\u2212\uFF0D]"  # hyphens and dashes
_PS = rf"(?:{_H}|[.\u00b7 ]|\. )"  # phone separators: hyphen, dot, space
_NOT_AFTER_NUMBER_DOT = r"(?<![0-9]\.)"  # "1.010.1234.5678" is a version, not a phone
# Hyphenated numbers: the value is the whole hyphenated run, not a piece of a longer one
# ("ISBN 979-89-2028-203-3" is not the account 979-89-2028-203).
_LN = rf"{_L}(?<![0-9\uFF10-\uFF19][\-\u2010-\u2015\u2212\uFF0D])"
_RN = rf"(?![{_AN}]|{_H}{_D})"
# URL characters: no whitespace, quotes, angle brackets, or Hangul (a particle ends it).
_URL_CH = r"[^\s<>\"'`{}|\\^\u1100-\u11FF\u3130-\u318F\uAC00-\uD7A3\u3000-\u303F]"
_URL_END = r"[^\s<>\"'`{}|\\^\u1100-\u11FF\u3130-\u318F\uAC00-\uD7A3\u3000-\u303F.,;:!?)\]}]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"

PHONE_PATTERNS: tuple[tuple[str, str, float], ...] = (
    ("KR mobile", rf"{_L}{_NOT_AFTER_NUMBER_DOT}(?:\+82{_PS}?(?:\(0\){_PS}?)?|\(?[0０])[1１][016-9０１６-９]\)?{_PS}?{_D}{{3,4}}{_PS}?{_D}{{4}}{_RN}", 0.7),
    ("KR landline", rf"{_L}{_NOT_AFTER_NUMBER_DOT}(?:\+82{_PS}?(?:\(0\){_PS}?)?|\(?[0０])(?:[2２]|[3-6３-６][1-5１-５]|[7７][0０]|[8８][0０]|[5５][0０][0-9０-９])\)?{_PS}?{_D}{{3,4}}{_PS}?{_D}{{4}}{_RN}", 0.7),
)
RRN_PATTERN = rf"{_LN}{_D}{{2}}(?:[0０]{_D}|[1１][0-2０-２]){_D}{{2}}(?:{_H}|\s)?[1-8１-８]{_D}{{6}}{_RN}"
# One kind of separator per number; the value may not run on into another digit group
# ("build 2030.5.9133 4249 0319 9364 7906" must still find the card after 9133).
_CARD_END = _RN
CARD_PATTERN = (
    rf"{_L}(?:{_D}{{4}}(?:-{_D}{{4}}){{3}}(?:-{_D}{{3}})?"  # 4-4-4-4(-3)
    rf"|{_D}{{4}}(?: {_D}{{4}}){{3}}(?: {_D}{{3}})?"
    rf"|{_D}{{4}}-{_D}{{6}}-{_D}{{4,5}}|{_D}{{4}} {_D}{{6}} {_D}{{4,5}}"  # Amex / Diners 4-6-5 / 4-6-4
    rf"|{_D}{{14,19}}){_CARD_END}"
)
EMAIL_PATTERN = (
    r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}@"
    rf"(?:{_LABEL}\.){{1,8}}[A-Za-z]{{2,24}}(?![A-Za-z0-9\-])"
)
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4_PATTERN = rf"(?<![0-9A-Za-z.]){_OCTET}(?:\.{_OCTET}){{3}}(?![0-9A-Za-z]|\.[0-9])"
IPV6_PATTERN = r"(?<![0-9A-Za-z:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:[0-9]{1,3}\.){3}[0-9]{1,3})?(?![0-9A-Za-z:])"
URL_SCHEME_PATTERN = rf"(?<![A-Za-z0-9])(?:https?|ftp)://{_URL_CH}{{0,2047}}{_URL_END}"
URL_WWW_PATTERN = rf"(?<![A-Za-z0-9.\-/@])www[0-9]{{0,3}}\.{_URL_CH}{{0,2047}}{_URL_END}"
URL_BARE_PATTERN = (
    rf"(?<![A-Za-z0-9.\-/@:_])(?:{_LABEL}\.){{1,6}}[A-Za-z]{{2,24}}(?![A-Za-z0-9\-@_])"
    rf"(?:[/?#](?:{_URL_CH}{{0,2047}}{_URL_END})?)?"
)
BANK_PATTERNS: tuple[tuple[str, str, float], ...] = (
    # Groups of at most six digits, so an RRN's 6-7 shape is never a bank account.
    ("KR bank hyphenated", rf"{_LN}{_D}{{2,6}}(?:{_H}{_D}{{2,6}}){{1,3}}{_RN}", 0.1),
    ("KakaoBank 4-2-7", rf"{_LN}{_D}{{4}}{_H}{_D}{{2}}{_H}{_D}{{7}}{_RN}", 0.1),
    ("KR bank compact", rf"{_L}{_D}{{10,14}}{_R}", 0.1),
)
PASSPORT_PATTERNS: tuple[tuple[str, str, float], ...] = (
    ("KR passport", r"(?<![0-9A-Za-z])[MSRODG][0-9]{8}(?![0-9A-Za-z])", 0.1),
    ("KR passport (2021)", r"(?<![0-9A-Za-z])[MSRODG][0-9]{3}[A-Z][0-9]{4}(?![0-9A-Za-z])", 0.1),
)
DRIVER_LICENSE_PATTERNS: tuple[tuple[str, str, float], ...] = (
    ("KR driver licence", rf"{_LN}(?:1[1-9]|2[0-8]){_H}{_D}{{2}}{_H}{_D}{{6}}{_H}{_D}{{2}}{_RN}", 0.6),
    ("KR driver licence compact", rf"{_L}(?:1[1-9]|2[0-8]){_D}{{10}}{_R}", 0.1),
)

# Bare domains (no scheme, no www., no path) whose suffix is also a common file
# extension or English word are not taken as URLs: "pii.py", "README.md", "df.info".
_BARE_SUFFIX_EXCLUDED = frozenset(
    "py md sh rs pl cc zip mov so name info in is it to do as at be no my am pm id js ts".split()
)
_CARD_PREFIXES = (
    ("4",), ("51", "52", "53", "54", "55"), ("34", "37"), ("36", "38", "39", "300", "301", "302", "303", "304", "305"),
    ("6011", "65", "644", "645", "646", "647", "648", "649", "62", "60", "9"),
)


def _ascii_digits(value: str) -> str:
    return "".join(str(int(c)) for c in value if c.isdigit())


@dataclass(frozen=True)
class PiiSpan:
    entity_type: str
    start: int
    end: int
    score: float


@dataclass
class ScrubResult:
    text: str
    counts: dict[str, int] = field(default_factory=dict)
    spans: list[PiiSpan] = field(default_factory=list)


# ---------------------------------------------------------------------------
# Validation (plain functions: the recognizers' validate_result call these)
# ---------------------------------------------------------------------------


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 == 1 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def card_issuer_ok(digits: str) -> bool:
    """A known issuer prefix and a length that issuer uses (Visa, Mastercard incl.
    2221-2720, Amex, Diners, Discover, JCB, UnionPay, Korean domestic 9xxx)."""
    n = len(digits)
    if digits.startswith("4"):
        return n in (16, 19)  # 13-digit Visa numbers are no longer issued
    if digits[:2] in ("51", "52", "53", "54", "55") or 2221 <= int(digits[:4]) <= 2720:
        return n == 16
    if digits[:2] in ("34", "37"):
        return n == 15
    if digits[:2] in ("36", "38", "39") or digits[:3] in ("300", "301", "302", "303", "304", "305"):
        return 14 <= n <= 16
    if 3528 <= int(digits[:4]) <= 3589:
        return 16 <= n <= 19
    if digits.startswith(("6011", "65", "644", "645", "646", "647", "648", "649", "62")):
        return 16 <= n <= 19
    if digits.startswith("9"):
        return n == 16
    return False


_CARD_SEP = re.compile(r"[- ]")
_OPERATOR_TYPES = ("replace", "mask", "hash", "redact", "encrypt")


def card_grouping_ok(value: str) -> bool:
    """Ungrouped, groups of four (the last may be shorter), or 4-6-5 / 4-6-4, with one
    kind of separator."""
    seps = set(_CARD_SEP.findall(value))
    if len(seps) > 1:
        return False
    groups = tuple(len(g) for g in _CARD_SEP.split(value))
    if len(groups) == 1:
        return True
    if groups in {(4, 6, 5), (4, 6, 4)}:
        return True
    return all(g == 4 for g in groups[:-1]) and 1 <= groups[-1] <= 4 and len(groups) >= 4


def rrn_verdict(value: str) -> bool | None:
    """True: checksum validates (pre-2020 RRN). None: a valid birth date with a gender
    digit 1-8 (an RRN issued since October 2020 has random digits, so no checksum).
    False: not a date."""
    import datetime as _dt

    d = _ascii_digits(value)
    if len(d) != 13:
        return False
    g = d[6]
    century = 1900 if g in "1256" else 2000 if g in "3478" else None
    if century is None:
        return False
    try:
        _dt.date(century + int(d[:2]), int(d[2:4]), int(d[4:6]))
    except ValueError:
        return False
    w = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
    check = (11 - sum(int(a) * b for a, b in zip(d[:12], w)) % 11) % 10
    return True if check == int(d[12]) else None


_PHONE_FULL = tuple(re.compile(r) for _, r, _ in PHONE_PATTERNS)


def _is_date(yyyymmdd: str) -> bool:
    import datetime as _dt

    try:
        y = int(yyyymmdd[:4])
        _dt.date(y, int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        return False
    return 1900 <= y <= 2099


def bank_account_plausible(value: str) -> bool:
    """10-14 digits that are not better explained by a distinctive format: a KR phone
    number, an ISBN-13 (978/979) or a
    compact timestamp / date-prefixed order number (YYYYMMDD...)."""
    d = _ascii_digits(value)
    if not 10 <= len(d) <= 14:
        return False
    if any(rx.fullmatch(value) for rx in _PHONE_FULL):
        return False
    if len(d) == 13 and d.startswith(("978", "979")):
        return False
    if "-" not in value and _is_date(d[:8]):
        return False
    return True


def _ipv6_ok(value: str) -> bool:
    if not any(c in "0123456789abcdefABCDEF" for c in value):
        return False
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------
# Recognizers (presidio classes, built lazily)
# ---------------------------------------------------------------------------


def _recognizer_classes() -> dict[str, Callable[[dict], Any]]:
    """name -> factory(options) for every built-in recognizer."""
    import regex
    from presidio_analyzer import EntityRecognizer, Pattern, RecognizerResult
    from presidio_analyzer import PatternRecognizer as _PresidioPatternRecognizer
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    # Bundled public-suffix snapshot only: no HTTP fetch, no disk cache.
    extractor = _tld_extractor()
    flags = regex.MULTILINE | regex.DOTALL
    iflags = flags | regex.IGNORECASE

    def pats(items) -> list:
        return [Pattern(n, r, s) for n, r, s in items]

    class PatternRecognizer(_PresidioPatternRecognizer):  # noqa: F811 - presidio's, overlapped
        """presidio's PatternRecognizer with one change: candidates are matched
        overlapped. presidio's ``finditer`` consumes a candidate that validation then
        rejects, so "build 2030.5.9133 4249 0319 9364 7906" (the candidate starting at
        9133 fails Luhn) would hide the card after it. Scores, ``validate_result`` and
        ``invalidate_result`` keep presidio's semantics."""

        def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):  # noqa: D102
            flags = regex_flags or self.global_regex_flags
            results = []
            for pattern in self.patterns:
                if not pattern.compiled_regex or pattern.compiled_with_flags != flags:
                    pattern.compiled_with_flags = flags
                    pattern.compiled_regex = regex.compile(pattern.regex, flags=flags)
                for m in pattern.compiled_regex.finditer(text, overlapped=True):
                    start, end = m.span()
                    if start == end:
                        continue
                    value = text[start:end]
                    score = pattern.score
                    verdict = self.validate_result(value)
                    if verdict is not None:
                        score = EntityRecognizer.MAX_SCORE if verdict else EntityRecognizer.MIN_SCORE
                    if self.invalidate_result(value):
                        score = EntityRecognizer.MIN_SCORE
                    if score > EntityRecognizer.MIN_SCORE:
                        results.append(RecognizerResult(self.supported_entities[0], start, end, score))
            return EntityRecognizer.remove_duplicates(results)

    class KrPhoneRecognizer(PatternRecognizer):
        """KR mobile (010/011/016-019), landline (02, 031-064), 070/080/050x numbers:
        distinctive, no context word needed."""

        def __init__(self, context=None):
            super().__init__("PHONE_NUMBER", name="KrPhoneRecognizer", supported_language="ko",
                             patterns=pats(PHONE_PATTERNS), context=context, global_regex_flags=flags)

        def validate_result(self, text):
            n = len(_ascii_digits(text))
            plus = text.lstrip("(").startswith("+")
            return None if (9 <= n <= 12 if plus else 9 <= n <= 11) else False

    class KrRrnDateRecognizer(PatternRecognizer):
        def __init__(self, context=None):
            super().__init__("KR_RRN", name="KrRrnRecognizer", supported_language="ko",
                             patterns=[Pattern("KR RRN", RRN_PATTERN, 0.75)], context=context, global_regex_flags=flags)

        def validate_result(self, text):
            return rrn_verdict(text)

    class CardRecognizer(PatternRecognizer):
        def __init__(self, context=None):
            super().__init__("CREDIT_CARD", name="CreditCardRecognizer", supported_language="ko",
                             patterns=[Pattern("card", CARD_PATTERN, 0.3)], context=context, global_regex_flags=flags)

        def validate_result(self, text):
            d = _ascii_digits(text)
            return bool(13 <= len(d) <= 19 and card_grouping_ok(text) and card_issuer_ok(d) and luhn_ok(d))

    class EmailRecognizer(PatternRecognizer):
        def __init__(self, context=None):
            super().__init__("EMAIL_ADDRESS", name="EmailRecognizer", supported_language="ko",
                             patterns=[Pattern("email", EMAIL_PATTERN, 0.6)], context=context, global_regex_flags=iflags)

        def validate_result(self, text):
            # A public suffix confirms it (1.0); any other TLD keeps 0.6: still scrubbed.
            return True if extractor(text.rsplit("@", 1)[1]).suffix else None

    class IpRecognizer(PatternRecognizer):
        def __init__(self, context=None):
            super().__init__("IP_ADDRESS", name="IpRecognizer", supported_language="ko",
                             patterns=[Pattern("IPv4", IPV4_PATTERN, 0.7), Pattern("IPv6", IPV6_PATTERN, 0.7)],
                             context=context, global_regex_flags=flags)

        def validate_result(self, text):
            if ":" in text:
                return True if _ipv6_ok(text) else False
            return None

    class UrlRecognizer(PatternRecognizer):
        """Any TLD after a scheme or www.; a bare domain needs a public suffix."""

        def __init__(self, context=None):
            super().__init__("URL", name="UrlRecognizer", supported_language="ko",
                             patterns=[Pattern("url scheme", URL_SCHEME_PATTERN, 0.9),
                                       Pattern("url www", URL_WWW_PATTERN, 0.85),
                                       Pattern("url bare domain", URL_BARE_PATTERN, 0.6)],
                             context=context, global_regex_flags=iflags)

        def validate_result(self, text):
            low = text.lower()
            if "://" in low or low.startswith("www"):
                return None
            host = re.split(r"[/?#]", text, maxsplit=1)[0]
            ext = extractor(host)
            if not ext.suffix or not ext.domain:
                return False
            if host == text and ext.suffix.lower() in _BARE_SUFFIX_EXCLUDED:
                return False
            return None

    class KrBankAccountRecognizer(PatternRecognizer):
        """No presidio recognizer exists; the formats are shared with many other numbers,
        so a context word (a bank name, 계좌, 입금 ...) is required."""

        def __init__(self, context=None):
            super().__init__("KR_BANK_ACCOUNT", name="KrBankAccountRecognizer", supported_language="ko",
                             patterns=pats(BANK_PATTERNS), context=context, global_regex_flags=flags)

        def validate_result(self, text):
            return None if bank_account_plausible(text) else False

    class KrPassportRecognizer(PatternRecognizer):
        def __init__(self, context=None):
            super().__init__("KR_PASSPORT", name="KrPassportRecognizer", supported_language="ko",
                             patterns=pats(PASSPORT_PATTERNS), context=context, global_regex_flags=flags)

    class KrDriverLicenseRecognizer(PatternRecognizer):
        def __init__(self, context=None):
            super().__init__("KR_DRIVER_LICENSE", name="KrDriverLicenseRecognizer", supported_language="ko",
                             patterns=pats(DRIVER_LICENSE_PATTERNS), context=context, global_regex_flags=flags)

    class IntlPhoneRecognizer(PhoneRecognizer):
        """presidio's libphonenumber recognizer for other countries' numbers. It is slow
        and scores 0.4, so it runs only on digit clusters that could pass: ones with a
        leading ``+`` (raised to 0.7 when libphonenumber validates them) or with a phone
        context word in the sentence (see ``_PhoneGate``)."""

        def __init__(self, context=None):
            super().__init__(context=context, supported_regions=("US", "GB", "JP", "CN", "KR"))
            self.name = "IntlPhoneRecognizer"

    return {
        "KrPhoneRecognizer": KrPhoneRecognizer,
        "KrRrnRecognizer": KrRrnDateRecognizer,
        "CreditCardRecognizer": CardRecognizer,
        "EmailRecognizer": EmailRecognizer,
        "IpRecognizer": IpRecognizer,
        "UrlRecognizer": UrlRecognizer,
        "KrBankAccountRecognizer": KrBankAccountRecognizer,
        "KrPassportRecognizer": KrPassportRecognizer,
        "KrDriverLicenseRecognizer": KrDriverLicenseRecognizer,
        "IntlPhoneRecognizer": IntlPhoneRecognizer,
    }


RECOGNIZERS: tuple[str, ...] = (
    "KrPhoneRecognizer", "KrRrnRecognizer", "CreditCardRecognizer", "EmailRecognizer", "IpRecognizer",
    "UrlRecognizer", "KrBankAccountRecognizer", "KrPassportRecognizer", "KrDriverLicenseRecognizer",
    "IntlPhoneRecognizer",
)
_ENTITY_OF = {
    "KrPhoneRecognizer": "PHONE_NUMBER", "KrRrnRecognizer": "KR_RRN", "CreditCardRecognizer": "CREDIT_CARD",
    "EmailRecognizer": "EMAIL_ADDRESS", "IpRecognizer": "IP_ADDRESS", "UrlRecognizer": "URL",
    "KrBankAccountRecognizer": "KR_BANK_ACCOUNT", "KrPassportRecognizer": "KR_PASSPORT",
    "KrDriverLicenseRecognizer": "KR_DRIVER_LICENSE", "IntlPhoneRecognizer": "PHONE_NUMBER",
}


@functools.lru_cache(maxsize=1)
def _tld_extractor():
    import tldextract

    extractor = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)
    extractor("warmup.example.com")  # loads the bundled snapshot once
    return extractor


class RecognizerSet:
    """The configured recognizers and the context words of each entity type."""

    def __init__(self, config: dict | None = None) -> None:
        from presidio_analyzer import Pattern, PatternRecognizer

        config = dict(config or {})
        if not isinstance(config, dict):
            raise ValueError("recognizer config must be an object of recognizer name -> options")
        classes = _recognizer_classes()
        self.recognizers: list[Any] = []
        self.intl_phone = None
        context: dict[str, set[str]] = {e: set(CONTEXT_WORDS[e]) for e in ENTITY_TYPES}
        for name in RECOGNIZERS:
            opts = config.pop(name, True)
            if opts is False:
                continue
            if opts is True or opts is None:
                opts = {}
            if not isinstance(opts, dict):
                raise ValueError(f"recognizer {name}: options must be true, false or an object")
            unknown = set(opts) - {"context"}
            if unknown:
                raise ValueError(f"recognizer {name}: unknown option(s) {sorted(unknown)}; only 'context'")
            extra = _word_list(opts.get("context", []), name)
            entity = _ENTITY_OF[name]
            context[entity].update(extra)
            rec = classes[name](context=sorted(CONTEXT_WORDS[entity]) + extra)
            if name == "IntlPhoneRecognizer":
                self.intl_phone = rec
            else:
                self.recognizers.append(rec)
        for name, opts in config.items():  # custom recognizers
            if not isinstance(opts, dict) or "entity" not in opts or "patterns" not in opts:
                raise ValueError(
                    f"unknown recognizer {name!r}: built-in ones are {', '.join(RECOGNIZERS)}; a custom one "
                    "needs 'entity' and 'patterns'"
                )
            entity = opts["entity"]
            if entity not in ENTITY_TYPES:
                raise ValueError(f"recognizer {name}: entity must be one of {', '.join(ENTITY_TYPES)}")
            patterns = []
            for i, p in enumerate(opts["patterns"]):
                if not isinstance(p, dict) or not isinstance(p.get("regex"), str):
                    raise ValueError(f"recognizer {name}: pattern {i} needs a 'regex' string")
                try:
                    re.compile(p["regex"])
                except re.error as exc:
                    raise ValueError(f"recognizer {name}: pattern {i} is not a valid regex: {exc}") from exc
                patterns.append(Pattern(p.get("name", f"{name}-{i}"), p["regex"], float(p.get("score", 0.6))))
            extra = _word_list(opts.get("context", []), name)
            context[entity].update(extra)
            self.recognizers.append(PatternRecognizer(supported_entity=entity, name=name, patterns=patterns,
                                                      context=extra, supported_language="ko"))
        self.context_words = {e: tuple(sorted(w)) for e, w in context.items()}
        self.context_re = {e: _context_regex(w) for e, w in self.context_words.items()}


def _word_list(words: Any, name: str) -> list[str]:
    if not isinstance(words, list) or not all(isinstance(w, str) and w.strip() for w in words):
        raise ValueError(f"recognizer {name}: 'context' must be a list of non-empty strings")
    return [w.strip() for w in words]


def _context_regex(words: tuple[str, ...]) -> re.Pattern[str]:
    parts = []
    for w in sorted(words, key=len, reverse=True):
        if w.isascii():
            parts.append(r"(?<![a-z])" + re.escape(w) + r"(?![a-z])")
        else:
            parts.append(re.escape(w))
    return re.compile("|".join(parts), re.IGNORECASE)


@functools.lru_cache(maxsize=16)
def _recognizer_set(config_json: str | None) -> RecognizerSet:
    return RecognizerSet(json.loads(config_json) if config_json else None)


# ---------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------

# A sentence ends at a line break or at . ! ? 。 followed by whitespace, except the
# period of a short abbreviation ("Passport no. M1234", "Tel. 010-…", "p. 12").
_SENTENCE_END = re.compile(r"\n|[.!?\u3002](?=\s)")
_DIGIT_RUN = re.compile(r"\d{5,}")
_ABBREV = re.compile(r"(?<![A-Za-z])[A-Za-z]{1,3}\.$")


def _sentence_ends(text: str, lo: int, hi: int):
    for m in _SENTENCE_END.finditer(text, lo, hi):
        i = m.start()
        if text[i] == "." and _ABBREV.search(text, max(0, i - 4), i + 1):
            continue
        yield m


def sentence_bounds(text: str, start: int, end: int, window: int = CONTEXT_WINDOW) -> tuple[int, int]:
    """The part of the sentence around [start, end) within ``window`` characters."""
    lo = max(0, start - window)
    for m in _sentence_ends(text, lo, start):
        lo = m.end()
    hi = min(len(text), end + window)
    for m in _sentence_ends(text, end, hi):
        hi = m.start()
        break
    return lo, hi


def has_context(recs: RecognizerSet, text: str, entity: str, start: int, end: int) -> bool:
    """A context word of ``entity`` lies wholly in the same sentence, before or after the value."""
    rx = recs.context_re[entity]
    if entity not in _NEAR_CONTEXT:
        lo, hi = sentence_bounds(text, start, end)
        return rx.search(text, lo, start) is not None or rx.search(text, end, hi) is not None
    # Ambiguous formats: the context word belongs to the nearest number, so no other
    # long digit run may stand between it and the value ("{v} 하나은행" names {v}, not the
    # number before it).
    lo, hi = sentence_bounds(text, start, end, CONTEXT_WINDOW_NEAR)
    for m in rx.finditer(text, lo, start):
        if not _DIGIT_RUN.search(text, m.end(), start):
            return True
    m = rx.search(text, end, hi)
    return m is not None and not _DIGIT_RUN.search(text, end, m.start())


def _score(recs: RecognizerSet, text: str, raw: list, threshold: float) -> list[PiiSpan]:
    best: dict[tuple[str, int, int], float] = {}
    for entity, start, end, score in raw:
        if entity not in _PRIORITY or end <= start:
            continue
        key = (entity, start, end)
        if score > best.get(key, -1.0):
            best[key] = score
    out: list[PiiSpan] = []
    for (entity, start, end), score in best.items():
        if score < 1.0 and has_context(recs, text, entity, start, end):
            score = min(1.0, max(score + CONTEXT_BOOST, CONTEXT_MIN_SCORE))
        if score >= threshold:
            out.append(PiiSpan(entity, start, end, round(score, 4)))
    return out


def _resolve_overlaps(spans: list[PiiSpan]) -> list[PiiSpan]:
    """Greedy by rank; the kept spans are disjoint, so two bisects decide an overlap
    (a text with tens of thousands of values stays linear-ish, not quadratic)."""
    ordered = sorted(spans, key=lambda s: (-s.score, _PRIORITY[s.entity_type], -(s.end - s.start), s.start))
    starts: list[int] = []
    kept: list[PiiSpan] = []  # sorted by start, disjoint
    for s in ordered:
        i = bisect.bisect_right(starts, s.start)
        if i > 0 and kept[i - 1].end > s.start:
            continue
        if i < len(kept) and kept[i].start < s.end:
            continue
        starts.insert(i, s.start)
        kept.insert(i, s)
    return kept


def _run(recognizer: Any, text: str, offset: int, out: list) -> None:
    for r in recognizer.analyze(text, recognizer.supported_entities, None):
        out.append((r.entity_type, r.start + offset, r.end + offset, float(r.score)))


# Digit clusters for the libphonenumber gate: 7-20 digits joined by phone separators.
_DIGIT_CLUSTER = re.compile(r"\+?\(?\d(?:[\-.() /\u00a0\u2010-\u2015\u2212]{0,2}\d){6,19}(?![\d])")
_INTL_PLUS_SCORE = 0.7
_DATE_PREFIX = re.compile(r"(?:19|20)\d\d[-./](?:0?[1-9]|1[0-2])[-./](?:0?[1-9]|[12]\d|3[01])(?!\d)")


def _intl_phones(recs: RecognizerSet, text: str, covered: list[PiiSpan], out: list) -> None:
    """presidio's libphonenumber PhoneRecognizer on the digit clusters that could pass:
    a leading '+' (E.164, distinctive) or a phone context word in the sentence, and not
    already inside a detected span."""
    rec = recs.intl_phone
    if rec is None:
        return
    spans = sorted((c.start, c.end) for c in covered)
    starts = [a for a, _ in spans]
    reach = list(itertools.accumulate((b for _, b in spans), max))  # max end among spans so far
    for m in _DIGIT_CLUSTER.finditer(text):
        s, e = m.start(), m.end()
        i = bisect.bisect_right(starts, s) - 1
        if e - s > 40 or (i >= 0 and reach[i] >= e):
            continue
        plus = text[s] == "+"
        if not plus and (_DATE_PREFIX.match(text, s) or not has_context(recs, text, "PHONE_NUMBER", s, e)):
            continue
        lo, hi = max(0, s - 1), min(len(text), e + 1)
        local: list = []
        _run(rec, text[lo:hi], lo, local)
        for entity, a, b, score in local:
            if plus and text[a] == "+":
                score = max(score, _INTL_PLUS_SCORE)
            out.append((entity, a, b, score))


def detect_spans(recs: RecognizerSet, text: str, threshold: float = DEFAULT_THRESHOLD) -> list[PiiSpan]:
    if not text:
        return []
    raw: list = []
    for rec in recs.recognizers:
        _run(rec, text, 0, raw)
    scored = _score(recs, text, raw, threshold)
    phone_raw: list = []
    _intl_phones(recs, text, scored, phone_raw)
    if phone_raw:
        scored += _score(recs, text, phone_raw, threshold)
    return _resolve_overlaps(scored)


# ---------------------------------------------------------------------------
# The baseline: presidio's predefined recognizers as they come (benchmarks, tests)
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _baseline_recognizers() -> tuple:
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IpRecognizer,
        KrDriverLicenseRecognizer,
        KrPassportRecognizer,
        KrRrnRecognizer,
        PhoneRecognizer,
        UrlRecognizer,
    )

    extractor = _tld_extractor()

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str):  # noqa: D102
            return extractor(pattern_text).fqdn != ""

    class OfflineUrlRecognizer(UrlRecognizer):
        def validate_result(self, pattern_text: str):  # noqa: D102
            return extractor(pattern_text).fqdn != ""

    return (KrRrnRecognizer(), OfflineEmailRecognizer(), PhoneRecognizer(supported_regions=("KR", "US", "GB")),
            CreditCardRecognizer(), IpRecognizer(), OfflineUrlRecognizer(), KrPassportRecognizer(),
            KrDriverLicenseRecognizer())


def baseline_detect(text: str, score_threshold: float = DEFAULT_THRESHOLD) -> list[PiiSpan]:
    """presidio's predefined recognizers, one by one over the whole text, with the same
    context rule, threshold and overlap resolution (the benchmark's baseline). presidio
    has no Korean bank-account recognizer."""
    recs = _recognizer_set(None)
    raw: list = []
    for r in _baseline_recognizers():
        _run(r, text, 0, raw)
    return _resolve_overlaps(_score(recs, text, raw, score_threshold))


# ---------------------------------------------------------------------------
# Operators
# ---------------------------------------------------------------------------


def parse_operators(
    operators: dict | None, encrypt_key: str | None = None
) -> dict[str, Any]:
    """Turn ``{"EMAIL_ADDRESS": {"type": "mask", ...}}`` into presidio
    ``OperatorConfig`` objects, one per entity type (``replace`` with
    ``<ENTITY_TYPE>`` for types not configured). The key ``"DEFAULT"``
    sets the operator for every type not listed explicitly."""
    from presidio_anonymizer.entities import OperatorConfig

    if operators is not None and not isinstance(operators, dict):
        raise ValueError("operators must be a dict of entity type -> operator config")
    operators = dict(operators or {})
    default_cfg = operators.pop("DEFAULT", None)
    for et in operators:
        if et not in ENTITY_TYPES:
            raise ValueError(
                f"Unknown PII entity type {et!r} in operator config; "
                f"expected one of {', '.join(ENTITY_TYPES)} (or DEFAULT)"
            )

    def build(et: str, cfg: Any) -> Any:
        if cfg is None:
            return OperatorConfig("replace", {"new_value": f"<{et}>"})
        if isinstance(cfg, str):
            cfg = {"type": cfg}
        if not isinstance(cfg, dict):
            raise ValueError(f"Operator config for {et} must be a dict, got {type(cfg).__name__}")
        params = dict(cfg)
        op_type = params.pop("type", None)
        if op_type not in _OPERATOR_TYPES:
            raise ValueError(
                f"Unknown operator type {op_type!r} for {et}; "
                f"expected one of {', '.join(_OPERATOR_TYPES)}"
            )
        if op_type == "replace":
            params.setdefault("new_value", f"<{et}>")
        elif op_type == "mask":
            params.setdefault("masking_char", "*")
            params.setdefault("chars_to_mask", 1_000_000)
            params.setdefault("from_end", False)
        elif op_type == "encrypt":
            key = params.get("key") or encrypt_key
            if not key:
                raise ValueError(
                    f"Operator 'encrypt' for {et} needs a key "
                    "(config 'key' or PiiScrubber(encrypt_key=...))"
                )
            params["key"] = key
        return OperatorConfig(op_type, params)

    result = {}
    for et in ENTITY_TYPES:
        cfg = operators.get(et, default_cfg)
        result[et] = build(et, cfg)
    return result


# ---------------------------------------------------------------------------
# Scrubber
# ---------------------------------------------------------------------------


class PiiScrubber:
    """Detector + anonymizer. Thread-compatible (no mutable state after construction)."""

    def __init__(
        self,
        operators: dict | None = None,
        score_threshold: float = DEFAULT_THRESHOLD,
        encrypt_key: str | None = None,
        recognizers: dict | None = None,
    ) -> None:
        self.score_threshold = float(score_threshold)
        if not 0.0 < self.score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in (0, 1], got {score_threshold}")
        self.operators = parse_operators(operators, encrypt_key)
        self._recs = _recognizer_set(json.dumps(recognizers, sort_keys=True) if recognizers else None)
        from presidio_anonymizer import AnonymizerEngine

        self._anonymizer = AnonymizerEngine()
        self._validate_operators()

    def _validate_operators(self) -> None:
        from presidio_anonymizer.entities import RecognizerResult

        sample = "x" * 16
        for et, op in self.operators.items():
            try:
                self._anonymizer.anonymize(sample, [RecognizerResult(et, 0, len(sample), 1.0)], {et: op})
            except Exception as exc:  # InvalidParamError and friends
                raise ValueError(f"Invalid operator config for {et}: {exc}") from exc

    @property
    def recognizer_names(self) -> list[str]:
        names = [r.name for r in self._recs.recognizers]
        return names + (["IntlPhoneRecognizer"] if self._recs.intl_phone is not None else [])

    def context_words(self, entity: str) -> tuple[str, ...]:
        return self._recs.context_words[entity]

    def has_context(self, text: str, entity: str, start: int, end: int) -> bool:
        return has_context(self._recs, text, entity, start, end)

    def detect(self, text: str) -> list[PiiSpan]:
        """Spans at or above this scrubber's threshold: what :meth:`scrub` replaces, and
        what the ``documents_pii_free`` check looks for in stored text."""
        return detect_spans(self._recs, text, self.score_threshold)

    def scrub(self, text: str) -> ScrubResult:
        counts = {et: 0 for et in ENTITY_TYPES}
        spans = self.detect(text)
        if not spans:
            return ScrubResult(text=text, counts=counts, spans=[])
        from presidio_anonymizer.entities import RecognizerResult

        results = [RecognizerResult(s.entity_type, s.start, s.end, s.score) for s in spans]
        ops = {et: self.operators[et] for et in {s.entity_type for s in spans}}
        out = self._anonymizer.anonymize(text, results, ops)
        for s in spans:
            counts[s.entity_type] += 1
        return ScrubResult(text=out.text, counts=counts, spans=spans)

    def scrub_text(self, text: str) -> str:
        return self.scrub(text).text if text else text

    def scrub_value(self, value: Any) -> Any:
        """Scrub every string inside a JSON-like value (dict keys too); other values as is."""
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, dict):
            return {self.scrub_value(k) if isinstance(k, str) else k: self.scrub_value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.scrub_value(v) for v in value]
        return value


def get_scrubber(operators_json: str | None = None) -> PiiScrubber:
    """Process-wide cached scrubber for a JSON config string.

    The JSON object maps entity types (or ``DEFAULT``) to operator configs; optional
    top-level keys: ``"encrypt_key"``, ``"score_threshold"`` and ``"recognizers"`` (see
    the module docstring)."""
    return _cached_scrubber(operators_json or None)


@functools.lru_cache(maxsize=16)
def _cached_scrubber(operators_json: str | None) -> PiiScrubber:
    if not operators_json:
        return PiiScrubber()
    try:
        cfg = json.loads(operators_json)
    except json.JSONDecodeError as exc:
        raise ValueError(f"PII operator config is not valid JSON: {exc}") from exc
    if not isinstance(cfg, dict):
        raise ValueError("PII operator config must be a JSON object")
    cfg = dict(cfg)
    key = cfg.pop("encrypt_key", None)
    threshold = cfg.pop("score_threshold", DEFAULT_THRESHOLD)
    recognizers = cfg.pop("recognizers", None)
    return PiiScrubber(operators=cfg, score_threshold=threshold, encrypt_key=key, recognizers=recognizers)


def env_scrubber() -> PiiScrubber:
    """The scrubber configured by ``AISG_PII_OPERATORS`` (for plain code that has no
    Settings or Dagster resource at hand)."""
    import os

    return get_scrubber(os.environ.get("AISG_PII_OPERATORS") or None)


def scrub_for_storage(value: Any, operators_json: str | None = None) -> Any:
    """Scrub a free-text value (or every string in a JSON-like value) with the process's
    scrubber before it is written anywhere under the data directory."""
    return get_scrubber(operators_json).scrub_value(value)


__all__ = [
    "ENTITY_TYPES",
    "RECOGNIZERS",
    "PiiSpan",
    "ScrubResult",
    "PiiScrubber",
    "baseline_detect",
    "env_scrubber",
    "get_scrubber",
    "parse_operators",
    "scrub_for_storage",
]
