"""GDPR Art. 15 (access) and Art. 20 (portability): a signed export of everything held about a subject.

Plain module (no Dagster); `aisg access-export`, the erasure inbox (request `"type": "access"`)
and the Dagster job `access_export` call these functions.

- Intake is erasure's: `erasure.parse_request` validates (same codes, same hostile-identifier
  rejection), rejected inbox files go to `<erasure_inbox>/rejected/` redacted, exactly as erasure
  requests do. An access request is recorded as ledger events only (no table):
  `access.received` -> `access.discovered` (the anchor the export signs) -> `access.delivered`
  (the export's sha256), or `access.rejected` / `access.failed`. Events carry the salted
  subject hash, never the raw id. While a request is open the raw id is in one private pending
  file `<erasure_inbox>/access_processing/<request_id>.json` (0600), deleted on delivery.
- Discovery is erasure's own `discover` (documents, chunks, vectors in every embed_version,
  telemetry rows, sidecars, structured lines), so an export shows exactly what an erasure of the
  subject would remove. Other subjects' chunks under the subject's doc ids are excluded there.
- The export: `<exports>/access_exports/<export_id>/export.json` (canonical JSON, Ed25519-signed
  like the erasure certificates: `aisg verify-certificate export.json` checks it), plus HTML and
  PDF renderings in English and Korean. JSON Schema: docs/access_export.schema.json.
- Every item carries the date retention will delete it (config/retention.yaml), and the export
  itself gets the `access_exports` policy (default 30 days); `expire_exports` deletes old ones.
- An erasure of the subject also removes its access exports (`export_files_of`, used by erasure
  discovery): they hold the subject's data.
- The 30-day deadline: `sla_status` (same shape as erasure's), checked by the `access_sla` asset
  check, and access requests (received, delivered, overdue) are in the compliance report.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from . import erasure_discovery as er_discovery
from . import erasure_intake as er_intake
from . import events
from .context import age_days, as_governance
from .ids import subject_hash
from .ledger import Ledger, audit_events, canonical_json, iso
from .retention_policy import DEFAULT_POLICY_FILE, OPTIONAL_DEFAULT_DAYS, load_policies

SCHEMA = "aisg.access-export/1"
SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "access_export.schema.json"  # the documented JSON Schema of export.json
EXPORT_SUBDIR = er_discovery.ACCESS_EXPORT_SUBDIR
SLA_DAYS = er_intake.SLA_DAYS
REQUEST_TYPES = ("erasure", "access")
EXPORT_RETENTION_CATEGORY = "access_exports"
DEFAULT_EXPORT_RETENTION_DAYS = OPTIONAL_DEFAULT_DAYS[EXPORT_RETENTION_CATEGORY]

STATEMENT_NONE = {
    "en": "We hold no personal data about this data subject in the RAG store, its uploads, logs, metrics or exports. "
          "The ledger events listed (if any) name the subject only through its salted hash.",
    "ko": "RAG 저장소, 업로드 파일, 로그, 지표 및 내보내기 파일에 이 정보주체에 관한 개인정보를 보유하고 있지 않습니다. "
          "아래 원장 이벤트(있는 경우)는 정보주체를 솔트 해시로만 나타냅니다.",
}
STATEMENT_FOUND = {
    "en": "This export lists every item we hold about the data subject, where it is kept and the date retention will delete it.",
    "ko": "이 내보내기는 정보주체에 관해 보유한 모든 항목, 보관 위치 및 보존 정책에 따른 삭제 예정일을 나열합니다.",
}


# -- paths ------------------------------------------------------------------------------------
def exports_root(settings) -> Path:
    return Path(settings.exports_dir) / EXPORT_SUBDIR


def pending_dir(settings) -> Path:
    return Path(settings.erasure_inbox) / "access_processing"


def export_id_for(request_id: str) -> str:
    return "ax-" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"aisg:access:{request_id}"))


def _utc(dt: datetime | None = None) -> datetime:
    return (dt or datetime.now(timezone.utc)).astimezone(timezone.utc)


def _parse_ts(v) -> datetime | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return v if v.tzinfo else v.replace(tzinfo=timezone.utc)
    try:
        d = datetime.fromisoformat(str(v))
    except ValueError:
        return None
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


def _jsonable(v):
    if isinstance(v, datetime):
        return iso(_utc(v))
    if isinstance(v, (bytes, bytearray)):
        return {"bytes": len(v), "sha256": hashlib.sha256(v).hexdigest()}
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, float) and v != v:  # NaN: canonical JSON forbids it
        return None
    return v


# -- retention --------------------------------------------------------------------------------
def policy_days() -> dict[str, int]:
    """Days per retention category from config/retention.yaml (governance.retention_policy validates
    it); the optional `access_exports` category defaults to 30 days when the file has none. An
    unreadable configured file must not block an access request: the shipped default file applies."""
    try:
        return load_policies().days()
    except Exception:  # noqa: BLE001 - see the docstring
        return load_policies(DEFAULT_POLICY_FILE).days()


def _retention(category: str, basis: str, start, days: dict[str, int], held: bool = False) -> dict:
    d = days[category]
    st = _parse_ts(start)
    return {"policy": category, "days": d, "basis": basis, "basis_value": iso(st) if st else None, "held": held,
            "deletes_at": None if held or st is None else iso(st + timedelta(days=d))}


# -- request state from the ledger's events ----------------------------------------------------
@dataclass
class AccessRequest:
    request_id: str
    subject_hash: str | None
    status: str  # received | delivered | failed | rejected
    requested_at: str
    received_at: str
    source: str = ""
    requested_by: str = ""
    delivered_at: str | None = None
    export_id: str | None = None
    export_path: str | None = None
    failure: str | None = None


# the access.* events that move a request's status (access.discovered and access.exports_expired do not)
_REQUEST_EVENTS = {c.ACTION: c for c in (events.AccessReceived, events.AccessRejected, events.AccessDelivered, events.AccessFailed)}


def list_requests(ledger: Ledger) -> list[AccessRequest]:
    out: dict[str, AccessRequest] = {}
    for e in ledger.events("access."):
        cls = _REQUEST_EVENTS.get(e.action)
        ev = cls.from_payload(e.details) if cls else None
        rid = getattr(ev, "request_id", "")
        if not rid:
            continue
        if isinstance(ev, events.AccessReceived):
            out[rid] = AccessRequest(rid, e.subject_hash, "received", ev.requested_at or e.occurred_at, e.occurred_at, ev.source, ev.requested_by)
        elif isinstance(ev, events.AccessRejected) and rid not in out:
            out[rid] = AccessRequest(rid, e.subject_hash, "rejected", e.occurred_at, e.occurred_at, ev.source, failure=f"rejected: {ev.code}")
        elif rid in out and isinstance(ev, events.AccessDelivered):
            r = out[rid]
            r.status, r.delivered_at, r.export_id, r.export_path = "delivered", e.occurred_at, ev.export_id, ev.export_path
        elif rid in out and isinstance(ev, events.AccessFailed):
            out[rid].status, out[rid].failure = "failed", ev.failure
    return sorted(out.values(), key=lambda r: (r.requested_at, r.request_id))


def get_request(ledger: Ledger, request_id: str) -> AccessRequest | None:
    return next((r for r in list_requests(ledger) if r.request_id == request_id), None)


def record_rejection(ledger: Ledger, request_id: str, code: str, detail: str, *, source: str, subject_hash_: str | None = None) -> None:
    events.record(ledger, events.AccessRejected(request_id=request_id, code=code, detail=detail[:300], source=source),
                  actor="access", subject_hash=subject_hash_)


def intake(settings, ledger: Ledger, req: er_intake.ErasureRequest, *, now: datetime | None = None) -> er_intake.IntakeResult:
    """Record a valid access request as received (raw id in the private pending file)."""
    h = subject_hash(req.subject_id, er_intake._salt(settings))
    pending = pending_dir(settings) / f"{req.request_id}.json"
    existing = get_request(ledger, req.request_id)
    if existing is not None:
        if existing.subject_hash == h and existing.status == "received" and pending.exists():
            return er_intake.IntakeResult(True, req.request_id, redelivery=True)
        record_rejection(ledger, req.request_id, "duplicate_request", f"request_id already recorded with status {existing.status}",
                         source=req.source, subject_hash_=existing.subject_hash if existing.subject_hash == h else None)
        return er_intake.IntakeResult(False, req.request_id, "duplicate_request", f"request {req.request_id} already exists ({existing.status})")
    er_intake._write_private(pending, {"request": asdict(req)})
    events.record(ledger, events.AccessReceived(request_id=req.request_id, source=req.source, requested_at=req.requested_at,
                                                requested_by=req.requested_by), actor="access", subject_hash=h,
                  occurred_at=iso(_utc(now)) if now else None)
    return er_intake.IntakeResult(True, req.request_id)


def pending_request_ids(settings, ledger: Ledger) -> list[str]:
    d = pending_dir(settings)
    return [r.request_id for r in list_requests(ledger) if r.status == "received" and (d / f"{r.request_id}.json").exists()]


def request_access(settings, subject_id: str, *, requested_by: str, reason: str = "", request_id: str | None = None,
                   run: bool = True, now: datetime | None = None) -> tuple[er_intake.IntakeResult, list[dict]]:
    """What `aisg access-export` does: validate (erasure's rules), record, and (unless run=False) export now."""
    ledger = as_governance(settings).ledger
    obj = {"subject_id": subject_id, "requested_by": requested_by, "reason": reason, "request_id": request_id or f"ar-{uuid.uuid4().hex[:20]}"}
    try:
        req = er_intake.parse_request(obj, source="cli", now=now)
    except er_intake.RequestRejected as rej:
        rid = obj["request_id"] if er_intake.REQUEST_ID_RE.fullmatch(str(obj["request_id"])) else "rej-" + hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:24]
        record_rejection(ledger, rid, rej.code, er_intake._redact(rej.detail, subject_id if isinstance(subject_id, str) else None, settings), source="cli")
        return er_intake.IntakeResult(False, rid, rej.code, rej.detail), []
    res = intake(settings, ledger, req, now=now)
    if not res.accepted or not run:
        return res, []
    return res, process_requests(settings, [req.request_id], ledger=ledger, now=now)


# -- building the export -----------------------------------------------------------------------
def _fetch_rows(store, table: str, column: str, ids: list[str], columns: list[str] | None = None) -> list[dict]:
    if not ids or not store.has_table(table):
        return []
    out = []
    for i in range(0, len(ids), 20_000):
        part = ids[i:i + 20_000]
        out += store.dataset(table).to_table(columns=columns, filter=pc.field(column).isin(pa.array(part, pa.string()))).to_pylist()
    return out


def build_export(settings, store, ledger: Ledger, subject_id: str, request_id: str, *, now: datetime | None = None,
                 manifest: er_discovery.Manifest | None = None) -> tuple[dict, er_discovery.Manifest]:
    """The unsigned export fields (everything but the signature and ledger anchor). `manifest`:
    the subject's erasure discovery when already made (a batch of requests shares one)."""
    from .store import CHUNKS, DOCUMENTS, EMBEDDINGS_PREFIX
    from .landing import REASON_SUFFIX, SIDECAR_SUFFIX

    now = _utc(now)
    days = policy_days()
    salt = er_intake._salt(settings)
    h = subject_hash(subject_id, salt)
    man = manifest if manifest is not None else er_discovery.discover(settings, store, {subject_id: request_id})[0][request_id]

    # legal holds: subject-scoped by salted hash, document-scoped by each doc id's hash
    from .ledger import legal_holds

    doc_hash = {subject_hash(d, salt): d for d in man.doc_ids}
    holds = []
    with ledger.engine.connect() as conn:
        for r in conn.execute(sa.select(legal_holds).where(legal_holds.c.target_hash.in_([h, *doc_hash]) if doc_hash else legal_holds.c.target_hash == h)):
            if r.scope == "subject" and r.target_hash != h:
                continue
            holds.append({"hold_id": r.hold_id, "scope": r.scope, "doc_id": doc_hash.get(r.target_hash) if r.scope == "document" else None,
                          "reason": r.reason, "created_at": r.created_at, "released_at": r.released_at, "active": r.released_at is None})
    subject_held = any(x["active"] and x["scope"] == "subject" for x in holds)
    held_docs = {x["doc_id"] for x in holds if x["active"] and x["scope"] == "document"}

    # which embed_versions hold a vector of which chunk
    versions_of: dict[str, list[str]] = {}
    per_version: dict[str, int] = {}
    for table, cols in man.lance_ids.items():
        if table.startswith(EMBEDDINGS_PREFIX):
            v = table.removeprefix(EMBEDDINGS_PREFIX)
            for cid in cols.get("chunk_id", []):
                versions_of.setdefault(cid, []).append(v)
                per_version[v] = per_version.get(v, 0) + 1

    chunk_ids = man.lance_ids.get(CHUNKS, {}).get("chunk_id", [])
    chunks = _fetch_rows(store, CHUNKS, "chunk_id", sorted(chunk_ids),
                         ["chunk_id", "doc_id", "subject_id", "batch_id", "chunk_index", "content_sha256", "n_chars", "uploaded_at"])
    chunks_by_doc: dict[str, list[dict]] = {}
    for c in sorted(chunks, key=lambda c: (c["doc_id"] or "", c["chunk_index"] or 0)):
        chunks_by_doc.setdefault(c["doc_id"], []).append(c)

    # uploads: files found by discovery (landing / quarantine), the sidecar's metadata parsed
    uploads: dict[str, list[dict]] = {}
    for f in man.files:
        p = Path(f)
        for base, system in ((Path(settings.landing_dir), "landing"), (Path(settings.quarantine_dir), "quarantine")):
            if p.is_relative_to(base) and p.is_file():
                rel = str(p.relative_to(base))
                kind = "sidecar" if rel.endswith(SIDECAR_SUFFIX) else ("reason" if rel.endswith(REASON_SUFFIX) else "file")
                data_rel = rel.removesuffix(SIDECAR_SUFFIX).removesuffix(REASON_SUFFIX)
                data = p.read_bytes()
                entry: dict[str, Any] = {"system": system, "path": rel, "kind": kind, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                if kind == "sidecar":
                    try:
                        entry["metadata"] = json.loads(data.decode("utf-8"))
                    except (UnicodeDecodeError, json.JSONDecodeError):
                        entry["metadata"] = None
                uploads.setdefault(data_rel, []).append(entry)

    documents = []
    docs = _fetch_rows(store, DOCUMENTS, "doc_id", sorted(man.doc_ids))
    for d in sorted(docs, key=lambda d: d["doc_id"]):
        if d.get("subject_id") != subject_id:
            continue
        try:
            pii = json.loads(d.get("pii_counts") or "{}")
        except json.JSONDecodeError:
            pii = {}
        held = bool(d.get("legal_hold")) or subject_held or d["doc_id"] in held_docs
        ret = _retention("user_content", "uploaded_at", d.get("uploaded_at"), days, held)
        doc_chunks = chunks_by_doc.pop(d["doc_id"], [])
        documents.append({
            "doc_id": d["doc_id"], "batch_id": d.get("batch_id"), "category": d.get("category"), "source": d.get("source"),
            "uploaded_at": _jsonable(d.get("uploaded_at")), "ingested_at": _jsonable(d.get("ingested_at")),
            "media_type": d.get("media_type"), "file_path": d.get("file_path"), "file_sha256": d.get("file_sha256"),
            "legal_hold": bool(d.get("legal_hold")), "pii_removed": pii, "pii_total": d.get("pii_total"),
            "text_scrubbed": d.get("text"), "text_sha256": d.get("text_sha256"), "n_chars": d.get("n_chars"),
            "upload": uploads.pop(d.get("file_path") or "", []),
            "chunks": [{"chunk_id": c["chunk_id"], "chunk_index": c["chunk_index"], "n_chars": c["n_chars"],
                        "content_sha256": c["content_sha256"], "embed_versions": sorted(versions_of.get(c["chunk_id"], []))} for c in doc_chunks],
            "embed_versions": sorted({v for c in doc_chunks for v in versions_of.get(c["chunk_id"], [])}),
            "retention": ret,
        })
    # chunks of the subject whose document is gone (an orphan): listed on their own
    orphan_chunks = [{"chunk_id": c["chunk_id"], "doc_id": c["doc_id"], "chunk_index": c["chunk_index"], "content_sha256": c["content_sha256"],
                      "embed_versions": sorted(versions_of.get(c["chunk_id"], [])),
                      "retention": _retention("user_content", "uploaded_at", c.get("uploaded_at"), days, subject_held)}
                     for cs in chunks_by_doc.values() for c in cs if c.get("subject_id") in (subject_id, None)]
    # uploads not in the store (quarantined ones)
    other_uploads = [{"path": k, "files": v} for k, v in sorted(uploads.items())]

    # telemetry and any other LanceDB table with a subject column
    records = []
    telemetry_policy = {"system_logs": "system_logs", "metrics": "metrics"}
    for table, cols in sorted(man.lance_ids.items()):
        if table in (DOCUMENTS, CHUNKS) or table.startswith(EMBEDDINGS_PREFIX):
            continue
        for col, ids in cols.items():
            if col == "_rowid":
                continue
            for r in _fetch_rows(store, table, col, sorted(ids)):
                r = {k: _jsonable(v) for k, v in r.items() if k not in ("vector",)}
                if not ({r.get(c) for c in er_discovery.SUBJECT_COLUMNS if c in r} & {subject_id}):
                    continue
                cat = telemetry_policy.get(table)
                ts = r.get("timestamp") or r.get("ts") or r.get("occurred_at")
                records.append({"table": table, "id": str(r.get(col)), "record": r,
                                "retention": _retention(cat, "timestamp", ts, days, subject_held) if cat else None})
    lines = [{"system": k.split("\t", 1)[0], "location": k.split("\t", 1)[1], "sha256": v} for k, v in sorted(man.items.items())
             if k.split("\t", 1)[0] in ("logs_files", "metrics_files", "quarantine_telemetry", "exports")]

    # ledger events naming the subject (through its salted hash)
    events = []
    with ledger.engine.connect() as conn:
        for r in conn.execute(sa.select(audit_events).where(audit_events.c.subject_hash == h).order_by(audit_events.c.seq)):
            events.append({"seq": r.seq, "occurred_at": r.occurred_at, "action": r.action, "actor": r.actor, "event_hash": r.event_hash,
                           "details": json.loads(r.details),
                           "retention": _retention("audit_ledger", "occurred_at", r.occurred_at, days, subject_held)})

    found = bool(documents or orphan_chunks or other_uploads or records or lines)
    exp_ret = _retention(EXPORT_RETENTION_CATEGORY, "generated_at", now, days)
    fields = {
        "schema": SCHEMA,
        "subject_id": subject_id,
        "subject_hash": h,
        "subject_hash_method": "HMAC-SHA256 of the subject identifier with the deployment's secret salt",
        "generated_at": iso(now),
        "found": found,
        "statement": STATEMENT_FOUND if found else STATEMENT_NONE,
        "summary": {
            "documents": len(documents), "chunks": len(chunk_ids), "vectors_per_embed_version": dict(sorted(per_version.items())),
            "embed_versions": sorted(per_version), "orphan_chunks": len(orphan_chunks), "other_uploads": len(other_uploads),
            "records": len(records), "file_lines": len(lines), "legal_holds": len(holds), "ledger_events": len(events),
        },
        "documents": documents,
        "orphan_chunks": orphan_chunks,
        "other_uploads": other_uploads,
        "records": records,
        "file_lines": lines,
        "legal_holds": holds,
        "ledger_events": events,
        "retention_policies": {k: days[k] for k in sorted(days)},
        "export_retention": exp_ret,
        "content_commitment": man.commitment(),
        "not_included": [
            "embedding vectors (derived numbers; the embed_versions holding one per chunk are listed)",
            "raw upload bytes (identified by sha256 and size; the scrubbed text is the content the store holds)",
        ],
    }
    return _jsonable(fields), man


def process_requests(settings, request_ids: list[str] | None = None, *, ledger: Ledger | None = None, store=None,
                     now: datetime | None = None, actor: str = "access") -> list[dict]:
    """Export every pending access request given (None = all pending). Returns one outcome dict each."""
    from .. import __version__
    from . import certificates as certs
    from .secrets import load_or_create_signing_key

    gov = as_governance(settings)
    ledger = ledger or gov.ledger
    store = store or gov.store
    ids = request_ids if request_ids is not None else pending_request_ids(settings, ledger)
    # one discovery pass (a scan per table) for every subject of the batch, as erasure does
    subjects: dict[str, str] = {}
    for rid in ids:
        pf = pending_dir(settings) / f"{rid}.json"
        if pf.exists():
            subjects.setdefault(json.loads(pf.read_text(encoding="utf-8"))["request"]["subject_id"], rid)
    manifests = er_discovery.discover(settings, store, subjects)[0] if subjects else {}
    outcomes = []
    for rid in ids:
        pf = pending_dir(settings) / f"{rid}.json"
        row = get_request(ledger, rid)
        if row is None or row.status != "received" or not pf.exists():
            outcomes.append({"request_id": rid, "status": row.status if row else "unknown", "export_path": row.export_path if row else None})
            continue
        req = json.loads(pf.read_text(encoding="utf-8"))["request"]
        try:
            gen = _utc(now)
            fields, man = build_export(settings, store, ledger, req["subject_id"], rid, now=gen,
                                       manifest=manifests.get(subjects.get(req["subject_id"], "")))
            xid = export_id_for(rid)
            requested = _parse_ts(req["requested_at"])
            deadline = requested + timedelta(days=SLA_DAYS)
            with ledger.begin() as conn:
                ev = events.record(ledger, events.AccessDiscovered(request_id=rid, export_id=xid, found=fields["found"], summary=fields["summary"],
                                                                   commitment=fields["content_commitment"]["sha256"]),
                                   actor=actor, subject_hash=fields["subject_hash"], conn=conn)
            fields.update({
                "certificate_id": xid, "export_id": xid, "request_id": rid, "requested_by": req["requested_by"], "request_source": req["source"],
                "requested_at": req["requested_at"], "deadline": iso(deadline), "deadline_met": gen <= deadline,
                "software_version": __version__,
                "ledger_anchor": {"event": events.AccessDiscovered.ACTION, "event_hash": ev.event_hash, "event_seq": ev.seq},
            })
            key, pub = load_or_create_signing_key(settings)
            doc = certs.sign(fields, key)
            out = exports_root(settings) / xid
            path = certs.write_json(doc, out / "export.json")
            renderings = {}
            for lang in ("en", "ko"):
                (out / f"export.{lang}.html").write_text(render_html(doc, lang), encoding="utf-8")
                renderings[f"html_{lang}"] = str(out / f"export.{lang}.html")
                pdf = render_pdf(doc, out / f"export.{lang}.pdf", lang)
                renderings[f"pdf_{lang}"] = str(pdf) if pdf else None
            events.record(ledger, events.AccessDelivered(
                request_id=rid, export_id=xid, certificate_id=xid, export_path=str(path),
                export_sha256=hashlib.sha256(path.read_bytes()).hexdigest(), anchored_to=ev.event_hash,
                deadline_met=fields["deadline_met"], deletes_at=fields["export_retention"]["deletes_at"],
            ), actor=actor, subject_hash=fields["subject_hash"])
        except Exception as exc:  # noqa: BLE001 - recorded, the request stays visible as failed
            events.record(ledger, events.AccessFailed(request_id=rid, failure=f"{type(exc).__name__}: {str(exc)[:300]}"), actor=actor,
                          subject_hash=row.subject_hash)
            pf.unlink(missing_ok=True)
            outcomes.append({"request_id": rid, "status": "failed", "failure": f"{type(exc).__name__}: {exc}"})
            continue
        pf.unlink(missing_ok=True)
        try:
            from .checkpoints import checkpoint_after

            checkpoint_after(settings, ledger, "certificate")
        except Exception:  # noqa: BLE001
            pass
        outcomes.append({"request_id": rid, "status": "delivered", "export_id": xid, "export_path": str(path), "found": fields["found"],
                         "summary": fields["summary"], "renderings": renderings, "public_key": str(pub)})
    return outcomes


# -- exports held about a subject (erasure removes them: er_discovery.export_files_of) and their retention --
export_files_of = er_discovery.export_files_of


def expire_exports(settings, *, now: datetime | None = None, dry_run: bool = False, ledger: Ledger | None = None,
                   days: int | None = None) -> list[str]:
    """Delete access exports past their `access_exports` retention. Returns the export ids."""
    now = _utc(now)
    root = exports_root(settings)
    gone = []
    if not root.exists():
        return gone
    days = days or policy_days()[EXPORT_RETENTION_CATEGORY]
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            gen = _parse_ts(json.loads((d / "export.json").read_bytes()).get("generated_at"))
        except (OSError, ValueError):
            continue
        if gen is not None and gen + timedelta(days=days) <= now:
            gone.append(d.name)
            if not dry_run:
                shutil.rmtree(d)
    if gone and not dry_run:
        events.record(ledger or as_governance(settings).ledger, events.AccessExportsExpired(export_ids=gone, policy_days=days), actor="retention")
    return gone


# -- SLA ---------------------------------------------------------------------------------------
@dataclass
class SlaStatus:
    ok: bool
    open: list[dict] = field(default_factory=list)
    overdue: list[str] = field(default_factory=list)


def sla_status(ledger: Ledger, now: datetime | None = None) -> SlaStatus:
    """Every access request older than 30 days must be delivered (a failed one counts as not delivered)."""
    now = _utc(now)
    rows = []
    for r in list_requests(ledger):
        if r.status in ("delivered", "rejected"):
            continue
        age = age_days(now, r.requested_at, ndigits=None)
        rows.append({"request_id": r.request_id, "status": r.status, "age_days": round(age, 2), "overdue": age > SLA_DAYS, "failure": r.failure or ""})
    overdue = [r["request_id"] for r in rows if r["overdue"]]
    return SlaStatus(not overdue, rows, overdue)


def report_summary(ledger: Ledger, start: str, end: str, as_of: datetime) -> dict:
    """Access requests for the compliance report: received / delivered in [start, end) (ISO UTC),
    open and overdue as they stood at `as_of` (a request delivered later was open then)."""
    reqs = list_requests(ledger)
    valid = [r for r in reqs if r.status != "rejected"]
    stamp = iso(_utc(as_of))
    rows = []
    for r in valid:
        if r.received_at > stamp:
            continue
        delivered = r.delivered_at if r.delivered_at and r.delivered_at <= stamp else None
        is_open = delivered is None
        if not (start <= r.received_at < end or (delivered and start <= delivered < end) or is_open):
            continue
        age = age_days(_parse_ts(delivered) if delivered else _utc(as_of), r.requested_at, ndigits=None)
        rows.append({"request_id": r.request_id, "status": "delivered" if delivered else ("failed" if r.status == "failed" and r.failure else "open"),
                     "subject_hash": r.subject_hash or "", "requested_at": r.requested_at, "received_at": r.received_at,
                     "delivered_at": delivered, "export_id": r.export_id if delivered else None, "days": round(age, 2), "overdue": age > SLA_DAYS})
    return {
        "received": sum(1 for r in valid if start <= r.received_at < end),
        "delivered": sum(1 for x in rows if x["delivered_at"] and start <= x["delivered_at"] < end),
        "rejected": sum(1 for r in reqs if r.status == "rejected" and start <= r.received_at < end),
        "open": sum(1 for x in rows if not x["delivered_at"]),
        "overdue": sum(1 for x in rows if x["overdue"] and not x["delivered_at"]),
        "delivered_late": sum(1 for x in rows if x["overdue"] and x["delivered_at"] and start <= x["delivered_at"] < end),
        "deadline_days": SLA_DAYS,
        "requests": sorted(rows, key=lambda x: (not (x["overdue"] and not x["delivered_at"]), x["requested_at"])),
    }


# -- renderings --------------------------------------------------------------------------------
LABELS = {
    "en": {"title": "Your data: access export (GDPR Art. 15 and 20)", "export": "Export", "request": "Request", "subject": "Data subject",
           "generated": "Generated at", "requested": "Requested at", "deadline": "Deadline (30 days)", "met": "met", "missed": "MISSED",
           "summary": "Summary", "documents": "Documents", "doc": "Document", "uploaded": "Uploaded", "deletes": "Retention deletes it on",
           "held": "kept while under legal hold", "chunks": "Chunks", "versions": "Embed versions holding vectors", "text": "Stored text (personal data removed)",
           "records": "Log and metric records", "lines": "Lines in files", "holds": "Legal holds", "events": "Ledger events naming you (by salted hash)",
           "export_ret": "This export is deleted on", "sig": "Signature", "note": "The signed export is export.json in the same folder; "
           "verify it with `aisg verify-certificate export.json`. This page is a rendering of it.", "none": "none", "action": "Action", "when": "When"},
    "ko": {"title": "개인정보 열람 내보내기 (GDPR 제15조 및 제20조)", "export": "내보내기", "request": "요청", "subject": "정보주체",
           "generated": "생성 시각", "requested": "요청 시각", "deadline": "기한 (30일)", "met": "준수", "missed": "초과",
           "summary": "요약", "documents": "문서", "doc": "문서", "uploaded": "업로드", "deletes": "보존 정책에 따른 삭제 예정일",
           "held": "법적 보존 조치 중 보관", "chunks": "청크", "versions": "벡터를 보유한 임베딩 버전", "text": "저장된 텍스트 (개인정보 제거됨)",
           "records": "로그 및 지표 기록", "lines": "파일의 행", "holds": "법적 보존 조치", "events": "정보주체를 (솔트 해시로) 나타내는 원장 이벤트",
           "export_ret": "이 내보내기의 삭제 예정일", "sig": "서명", "note": "서명된 원본은 같은 폴더의 export.json 입니다. "
           "`aisg verify-certificate export.json` 으로 검증하십시오. 이 문서는 그 사본입니다.", "none": "없음", "action": "작업", "when": "시각"},
}


def _sections(doc: dict, lang: str) -> list[tuple[str, list[tuple[str, ...]]]]:
    L = LABELS[lang]

    def ret(r):
        if not r:
            return "-"
        return L["held"] if r.get("held") else (r.get("deletes_at") or "-")[:10]

    s = doc["summary"]
    head = [(L["export"], doc["export_id"]), (L["request"], doc["request_id"]), (L["subject"], f"{doc['subject_id']} ({doc['subject_hash'][:16]}…)"),
            (L["requested"], doc["requested_at"]), (L["generated"], doc["generated_at"]),
            (L["deadline"], f"{doc['deadline']} — {L['met'] if doc['deadline_met'] else L['missed']}"),
            (L["summary"], doc["statement"][lang]),
            (L["documents"], str(s["documents"])), (L["chunks"], str(s["chunks"])), (L["versions"], ", ".join(s["embed_versions"]) or L["none"]),
            (L["records"], str(s["records"])), (L["lines"], str(s["file_lines"])), (L["holds"], str(s["legal_holds"])),
            (L["events"], str(s["ledger_events"])), (L["export_ret"], (doc["export_retention"]["deletes_at"] or "-")[:10]),
            (L["sig"], f"{doc['signature']['algorithm']} {doc['signature']['public_key_sha256'][:16]}…")]
    docs = [(d["doc_id"], (d["uploaded_at"] or "")[:10], str(len(d["chunks"])), ", ".join(d["embed_versions"]), ret(d["retention"]),
             d.get("text_scrubbed") or "") for d in doc["documents"]]
    recs = [(r["table"], r["id"], ret(r["retention"])) for r in doc["records"]] + [(x["system"], x["location"], "-") for x in doc["file_lines"]]
    holds = [(x["scope"], x.get("doc_id") or "-", x["reason"], x["created_at"][:10], "active" if x["active"] else (x["released_at"] or "")[:10]) for x in doc["legal_holds"]]
    evs = [(str(e["seq"]), e["occurred_at"][:19], e["action"], ret(e["retention"])) for e in doc["ledger_events"]]
    return [("head", head), (L["documents"], docs), (L["records"], recs), (L["holds"], holds), (L["events"], evs)]


def render_html(doc: dict, lang: str = "en") -> str:
    """The export as a page (templates/access_export.html.j2, autoescape on); export.json is the signed export."""
    from .html_templates import render

    secs = _sections(doc, lang)
    return render("access_export.html.j2", lang=lang, L=LABELS[lang], export_id=doc["export_id"], head=secs[0][1],
                  documents=secs[1][1], tables=secs[2:])


def render_pdf(doc: dict, path: Path, lang: str = "en") -> Path | None:
    """PDF with reportlab (imported here); Korean uses the CID font HYSMyeongJo-Medium (no font file needed)."""
    try:
        from reportlab.lib.pagesizes import A4
        from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
        from reportlab.pdfbase import pdfmetrics
        from reportlab.pdfbase.cidfonts import UnicodeCIDFont
        from reportlab.platypus import Paragraph, Preformatted, SimpleDocTemplate, Spacer, Table
    except ImportError:
        return None
    import html

    font = "Helvetica"
    if lang == "ko":
        font = "HYSMyeongJo-Medium"
        if font not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(UnicodeCIDFont(font))
    styles = getSampleStyleSheet()
    cell = ParagraphStyle("c", parent=styles["BodyText"], fontName=font, fontSize=8, leading=10, wordWrap="CJK")
    h1 = ParagraphStyle("h1", parent=styles["Title"], fontName=font)
    h2 = ParagraphStyle("h2", parent=styles["Heading2"], fontName=font)
    pre = ParagraphStyle("pre", parent=cell, fontName=font, fontSize=7, leading=9)
    e = html.escape
    L = LABELS[lang]
    secs = _sections(doc, lang)
    story = [Paragraph(e(L["title"]), h1),
             Table([[Paragraph(f"<b>{e(k)}</b>", cell), Paragraph(e(v), cell)] for k, v in secs[0][1]], colWidths=[150, 330]), Spacer(1, 10),
             Paragraph(e(L["documents"]), h2)]
    for did, up, nch, vers, ret, text in secs[1][1]:
        story += [Table([[Paragraph(e(x), cell) for x in (f"{L['doc']} {did}", f"{L['uploaded']} {up}", f"{L['chunks']} {nch}", vers, f"{L['deletes']}: {ret}")]],
                        colWidths=[80, 90, 60, 80, 170]),
                  Preformatted(text, pre, maxLineLength=110), Spacer(1, 6)]
    for title, rows in secs[2:]:
        story.append(Paragraph(e(title), h2))
        story.append(Table([[Paragraph(e(c), cell) for c in r] for r in rows]) if rows else Paragraph(e(L["none"]), cell))
    story += [Spacer(1, 10), Paragraph(e(L["note"]), cell)]
    path.parent.mkdir(parents=True, exist_ok=True)
    SimpleDocTemplate(str(path), pagesize=A4, title=f"{L['title']} {doc['export_id']}").build(story)
    return path
