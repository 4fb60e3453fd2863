"""GDPR Art. 17 erasure: the run (`process_requests`) over intake, discovery, deletion, purge,
verification and certification.

Plain module (no Dagster); the sensor, the job and `aisg erase` call these functions. The
concerns live in their own modules and are re-exported here, so `governance.erasure` stays
the one name to import:

- `erasure_intake`: request parsing/validation, the `erasure_requests` rows, the SLA; `inbox`: the inbox scan;
- `erasure_discovery`: a subject's traces in every store (`Manifest`);
- `bytescan`: verification (Lance API over every version, byte scan of every file);
- `erasure_certify`: the signed certificate, the denylist;
- here: the deletion plan handed to the cascade and the run, step by step.

Lifecycle of a request (table `erasure_requests` in the ledger):
    received -> in_progress -> verified -> certified        or  -> failed (with the reason)

Where the raw subject identifier lives (and where it never goes):
- The ledger stores only the salted hash (HMAC-SHA256, secret salt). Events carry counts.
- While a request is open, the raw identifier is kept in one private pending file,
  `<erasure_inbox>/processing/<request_id>.json` (mode 0600), together with the discovery
  manifest (our ids, content hashes and the fingerprints used by the byte scan). That file
  is what makes a killed run resumable: a re-run reads the id back from it. It is deleted
  when the request is certified (or fails terminally). Rejected request files are moved
  to `<erasure_inbox>/rejected/` with a reason file, for the operator to inspect.
- The identifier is data, never code: discovery reads `subject_id`/`user_id` columns with
  pyarrow and compares in memory (`pc.is_in`); rows are then deleted by our own ids
  (doc_id, chunk_id, row_id) through `LanceStore.delete_ids`. The identifier never enters a
  filter string, so it never lands in a Lance `_transactions/*.txn` file either.

Physical erasure uses the shared `LanceStore.purge` (compaction materialising deletions,
index rebuild, tags moved, cleanup of every old version). Verification then checks
(a) every table and every remaining version through the Lance API, and (b) the bytes of
every file under every storage directory, plus the decoded string columns of every Lance
file on disk (Lance may compress strings, so raw bytes alone could miss them).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from . import events
from .bytescan import (
    ApiCheck,
    PatternScanner,
    ScanFinding,
    ScanReport,
    api_check,
    byte_scan,
    storage_roots,
)
from .erasure_certify import METHOD, certificate_id_for, certify
from .erasure_discovery import (
    CSV_SUBJECT_COLUMNS,
    FETCH_BATCH,
    ROW_ID_COLUMNS,
    STRUCTURED_LINE_SUFFIXES,
    SUBJECT_COLUMNS,
    SUBJECT_FIELDS,
    DiscoveryContext,
    Manifest,
    discover,
    discover_files,
    distinctive_windows,
    distinctive_windows_many,
    json_subjects,
    structured_lines,
)
from .erasure_intake import (
    ALLOWED_FIELDS,
    CERT_SUBDIR,
    HOSTILE_CHARS,
    OPEN_STATUSES,
    REQUEST_ID_RE,
    REQUEST_TYPES,
    SLA_DAYS,
    STATUSES,
    STEPS,
    ErasureFailed,
    ErasureRequest,
    IntakeResult,
    RequestRejected,
    SlaStatus,
    _redact,
    _salt,
    _update,
    _write_private,
    certificates_dir,
    erased_before,
    erased_before_hash,
    get_request,
    intake,
    list_requests,
    parse_request,
    pending_request_ids,
    processing_dir,
    record_rejection,
    redacted_request,
    rejected_dir,
    sla_status,
)
from .context import as_governance
from .ids import sha256_hex, subject_hash
from .inbox import InboxScan, scan_inbox
from .landing import REASON_SUFFIX, SIDECAR_SUFFIX
from .ledger import Ledger, canonical_json, erasure_requests, iso
from .markdown import md_table
from .store import CHUNKS, DOCUMENTS, LanceStore


# The public names of the erasure modules, importable from here (the private ones too: access.py and tests use them).
__all__ = [
    "ALLOWED_FIELDS",
    "ApiCheck",
    "CERT_SUBDIR",
    "CSV_SUBJECT_COLUMNS",
    "DiscoveryContext",
    "ErasureFailed",
    "ErasureRequest",
    "ErasureRunResult",
    "FETCH_BATCH",
    "HOSTILE_CHARS",
    "InboxScan",
    "IntakeResult",
    "METHOD",
    "Manifest",
    "OPEN_STATUSES",
    "PatternScanner",
    "REASON_SUFFIX",
    "REQUEST_ID_RE",
    "REQUEST_TYPES",
    "ROW_ID_COLUMNS",
    "RequestOutcome",
    "RequestRejected",
    "SAMPLE_MANIFEST",
    "SIDECAR_SUFFIX",
    "SLA_DAYS",
    "STATUSES",
    "STEPS",
    "STRUCTURED_LINE_SUFFIXES",
    "SUBJECT_COLUMNS",
    "SUBJECT_FIELDS",
    "ScanFinding",
    "ScanReport",
    "SlaStatus",
    "api_check",
    "byte_scan",
    "certificate_id_for",
    "certificates_dir",
    "certify",
    "discover",
    "discover_files",
    "distinctive_windows",
    "distinctive_windows_many",
    "erase_subject",
    "erased_before",
    "erased_before_hash",
    "get_request",
    "intake",
    "json_subjects",
    "list_requests",
    "parse_request",
    "pending_request_ids",
    "process_requests",
    "processing_dir",
    "record_rejection",
    "redact_json_subjects",
    "redacted_request",
    "rejected_dir",
    "scan_inbox",
    "sla_status",
    "storage_roots",
    "structured_lines",
    "_redact",
    "_salt",
    "_update",
    "_write_private",
]


# -- deletion: through the cascade (governance/cascade.py) ---------------------------------
SAMPLE_MANIFEST = "sample_manifest.json"  # written by the demo (aisg_pipelines.sample_data.generate_landing_zone) into the data dir


def redact_json_subjects(path: Path, subjects: dict[str, str]) -> int:
    """Rewrite a JSON document so that no structured subject field holds a raw id of `subjects`
    ({raw id: salted hash}): the value becomes null with `subject_hash` and `erased: true`
    beside it (a `*_subject` key gets {"subject_hash": ...}). Returns the fields redacted."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return 0
    n = 0

    def walk(x):
        nonlocal n
        if isinstance(x, dict):
            for k in list(x):
                v = x[k]
                if isinstance(v, str) and v in subjects and (k in SUBJECT_FIELDS or k.endswith("_subject")):
                    n += 1
                    if k in SUBJECT_FIELDS:
                        x[k] = None
                        x["subject_hash"] = subjects[v]
                        x["erased"] = True
                    else:
                        x[k] = {"subject_hash": subjects[v]}
                else:
                    walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(doc)
    if n:
        tmp = path.with_name("." + path.name + ".erasure.tmp")
        tmp.write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8")
        os.replace(tmp, path)
    return n


def _cascade_plan(settings, store: LanceStore, manifests: Iterable[Manifest]):
    """The cascade plan of a batch of manifests: our ids, paths and line hashes, nothing else."""
    from . import cascade
    from .store import METRICS, SYSTEM_LOGS

    kinds = {SYSTEM_LOGS: "system_logs", METRICS: "metrics"}
    doc_ids: set[str] = set()
    chunk_ids: set[str] = set()
    tables: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    telemetry: dict[str, set[str]] = defaultdict(set)
    tfiles: dict[str, set[str]] = defaultdict(set)
    lines: dict[str, set[str]] = defaultdict(set)
    files: set[str] = set()
    landing_paths: set[str] = set()
    keep: set[str] = set()
    for man in manifests:
        keep.update(man.foreign_chunks)
        doc_ids.update(man.doc_ids)
        for table, cols in man.lance_ids.items():
            for col, ids in cols.items():
                if table == DOCUMENTS and col == "doc_id":
                    doc_ids.update(ids)
                elif table == CHUNKS and col == "chunk_id":
                    chunk_ids.update(ids)
                elif table in kinds and col == "row_id":
                    telemetry[kinds[table]].update(ids)
                else:  # vectors of one version by chunk id, other tables by their own ids
                    tables[table][col].update(ids)
        for k, ids in man.telemetry_rows.items():
            telemetry[k].update(ids)
        for k, fs in man.telemetry_files.items():
            tfiles[k].update(fs)
        for f, hs in man.line_hashes.items():
            lines[f].update(hs)
        files.update(man.files)
        landing_paths.update(man.landing_paths)
    plan = cascade.plan_cascade(
        store, doc_ids=sorted(doc_ids), chunk_ids=sorted(chunk_ids),
        tables={t: {c: sorted(v) for c, v in cols.items()} for t, cols in tables.items()},
        telemetry={k: sorted(v) for k, v in telemetry.items()},
        source_dirs={"system_logs": settings.logs_dir, "metrics": settings.metrics_dir},
        source_files={k: sorted(v) for k, v in tfiles.items()},
        lines={f: sorted(v) for f, v in lines.items()}, files=sorted(files), landing_dir=settings.landing_dir,
        vectors_by_doc=False,  # discovery found every vector (by chunk id and doc id) in every version
        keep_chunk_ids=sorted(keep),
    )
    plan.ledger_paths = sorted(set(plan.ledger_paths) | landing_paths)
    return plan



# -- the run --------------------------------------------------------------------------------
@dataclass
class RequestOutcome:
    request_id: str
    status: str
    subject_hash: str
    failure: str | None = None
    certificate_id: str | None = None
    certificate_path: str | None = None
    counts: dict = field(default_factory=dict)
    commitment: str | None = None
    deadline_met: bool | None = None


@dataclass
class ErasureRunResult:
    outcomes: list[RequestOutcome] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # discovery, deletion, files, purge, verify_api, scan, certify
    rows_deleted: dict[str, int] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)
    purge: dict[str, dict] = field(default_factory=dict)
    scan: dict[str, Any] = field(default_factory=dict)
    partitions_deleted: list[str] = field(default_factory=list)  # ingest_batches keys the erasure left empty

    @property
    def certified(self) -> list[RequestOutcome]:
        return [o for o in self.outcomes if o.status == "certified"]

    @property
    def failed(self) -> list[RequestOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def summary_markdown(self) -> str:
        table = md_table(
            ["request", "status", "items", "certificate", "failure"],
            [(o.request_id, o.status, sum(v.get("items", 0) for v in o.counts.values()), o.certificate_path or "-", (o.failure or "-")[:200])
             for o in self.outcomes],
        )
        t = ", ".join(f"{k} {v:.2f}s" for k, v in self.timings.items())
        return (f"**{len(self.certified)} certified, {len(self.failed)} failed** of {len(self.outcomes)} requests.\n\n"
                + table + f"\n\nTimings: {t}.\n\nScan: {self.scan.get('files_scanned', 0)} files, "
                f"{self.scan.get('bytes_scanned', 0)} bytes raw + {self.scan.get('decoded_bytes_scanned', 0)} bytes of decoded Lance strings.")


def _progress(ledger: Ledger, rid: str) -> dict:
    r = get_request(ledger, rid)
    return r["progress"] if r else {}


def _mark(ledger: Ledger, rid: str, step: str, now: datetime, conn=None, **extra) -> None:
    prog = _progress(ledger, rid)
    prog.setdefault("steps", {})[step] = iso(now)
    prog.update(extra)
    _update(ledger, rid, conn, progress=prog)


def _mark_all(ledger: Ledger, rids: Iterable[str], step: str, now: datetime, **extra) -> None:
    with ledger.begin() as conn:
        for rid in rids:
            _mark(ledger, rid, step, now, conn=conn, **extra)



@dataclass
class _Run:
    """What every step of one `process_requests` call shares."""

    settings: Any
    ledger: Ledger
    store: LanceStore
    clock: Callable[[], datetime]
    hook: Callable[[str], None]
    actor: str
    partitions: Any
    res: ErasureRunResult
    pdir: Path

    def pending_file(self, rid: str) -> Path:
        return self.pdir / f"{rid}.json"

    def status(self, rid: str) -> str:
        return get_request(self.ledger, rid)["status"]


@dataclass
class _Discovered:
    """The in-progress requests that passed discovery and the legal-hold check."""

    to_verify: dict[str, dict]  # rid -> pending file content (with its manifest)
    manifests: dict[str, Manifest]
    ctx: DiscoveryContext
    primary: dict[str, str]  # rid -> the request of the same subject that discovery and the scan report under


def process_requests(
    settings,
    request_ids: Iterable[str] | None = None,
    *,
    ledger: Ledger | None = None,
    store: LanceStore | None = None,
    hook: Callable[[str], None] | None = None,
    clock: Callable[[], datetime] | None = None,
    actor: str = "erasure",
    partitions=None,
) -> ErasureRunResult:
    """Process open requests (all pending ones by default) together: shared purge and scan.

    Resumable: a run killed after any step is completed by the next run; a request is
    certified exactly once (the certify transaction only moves `verified` -> `certified`).
    `hook(step)` is called after each step (tests use it to simulate a kill).
    Deletion goes through the cascade (governance/cascade.py): one intent for the batch,
    recorded before anything is deleted; an intent a killed run left open is completed
    first. `partitions` (a `cascade.PartitionSink`, e.g. the Dagster instance's
    ingest_batches) receives the batch keys the erasure leaves empty.
    Several requests for the same subject in one batch share one discovery and deletion;
    each gets its own certificate.
    """
    gov = as_governance(settings)
    ledger = ledger or gov.ledger
    store = store or gov.store
    run = _Run(settings, ledger, store, clock or (lambda: datetime.now(timezone.utc)), hook or (lambda step: None), actor,
               partitions, ErasureRunResult(), processing_dir(settings))
    wanted = list(request_ids) if request_ids is not None else pending_request_ids(settings, ledger)
    reqs = _load_pending(run, wanted)
    if not reqs:
        return run.res
    _start(run, reqs)
    run.hook("started")
    found = _discover_step(run, {rid: p for rid, p in reqs.items() if run.status(rid) == "in_progress"})
    run.hook("discovered")
    deleted_at: float | None = None  # monotonic time of this run's delete (reader grace below)
    if found.to_verify:
        touched, deleted_at = _delete_step(run, found)  # hooks "deleted", "files_removed"
        _purge_step(run, found, touched)
        run.hook("purged")
        _verify_step(run, found)
        run.hook("verified")
    _wait_reader_grace(run, reqs, deleted_at)
    _certify_step(run, reqs)
    run.hook("certified")
    run.res.outcomes += [_outcome(get_request(ledger, rid)) for rid in sorted(reqs)]
    return run.res


def _load_pending(run: _Run, wanted: Iterable[str]) -> dict[str, dict]:
    """rid -> pending file content of the requests still to work on. Finished ones (a run
    killed right after certification) and ones whose pending file is gone are settled here."""
    reqs: dict[str, dict] = {}
    for rid in sorted(set(wanted)):
        row = get_request(run.ledger, rid)
        pfile = run.pending_file(rid)
        if row is None:
            continue
        if row["status"] in ("certified", "failed"):
            pfile.unlink(missing_ok=True)  # finish a run killed right after certification
            run.res.outcomes.append(_outcome(row))
            continue
        if not pfile.exists():
            _fail(run.ledger, rid, "the pending request file is missing: the raw identifier is gone, resubmit the request", run.clock())
            run.res.outcomes.append(_outcome(get_request(run.ledger, rid)))
            continue
        reqs[rid] = json.loads(pfile.read_text(encoding="utf-8"))
    return reqs


def _start(run: _Run, reqs: dict[str, dict]) -> None:
    """received -> in_progress. One ledger transaction per step for the whole batch (a step's
    markers are idempotent; a commit per request and step cost ~1.5 s for 100 requests on SQLite)."""
    now = run.clock()
    ledger = run.ledger
    with ledger.begin() as conn:
        for rid in reqs:
            if _update(ledger, rid, conn, expect=["received"], status="in_progress", started_at=iso(now)):
                events.record(ledger, events.ErasureStarted(request_id=rid), actor=run.actor,
                              subject_hash=get_request(ledger, rid)["subject_hash"], conn=conn)
                _mark(ledger, rid, "started", now, conn=conn)


def _discover_step(run: _Run, in_progress: dict[str, dict]) -> _Discovered:
    """Complete a killed run's deletions, discover every subject once, refuse requests under
    legal hold, and record each manifest (pending file, counts and commitment in the ledger)."""
    if not in_progress:
        return _Discovered({}, {}, DiscoveryContext(), {})
    from . import cascade

    ledger, settings = run.ledger, run.settings
    cascade.resume_open(run.store, ledger, causes=["erasure"], partitions=run.partitions)  # a killed run's deletions
    subjects: dict[str, str] = {}
    for rid in sorted(in_progress):
        subjects.setdefault(in_progress[rid]["request"]["subject_id"], rid)
    primary = {rid: subjects[p["request"]["subject_id"]] for rid, p in in_progress.items()}
    t = time.perf_counter()
    found, ctx = discover(settings, run.store, subjects)
    run.res.timings["discovery"] = time.perf_counter() - t
    holds = ledger.active_holds()
    salt = _salt(settings)
    manifests: dict[str, Manifest] = {}
    for rid, p in in_progress.items():
        man = Manifest.from_json(p["manifest"]) if "manifest" in p else Manifest()
        man.merge(found[primary[rid]])
        manifests[rid] = man
        row = get_request(ledger, rid)
        held_docs = man.held_documents + sum(subject_hash(d, salt) in holds["document"] for d in man.doc_ids)
        if row["subject_hash"] in holds["subject"] or held_docs:
            what = "the subject is under legal hold" if row["subject_hash"] in holds["subject"] else f"{held_docs} of the subject's documents are under legal hold"
            _fail(ledger, rid, f"legal_hold: {what}; nothing was erased (GDPR Art. 17(3)(e)); resubmit after the hold is released", run.clock())
            run.pending_file(rid).unlink(missing_ok=True)
            continue
        p["manifest"] = man.to_json()
        _write_private(run.pending_file(rid), p)
        commitment = man.commitment()
        _mark(ledger, rid, "discovered", run.clock(), counts=man.counts(), commitment=commitment)
        events.record(ledger, events.ErasureDiscovered(request_id=rid, counts=man.counts(), commitment=commitment["sha256"], items=commitment["items"]),
                      actor=run.actor, subject_hash=row["subject_hash"])
    to_verify = {rid: p for rid, p in in_progress.items() if rid in manifests and run.status(rid) == "in_progress"}
    return _Discovered(to_verify, {rid: manifests[rid] for rid in to_verify}, ctx, primary)


def _delete_step(run: _Run, found: _Discovered) -> tuple[set[str], float]:
    """One cascade for the batch: intent in the ledger, leaf-first deletion of our ids in every
    store (vectors of every version, chunks, telemetry rows and their source lines, the
    subject's lines in line files, files, documents, the ledger's path records and the
    ingest_batches partitions left empty), result in the ledger. Returns the tables it
    touched and the monotonic time of the delete."""
    from . import cascade

    ledger, settings, res, to_verify = run.ledger, run.settings, run.res, found.to_verify
    t = time.perf_counter()
    plan = _cascade_plan(settings, run.store, found.manifests.values())
    cres = cascade.run_cascade(run.store, ledger, plan, cause="erasure", actor=run.actor, partitions=run.partitions, purge=False,
                               details={"request_ids": sorted(to_verify)})
    res.rows_deleted = dict(cres.rows)
    res.files = {"files_removed": cres.files_removed + cres.landing_files_removed, "files_rewritten": cres.files_rewritten,
                 "lines_removed": cres.lines_removed, "ledger_paths_removed": cres.ledger_paths_removed,
                 "partitions_deleted": len(cres.partitions_deleted)}
    res.partitions_deleted = list(cres.partitions_deleted)
    # the demo's sample manifest names the sample subjects: keep their salted hash only
    sample = Path(settings.data_dir) / SAMPLE_MANIFEST
    if sample.is_file():
        by_subject = {to_verify[r]["request"]["subject_id"]: get_request(ledger, r)["subject_hash"] for r in to_verify}
        res.files["sample_manifest_fields_redacted"] = redact_json_subjects(sample, by_subject)
    res.timings["deletion"] = time.perf_counter() - t
    deleted_at = time.monotonic()
    _mark_all(ledger, to_verify, "deleted", run.clock(), cascade_id=cres.cascade_id)
    run.hook("deleted")
    _mark_all(ledger, to_verify, "files_removed", run.clock())
    run.hook("files_removed")
    return set(cres.rows), deleted_at


def _purge_step(run: _Run, found: _Discovered, touched: set[str]) -> None:
    """The shared physical purge: the touched tables and every table a killed run or a killed
    write left dirty (deletion files, old versions, files no version references)."""
    from . import cascade

    t = time.perf_counter()
    pst = cascade.purge_tables(run.store, touched)
    run.res.purge = pst["tables"]
    run.res.timings["purge"] = time.perf_counter() - t
    purge_summary = {n: {k: e.get(k) for k in ("version_before", "version_after", "old_versions", "versions_left", "fragments_rewritten", "tags_moved")}
                     for n, e in pst["tables"].items()}
    with run.ledger.begin() as conn:
        for rid in found.to_verify:
            _mark(run.ledger, rid, "purged", run.clock(), conn=conn, purge=purge_summary)
            events.record(run.ledger, events.ErasurePurged(request_id=rid, tables=sorted(pst["tables"]), bytes_reclaimed=pst["bytes_reclaimed"],
                                                           versions_removed=pst["versions_removed"]), actor=run.actor, conn=conn)


def _verify_step(run: _Run, found: _Discovered) -> None:
    """The Lance API over every version and the byte scan of every file; each request is then
    `verified` (with its verification record) or `failed` naming where traces were found."""
    ledger, settings, res, to_verify = run.ledger, run.settings, run.res, found.to_verify
    subjects = {to_verify[rid]["request"]["subject_id"]: rid for rid in sorted(set(found.primary.values())) if rid in to_verify}
    t = time.perf_counter()
    api = api_check(run.store, subjects, found.manifests.values())
    res.timings["verify_api"] = time.perf_counter() - t
    removed = {str(Path(f).relative_to(base)) for m in found.manifests.values() for f in m.files
               for base in (Path(settings.landing_dir), Path(settings.quarantine_dir)) if Path(f).is_relative_to(base)}
    rep = byte_scan(settings, run.store, subjects, found.manifests, found.ctx, removed)
    res.timings["scan"] = rep.seconds
    res.scan = {"files_scanned": rep.files_scanned, "bytes_scanned": rep.bytes_scanned, "lance_files_decoded": rep.lance_files_decoded,
                "decoded_bytes_scanned": rep.decoded_bytes_scanned, "explained": rep.explained, "roots": rep.roots}
    objinfo = run.store.objects.info() if run.store.objects is not None else None  # bucket, prefix, versioning, object lock
    api_matches = sum(api.matches.values())  # shared: any match of any target is a failure for all (kept simple, exact)
    for rid in to_verify:
        mine = [f for f in rep.findings if f.request_id == found.primary.get(rid, rid)]
        verification = _verification_record(found.manifests[rid], api, rep, mine, objinfo)
        if mine or api_matches:
            _fail(ledger, rid, _traces_failure(api, mine, res.purge), run.clock(), verification=verification)
            run.pending_file(rid).unlink(missing_ok=True)
            continue
        stamp = run.clock()
        with ledger.begin() as conn:
            ev = events.record(ledger, events.ErasureVerified(request_id=rid, files_scanned=rep.files_scanned, bytes_scanned=rep.bytes_scanned,
                                                              versions_checked=api.versions_checked, api_matches=0, byte_matches=0),
                               actor=run.actor, subject_hash=get_request(ledger, rid)["subject_hash"], conn=conn)
            verification["ledger_event_hash"] = ev.event_hash
            verification["ledger_event_seq"] = ev.seq
            prog = _progress(ledger, rid)
            prog.setdefault("steps", {})["verified"] = iso(stamp)
            prog["verification"] = verification
            _update(ledger, rid, conn, expect=["in_progress"], status="verified", verified_at=iso(stamp), progress=prog)


def _verification_record(man: Manifest, api: ApiCheck, rep: ScanReport, mine: list[ScanFinding], objinfo: dict | None) -> dict:
    """What the certificate states about the verification of one request."""
    api_matches = sum(api.matches.values())
    kinds: dict[str, int] = defaultdict(int)
    for fp_kind in man.fingerprints.values():
        kinds[fp_kind] += 1
    return {
        "result": "clean" if not mine and not api_matches else "traces_found",
        "api_matches": api_matches, "api_match_locations": sorted(api.matches)[:50],
        "tables_checked": api.tables_checked, "versions_checked": api.versions_checked,
        "files_scanned": rep.files_scanned, "bytes_scanned": rep.bytes_scanned,
        "lance_files_decoded": rep.lance_files_decoded, "decoded_bytes_scanned": rep.decoded_bytes_scanned,
        "byte_matches": sum(f.count for f in mine), "patterns": {"subject_id": 1, **dict(sorted(kinds.items()))},
        "hits_explained_by_other_data": rep.explained, "storage_roots": rep.roots,
        **({"object_storage": objinfo} if objinfo else {}),
        "identifier_token_hits_outside_structured_fields": sum(rep.identifier_token_hits.values()),
    }


def _traces_failure(api: ApiCheck, mine: list[ScanFinding], purge: dict) -> str:
    """The failure of a request whose verification found traces, with the likely cause."""
    where = "; ".join(f"{f.location} ({f.kind} x{f.count})" for f in mine[:20])
    in_grace = sum((e.get("unverified_files") or {}).get("kept_in_grace", 0) for e in (purge or {}).values())
    hint = (f"; {in_grace} file(s) of uncommitted LanceDB writes were younger than AISG_PURGE_UNVERIFIED_GRACE_SECONDS "
            "and kept (they may be a commit in progress): if the traces are there, resubmit after that period") if in_grace else ""
    refused = [(e.get("object_versions") or {}).get("reason") for e in (purge or {}).values()]
    hint += "".join(f"; {r}" for r in refused if r)  # versioned bucket: Object Lock kept noncurrent versions
    return f"verification found traces: {sum(api.matches.values())} API matches {sorted(api.matches)[:10]}; bytes: {where}{hint}"


def _wait_reader_grace(run: _Run, reqs: dict[str, dict], deleted_at: float | None) -> None:
    """Readers (aisg_pipelines.serving) re-check a table at most AISG_READER_REFRESH_SECONDS
    after a delete: no certificate before every reader has moved past it. (A request resumed
    in a new process was deleted before the kill and the restart, which take longer than the
    bound.) The wait is part of the run, so it counts in the SLA."""
    if deleted_at is None or not any(run.status(rid) == "verified" for rid in reqs):
        return
    from ..settings import reader_grace_seconds

    wait = reader_grace_seconds() - (time.monotonic() - deleted_at)
    run.res.timings["reader_grace"] = max(0.0, wait)
    if wait > 0:
        time.sleep(wait)


def _certify_step(run: _Run, reqs: dict[str, dict]) -> None:
    """verified -> certified (exactly once each); a certified request's pending file goes."""
    t = time.perf_counter()
    for rid in sorted(reqs):
        if run.status(rid) == "verified":
            certify(run.settings, run.ledger, rid, clock=run.clock, actor=run.actor)
        if run.status(rid) == "certified":
            run.pending_file(rid).unlink(missing_ok=True)
    run.res.timings["certify"] = time.perf_counter() - t


def _fail(ledger: Ledger, rid: str, failure: str, now: datetime, **extra) -> None:
    with ledger.begin() as conn:
        prog = _progress(ledger, rid)
        prog.update(extra)
        _update(ledger, rid, conn, status="failed", failure=failure[:4000], failed_at=iso(now), progress=prog)
        row = conn.execute(sa.select(erasure_requests.c.subject_hash).where(erasure_requests.c.request_id == rid)).scalar()
        events.record(ledger, events.ErasureFailed(request_id=rid, failure=failure[:500]), actor="erasure", subject_hash=row, conn=conn)


def _outcome(row: dict) -> RequestOutcome:
    prog = row["progress"]
    return RequestOutcome(
        request_id=row["request_id"], status=row["status"], subject_hash=row["subject_hash"] or "", failure=row["failure"],
        certificate_id=row["certificate_id"], certificate_path=row["certificate_path"], counts=prog.get("counts", {}),
        commitment=(prog.get("commitment") or {}).get("sha256"), deadline_met=prog.get("deadline_met"),
    )


# -- convenience ----------------------------------------------------------------------------
def erase_subject(settings, subject_id: str, *, requested_by: str, reason: str = "", request_id: str | None = None,
                  run: bool = True, hook=None, clock=None, partitions=None) -> tuple[IntakeResult, ErasureRunResult | None]:
    """What `aisg erase` does: validate, record as received, and (unless run=False) process now.
    `partitions` (a `cascade.PartitionSink`) receives the ingest_batches keys left empty."""
    gov = as_governance(settings)
    ledger = gov.ledger
    obj = {"subject_id": subject_id, "requested_by": requested_by, "reason": reason,
           "request_id": request_id or f"er-{uuid.uuid4().hex[:20]}"}
    now = (clock or (lambda: datetime.now(timezone.utc)))()
    try:
        req = parse_request(obj, source="cli", now=now)
    except RequestRejected as rej:
        record_rejection(ledger, obj["request_id"] if REQUEST_ID_RE.fullmatch(str(obj["request_id"])) else "rej-" + sha256_hex(canonical_json(obj))[:24],
                         rej.code, rej.detail, source="cli", now=now)
        return IntakeResult(False, obj["request_id"], rej.code, rej.detail), None
    intake_res = intake(settings, ledger, req, now=now)
    if not intake_res.accepted or not run:
        return intake_res, None
    return intake_res, process_requests(gov, [req.request_id], ledger=ledger, hook=hook, clock=clock, partitions=partitions)

