"""LanceDB on object storage (issue 16): the governance paths against a real S3-compatible
server (moto's standalone server, started here on 127.0.0.1, stopped at the end).

- the end-to-end path on s3://bucket/prefix: ingest, reindex to a new version (validated,
  switched to, rolled back), orphan detection, retention with purge, erasure with a byte scan
  that reads every object under the prefix, a certificate naming the bucket and prefix, the
  compliance report reading its storage figures from the bucket;
- the byte scan streams objects in ranged chunks with an overlap: a needle straddling a chunk
  boundary is found, in noncurrent versions too;
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
    s, manifest, bucket, c = _world(tmp_path, s3_endpoint, n_subjects=3)  # some documents outlive retention and erasure
    store = _store(s)
    assert store.local_root() is None and store.objects.bucket == bucket and store.objects.prefix == "rag/store"
    assert not (s.data_dir / "lancedb").exists()  # nothing of the store on local disk
    keys = [o["Key"] for p in c.get_paginator("list_objects_v2").paginate(Bucket=bucket) for o in p.get("Contents", [])]
    assert keys and all(k.startswith("rag/store/") for k in keys)
    n_docs, n_chunks = store.count(DOCUMENTS), store.count(CHUNKS)
    assert n_docs > 0 and n_chunks > 0 and store.count("embeddings_v1") == n_chunks
    sizes = store.table_sizes()
    assert set(sizes) >= {DOCUMENTS, CHUNKS, "embeddings_v1"} and all(v > 0 for v in sizes.values())

    # reindex to v2 on the bucket: built, validated and switched to; rolled back to v1; v2 kept
    from aisg_pipelines.governance.reindex import reindex, rollback
    from aisg_pipelines.governance.versions import EmbedVersionSpec, VersionRegistry

    ledger = Ledger(s.ledger_url)
    reg = VersionRegistry(ledger)
    chunk_ids = sorted(store.scan(CHUNKS, ["chunk_id"])["chunk_id"].to_pylist())
    v1_table_version = store.dataset("embeddings_v1").version
    ri = reindex(store, ledger, EmbedVersionSpec(name="v2", model_path=reg.require("v1").model_path, max_seq_length=128), sample_size=10)
    assert (ri.activated, ri.previous_active, ri.chunks, ri.embedded, ri.skipped) == (True, "v1", n_chunks, n_chunks, 0)
    assert ri.validation.passed and ri.validation.vectors == n_chunks
    assert reg.active().name == "v2" and reg.require("v1").status == "retired"
    assert sorted(store.scan("embeddings_v2", ["chunk_id"])["chunk_id"].to_pylist()) == chunk_ids
    assert store.dataset("embeddings_v1").version == v1_table_version  # blue-green: v1 untouched
    rb = rollback(store, ledger)
    assert (rb.version, rb.previous, rb.embedded) == ("v1", "v2", 0)
    assert reg.active().name == "v1" and store.count("embeddings_v2") == n_chunks
    keys = [o["Key"] for p in c.get_paginator("list_objects_v2").paginate(Bucket=bucket) for o in p.get("Contents", [])]
    assert any(k.startswith("rag/store/embeddings_v2.lance/") for k in keys) and not (s.data_dir / "lancedb").exists()

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
    assert store.count("embeddings_v2") == store.count(CHUNKS) == store.count("embeddings_v1")  # the kept version purged too
    for t in (DOCUMENTS, CHUNKS, "embeddings_v1", "embeddings_v2"):
        ds = store.dataset(t)
        assert all(f.deletion_file() is None for f in ds.get_fragments()) and len(ds.versions()) == 1, t
        assert store.unreferenced_files(t) == []

    # erasure: verified by reading every object under the prefix; the certificate names it
    docs = store.scan(DOCUMENTS, ["subject_id", "legal_hold"]).to_pylist()
    held = {r["subject_id"] for r in docs if r["legal_hold"]}
    subject = next(r["subject_id"] for r in docs if r["subject_id"] not in held)  # a held one is refused (Art. 17(3)(e))
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

    # the compliance report over the bucket: storage read from it, every figure exact
    from datetime import datetime, timezone

    from aisg_pipelines.governance.periods import month_period
    from aisg_pipelines.governance.reports import build_report

    now = datetime.now(timezone.utc)
    rep = build_report(s, month_period(now.strftime("%Y-%m"), "UTC"), now=now, check_results=[], write_prometheus=False)
    summ = rep.summary
    st = summ["storage"]
    assert st["lancedb_uri_is_local"] is False and st["lancedb_tables"] == dict(sorted(store.table_sizes().items()))
    assert set(st["lancedb_tables"]) == {DOCUMENTS, CHUNKS, "embeddings_v1", "embeddings_v2"} and all(v > 0 for v in st["lancedb_tables"].values())
    assert st["lancedb_total_bytes"] == sum(o.size for o in store.objects.list())  # every current object under the prefix
    emb = summ["embeddings"]
    assert (emb["active_version"], emb["rollbacks"]) == ("v1", 1)
    n_left = store.count(CHUNKS)
    assert n_left > 0 and emb["coverage"] == {"version": "v1", "chunks": n_left, "embedded": n_left, "missing": 0, "ratio": 1.0}
    assert summ["erasure"]["certified"] == 1, summ["erasure"]
    assert [x["verification"] for x in summ["erasure"]["certificates"]] == ["verified"]
    assert json.loads((rep.out_dir / "summary.json").read_text())["storage"] == st


def test_erasure_on_a_versioned_bucket_leaves_no_version_with_the_subjects_bytes(tmp_path, s3_endpoint, monkeypatch):
    from aisg_pipelines.governance import objectstore

    monkeypatch.setattr(objectstore, "SCAN_CHUNK_BYTES", 4096)  # the verification streams every object in many windows
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


def test_streaming_byte_scan_finds_needles_across_chunk_boundaries_in_every_version(s3_endpoint):
    """The byte scan reads objects in ranged chunks (small here: 256 bytes) with an overlap of
    longest needle - 1 bytes: a needle straddling a boundary is found, one lying whole in the
    overlap is counted once, a noncurrent version is scanned like a current one."""
    import random
    from collections import Counter

    from aisg_pipelines.governance.erasure import PatternScanner
    from aisg_pipelines.governance.objectstore import S3Objects

    c = _client(s3_endpoint)
    bucket = f"aisg-{uuid.uuid4().hex[:12]}"
    c.create_bucket(Bucket=bucket)
    c.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    text = "김민수 kim.minsu@example.kr 서울특별시 강남구 테헤란로 152".encode()  # 66 bytes
    ident = b"subj-000042-x"
    body = bytearray(random.Random(7).randbytes(1200))
    at = {"text": 256 - 20, "ident_in_overlap": 256 - 30 - len(ident), "ident_across": 512 - 5, "text_across": 1024 - 33}
    for name, off in at.items():
        needle = text if name.startswith("text") else ident
        body[off:off + len(needle)] = needle
    key = "rag/store/t.lance/data/0.lance"
    c.put_object(Bucket=bucket, Key=key, Body=bytes(body))  # becomes noncurrent below
    c.put_object(Bucket=bucket, Key=key, Body=random.Random(8).randbytes(700))  # current, clean
    objs = S3Objects(f"s3://{bucket}/rag/store", _options(s3_endpoint), scan_chunk_bytes=256)
    (old,) = [v for v in objs.list_versions() if not v.is_latest]
    scanner = PatternScanner([text, ident])
    lengths = [len(p) for p in scanner.patterns]
    found = sorted((scanner.patterns[i], off) for i, off in objs.find(old.key, old.version_id, size=old.size, find=scanner.find, needle_lengths=lengths))
    assert found == sorted([(text, at["text"]), (ident, at["ident_in_overlap"]), (ident, at["ident_across"]), (text, at["text_across"])])
    # without the overlap the needles across a boundary are missed (what the overlap is for)
    no_overlap = [scanner.patterns[i] for w, _ in objs.iter_windows(old.key, old.version_id, size=old.size, overlap=0) for i, _ in scanner.find(w)]
    assert sorted(no_overlap) == [ident]

    # every version streamed through one callback; the .lance object spooled whole to disk
    hits, spooled = Counter(), {}
    windows = []

    def scan(loc, window, seen):
        windows.append(len(window))
        for i, off in scanner.find(window):
            if off + lengths[i] > seen:
                hits[loc] += 1

    def on_spooled(path, loc):
        spooled[loc] = path.read_bytes()

    totals = objs.scan_versions(scan, overlap=max(lengths) - 1, on_spooled=on_spooled, label_prefix="lancedb/")
    assert totals == {"files": 2, "bytes": 1200 + 700}
    old_loc = f"lancedb/t.lance/data/0.lance?versionId={old.version_id}"
    assert dict(hits) == {old_loc: 4}
    assert spooled[old_loc] == bytes(body) and len(spooled["lancedb/t.lance/data/0.lance"]) == 700
    assert max(windows) <= 256 + max(lengths) - 1  # never more than a chunk + the overlap in memory
