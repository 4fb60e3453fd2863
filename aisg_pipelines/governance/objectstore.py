"""Object storage (S3 and S3-compatible servers) under a LanceDB URI `s3://bucket/prefix`.

What LanceDB's API does not give the governance code, read straight from the bucket:
- every object under the prefix (sizes, leftovers of killed writes, the byte scan);
- every *version* of every object: on a bucket with versioning, files that a purge's cleanup
  removed stay as noncurrent versions with their bytes intact, and `list_objects_v2` does not
  show them;
- the bucket's versioning and Object Lock settings, and `DeleteObjectVersion` of the
  noncurrent versions a purge left behind.

boto3 is imported lazily: it is a runtime dependency of object-storage deployments only
(`pip install boto3`, docs/scaling.md); a local store never imports it.
Storage options are LanceDB's (`aws_endpoint`, `aws_access_key_id`, `aws_secret_access_key`,
`aws_session_token`, `region`/`aws_region`); absent keys fall back to boto3's own chain.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

S3_SCHEMES = ("s3://", "s3a://")

# Ranged GET size of the byte scan: memory per object scanned stays ~ this + the longest needle.
SCAN_CHUNK_BYTES = 8 << 20


def parse_s3_uri(uri: str) -> tuple[str, str] | None:
    """(bucket, prefix without slashes) of an s3:// URI, else None."""
    for scheme in S3_SCHEMES:
        if uri.startswith(scheme):
            rest = uri[len(scheme):]
            bucket, _, prefix = rest.partition("/")
            return bucket, prefix.strip("/")
    return None


@dataclass
class ObjectVersion:
    key: str
    version_id: str | None
    size: int
    is_latest: bool
    last_modified: datetime | None
    delete_marker: bool = False


class S3Objects:
    def __init__(self, uri: str, storage_options: dict[str, str] | None = None, *, scan_chunk_bytes: int | None = None):
        parsed = parse_s3_uri(uri)
        if parsed is None:
            raise ValueError(f"not an s3:// URI: {uri}")
        self.uri = uri
        self.bucket, self.prefix = parsed
        self.options = dict(storage_options or {})
        self._client = None
        # bytes per ranged GET of the streaming byte scan (`iter_windows`)
        self.scan_chunk_bytes = int(scan_chunk_bytes or SCAN_CHUNK_BYTES)

    # -- connection ---------------------------------------------------------------------
    @property
    def client(self):
        if self._client is None:
            try:
                import boto3
            except ImportError as e:  # pragma: no cover - production installs it explicitly
                raise RuntimeError(
                    f"the LanceDB store {self.uri} is on object storage: purge, byte verification and storage "
                    "accounting read the bucket with boto3, which is not installed (pip install boto3)") from e
            o = self.options

            def opt(*names):
                for n in names:
                    if o.get(n):
                        return o[n]
                return None

            kw: dict[str, Any] = {}
            if ep := opt("aws_endpoint", "endpoint", "aws_endpoint_url", "endpoint_url"):
                kw["endpoint_url"] = ep
            if ak := opt("aws_access_key_id", "access_key_id"):
                kw["aws_access_key_id"] = ak
            if sk := opt("aws_secret_access_key", "secret_access_key"):
                kw["aws_secret_access_key"] = sk
            if tok := opt("aws_session_token", "session_token"):
                kw["aws_session_token"] = tok
            if region := opt("region", "aws_region", "aws_default_region"):
                kw["region_name"] = region
            self._client = boto3.client("s3", **kw)
        return self._client

    def key(self, rel: str = "") -> str:
        """The object key of a path relative to the store root ('' = the root prefix + '/')."""
        base = f"{self.prefix}/" if self.prefix else ""
        return base + rel.lstrip("/")

    def rel(self, key: str) -> str:
        base = f"{self.prefix}/" if self.prefix else ""
        return key[len(base):] if key.startswith(base) else key

    # -- listing and reading ------------------------------------------------------------
    def list(self, rel_prefix: str = "") -> Iterator[ObjectVersion]:
        """Current objects under the store prefix (+ rel_prefix)."""
        pag = self.client.get_paginator("list_objects_v2")
        for page in pag.paginate(Bucket=self.bucket, Prefix=self.key(rel_prefix)):
            for o in page.get("Contents", []):
                yield ObjectVersion(o["Key"], None, int(o["Size"]), True, o.get("LastModified"))

    def list_versions(self, rel_prefix: str = "") -> Iterator[ObjectVersion]:
        """Every version (current, noncurrent, delete markers) under the prefix. On a bucket
        that never had versioning each object has one version, id 'null'."""
        pag = self.client.get_paginator("list_object_versions")
        for page in pag.paginate(Bucket=self.bucket, Prefix=self.key(rel_prefix)):
            for o in page.get("Versions", []):
                yield ObjectVersion(o["Key"], o.get("VersionId"), int(o.get("Size", 0)), bool(o.get("IsLatest")), o.get("LastModified"))
            for o in page.get("DeleteMarkers", []):
                yield ObjectVersion(o["Key"], o.get("VersionId"), 0, bool(o.get("IsLatest")), o.get("LastModified"), delete_marker=True)

    def read(self, key: str, version_id: str | None = None, byte_range: tuple[int, int] | None = None) -> bytes:
        """The object's bytes, or bytes [start, end) of it (a ranged GET)."""
        kw: dict[str, Any] = {"VersionId": version_id} if version_id and version_id != "null" else {}
        if byte_range is not None:
            kw["Range"] = f"bytes={byte_range[0]}-{byte_range[1] - 1}"
        return self.client.get_object(Bucket=self.bucket, Key=key, **kw)["Body"].read()

    def iter_windows(self, key: str, version_id: str | None = None, *, size: int, overlap: int = 0,
                     chunk_bytes: int | None = None) -> Iterator[tuple[bytes, int]]:
        """Stream one object version as overlapping windows, for a byte scan that never holds a
        whole object: each window is the last `overlap` bytes of the previous one followed by
        the next ranged GET of `chunk_bytes` (default `scan_chunk_bytes`, 8 MiB).

        Yields (window, seen): the window's first `seen` bytes were already in the previous
        window. With overlap = longest needle - 1, every occurrence of a needle lies whole in
        some window, also across a chunk boundary; an occurrence lying whole within the first
        `seen` bytes was reported with the previous window (skip it: no double counts)."""
        step = max(1, int(chunk_bytes or self.scan_chunk_bytes))
        overlap = max(0, int(overlap))
        tail = b""
        for start in range(0, size, step):
            part = self.read(key, version_id, (start, min(size, start + step)))
            window = tail + part if tail else part
            yield window, len(tail)
            tail = window[-overlap:] if overlap else b""

    def find(self, key: str, version_id: str | None = None, *, size: int, find, needle_lengths, chunk_bytes: int | None = None) -> Iterator[tuple[int, int]]:
        """(needle index, offset in the object) of every occurrence in one object version, streamed
        (`iter_windows`, overlap = longest needle - 1): `find(buf)` yields (needle index, offset
        in buf), e.g. `PatternScanner.find`; `needle_lengths[i]` is needle i's length."""
        overlap = max(needle_lengths, default=1) - 1
        new_at = 0  # offset in the object of the window's new part (after the `seen` bytes)
        for window, seen in self.iter_windows(key, version_id, size=size, overlap=overlap, chunk_bytes=chunk_bytes):
            for i, off in find(window):
                if off + needle_lengths[i] > seen:  # not whole in the part the previous window had
                    yield i, new_at - seen + off
            new_at += len(window) - seen

    def scan_versions(self, scan, *, overlap: int, spool_suffix: str = ".lance", on_spooled=None, label_prefix: str = "",
                      chunk_bytes: int | None = None, workers: int = 4) -> dict[str, int]:
        """Stream every object version under the prefix (current objects, noncurrent versions;
        delete markers have no bytes) through `scan(location, window, seen)` (`iter_windows`):
        no object is ever held whole in memory. Objects whose key ends with `spool_suffix` are
        also written to a temporary file part by part and handed to `on_spooled(path, location)`
        (Lance files, decoded column by column from disk). Locations are `label_prefix + key
        relative to the store`, with `?versionId=...` for noncurrent versions.
        Returns {"files": versions read, "bytes": bytes read (the overlap counted once)}."""
        import tempfile
        import threading
        from concurrent.futures import ThreadPoolExecutor
        from pathlib import Path

        versions = [v for v in self.list_versions() if not v.delete_marker]
        lock = threading.Lock()
        totals = {"files": 0, "bytes": 0}

        def one(v: ObjectVersion) -> None:
            rel = self.rel(v.key)
            loc = label_prefix + (rel if v.is_latest else f"{rel}?versionId={v.version_id}")
            with lock:
                totals["files"] += 1
                totals["bytes"] += v.size
            if not v.size:
                return
            windows = self.iter_windows(v.key, v.version_id, size=v.size, overlap=overlap, chunk_bytes=chunk_bytes)
            if on_spooled is None or not rel.endswith(spool_suffix):
                for window, seen in windows:
                    scan(loc, window, seen)
                return
            with tempfile.TemporaryDirectory() as td:
                path = Path(td) / Path(rel).name
                with open(path, "wb") as fh:
                    for window, seen in windows:
                        scan(loc, window, seen)
                        fh.write(memoryview(window)[seen:])
                on_spooled(path, loc)

        with ThreadPoolExecutor(max_workers=workers) as pool:  # network-bound
            list(pool.map(one, versions))
        return totals

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def size_under(self, rel_prefix: str) -> int:
        return sum(o.size for o in self.list(rel_prefix))

    # -- bucket settings ----------------------------------------------------------------
    def versioning(self) -> str:
        """'Enabled', 'Suspended' or '' (never enabled). Suspended still keeps the noncurrent
        versions made while it was enabled."""
        return self.client.get_bucket_versioning(Bucket=self.bucket).get("Status", "") or ""

    def object_lock(self) -> dict[str, Any]:
        """{'enabled': bool, 'default_retention': {...} | None}."""
        from botocore.exceptions import ClientError

        try:
            cfg = self.client.get_object_lock_configuration(Bucket=self.bucket).get("ObjectLockConfiguration", {})
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code in ("ObjectLockConfigurationNotFoundError", "ObjectLockConfigurationNotFound", "NoSuchObjectLockConfiguration"):
                return {"enabled": False, "default_retention": None}
            raise
        rule = (cfg.get("Rule") or {}).get("DefaultRetention")
        return {"enabled": cfg.get("ObjectLockEnabled") == "Enabled", "default_retention": rule}

    def info(self) -> dict[str, Any]:
        return {"uri": self.uri, "bucket": self.bucket, "prefix": self.prefix,
                "endpoint": self.options.get("aws_endpoint") or self.options.get("endpoint") or "aws",
                "versioning": self.versioning() or "Disabled", "object_lock": self.object_lock()}

    # -- noncurrent versions ------------------------------------------------------------
    def delete_noncurrent(self, rel_prefix: str) -> dict[str, Any]:
        """DeleteObjectVersion of every noncurrent version and delete marker under the prefix:
        what a purge's cleanup (or a drop) replaced on a versioned bucket. Versions an Object
        Lock retention or legal hold protects are refused by the bucket: they are listed with
        the bucket's reason, never bypassed (no BypassGovernanceRetention)."""
        from botocore.exceptions import ClientError

        status = self.versioning()
        out: dict[str, Any] = {"bucket": self.bucket, "prefix": self.key(rel_prefix), "versioning": status or "Disabled",
                               "versions_deleted": 0, "bytes_deleted": 0, "delete_markers_deleted": 0, "refused": []}
        if not status:
            return out
        for v in list(self.list_versions(rel_prefix)):
            if v.is_latest and not v.delete_marker:
                continue
            try:
                self.client.delete_object(Bucket=self.bucket, Key=v.key, VersionId=v.version_id)
            except ClientError as e:
                err = e.response.get("Error", {})
                out["refused"].append({"key": v.key, "version_id": v.version_id, "code": err.get("Code", ""), "message": err.get("Message", "")})
                continue
            if v.delete_marker:
                out["delete_markers_deleted"] += 1
            else:
                out["versions_deleted"] += 1
                out["bytes_deleted"] += v.size
        if out["refused"]:
            lock = self.object_lock()
            out["reason"] = (f"bucket {self.bucket} has versioning {status} and Object Lock "
                             f"{('enabled (default retention ' + json.dumps(lock['default_retention']) + ')' if lock['default_retention'] else 'enabled (retention or legal hold on the versions)') if lock['enabled'] else 'not enabled'}: "
                             f"{len(out['refused'])} noncurrent version(s) under s3://{self.bucket}/{self.key(rel_prefix)} could not be deleted "
                             f"({out['refused'][0]['code']}: {out['refused'][0]['message']}); their bytes stay readable until the retention ends")
        return out
