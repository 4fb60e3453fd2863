"""LanceDB on object storage (issue 16): the governance paths against a real S3-compatible
server (moto's standalone server, started here on 127.0.0.1, stopped at the end).

- the end-to-end path on s3://bucket/prefix: ingest, orphan detection, retention with purge,
  erasure with a byte scan that reads every object under the prefix, a certificate naming the
  bucket and prefix;
- a versioned bucket: erasure deletes the noncurrent versions the purge left and ends with
  zero object versions holding the subject's bytes;
- Object Lock on the bucket: the noncurrent versions cannot be deleted, erasure refuses to
  certify and names the bucket setting.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import replace
from datetime import timedelta

import pytest

from aisg_pipelines.governance import erasure as er
from aisg_pipelines.governance import orphans as O
from aisg_pipelines.governance.ledger import Ledger
from aisg_pipelines.governance.store import CHUNKS, DOCUMENTS, LanceStore

from .conftest import FIXED_NOW, settings_for

pytest.importorskip("moto")
boto3 = pytest.importorskip("boto3")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:  # ready when it answers HTTP
        try:
            urllib.request.urlopen(url + "/", timeout=1).read()
            break
        except Exception:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"moto server did not start on {url}")
            time.sleep(0.2)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _options(endpoint: str) -> dict[str, str]:
    return {"aws_endpoint": endpoint, "allow_http": "true", "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing", "region": "us-east-1"}


def _client(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")


def _world(tmp_path, endpoint, *, versioned=False, object_lock=False, n_subjects=2):
    """A landing zone on disk, the LanceDB store in a fresh bucket under a prefix, ingested."""
    from aisg_pipelines.governance.pipeline import ingest_all
    from aisg_pipelines.sample_data import generate_landing_zone

    bucket = f"aisg-{uuid.uuid4().hex[:12]}"
    c = _client(endpoint)
    c.create_bucket(Bucket=bucket, **({"ObjectLockEnabledForBucket": True} if object_lock else {}))
    if versioned or object_lock:
        c.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    # (a *default* retention rule makes every PUT need Content-MD5, which lance does not send:
    # MissingUploadObjectWithObjectLockHeaders; objects are locked after the ingest instead)
    s = replace(settings_for(tmp_path), lancedb_uri=f"s3://{bucket}/rag/store", lancedb_storage_options=_options(endpoint))
    manifest = generate_landing_zone(s.landing_dir, now=FIXED_NOW, n_subjects=n_subjects, docs_per_subject=2, max_file_bytes=s.max_file_bytes)
    ingest_all(s, now=FIXED_NOW)
    if object_lock:  # every object written so far under a legal hold: no version of it can be deleted
        for page in c.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for v in page.get("Versions", []):
                c.put_object_legal_hold(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"], LegalHold={"Status": "ON"})
    return s, manifest, bucket, c


def _store(s) -> LanceStore:
    return LanceStore(s.lancedb_uri, s.lancedb_storage_options)


def _versions_holding(c, bucket: str, markers: list[bytes]) -> list[str]:
    """Every object version (current and noncurrent) in the bucket whose bytes hold a marker."""
    out = []
    pag = c.get_paginator("list_object_versions")
    for page in pag.paginate(Bucket=bucket):
        for v in page.get("Versions", []):
            data = c.get_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])["Body"].read()
            if any(m in data for m in markers):
                out.append(f"{v['Key']}?versionId={v['VersionId']}{'' if v['IsLatest'] else ' (noncurrent)'}")
    return out


def _subject_markers(store: LanceStore, subject: str) -> list[bytes]:
    """Distinctive bytes of the subject's stored text: 40-byte windows of each document."""
    texts = [r["text"] for r in store.scan(DOCUMENTS, ["subject_id", "text"]).to_pylist() if r["subject_id"] == subject]
    assert texts
    return [t.encode()[i:i + 40] for t in texts for i in (0, max(0, len(t.encode()) // 2 - 20)) if len(t.encode()) >= 40]


def test_end_to_end_on_s3(tmp_path, s3_endpoint):
    s, manifest, bucket, c = _world(tmp_path, s3_endpoint)
    store = _store(s)
    assert store.local_root() is None and store.objects.bucket == bucket and store.objects.prefix == "rag/store"
    assert not (s.data_dir / "lancedb").exists()  # nothing of the store on local disk
    keys = [o["Key"] for p in c.get_paginator("list_objects_v2").paginate(Bucket=bucket) for o in p.get("Contents", [])]
    assert keys and all(k.startswith("rag/store/") for k in keys)
    n_docs, n_chunks = store.count(DOCUMENTS), store.count(CHUNKS)
    assert n_docs > 0 and n_chunks > 0 and store.count("embeddings_v1") == n_chunks
    sizes = store.table_sizes()
    assert set(sizes) >= {DOCUMENTS, CHUNKS, "embeddings_v1"} and all(v > 0 for v in sizes.values())

    # orphan detection: a vector without a chunk, planted; found exactly; cleanup purges it
    some = store.scan("embeddings_v1", ["chunk_id", "doc_id", "batch_id", "content_sha256", "vector", "embedded_at"]).slice(0, 1).to_pylist()[0]
    import pyarrow as pa

    from aisg_pipelines.governance.store import embeddings_schema

    stray = dict(some, chunk_id="chunk-stray-s3")
    store.append("embeddings_v1", embeddings_schema(len(some["vector"])), pa.Table.from_pylist([stray]))
    scope = O.OrphanScope.from_settings(s)
    rep = O.detect_orphans(scope, now=FIXED_NOW)
    assert rep.ids("vector_without_chunk", "embeddings_v1") == ["chunk-stray-s3"]
    res = O.cleanup_orphans(scope, rep, dry_run=False, ledger=Ledger(s.ledger_url))
    assert res.rows_deleted.get("embeddings_v1") == 1
    assert store.count("embeddings_v1") == n_chunks
    assert all(f.deletion_file() is None for f in store.dataset("embeddings_v1").get_fragments())
    assert len(store.dataset("embeddings_v1").versions()) == 1

    # retention with purge: the expired document's rows leave the bucket
    from aisg_pipelines.governance.retention import run_retention

    ret = run_retention(s, now=FIXED_NOW + timedelta(days=80))
    uc = ret.categories["user_content"]
    assert uc.deleted >= 1 and store.count(DOCUMENTS) == n_docs - uc.deleted
    for t in (DOCUMENTS, CHUNKS, "embeddings_v1"):
        ds = store.dataset(t)
        assert all(f.deletion_file() is None for f in ds.get_fragments()) and len(ds.versions()) == 1, t
        assert store.unreferenced_files(t) == []

    # erasure: verified by reading every object under the prefix; the certificate names it
    subject = next(r["subject_id"] for r in store.scan(DOCUMENTS, ["subject_id"]).to_pylist())
    markers = _subject_markers(store, subject)
    assert _versions_holding(c, bucket, markers)  # the scan below can see them before
    intake, res = er.erase_subject(s, subject, requested_by="dpo@aisg", reason="Art. 17")
    (out,) = res.outcomes
    assert out.status == "certified", out.failure
    cert = json.loads(open(out.certificate_path).read())
    v = cert["verification"]
    assert v["object_storage"]["bucket"] == bucket and v["object_storage"]["prefix"] == "rag/store"
    assert f"lancedb=s3://{bucket}/rag/store" in v["storage_roots"]
    n_objects = sum(1 for p in c.get_paginator("list_objects_v2").paginate(Bucket=bucket) for _ in p.get("Contents", []))
    assert res.scan["files_scanned"] >= n_objects
    assert _versions_holding(c, bucket, markers) == []
    assert store.count(DOCUMENTS, f"subject_id = '{subject}'") == 0


def test_erasure_on_a_versioned_bucket_leaves_no_version_with_the_subjects_bytes(tmp_path, s3_endpoint):
    s, manifest, bucket, c = _world(tmp_path, s3_endpoint, versioned=True)
    store = _store(s)
    assert store.objects.versioning() == "Enabled"
    subject = next(r["subject_id"] for r in store.scan(DOCUMENTS, ["subject_id"]).to_pylist())
    markers = _subject_markers(store, subject)
    intake, res = er.erase_subject(s, subject, requested_by="dpo@aisg", reason="Art. 17")
    (out,) = res.outcomes
    assert out.status == "certified", out.failure
    # the purge deleted the noncurrent versions its cleanup left behind
    ov = [e["object_versions"] for e in res.purge.values()]
    assert sum(x["versions_deleted"] for x in ov) > 0 and not any(x["refused"] for x in ov)
    cert = json.loads(open(out.certificate_path).read())
    assert cert["verification"]["object_storage"]["versioning"] == "Enabled"
    # zero object versions, current or noncurrent, hold the subject's bytes
    assert _versions_holding(c, bucket, markers) == []


def test_object_lock_refuses_to_certify_and_names_the_bucket_setting(tmp_path, s3_endpoint):
    s, manifest, bucket, c = _world(tmp_path, s3_endpoint, object_lock=True)
    store = _store(s)
    assert store.objects.object_lock()["enabled"]
    subject = next(r["subject_id"] for r in store.scan(DOCUMENTS, ["subject_id"]).to_pylist())
    intake, res = er.erase_subject(s, subject, requested_by="dpo@aisg", reason="Art. 17")
    (out,) = res.outcomes
    assert out.status == "failed"
    assert f"bucket {bucket} has versioning Enabled and Object Lock enabled" in out.failure and "AccessDenied" in out.failure
    assert er.get_request(Ledger(s.ledger_url), intake.request_id)["certificate_path"] is None
