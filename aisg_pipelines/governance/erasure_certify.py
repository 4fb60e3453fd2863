"""Erasure certification: a verified request becomes certified exactly once. The signed
certificate (JSON, HTML, PDF; governance/certificates.py) is written, `erasure.certified`
appended and the subject's salted hash added to the denylist in one ledger transaction;
then the ledger head is checkpointed outside the database.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from . import events
from .erasure_intake import SLA_DAYS, _update, _utc, certificates_dir, get_request
from .ledger import Ledger, iso

def certificate_id_for(request_id: str) -> str:
    return "cert-" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"aisg:erasure:{request_id}"))


METHOD = [
    "the subject is matched only on structured fields: subject_id/user_id columns (pyarrow, in memory, never a filter string), sidecar subject_id, JSON subject_id/user_id fields, CSV subject columns, Prometheus labels; never substrings of raw lines or file names",
    "one deletion cascade (intent recorded in the ledger before, result after): rows deleted by internal ids (doc_id, chunk_id, row_id) in every embeddings_<version> table, chunks, telemetry tables, then source lines, files, documents, ledger batch-file records and emptied ingest_batches partitions",
    "physical purge: compaction materialising deletions (threshold 0), scalar index rebuild, tags moved, cleanup_old_versions(older_than=0), unreferenced leftovers of killed writes past the grace period",
    "landing-zone and quarantine files and sidecars deleted; log/metric/export lines whose subject field names the subject removed",
    "verification: every table and version via the Lance API, subject columns of every Lance file on disk (decoded, exact values), structured fields of every file, and a byte-level scan of every file under every storage root plus decoded string columns of every Lance file for the subject's content fingerprints",
    "subject added to the erasure denylist as a salted hash",
]


def certify(settings, ledger: Ledger, request_id: str, *, clock: Callable[[], datetime] | None = None, actor: str = "erasure") -> str:
    """verified -> certified exactly once: sign and write the certificate, append
    `erasure.certified`, add the subject to the denylist, in one ledger transaction."""
    from .. import __version__
    from . import certificates as certs
    from .secrets import load_or_create_signing_key

    clock = clock or (lambda: datetime.now(timezone.utc))
    row = get_request(ledger, request_id)
    if row["status"] == "certified":
        return row["certificate_path"]
    if row["status"] != "verified":
        raise ValueError(f"request {request_id} is {row['status']}, only a verified request can be certified")
    prog = row["progress"]
    v = prog["verification"]
    completed = _utc(clock())
    requested = datetime.fromisoformat(row["requested_at"])
    deadline = requested + timedelta(days=SLA_DAYS)
    cid = certificate_id_for(request_id)
    fields = {
        "schema": certs.CERT_SCHEMA,
        "certificate_id": cid,
        "request_id": request_id,
        "subject_hash": row["subject_hash"],
        "subject_hash_method": "HMAC-SHA256 of the subject identifier with the deployment's secret salt",
        "requested_by": row["requested_by"],
        "request_source": row["source"],
        "requested_at": row["requested_at"],
        "started_at": row["started_at"],
        "verified_at": row["verified_at"],
        "completed_at": iso(completed),
        "deadline": iso(deadline),
        "deadline_met": completed <= deadline,
        "systems": prog.get("counts", {}),
        "totals": {"items": sum(s.get("items", 0) for s in prog.get("counts", {}).values())},
        "lance_versions": prog.get("purge", {}),
        "content_commitment": prog.get("commitment", {}),
        "method": METHOD,
        "verification": {k: v[k] for k in v if k not in ("ledger_event_hash", "ledger_event_seq", "api_match_locations")},
        "denylist": "subject added to erasure_denylist (salted hash)",
        "software_version": __version__,
        "ledger_anchor": {"event": "erasure.verified", "event_hash": v["ledger_event_hash"], "event_seq": v["ledger_event_seq"]},
    }
    key, pub_path = load_or_create_signing_key(settings)
    cert = certs.sign(fields, key)
    out_dir = certificates_dir(settings)
    json_path = certs.write_json(cert, out_dir / f"{cid}.json")
    (out_dir / f"{cid}.html").write_text(certs.render_html(cert), encoding="utf-8")
    pdf = certs.render_pdf(cert, out_dir / f"{cid}.pdf")
    with ledger.begin() as conn:
        ev = events.record(ledger, events.ErasureCertified(
            request_id=request_id, certificate_id=cid, certificate_sha256=hashlib.sha256(json_path.read_bytes()).hexdigest(),
            anchored_to=v["ledger_event_hash"], deadline_met=fields["deadline_met"],
        ), actor=actor, subject_hash=row["subject_hash"], conn=conn)
        ledger.add_to_denylist(row["subject_hash"], request_id, conn=conn)
        prog.setdefault("steps", {})["certified"] = iso(completed)
        prog["deadline_met"] = fields["deadline_met"]
        prog["certified_event_hash"] = ev.event_hash
        prog["public_key_path"] = str(pub_path)
        prog["renderings"] = {"html": str(out_dir / f"{cid}.html"), "pdf": str(pdf) if pdf else None}
        if not _update(ledger, request_id, conn, expect=["verified"], status="certified", certified_at=iso(completed),
                       certificate_id=cid, certificate_path=str(json_path), progress=prog):
            raise RuntimeError(f"request {request_id} was certified concurrently")  # rolls back this event
    from .checkpoints import checkpoint_after

    checkpoint_after(settings, ledger, "certificate")  # the head, signed outside the ledger (issue 18)
    return str(json_path)

