"""The landing zone: what AISG drops, how we read it, and how bad input is quarantined.

Format (docs/landing_zone.md): each upload is a file (.txt, .md, .html, .json) with a
sidecar `<file>.meta.json` holding doc_id, subject_id, uploaded_at, category, source and
an optional legal_hold. Anything that cannot be read safely is moved to the quarantine
directory with a `<file>.reason.txt` beside it, and never stops the run.

Hostile or careless input:
- every path below the landing root is walked one component at a time with
  `O_NOFOLLOW` (openat), so a symbolic link, in the file, its sidecar or any folder on its
  path, is never followed; the opened file is checked with `fstat` (a regular file with
  exactly one name: a hard link to a file elsewhere is refused too). Such an entry is
  removed from the landing zone without being read (its target is never copied anywhere)
  and a reason file says why;
- a file whose size, mtime or content changes while it is read raises `Unstable`: the
  run leaves it in place and re-queues it for the next sensor tick (`requeue`).
"""

from __future__ import annotations

import errno
import hashlib
import html.parser
import json
import os
import stat
import time
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
    "symlink": "the upload, its sidecar or a folder on its path is a symbolic link; links are never followed: the link was removed and its target was not read",
    "hard_link": "the upload or its sidecar is a hard link (the same file has another name); it was removed without being read",
    "not_regular_file": "the upload or its sidecar is not a regular file (a FIFO, socket or device); it was removed without being read",
    "outside_landing": "the upload's path leads outside the landing zone; nothing outside it was read or touched",
    "doc_id_conflict": "the sidecar's doc_id already belongs to another subject's document; that document was not touched",
    "erased_subject_replay": "the subject's erasure was certified after this upload's uploaded_at: a replay of erased data; its content and sidecar were deleted, not kept",
}

# Refusals whose entries are removed, never moved: moving would keep the link (or another
# name of a file outside the landing zone) inside our data directory.
LINK_CODES = ("symlink", "hard_link", "not_regular_file", "outside_landing")

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
    """All uploads in the landing zone, oldest first, ties broken by path.

    Nothing is followed: entries are `lstat`ed, and a symbolic link to a folder is listed as
    an entry of its own (os.walk never enters it) so that the run quarantines the link.
    Links and other non-regular entries count as having a sidecar: they are refused at once,
    not left to settle.
    """
    out = []
    if not landing_dir.exists():
        return out
    for root, dirs, files in os.walk(landing_dir):  # followlinks=False
        linked_dirs = [d for d in dirs if os.path.islink(os.path.join(root, d))]
        for fname in files + linked_dirs:
            p = Path(root) / fname
            if not is_data_file(p):
                continue
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            rel = p.relative_to(landing_dir).as_posix()
            refused = not stat.S_ISREG(st.st_mode)
            out.append(PendingFile(rel, st.st_mtime_ns, st.st_size, refused or os.path.lexists(p.parent / (fname + SIDECAR_SUFFIX))))
    out.sort(key=lambda f: (f.mtime_ns, f.rel_path))
    return out


class Rejected(Exception):
    def __init__(self, code: str, detail: str = ""):
        self.code = code
        self.detail = detail
        self.subject_id: str | None = None  # set once the sidecar named one: the reason file shows only its hash
        super().__init__(f"{code}: {REASONS.get(code, code)}" + (f" ({detail})" if detail else ""))


class Unstable(Exception):
    """The file (or its sidecar) changed while it was read: leave it for the next tick."""


@dataclass(frozen=True)
class FileStamp:
    """What must not change between reading a file and storing what was read."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    sha256: str

    @staticmethod
    def of(st: os.stat_result, sha256: str) -> "FileStamp":
        return FileStamp(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, sha256)


_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _O_CLOEXEC
_O_FILE = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | _O_CLOEXEC


def _parts(rel_path: str) -> list[str]:
    parts = rel_path.split("/")
    if rel_path.startswith("/") or "\x00" in rel_path or any(p in ("", ".", "..") for p in parts):
        raise Rejected("outside_landing", "the path is absolute or has an empty, '.' or '..' component")
    return parts


def open_parent(landing_dir: Path, rel_path: str) -> tuple[int, str]:
    """(fd of the folder holding `rel_path`'s last component, that component's name).

    Each folder below the landing root is opened with O_NOFOLLOW relative to the one
    before (openat), so no symbolic link, and no path through one, is ever followed out of
    the landing root. The caller closes the fd. Raises `Rejected` for a linked folder or a
    path that leaves the root.
    """
    parts = _parts(rel_path)
    fd = os.open(landing_dir, _O_DIR)
    try:
        for i, comp in enumerate(parts[:-1]):
            try:
                nfd = os.open(comp, _O_DIR | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    st = os.lstat(comp, dir_fd=fd)
                    where = "/".join(parts[: i + 1])
                    if stat.S_ISLNK(st.st_mode):
                        raise Rejected("symlink", f"the folder {where} on the path is a symbolic link") from None
                    raise Rejected("not_regular_file", f"{where} on the path is not a folder") from None
                raise
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd, parts[-1]


def _entry_problem(st: os.stat_result, what: str) -> Rejected | None:
    if stat.S_ISLNK(st.st_mode):
        return Rejected("symlink", f"the {what} is a symbolic link")
    if not stat.S_ISREG(st.st_mode):
        return Rejected("not_regular_file", f"the {what} is not a regular file")
    if st.st_nlink > 1:
        return Rejected("hard_link", f"the {what} has {st.st_nlink} names (st_nlink > 1)")
    return None


def _read_entry(dir_fd: int, name: str, what: str, max_bytes: int | None) -> tuple[bytes | None, FileStamp | None, int]:
    """Read one regular, singly-linked file below `dir_fd` without following links.

    Returns (content, stamp, size); content and stamp are None when the file is larger than
    `max_bytes` (it is not read). Raises `Rejected` for links and special files, `Unstable`
    when it changes while read, FileNotFoundError when it is gone.
    """
    st0 = os.lstat(name, dir_fd=dir_fd)
    if (rej := _entry_problem(st0, what)) is not None:  # refused before it is opened (a FIFO would block)
        raise rej
    try:
        fd = os.open(name, _O_FILE, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # became a link after the lstat
            raise Rejected("symlink", f"the {what} is a symbolic link") from None
        raise
    try:
        st = os.fstat(fd)
        if (rej := _entry_problem(st, what)) is not None:
            raise rej
        if (st.st_dev, st.st_ino) != (st0.st_dev, st0.st_ino):
            raise Unstable(f"the {what} was replaced while it was opened")
        if max_bytes is not None and st.st_size > max_bytes:
            return None, None, st.st_size
        chunks, h, n = [], hashlib.sha256(), 0
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            chunks.append(b)
            h.update(b)
            n += len(b)
        st1 = os.fstat(fd)
    finally:
        os.close(fd)
    st2 = os.lstat(name, dir_fd=dir_fd)
    stamp = FileStamp.of(st, h.hexdigest())
    for later in (st1, st2):
        if (later.st_dev, later.st_ino, later.st_size, later.st_mtime_ns) != (stamp.dev, stamp.ino, stamp.size, stamp.mtime_ns):
            raise Unstable(f"the {what} changed while it was read")
    if n != stamp.size:
        raise Unstable(f"the {what} changed while it was read ({n} bytes read, {stamp.size} expected)")
    return b"".join(chunks), stamp, stamp.size


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
    stamp: FileStamp | None = None  # of the upload when it was read
    sidecar_stamp: FileStamp | None = None


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


SIDECAR_MAX_BYTES = 1_000_000


def read_upload(landing_dir: Path, rel_path: str, max_bytes: int) -> Upload:
    """Read and validate one upload and its sidecar, following no link.

    Raises `Rejected` with a reason code, `Unstable` when the file or its sidecar changes
    while it is read (leave it for the next tick), FileNotFoundError when it is gone.
    """
    suffix = Path(rel_path).suffix.lower()
    dir_fd, name = open_parent(landing_dir, rel_path)
    try:
        st = os.lstat(name, dir_fd=dir_fd)
        if (rej := _entry_problem(st, "upload")) is not None:
            raise rej
        sidecar = name + SIDECAR_SUFFIX
        try:
            side_raw, side_stamp, side_size = _read_entry(dir_fd, sidecar, "sidecar", SIDECAR_MAX_BYTES)
        except FileNotFoundError:
            raise Rejected("no_sidecar") from None
        if side_raw is None:
            raise Rejected("invalid_sidecar_json", f"the sidecar has {side_size} bytes (limit {SIDECAR_MAX_BYTES})")
        meta = parse_sidecar(side_raw)
        try:
            if st.st_size > max_bytes:
                raise Rejected("too_large", f"{st.st_size} bytes > limit {max_bytes}")
            if suffix not in SUPPORTED_SUFFIXES:
                raise Rejected("unsupported_type", f"suffix {suffix or '(none)'}")
            raw, stamp, size = _read_entry(dir_fd, name, "upload", max_bytes)
            if raw is None:
                raise Rejected("too_large", f"{size} bytes > limit {max_bytes}")
            text = extract_text(raw, suffix)
        except Rejected as rej:
            rej.subject_id = meta["subject_id"]
            raise
    finally:
        os.close(dir_fd)
    return Upload(
        rel_path=rel_path,
        doc_id=meta["doc_id"],
        subject_id=meta["subject_id"],
        uploaded_at=meta["uploaded_at"],
        category=meta["category"],
        source=meta["source"],
        legal_hold=bool(meta.get("legal_hold", False)),
        media_type=SUPPORTED_SUFFIXES[suffix],
        file_sha256=stamp.sha256,
        text=text,
        stamp=stamp,
        sidecar_stamp=side_stamp,
    )


def sidecar_identity(landing_dir: Path, rel_path: str) -> tuple[str, str] | None:
    """(doc_id, subject_id) named by the sidecar of `rel_path`, read without following any
    link; None when there is no readable, valid sidecar."""
    try:
        dir_fd, name = open_parent(landing_dir, rel_path)
    except (Rejected, OSError):
        return None
    try:
        raw, _stamp, _size = _read_entry(dir_fd, name + SIDECAR_SUFFIX, "sidecar", SIDECAR_MAX_BYTES)
        if raw is None:
            return None
        meta = parse_sidecar(raw)
        return meta["doc_id"], meta["subject_id"]
    except (Rejected, Unstable, OSError):
        return None
    finally:
        os.close(dir_fd)


def still_unchanged(landing_dir: Path, up: Upload) -> bool:
    """True when the upload and its sidecar are still exactly what was read (same file,
    size, mtime and sha256): call it after the slow steps, right before storing."""
    try:
        dir_fd, name = open_parent(landing_dir, up.rel_path)
    except (Rejected, OSError):
        return False
    try:
        for entry, stamp, what in ((name, up.stamp, "upload"), (name + SIDECAR_SUFFIX, up.sidecar_stamp, "sidecar")):
            if stamp is None:
                continue
            _raw, now, _size = _read_entry(dir_fd, entry, what, None)
            if now != stamp:
                return False
    except (Rejected, Unstable, OSError):
        return False
    finally:
        os.close(dir_fd)
    return True


def requeue(landing_dir: Path, rel_path: str) -> bool:
    """Give a file left for the next tick an mtime newer than any cursor could have passed,
    so the landing sensor plans it again even if its writer restored the old mtime.
    Never follows a link. Returns False when the file is gone or could not be touched."""
    try:
        dir_fd, name = open_parent(landing_dir, rel_path)
    except (Rejected, OSError):
        return False
    try:
        st = os.lstat(name, dir_fd=dir_fd)
        if not stat.S_ISREG(st.st_mode):
            return False
        ns = max(time.time_ns(), st.st_mtime_ns + 1)
        os.utime(name, ns=(ns, ns), dir_fd=dir_fd, follow_symlinks=False)
        return True
    except OSError:
        return False
    finally:
        os.close(dir_fd)


@dataclass
class Quarantined:
    rel_path: str
    code: str
    detail: str
    quarantine_path: str


def redact(text: str, subject_id: str | None, subject_hash: str | None) -> str:
    """`text` with the raw subject id replaced by `subject:<first 16 hex of its salted hash>`."""
    if not subject_id or subject_id not in text:
        return text
    return text.replace(subject_id, f"subject:{(subject_hash or '?' * 16)[:16]}")


def _move_out(dir_fd: int, name: str, dst: Path) -> None:
    """Move one regular file (already checked) from below `dir_fd` to `dst`."""
    try:
        os.rename(name, dst, src_dir_fd=dir_fd)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    fd = os.open(name, _O_FILE, dir_fd=dir_fd)  # another file system: copy from the opened file, then unlink
    try:
        if (rej := _entry_problem(os.fstat(fd), "file")) is not None:
            raise rej
        tmp = dst.with_name(dst.name + f".tmp{os.getpid()}")
        with open(tmp, "wb") as out:
            while b := os.read(fd, 1 << 20):
                out.write(b)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dst)
    finally:
        os.close(fd)
    os.unlink(name, dir_fd=dir_fd)


def _reason_path(quarantine_dir: Path, rel_path: str) -> Path:
    """Beside the quarantined file; a path that would leave the quarantine directory gets a
    name of its own under `outside_landing/` instead."""
    try:
        _parts(rel_path)
    except Rejected:
        return quarantine_dir / "outside_landing" / (hashlib.sha256(rel_path.encode("utf-8", "surrogateescape")).hexdigest()[:16] + REASON_SUFFIX)
    return quarantine_dir / (rel_path + REASON_SUFFIX)


def quarantine(
    landing_dir: Path,
    quarantine_dir: Path,
    rel_path: str,
    rejected: Rejected,
    batch_id: str,
    *,
    subject_id: str | None = None,
    subject_hash: str | None = None,
    drop_content: bool = False,
    scrubber=None,
) -> Quarantined:
    """Move the file (and its sidecar) out of the landing zone, with a readable reason file.

    - Nothing is followed: the landing path is walked with O_NOFOLLOW (`open_parent`). A
      symbolic link, a hard link (st_nlink > 1) or a special file is *removed*, never moved
      or read, so no link and no copy of its target ends up in the quarantine. When a folder
      on the path is itself a link, nothing is touched (the link is listed, and removed, as
      an entry of its own).
    - `drop_content` removes the file and its sidecar instead of keeping them (a replay of
      an erased subject's data must not be kept anywhere).
    - The reason file holds no raw subject id: `subject_id` is replaced by its salted hash
      (`subject_hash`) in what is written. With `drop_content` nothing else of the upload is
      kept, so the reason file's own path is redacted too; otherwise it lies beside the moved
      file (whose sidecar names the subject, as the upload did; erasure finds both).

    Idempotent: if a previous, killed run already moved the file, the reason file is
    (re)written and nothing else happens.
    """
    dst = quarantine_dir / rel_path
    removed: list[str] = []
    try:
        dir_fd, name = open_parent(landing_dir, rel_path)
    except (Rejected, OSError):
        dir_fd = None
    if dir_fd is not None:
        try:
            for entry, target, what in ((name, dst, "file"), (name + SIDECAR_SUFFIX, dst.with_name(dst.name + SIDECAR_SUFFIX), "sidecar")):
                try:
                    st = os.lstat(entry, dir_fd=dir_fd)
                except FileNotFoundError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    continue  # a real folder is not an upload
                problem = _entry_problem(st, what)
                if problem is not None or drop_content:
                    os.unlink(entry, dir_fd=dir_fd)
                    removed.append(f"{what} ({problem.code.replace('_', ' ')}, not read)" if problem else what)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                _move_out(dir_fd, entry, target)
        finally:
            os.close(dir_fd)
    subject_id = subject_id or rejected.subject_id
    shown_path = redact(rel_path, subject_id, subject_hash)
    reason = _reason_path(quarantine_dir, shown_path if drop_content else rel_path)
    reason.parent.mkdir(parents=True, exist_ok=True)
    # The detail echoes what the upload said (a bad category, a JSON error excerpt): it is
    # scrubbed like any other text before it is written or shown in run metadata.
    detail = redact(rejected.detail, subject_id, subject_hash)
    if detail:
        from .pii import env_scrubber

        detail = (scrubber or env_scrubber()).scrub_text(detail)
    reason.write_text(
        f"reason: {rejected.code}\n"
        f"explanation: {REASONS.get(rejected.code, rejected.code)}\n"
        f"detail: {detail or '-'}\n"
        f"original_path: {shown_path}\n"
        + (f"subject_hash: {subject_hash}\n" if subject_hash else "")
        + (f"removed_without_keeping: {', '.join(removed)}\n" if removed else "")
        + f"batch_id: {batch_id}\n"
        f"quarantined_at: {datetime.now(timezone.utc).isoformat(timespec='seconds')}\n"
        "action: fix the file or its sidecar and drop it into the landing zone again\n",
        encoding="utf-8",
    )
    kept = "" if (drop_content or rejected.code in LINK_CODES) else str(dst)
    return Quarantined(shown_path, rejected.code, detail, kept or str(reason))  # what run logs and metadata show: no raw subject id


def quarantine_reason(quarantine_dir: Path, rel_path: str) -> str | None:
    reason = _reason_path(quarantine_dir, rel_path)
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
