"""PII detection and scrubbing on top of presidio's predefined recognizers.

No spaCy model and no ``AnalyzerEngine`` NLP pipeline: the recognizers are
called directly. Heavy imports (presidio_analyzer, presidio_anonymizer,
tldextract) happen inside functions so that importing this module is cheap.

Scoring policy (applied identically by :func:`baseline_detect` and
:class:`PiiScrubber`):

1. Each recognizer gives its own score (presidio semantics: checksum /
   Luhn / tld validation gives 1.0, bare patterns give 0.05-0.6, phone
   numbers 0.4).
2. ``KR_RRN`` only counts when its checksum validates (score 1.0); presidio's
   0.5 for an unvalidated number is dropped. ``CREDIT_CARD`` matches whose
   digit grouping is not card-like (e.g. a Woori bank account
   1002-123-456789 that happens to pass Luhn) are dropped.
3. Context: if a context word of the entity type (presidio's list plus
   Korean words, ``_CONTEXT_WORDS``) lies within ``CONTEXT_BEFORE``
   characters before the span or ``CONTEXT_AFTER`` characters after it, the
   score becomes ``max(score + 0.35, 0.8)`` (capped at 1.0). So a score
   >= 0.8 means "validated or confirmed by context". Phone numbers (0.4),
   passports (0.05/0.1) and bank accounts (0.1) need context to pass the
   default threshold of 0.5. Context is always evaluated on the full text.
4. Results under ``score_threshold`` are dropped, then overlaps are
   resolved: higher score wins, then the specificity order in
   ``_PRIORITY``, then the longer span, then the earlier start.

The fast path (:class:`PiiScrubber`) finds candidate windows with cheap
compiled regexes (digit runs with separators holding >= 7 digits, ``@``,
``://``/``www.``/dot-letter-letter, dotted quads, ``:hex:``, passport
shapes), widens each to whole whitespace-delimited tokens plus one delimiter
character, joins the windows of one kind into a single string and runs only
the recognizers that can match that kind, then maps offsets back. URL and
phone recognizers run last and skip windows whose result could only be
discarded (no context word near a phone-like number below the 0.5
threshold, or digits/TLD already covered by a span that would win the
overlap). Presidio's recognizers still decide every span; the output equals
:func:`baseline_detect` (checked in the tests and the benchmark).
Assumption behind the digit pre-filter: no phone number valid for
libphonenumber has fewer than 7 digits.
"""

from __future__ import annotations

import bisect
import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any

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

# presidio entity name -> our entity name (the Kr* recognizers already emit
# these names; listed explicitly so a rename upstream fails loudly).
_PRESIDIO_TO_OURS: dict[str, str] = {
    "KR_RRN": "KR_RRN",
    "EMAIL_ADDRESS": "EMAIL_ADDRESS",
    "PHONE_NUMBER": "PHONE_NUMBER",
    "CREDIT_CARD": "CREDIT_CARD",
    "IP_ADDRESS": "IP_ADDRESS",
    "URL": "URL",
    "KR_BANK_ACCOUNT": "KR_BANK_ACCOUNT",
    "KR_PASSPORT": "KR_PASSPORT",
    "KR_DRIVER_LICENSE": "KR_DRIVER_LICENSE",
}

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

CONTEXT_BEFORE = 60
CONTEXT_AFTER = 30
CONTEXT_BOOST = 0.35
CONTEXT_MIN_SCORE = 0.8

PHONE_REGIONS: tuple[str, ...] = ("KR", "US", "GB")
_PHONE_SCORE = 0.4  # PhoneRecognizer.SCORE (checked at start-up)
_URL_MAX_SCORE = min(1.0, max(0.6 + CONTEXT_BOOST, CONTEXT_MIN_SCORE))  # UrlRecognizer's best pattern
_PHONE_MAX_SCORE = min(1.0, max(_PHONE_SCORE + CONTEXT_BOOST, CONTEXT_MIN_SCORE))

_CONTEXT_WORDS: dict[str, tuple[str, ...]] = {
    "KR_RRN": ("주민등록번호", "주민번호", "주민등록", "rrn", "resident registration"),
    "EMAIL_ADDRESS": ("email", "e-mail", "이메일", "메일"),
    "PHONE_NUMBER": (
        "phone", "telephone", "tel", "cell", "cellphone", "mobile", "call", "fax",
        "contact", "전화", "전화번호", "연락처", "휴대폰", "핸드폰", "휴대전화", "팩스",
    ),
    "CREDIT_CARD": ("credit", "card", "visa", "mastercard", "amex", "카드", "신용카드"),
    "IP_ADDRESS": ("ip", "ipv4", "ipv6", "server", "host", "서버", "접속"),
    "URL": ("url", "website", "link", "site", "링크", "사이트", "홈페이지", "주소"),
    "KR_BANK_ACCOUNT": (
        "계좌", "계좌번호", "은행", "입금", "송금", "이체", "예금주",
        "account", "bank", "deposit", "transfer", "wire",
    ),
    "KR_PASSPORT": ("passport", "여권", "여권번호"),
    "KR_DRIVER_LICENSE": (
        "운전면허", "운전면허번호", "면허번호", "driver license", "driver's license",
        "driving licence", "driver licence", "licence", "license",
    ),
}


def _context_regex(words: tuple[str, ...]) -> re.Pattern[str]:
    parts = []
    for w in sorted(words, key=len, reverse=True):
        if w.isascii():
            parts.append(r"(?<![a-z])" + re.escape(w) + r"(?![a-z])")
        else:
            parts.append(re.escape(w))
    return re.compile("|".join(parts), re.IGNORECASE)


_CONTEXT_RE: dict[str, re.Pattern[str]] = {
    k: _context_regex(v) for k, v in _CONTEXT_WORDS.items()
}

# Korean bank account formats (no presidio recognizer exists). Weak on their
# own; context words raise them above the threshold.
_BANK_PATTERNS: tuple[tuple[str, str], ...] = (
    ("KR bank 3-3-6", r"(?<![\d-])\d{3}-\d{3}-\d{6}(?![\d-])"),
    ("KR bank 4-3-6", r"(?<![\d-])\d{4}-\d{3}-\d{6}(?![\d-])"),
    ("KR bank 4-2-7", r"(?<![\d-])\d{4}-\d{2}-\d{7}(?![\d-])"),
    ("KR bank 3-2-6", r"(?<![\d-])\d{3}-\d{2}-\d{6}(?![\d-])"),
    ("KR bank 3-6-2-3", r"(?<![\d-])\d{3}-\d{6}-\d{2}-\d{3}(?![\d-])"),
    ("KR bank 3-4-4-2", r"(?<![\d-])\d{3}-\d{4}-\d{4}-\d{2}(?![\d-])"),
    ("KR bank 6-2-6", r"(?<![\d-])\d{6}-\d{2}-\d{6}(?![\d-])"),
)
_BANK_SCORE = 0.1

_OPERATOR_TYPES = ("replace", "mask", "hash", "redact", "encrypt")


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
# Recognizers (built lazily, once per process)
# ---------------------------------------------------------------------------


class _Recognizers:
    """The nine recognizers, offline. Built by :func:`_recognizers`."""

    def __init__(self) -> None:
        import tldextract
        from presidio_analyzer import Pattern, PatternRecognizer
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

        # Bundled public-suffix snapshot only: no HTTP fetch, no disk cache.
        extractor = tldextract.TLDExtract(
            suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True
        )
        self.tld_extractor = extractor

        class OfflineEmailRecognizer(EmailRecognizer):
            def validate_result(self, pattern_text: str):  # noqa: D102
                return extractor(pattern_text).fqdn != ""

        bank = PatternRecognizer(
            supported_entity="KR_BANK_ACCOUNT",
            patterns=[Pattern(n, r, _BANK_SCORE) for n, r in _BANK_PATTERNS],
            context=list(_CONTEXT_WORDS["KR_BANK_ACCOUNT"]),
            supported_language="ko",
            name="KrBankAccountRecognizer",
        )
        self.rrn = KrRrnRecognizer()
        self.email = OfflineEmailRecognizer()
        self.phone = PhoneRecognizer(supported_regions=PHONE_REGIONS)
        self.card = CreditCardRecognizer()
        self.ip = IpRecognizer()
        self.url = UrlRecognizer()
        self.bank = bank
        self.passport = KrPassportRecognizer()
        self.dl = KrDriverLicenseRecognizer()
        self.all = (
            self.rrn, self.email, self.phone, self.card, self.ip,
            self.url, self.bank, self.passport, self.dl,
        )
        # Recognizer groups per pre-filter kind (see _candidate_windows).
        self.groups = {
            "digit": (self.rrn, self.card, self.bank, self.dl),  # phone: see _phone_windows
            "ip": (self.ip,),
            "email": (self.email,),
            # URL runs in a second phase (see PiiScrubber._detect).
            "passport": (self.passport,),
        }
        # Cheap pre-checks for the small-pattern recognizers (URL's regex is
        # large and its windows are already tight, so it is not hinted).
        self.hints = {
            id(r): _pattern_hints(r)
            for r in (self.rrn, self.card, self.bank, self.dl)
        }
        if max(p.score for p in self.url.patterns) != 0.6:  # pragma: no cover
            raise RuntimeError("UrlRecognizer pattern scores changed; update _URL_MAX_SCORE")
        if PhoneRecognizer.SCORE != _PHONE_SCORE:  # pragma: no cover
            raise RuntimeError(
                f"PhoneRecognizer.SCORE changed to {PhoneRecognizer.SCORE}; update _PHONE_SCORE"
            )
        # Warm up the extractor (loads the bundled snapshot once).
        extractor("warmup@example.com")


@functools.lru_cache(maxsize=1)
def _recognizers() -> _Recognizers:
    return _Recognizers()


def _pattern_hints(recognizer: Any) -> tuple:
    """The recognizer's own regexes, compiled with its flags: if none of them
    matches, ``analyze`` cannot return anything, so the call can be skipped."""
    flags = recognizer.global_regex_flags
    return tuple(re.compile(p.regex, flags) for p in recognizer.patterns)


def _run_if_hinted(recognizer: Any, hints: tuple | None, text: str, offset: int, out: list) -> None:
    if hints is not None and not any(h.search(text) for h in hints):
        return
    _run(recognizer, text, offset, out)


def _run(recognizer: Any, text: str, offset: int, out: list) -> None:
    entities = recognizer.supported_entities
    for r in recognizer.analyze(text, entities, None):
        out.append((r.entity_type, r.start + offset, r.end + offset, float(r.score)))


# ---------------------------------------------------------------------------
# Shared post-processing
# ---------------------------------------------------------------------------


def _maybe_context(text: str, entity: str, lo: int, hi: int) -> bool:
    """Fast necessary condition: some context word occurs as a substring."""
    chunk = text[max(0, lo):hi].lower()
    return any(w in chunk for w in _CONTEXT_WORDS[entity])


def _has_context(text: str, entity: str, start: int, end: int) -> bool:
    """A context word (a real word in the full text, not cut by the slice)
    lies entirely within ``CONTEXT_BEFORE`` chars before ``start`` or
    ``CONTEXT_AFTER`` chars after ``end``."""
    if not _maybe_context(text, entity, start - CONTEXT_BEFORE, end + CONTEXT_AFTER):
        return False
    rx = _CONTEXT_RE[entity]
    n = len(text)
    lo = max(0, start - CONTEXT_BEFORE)
    for m in rx.finditer(text, lo, min(n, start + 1)):
        if m.end() <= start:
            return True
        break
    hi = end + CONTEXT_AFTER
    for m in rx.finditer(text, end, min(n, hi + 1)):
        if m.end() <= hi:
            return True
        break
    return False


def _context_near(text: str, entity: str, ws: int, we: int) -> bool:
    """Superset of ``_has_context`` for any span inside ``[ws, we)``."""
    lo, hi = max(0, ws - CONTEXT_BEFORE), min(len(text), we + CONTEXT_AFTER + 1)
    if not _maybe_context(text, entity, lo, hi):
        return False
    return _CONTEXT_RE[entity].search(text, lo, hi) is not None


_CARD_SEP = re.compile(r"[- ]")
_CARD_GROUPINGS = {(4, 6, 5), (4, 6, 4)}


def _card_grouping_ok(value: str) -> bool:
    """Cards are written ungrouped, in groups of four (the last may be
    shorter) or Amex/Diners style 4-6-5 / 4-6-4."""
    groups = tuple(len(g) for g in _CARD_SEP.split(value))
    if len(groups) == 1:
        return True
    if groups in _CARD_GROUPINGS:
        return True
    return all(g == 4 for g in groups[:-1]) and 1 <= groups[-1] <= 4


def _score(text: str, raw: list, score_threshold: float) -> list[PiiSpan]:
    """Map names, drop unvalidated RRNs and implausible cards, apply context,
    apply the threshold (no overlap resolution yet)."""
    best: dict[tuple[str, int, int], float] = {}
    for presidio_type, start, end, score in raw:
        entity = _PRESIDIO_TO_OURS.get(presidio_type)
        if entity is None or end <= start:
            continue
        if entity == "KR_RRN" and score < 1.0:
            continue  # checksum did not validate
        if entity == "CREDIT_CARD" and not _card_grouping_ok(text[start:end]):
            continue  # e.g. a Woori bank account 1002-123-456789 that passes Luhn
        key = (entity, start, end)
        if score > best.get(key, -1.0):
            best[key] = score
    scored: list[PiiSpan] = []
    for (entity, start, end), score in best.items():
        if score < 1.0 and _has_context(text, entity, start, end):
            score = min(1.0, max(score + CONTEXT_BOOST, CONTEXT_MIN_SCORE))
        if score >= score_threshold:
            scored.append(PiiSpan(entity, start, end, round(score, 4)))
    return scored


def _finalize(text: str, raw: list, score_threshold: float) -> list[PiiSpan]:
    return _resolve_overlaps(_score(text, raw, score_threshold))


def _resolve_overlaps(spans: list[PiiSpan]) -> list[PiiSpan]:
    ordered = sorted(
        spans,
        key=lambda s: (-s.score, _PRIORITY[s.entity_type], -(s.end - s.start), s.start),
    )
    kept: list[PiiSpan] = []
    for s in ordered:
        if all(s.end <= k.start or s.start >= k.end for k in kept):
            kept.append(s)
    kept.sort(key=lambda s: (s.start, s.end))
    return kept


def baseline_detect(text: str, score_threshold: float = 0.5) -> list[PiiSpan]:
    """Bare recognizers one by one over the whole text (the benchmark baseline)."""
    recs = _recognizers()
    raw: list = []
    for r in recs.all:
        _run(r, text, 0, raw)
    return _finalize(text, raw, score_threshold)


# ---------------------------------------------------------------------------
# Pre-filters
# ---------------------------------------------------------------------------

# Digit clusters: digits joined by the separators numbers are written with.
_CLUSTER_SEPS = r"[\-.() /\u00a0\u2010-\u2015\u2212\u3000]"
# Runs of digits joined by the separators numbers are written with, holding
# at least _MIN_CLUSTER_DIGITS digits (shorter runs are skipped in C).
_DIGIT_CLUSTER = re.compile(r"\d(?:" + _CLUSTER_SEPS + r"*\d){6,}")
_MIN_CLUSTER_DIGITS = 7  # encoded in _DIGIT_CLUSTER as {6,}
_IPV4_HINT = re.compile(r"\d\.\d{1,3}\.\d{1,3}\.\d")
_EMAIL_HINT = re.compile(r"@")
_TLD_DOT = re.compile(r"\.[A-Za-z]{2}")
_URL_HINT = re.compile(r"://|www\d{0,3}\.|\.[A-Za-z]{2}")
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]*:")
_PASSPORT_HINT = re.compile(r"[MmSsRrOoDd]\d{3}[A-Za-z]\d{4}|[MmSsRrOoDd]\d{8}")
_WS = re.compile(r"\s")


def _token_window(text: str, start: int, end: int) -> tuple[int, int]:
    """Widen [start, end) to whole whitespace-delimited tokens plus one
    delimiter character on each side."""
    n = len(text)
    # left: scan back to whitespace (tokens are short; cap the scan)
    ws = start
    lo = max(0, start - 512)
    while ws > lo and not text[ws - 1].isspace():
        ws -= 1
    if ws > 0:
        ws -= 1
    m2 = _WS.search(text, end)
    we = m2.start() + 1 if m2 is not None else n
    return ws, min(we, n)


def _merge(windows: list[tuple[int, int]]) -> list[tuple[int, int]]:
    if not windows:
        return []
    windows.sort()
    merged = [list(windows[0])]
    for s, e in windows[1:]:
        if s <= merged[-1][1]:
            if e > merged[-1][1]:
                merged[-1][1] = e
        else:
            merged.append([s, e])
    return [(s, e) for s, e in merged]


def _candidate_windows(text: str) -> tuple[dict[str, list[tuple[int, int]]], list[tuple[int, int]]]:
    """Windows (merged, sorted) per recognizer group, plus the digit clusters
    (start, end) that triggered the "digit" windows. Each hint is a superset
    of what the group's recognizers can match."""
    digit: list[tuple[int, int]] = []
    clusters: list[tuple[int, int]] = []
    for m in _DIGIT_CLUSTER.finditer(text):
        cs = m.start()
        if cs > 0 and text[cs - 1] in "+(":
            cs -= 1
        clusters.append((cs, m.end()))
        digit.append(_token_window(text, cs, m.end()))
    ip = [_token_window(text, m.start(), m.end()) for m in _IPV4_HINT.finditer(text)]
    ip += [_token_window(text, m.start(), m.end()) for m in _IPV6_HINT.finditer(text)]
    email = [_token_window(text, m.start(), m.end()) for m in _EMAIL_HINT.finditer(text)]
    url = [_token_window(text, m.start(), m.end()) for m in _URL_HINT.finditer(text)]
    passport = [
        _token_window(text, m.start(), m.end()) for m in _PASSPORT_HINT.finditer(text)
    ]
    windows = {
        "digit": _merge(digit),
        "ip": _merge(ip),
        "email": _merge(email),
        "url": _merge(url),
        "passport": _merge(passport),
    }
    return windows, clusters


# Joins windows into one string per group so that each recognizer runs once
# per text. Every window starts and ends with its original delimiter
# character (or the text edge), and no recognizer can match across "|"
# between two newlines, so no match can span two windows.
_BATCH_SEP = "\n|\n"


def _run_batched(
    recognizers: tuple, text: str, windows: list[tuple[int, int]], out: list, hints: dict | None = None
) -> None:
    hints = hints or {}
    if not windows:
        return
    if len(windows) == 1:
        ws, we = windows[0]
        chunk = text[ws:we]
        for r in recognizers:
            _run_if_hinted(r, hints.get(id(r)), chunk, ws, out)
        return
    pieces: list[str] = []
    starts: list[int] = []  # window start inside the batch string
    pos = 0
    for ws, we in windows:
        if pieces:
            pieces.append(_BATCH_SEP)
            pos += len(_BATCH_SEP)
        starts.append(pos)
        pieces.append(text[ws:we])
        pos += we - ws
    batch = "".join(pieces)
    local: list = []
    for r in recognizers:
        _run_if_hinted(r, hints.get(id(r)), batch, 0, local)
    for entity, bs, be, score in local:
        i = bisect.bisect_right(starts, bs) - 1
        ws, we = windows[i]
        if i < 0 or be - starts[i] > we - ws:
            continue  # would span a separator; cannot happen for these patterns
        off = ws - starts[i]
        out.append((entity, bs + off, be + off, score))


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
    """Fast PII detector/anonymizer. Thread-compatible (no mutable state
    after construction except the lazily created anonymizer)."""

    def __init__(
        self,
        operators: dict | None = None,
        score_threshold: float = 0.5,
        encrypt_key: str | None = None,
    ) -> None:
        self.score_threshold = float(score_threshold)
        self.operators = parse_operators(operators, encrypt_key)
        self._recs = _recognizers()
        from presidio_anonymizer import AnonymizerEngine

        self._anonymizer = AnonymizerEngine()
        self._validate_operators()

    def _validate_operators(self) -> None:
        from presidio_anonymizer.entities import RecognizerResult

        sample = "x" * 16
        for et, op in self.operators.items():
            try:
                self._anonymizer.anonymize(
                    sample, [RecognizerResult(et, 0, len(sample), 1.0)], {et: op}
                )
            except Exception as exc:  # InvalidParamError and friends
                raise ValueError(f"Invalid operator config for {et}: {exc}") from exc

    # -- detection -----------------------------------------------------------
    def _detect(self, text: str, threshold: float) -> list[PiiSpan]:
        """Three phases. 1: cheap pattern recognizers on their candidate
        windows. 2: URL on URL windows, 3: phone on digit clusters - each
        skipping windows whose result could only be discarded (see
        ``_url_windows`` / ``_phone_windows``), so the output equals
        :func:`baseline_detect`."""
        if not text:
            return []
        recs = self._recs
        groups = recs.groups
        windows, clusters = _candidate_windows(text)
        raw: list = []
        for kind in ("digit", "ip", "email", "passport"):
            _run_batched(groups[kind], text, windows[kind], raw, recs.hints)
        scored = _score(text, raw, threshold)
        if windows["url"]:
            url_wins = self._url_windows(text, windows["url"], scored)
            if url_wins:
                url_raw: list = []
                _run_batched((recs.url,), text, url_wins, url_raw)
                scored += _score(text, url_raw, threshold)
        if clusters:
            phone_wins = self._phone_windows(text, clusters, scored, threshold)
            if phone_wins:
                phone_raw: list = []
                _run_batched((recs.phone,), text, phone_wins, phone_raw)
                scored += _score(text, phone_raw, threshold)
        return _resolve_overlaps(scored)

    @staticmethod
    def _coverage(text: str, spans: list[PiiSpan]) -> bytearray | None:
        if not spans:
            return None
        covered = bytearray(len(text))
        for sp in spans:
            covered[sp.start:sp.end] = b"\x01" * (sp.end - sp.start)
        return covered

    def _url_windows(
        self, text: str, url_windows: list[tuple[int, int]], scored: list[PiiSpan]
    ) -> list[tuple[int, int]]:
        """Every URL match contains a dot followed by two letters (the TLD).
        A URL scores at most 0.95 and loses ties to the types before it in
        ``_PRIORITY``; if every such dot in a window lies inside a span that
        beats 0.95, any URL found there would be discarded (typically the
        domain of a validated e-mail address)."""
        prio = _PRIORITY["URL"]
        strong = [
            s for s in scored
            if s.score > _URL_MAX_SCORE
            or (s.score >= _URL_MAX_SCORE and _PRIORITY[s.entity_type] < prio)
        ]
        covered = self._coverage(text, strong)
        if covered is None:
            return url_windows
        out = []
        for ws, we in url_windows:
            if any(not covered[m.start()] for m in _TLD_DOT.finditer(text, ws, we)):
                out.append((ws, we))
        return out

    def _phone_windows(
        self,
        text: str,
        clusters: list[tuple[int, int]],
        scored: list[PiiSpan],
        threshold: float,
    ) -> list[tuple[int, int]]:
        """Digit clusters where a phone number could survive: PhoneRecognizer
        scores 0.4, so below the threshold it needs a context word nearby;
        and its best possible score (0.8) never beats an overlapping span of
        another type with score >= 0.8 (PHONE_NUMBER has the lowest
        priority), so clusters whose digits are all covered by such spans
        are skipped. Both rules only skip work whose result would be
        discarded."""
        need_context = threshold > _PHONE_SCORE
        covered = self._coverage(text, [s for s in scored if s.score >= _PHONE_MAX_SCORE])
        out = []
        for cs, ce in clusters:
            ws, we = _token_window(text, cs, ce)
            if need_context and not _context_near(text, "PHONE_NUMBER", ws, we):
                continue
            if covered is not None and all(
                covered[k] for k in range(cs, ce) if text[k].isdigit()
            ):
                continue
            out.append((ws, we))
        return _merge(out)

    def detect(self, text: str) -> list[PiiSpan]:
        return self._detect(text, self.score_threshold)

    def high_confidence_matches(self, text: str, min_score: float = 0.8) -> list[PiiSpan]:
        """Spans scoring >= ``min_score`` (validated by checksum/format or
        confirmed by context). A scrubbed text must return []."""
        return self._detect(text, min_score)

    # -- anonymization -------------------------------------------------------
    def scrub(self, text: str) -> ScrubResult:
        counts = {et: 0 for et in ENTITY_TYPES}
        spans = self.detect(text)
        if not spans:
            return ScrubResult(text=text, counts=counts, spans=[])
        from presidio_anonymizer.entities import RecognizerResult

        results = [RecognizerResult(s.entity_type, s.start, s.end, s.score) for s in spans]
        used = {s.entity_type for s in spans}
        ops = {et: self.operators[et] for et in used}
        out = self._anonymizer.anonymize(text, results, ops)
        for s in spans:
            counts[s.entity_type] += 1
        return ScrubResult(text=out.text, counts=counts, spans=spans)


def get_scrubber(operators_json: str | None = None) -> PiiScrubber:
    """Process-wide cached scrubber for a JSON operator config string.

    The JSON object maps entity types (or ``DEFAULT``) to operator configs;
    an optional top-level ``"encrypt_key"`` and ``"score_threshold"`` are
    passed to :class:`PiiScrubber`."""
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
    threshold = cfg.pop("score_threshold", 0.5)
    return PiiScrubber(operators=cfg, score_threshold=threshold, encrypt_key=key)


__all__ = [
    "ENTITY_TYPES",
    "PiiSpan",
    "ScrubResult",
    "PiiScrubber",
    "baseline_detect",
    "get_scrubber",
    "parse_operators",
]
