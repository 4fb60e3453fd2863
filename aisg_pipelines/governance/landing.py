"""The landing zone: what AISG drops, how we read it, and how bad input is quarantined.

Format (docs/landing_zone.md): each upload is a file (.txt, .md, .html, .json) with a
sidecar `<file>.meta.json` holding doc_id, subject_id, uploaded_at, category, source and
an optional legal_hold. Anything that cannot be read safely is moved to the quarantine
directory with a `<file>.reason.txt` beside it, and never stops the run.
"""

from __future__ import annotations

import hashlib
import html.parser
import json
import os
import shutil
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .ids import DOC_ID_RE, SUBJECT_ID_RE, InvalidIdentifier, require

SIDECAR_SUFFIX = ".meta.json"
REASON_SUFFIX = ".reason.txt"
SUPPORTED_SUFFIXES = {".txt": "text/plain", ".md": "text/markdown", ".html": "text/html", ".htm": "text/html", ".json": "application/json"}
REQUIRED_FIELDS = ("doc_id", "subject_id", "uploaded_at", "category", "source")
KNOWN_CATEGORIES = ("user_content",)

# Reason codes, with the sentence a person reads in the reason file.
REASONS = {
    "no_sidecar": "the upload has no sidecar <file>.meta.json",
    "invalid_sidecar_json": "the sidecar is not valid JSON",
    "missing_fields": "the sidecar lacks required fields",
    "invalid_fields": "a sidecar field has an invalid value",
    "not_utf8": "the file is not valid UTF-8 text",
    "binary": "the file is binary, not text",
    "empty": "the file is empty (no text after extraction)",
    "too_large": "the file is larger than the configured size limit",
    "unsupported_type": "the file type is not supported",
    "malformed_content": "the file content could not be parsed for its type",
    "duplicate_doc_id": "another upload in the same batch has the same doc_id",
}

BINARY_MAGIC = (b"\x89PNG", b"%PDF", b"PK\x03\x04", b"\xff\xd8\xff", b"GIF8", b"\x7fELF")


@dataclass(frozen=True)
class PendingFile:
    rel_path: str
    mtime_ns: int
    size: int
    has_sidecar: bool


def is_data_file(path: Path) -> bool:
    name = path.name
    return not (name.endswith(SIDECAR_SUFFIX) or name.endswith(REASON_SUFFIX) or name.startswith("."))


def list_landing(landing_dir: Path) -> list[PendingFile]:
    """All uploads in the landing zone, oldest first, ties broken by path."""
    out = []
    if not landing_dir.exists():
        return out
    for root, _dirs, files in os.walk(landing_dir):
        for fname in files:
            p = Path(root) / fname
            if not is_data_file(p):
                continue
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            rel = p.relative_to(landing_dir).as_posix()
            out.append(PendingFile(rel, st.st_mtime_ns, st.st_size, (p.parent / (fname + SIDECAR_SUFFIX)).exists()))
    out.sort(key=lambda f: (f.mtime_ns, f.rel_path))
    return out


class Rejected(Exception):
    def __init__(self, code: str, detail: str = ""):
        self.code = code
        self.detail = detail
        super().__init__(f"{code}: {REASONS.get(code, code)}" + (f" ({detail})" if detail else ""))


@dataclass
class Upload:
    rel_path: str
    doc_id: str
    subject_id: str
    uploaded_at: datetime
    category: str
    source: str
    legal_hold: bool
    media_type: str
    file_sha256: str
    text: str  # extracted and normalised, NOT yet scrubbed: never store this


def parse_sidecar(raw: bytes) -> dict:
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Rejected("invalid_sidecar_json", str(exc)[:120]) from None
    if not isinstance(meta, dict):
        raise Rejected("invalid_sidecar_json", "top level is not an object")
    missing = [f for f in REQUIRED_FIELDS if meta.get(f) in (None, "")]
    if missing:
        raise Rejected("missing_fields", "missing: " + ", ".join(missing))
    try:
        require(DOC_ID_RE, meta["doc_id"], "doc_id")
        require(SUBJECT_ID_RE, meta["subject_id"], "subject_id")
    except InvalidIdentifier as exc:
        raise Rejected("invalid_fields", str(exc)) from None
    if meta["category"] not in KNOWN_CATEGORIES:
        raise Rejected("invalid_fields", f"category {str(meta['category'])[:40]!r} is not one of {KNOWN_CATEGORIES}")
    try:
        ts = datetime.fromisoformat(str(meta["uploaded_at"]).replace("Z", "+00:00"))
    except ValueError:
        raise Rejected("invalid_fields", "uploaded_at is not an ISO-8601 timestamp") from None
    meta["uploaded_at"] = ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)
    if not isinstance(meta.get("legal_hold", False), bool):
        raise Rejected("invalid_fields", "legal_hold must be true or false")
    if not isinstance(meta["source"], str) or len(meta["source"]) > 128:
        raise Rejected("invalid_fields", "source must be a short string")
    return meta


class _HtmlText(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "head"):
            self._skip += 1
        elif tag in ("p", "br", "div", "li", "h1", "h2", "h3", "h4", "tr"):
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style", "head") and self._skip:
            self._skip -= 1
        elif tag in ("p", "div", "li", "h1", "h2", "h3", "h4"):
            self.parts.append("\n\n")

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def _json_strings(obj) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _json_strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _json_strings(v)]
    return []


def extract_text(raw: bytes, suffix: str) -> str:
    if not raw:
        raise Rejected("empty")
    if raw.startswith(BINARY_MAGIC) or b"\x00" in raw[:8192]:
        raise Rejected("binary")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Rejected("not_utf8", f"invalid byte at offset {exc.start}") from None
    if suffix == ".html" or suffix == ".htm":
        p = _HtmlText()
        p.feed(text)
        text = "".join(p.parts)
    elif suffix == ".json":
        try:
            text = "\n\n".join(_json_strings(json.loads(text)))
        except json.JSONDecodeError as exc:
            raise Rejected("malformed_content", f"invalid JSON upload: {exc.msg} at line {exc.lineno}") from None
    return normalise(text)


def normalise(text: str) -> str:
    """NFC, no control characters, single spaces within lines, at most one blank line."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(c for c in text if c in "\n\t" or unicodedata.category(c) != "Cc")
    lines = [" ".join(line.split()) for line in text.split("\n")]
    out, blank = [], False
    for line in lines:
        if not line:
            if not blank and out:
                out.append("")
            blank = True
        else:
            out.append(line)
            blank = False
    text = "\n".join(out).strip()
    if not text:
        raise Rejected("empty", "no text after extraction")
    return text


def read_upload(landing_dir: Path, rel_path: str, max_bytes: int) -> Upload:
    """Read and validate one upload; raises `Rejected` with a reason code."""
    path = landing_dir / rel_path
    suffix = path.suffix.lower()
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    if not sidecar.exists():
        raise Rejected("no_sidecar")
    meta = parse_sidecar(sidecar.read_bytes()[:1_000_000])
    size = path.stat().st_size
    if size > max_bytes:
        raise Rejected("too_large", f"{size} bytes > limit {max_bytes}")
    if suffix not in SUPPORTED_SUFFIXES:
        raise Rejected("unsupported_type", f"suffix {suffix or '(none)'}")
    raw = path.read_bytes()
    text = extract_text(raw, suffix)
    return Upload(
        rel_path=rel_path,
        doc_id=meta["doc_id"],
        subject_id=meta["subject_id"],
        uploaded_at=meta["uploaded_at"],
        category=meta["category"],
        source=meta["source"],
        legal_hold=bool(meta.get("legal_hold", False)),
        media_type=SUPPORTED_SUFFIXES[suffix],
        file_sha256=hashlib.sha256(raw).hexdigest(),
        text=text,
    )


@dataclass
class Quarantined:
    rel_path: str
    code: str
    detail: str
    quarantine_path: str


def quarantine(landing_dir: Path, quarantine_dir: Path, rel_path: str, rejected: Rejected, batch_id: str) -> Quarantined:
    """Move the file (and its sidecar) out of the landing zone, with a readable reason file.

    Idempotent: if a previous, killed run already moved the file, the reason file is
    (re)written and nothing else happens.
    """
    src = landing_dir / rel_path
    dst = quarantine_dir / rel_path
    dst.parent.mkdir(parents=True, exist_ok=True)
    for s, d in ((src, dst), (src.with_name(src.name + SIDECAR_SUFFIX), dst.with_name(dst.name + SIDECAR_SUFFIX))):
        if s.exists():
            shutil.move(str(s), str(d))
    reason = dst.with_name(dst.name + REASON_SUFFIX)
    reason.write_text(
        f"reason: {rejected.code}\n"
        f"explanation: {REASONS.get(rejected.code, rejected.code)}\n"
        f"detail: {rejected.detail or '-'}\n"
        f"original_path: {rel_path}\n"
        f"batch_id: {batch_id}\n"
        f"quarantined_at: {datetime.now(timezone.utc).isoformat(timespec='seconds')}\n"
        "action: fix the file or its sidecar and drop it into the landing zone again\n",
        encoding="utf-8",
    )
    return Quarantined(rel_path, rejected.code, rejected.detail, str(dst))


def quarantine_reason(quarantine_dir: Path, rel_path: str) -> str | None:
    reason = quarantine_dir / (rel_path + REASON_SUFFIX)
    if not reason.exists():
        return None
    first = reason.read_text(encoding="utf-8").splitlines()[0]
    return first.removeprefix("reason: ").strip()


def batch_key(files: list[PendingFile]) -> str:
    """Deterministic batch id for a set of files: same files, same key, same run_key."""
    day = datetime.fromtimestamp(max(f.mtime_ns for f in files) / 1e9, timezone.utc).strftime("%Y%m%d")
    h = hashlib.sha256("\n".join(f"{f.rel_path}\x1f{f.mtime_ns}" for f in sorted(files, key=lambda f: f.rel_path)).encode()).hexdigest()[:8]
    return f"{day}-{h}"


@dataclass
class LandingScan:
    """What the landing sensor should do on one tick."""

    batches: dict[str, list[str]] = field(default_factory=dict)  # batch_id -> rel paths
    mtimes_ns: dict[str, int] = field(default_factory=dict)  # rel path -> mtime of the planned file
    new_cursor: tuple[int, str] | None = None
    deferred: int = 0
    existing_batches: set[str] = field(default_factory=set)  # batches already holding some of the files


def plan_batches(
    landing_dir: Path,
    cursor: tuple[int, str] | None,
    *,
    now_ns: int,
    settle_seconds: float,
    max_files_per_batch: int = 500,
    already_batched=None,
) -> LandingScan:
    """Files newer than the cursor, grouped into batches by upload (mtime) day.

    A file still without its sidecar and younger than `settle_seconds` may be mid-upload:
    the scan stops before it so the cursor never passes it. Older sidecar-less files go
    through and are quarantined by the run with reason `no_sidecar`.
    """
    scan = LandingScan()
    taken: list[PendingFile] = []
    for f in list_landing(landing_dir):
        if cursor is not None and (f.mtime_ns, f.rel_path) <= tuple(cursor):
            continue
        if not f.has_sidecar and now_ns - f.mtime_ns < settle_seconds * 1e9:
            scan.deferred += 1
            break
        taken.append(f)
        if len(taken) >= max_files_per_batch * 20:
            break
    if taken:
        scan.new_cursor = (taken[-1].mtime_ns, taken[-1].rel_path)
    if taken and already_batched is not None:
        done = already_batched([(f.rel_path, f.mtime_ns) for f in taken])
        scan.existing_batches = set(done.values())
        taken = [f for f in taken if (f.rel_path, f.mtime_ns) not in done]
    if not taken:
        return scan
    scan.mtimes_ns = {f.rel_path: f.mtime_ns for f in taken}
    groups: dict[str, list[PendingFile]] = {}
    for f in taken:
        day = datetime.fromtimestamp(f.mtime_ns / 1e9, timezone.utc).strftime("%Y%m%d")
        groups.setdefault(day, []).append(f)
    for day_files in groups.values():
        for i in range(0, len(day_files), max_files_per_batch):
            part = day_files[i : i + max_files_per_batch]
            scan.batches[batch_key(part)] = [f.rel_path for f in part]
    return scan
