"""Identifiers: validation, stable hashing, and the only way values reach a LanceDB filter.

Filter strings in LanceDB are SQL. A request-supplied value interpolated raw into
`delete()` or `where()` can match every row (`x' OR '1'='1`), and the predicate is written
verbatim into `_transactions/*.txn` on disk. So:
- values are validated against a strict pattern where we control the format;
- anything that must go into a filter goes through `sql_literal`/`in_filter`;
- erasure and retention delete by *our own* hex ids, never by the subject identifier.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Iterator, Sequence

DOC_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
SUBJECT_ID_RE = re.compile(r"^[A-Za-z0-9._@:+-]{1,128}$")
HEX_ID_RE = re.compile(r"^[0-9a-f]{8,64}$")
BATCH_ID_RE = re.compile(r"^[0-9]{8}-[0-9a-f]{8}$")
VERSION_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class InvalidIdentifier(ValueError):
    """An identifier that does not have the required shape; the message says which."""


def require(pattern: re.Pattern[str], value: object, what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        shown = repr(value)[:80]
        raise InvalidIdentifier(f"{what} {shown} is not valid: it must match {pattern.pattern}")
    return value


def sha256_hex(data: str | bytes) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def chunk_id_for(doc_id: str, chunk_index: int) -> str:
    """Stable across re-ingestion: the same document position always has the same id."""
    return sha256_hex(f"{doc_id}\x1f{chunk_index}")[:32]


def subject_hash(subject_id: str, salt: bytes) -> str:
    """Salted (keyed) hash of a subject id: what certificates, the denylist and reports show."""
    return hmac.new(salt, subject_id.encode("utf-8"), hashlib.sha256).hexdigest()


_CONTROL = re.compile(r"[\x00-\x1f]")


def sql_literal(value: str) -> str:
    """Quote a string as a SQL literal for a LanceDB filter; refuses control characters."""
    if not isinstance(value, str):
        raise InvalidIdentifier(f"filter value must be a string, got {type(value).__name__}")
    if _CONTROL.search(value):
        raise InvalidIdentifier("filter value contains control characters")
    return "'" + value.replace("'", "''") + "'"


def in_filter(column: str, values: Sequence[str]) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", column):
        raise InvalidIdentifier(f"bad column name {column!r}")
    return f"{column} IN ({', '.join(sql_literal(v) for v in values)})"


def batched(values: Iterable[str], size: int = 2000) -> Iterator[list[str]]:
    buf: list[str] = []
    for v in values:
        buf.append(v)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf
