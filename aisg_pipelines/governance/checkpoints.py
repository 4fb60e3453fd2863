"""Signed ledger checkpoints and the whole-ledger verification (issue 18).

The hash chain in `ledger.py` has no secret: whoever can write to the ledger database and
read this code can delete its tail, or rewrite it from any event and recompute every later
hash, and `Ledger.verify_chain` still says OK. What such a writer cannot do is sign.

A *checkpoint* is the head of the chain (seq, hash, event count, prune state, time) signed
with the Ed25519 key that signs erasure certificates (never stored in the ledger database),
written create-only to a place outside the database (`checkpoints_dir`: a directory under
exports locally; in production a bucket with S3 Object Lock, mounted or synced). Each
checkpoint also names the SHA-256 of the previous one, so the checkpoints form their own
chain. They are written

- at least hourly (the `ledger_checkpoint_hourly` schedule, `aisg ledger-checkpoint`),
- right after every erasure certificate, compliance report and 7-year prune,
- once over the current head of a ledger that had none (the in-place migration).

Every checkpoint also updates `aisg_ledger_head_seq` / `aisg_ledger_checkpoint_number` in the
Prometheus textfile, so Prometheus's own storage is a witness the ledger's writers cannot edit.

`verify_ledger` then checks every anchor it can find against the database: the signed
checkpoints, every certificate's `ledger_anchor` (and the `erasure.certified` event's digest
of the certificate file), every compliance report's ledger head, the prune checkpoints and
the Prometheus witness. Each problem is a `Finding` with its cause (`CAUSES`). The design and
the threat model are in docs/ledger_integrity.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from .events import AccessDelivered, ErasureCertified
from .ledger import (
    GENESIS_HASH,
    PRUNE_ACTION,
    ChainVerification,
    Ledger,
    LedgerTampered,
    _event_problems,
    _latest_checkpoint,
    audit_events,
    iso,
    ledger_signed_checkpoints,
)

log = logging.getLogger(__name__)

SCHEMA = "aisg.ledger-checkpoint/1"
SUBDIR = "ledger_checkpoints"
DIR_ENV = "AISG_LEDGER_CHECKPOINT_DIR"
FILE_RE = re.compile(r"^ckpt-(\d{8})\.json$")
CERT_SUBDIR = "erasure_certificates"  # governance/erasure.py CERT_SUBDIR (not imported: erasure imports LanceDB)

# A checkpoint is written right after each of these events; one the newest checkpoint does
# not cover, older than the grace, means checkpoints were deleted (or a write failed).
ANCHORED_ACTIONS = ("erasure.certified", "report.exported", PRUNE_ACTION)
GRACE = timedelta(minutes=15)
HOURLY = timedelta(hours=1)

# The causes `aisg verify-ledger` names.
EDITED = "edited event"  # an event's content no longer matches its own hash
DELETED = "deleted event"  # a link in the middle of the chain is broken
TRUNCATION = "truncation"  # events are gone from the tail; the rest of the database still refers to them
REWRITE = "rewrite"  # the chain verifies, but an anchor's event now has another hash: hashes were recomputed
FORGED = "forged checkpoint"  # a checkpoint (signed file or prune row) not signed by the key, replaced, or not attested
MISSING = "missing checkpoint"  # a checkpoint that was written (or must have been) is gone
OLDER_BACKUP = "older backup"  # the whole database is an older, self-consistent copy
FORGED_CERTIFICATE = "forged certificate"  # a certificate's signature or digest does not hold
NO_PUBLIC_KEY = "no public key"  # signed files exist but the public key to check them is not available
CAUSES = (EDITED, DELETED, TRUNCATION, REWRITE, FORGED, MISSING, OLDER_BACKUP, FORGED_CERTIFICATE, NO_PUBLIC_KEY)


def checkpoints_dir(settings) -> Path:
    raw = os.environ.get(DIR_ENV)
    return Path(raw) if raw else Path(settings.exports_dir) / SUBDIR


def file_name(no: int) -> str:
    return f"ckpt-{no:08d}.json"


def _utc(dt: datetime | None) -> datetime:
    dt = dt or datetime.now(timezone.utc)
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _ts(s: str | None) -> datetime | None:
    if not s:
        return None
    try:
        return _utc(datetime.fromisoformat(str(s).replace("Z", "+00:00")))
    except ValueError:
        return None


def default_public_key_path(settings) -> Path:
    """The deployment's public key: $AISG_SIGNING_PUBLIC_KEY_FILE, else <signing key file>.pub.pem."""
    from .secrets import public_key_path

    return public_key_path(settings)


# -- reading checkpoints ----------------------------------------------------------------------
@dataclass
class StoredCheckpoint:
    no: int
    path: Path
    sha256: str
    body: dict[str, Any] | None  # the signed fields, when the signature holds
    problem: str | None = None  # why it is not a valid checkpoint

    @property
    def valid(self) -> bool:
        return self.problem is None and self.body is not None

    @property
    def head_seq(self) -> int | None:
        return self.body["ledger"]["head_seq"] if self.body else None

    @property
    def head_hash(self) -> str | None:
        return self.body["ledger"]["head_hash"] if self.body else None

    def label(self) -> str:
        if not self.body:
            return f"checkpoint #{self.no}"
        return f"signed checkpoint #{self.no} ({self.body['created_at'][:19]}, {self.body['reason']})"


def _numbers(directory: Path) -> dict[int, Path]:
    if not directory.is_dir():
        return {}
    out = {}
    for p in directory.iterdir():
        m = FILE_RE.match(p.name)
        if m:
            out[int(m.group(1))] = p
    return out


def read_checkpoint(no: int, path: Path, public_key) -> StoredCheckpoint:
    from . import certificates as certs

    raw = path.read_bytes()
    sha = hashlib.sha256(raw).hexdigest()
    if public_key is None:
        return StoredCheckpoint(no, path, sha, None, "no public key to check its signature")
    v = certs.verify_bytes(raw, public_key)
    if not v.ok:
        return StoredCheckpoint(no, path, sha, None, v.message.replace("INVALID: ", "").replace("certificate", "checkpoint"))
    body = {k: val for k, val in json.loads(raw).items() if k != "signature"}
    if body.get("schema") != SCHEMA or body.get("checkpoint_no") != no or not isinstance(body.get("ledger"), dict):
        return StoredCheckpoint(no, path, sha, None, f"signed, but not checkpoint #{no} of schema {SCHEMA} (renamed or another document)")
    return StoredCheckpoint(no, path, sha, body)


def load_checkpoints(directory: Path, public_key) -> list[StoredCheckpoint]:
    return [read_checkpoint(n, p, public_key) for n, p in sorted(_numbers(Path(directory)).items())]


def newest_checkpoint_info(settings) -> dict[str, Any] | None:
    """The newest checkpoint file's number, head seq and time, unverified (for the gauges)."""
    nums = _numbers(checkpoints_dir(settings))
    if not nums:
        return None
    no = max(nums)
    try:
        body = json.loads(nums[no].read_bytes())
        return {"no": no, "head_seq": body["ledger"]["head_seq"] or 0, "created_at": body["created_at"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {"no": no, "head_seq": 0, "created_at": None}


# -- writing checkpoints ----------------------------------------------------------------------
@dataclass(frozen=True)
class CheckpointWritten:
    no: int
    path: Path
    head_seq: int | None
    head_hash: str
    reason: str
    skipped: bool = False  # nothing changed since checkpoint `no` (hourly run on a quiet ledger)


def _head(conn) -> Any:
    return conn.execute(
        sa.select(audit_events.c.seq, audit_events.c.event_hash, audit_events.c.occurred_at).order_by(audit_events.c.seq.desc()).limit(1)
    ).first()


def _verify_since(conn, seq: int, h: str) -> list[str]:
    """Problems in the links after event `seq` (whose hash must still be `h`)."""
    row = conn.execute(sa.select(audit_events.c.event_hash).where(audit_events.c.seq == seq)).scalar()
    if row is None:
        return [f"the event seq={seq} of the previous checkpoint is gone"]
    if row != h:
        return [f"the event seq={seq} of the previous checkpoint now has hash {row[:12]}…, signed {h[:12]}…: history was rewritten"]
    problems: list[str] = []
    prev = h
    for r in conn.execute(sa.select(audit_events).where(audit_events.c.seq > seq).order_by(audit_events.c.seq)):
        problems += _event_problems(r, prev)
        prev = r.event_hash
    return problems


def _holds(conn, c: StoredCheckpoint, cp) -> bool:
    """Does checkpoint `c`'s head still hold in this database (present with its hash, or pruned)?"""
    if c.head_seq is None:
        return True
    h = conn.execute(sa.select(audit_events.c.event_hash).where(audit_events.c.seq == c.head_seq)).scalar()
    if h is not None:
        return h == c.head_hash
    return cp is not None and c.head_seq <= cp.through_seq and (c.head_seq != cp.through_seq or c.head_hash == cp.anchor_hash)


def write_checkpoint(settings, ledger: Ledger | None = None, *, reason: str = "manual", now: datetime | None = None,
                     skip_unchanged: bool = False, accept_restore: str | None = None, prune=None,
                     accept_prune: str | None = None) -> CheckpointWritten:
    """Sign the current head and write it create-only as the next checkpoint.

    Refuses (LedgerTampered) to sign a chain that does not verify from the previous
    checkpoint, or when the newest checkpoint file is not validly signed: signing over a
    rewritten history would launder it. The first checkpoint of a ledger (the migration of
    an existing one, reason "migration") verifies the whole chain.

    `accept_restore` (the incident reference and why) is the one way past a checkpoint that
    no longer holds, after the DPO decided to restore the ledger from an older backup: the
    new checkpoint, signed like any other, names the checkpoints the restore lost
    (`restore.superseded`) and the seq range lost; `verify_ledger` then reports them as
    warnings. The chain itself must verify.

    A change of the prune state (a 7-year prune since the previous checkpoint) is signed only
    with `prune`, the `LedgerPrune` this process just made (retention's hook), and it must be
    the prune the database shows. Anything else would let a database writer delete a prefix
    under a forged prune record and have the next hourly checkpoint attest it. A prune whose
    checkpoint failed is signed with `accept_prune` (why), after checking its ledger.pruned event.
    """
    from . import certificates as certs
    from .context import as_governance
    from .secrets import load_or_create_signing_key

    ledger = ledger or as_governance(settings).ledger
    key, _ = load_or_create_signing_key(settings)
    directory = checkpoints_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    for _attempt in range(50):
        nums = _numbers(directory)
        prev = read_checkpoint(max(nums), nums[max(nums)], key.public_key()) if nums else None
        if prev is not None and not prev.valid:
            raise LedgerTampered(f"{FORGED}: the newest checkpoint {prev.path.name} is not valid ({prev.problem}); nothing signed (see `aisg verify-ledger`)")
        restore = None
        with ledger.engine.connect() as conn:
            head = _head(conn)
            cp = _latest_checkpoint(conn)
            through, anchor, pruned_total = (cp.through_seq, cp.anchor_hash, cp.events_pruned_total) if cp else (None, GENESIS_HASH, 0)
            if accept_restore:
                problems = ledger.verify_chain().problems
                lost = [c for c in load_checkpoints(directory, key.public_key()) if c.valid and not _holds(conn, c, cp)]
                if not problems and not lost:
                    raise ValueError("nothing to accept: every checkpoint still holds against this ledger")
                if lost:
                    restore = {"reason": accept_restore, "superseded": [c.no for c in lost],
                               "restored_head_seq": head.seq if head else None, "lost_through_seq": max(c.head_seq or 0 for c in lost)}
            elif prev is None or prev.head_seq is None or (through is not None and prev.head_seq <= through):
                problems = ledger.verify_chain().problems
            else:
                problems = _verify_since(conn, prev.head_seq, prev.head_hash)
            if problems:
                raise LedgerTampered(f"the ledger does not verify ({problems[0]}); nothing signed (see `aisg verify-ledger`)")
            pruned_since = prev is not None and prev.body["ledger"].get("pruned_through_seq") != through and restore is None
            if pruned_since and not accept_prune and not (
                    prune is not None and prune.through_seq == through and prune.anchor_hash == anchor):
                raise LedgerTampered(f"{FORGED}: the prune state changed since checkpoint #{prev.no} (now through seq={through}) without the "
                                     "prune that made it: a forged prune, or a prune whose checkpoint failed "
                                     "(check its ledger.pruned event, then `aisg ledger-checkpoint --accept-prune`); nothing signed")
            head_seq = head.seq if head else None
            head_hash = head.event_hash if head else anchor
            events = conn.execute(sa.select(sa.func.count()).select_from(audit_events).where(audit_events.c.seq <= (head_seq or 0))).scalar() or 0
        state = {
            "head_seq": head_seq, "head_hash": head_hash, "head_occurred_at": head.occurred_at if head else None,
            "events": int(events), "events_pruned_total": int(pruned_total), "events_total": int(events) + int(pruned_total),
            "pruned_through_seq": through, "anchor_hash": anchor,
        }
        if skip_unchanged and restore is None and prev is not None and prev.body["ledger"] == state:
            return CheckpointWritten(prev.no, prev.path, head_seq, head_hash, prev.body["reason"], skipped=True)
        no = (max(nums) if nums else 0) + 1
        body = {
            "schema": SCHEMA,
            "checkpoint_no": no,
            "created_at": iso(_utc(now)),
            "reason": "restore accepted" if restore else (reason if prev is not None else "migration"),
            "ledger": state,
            "previous": {"checkpoint_no": prev.no, "sha256": prev.sha256} if prev is not None else None,
            **({"restore": restore} if restore else {}),
            **({"prune_accepted": accept_prune} if accept_prune and pruned_since else {}),
            "note": "The head of the governance ledger's hash chain, signed outside the ledger database. Verify with `aisg verify-ledger`.",
        }
        data = certs.canonical(certs.sign(body, key))
        target = directory / file_name(no)
        tmp = directory / f".{target.name}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, target)  # create-only: another writer that took this number wins
        except FileExistsError:
            continue
        finally:
            tmp.unlink(missing_ok=True)
        try:
            with ledger.begin() as conn:
                conn.execute(ledger_signed_checkpoints.insert().values(
                    checkpoint_no=no, created_at=body["created_at"], reason=body["reason"], head_seq=head_seq, head_hash=head_hash,
                    file_name=target.name, file_sha256=hashlib.sha256(data).hexdigest()))
        except IntegrityError:  # a row for this number exists (an older copy of this database was restored over a newer one)
            log.warning("ledger_signed_checkpoints already has checkpoint #%s", no)
        return CheckpointWritten(no, target, head_seq, head_hash, body["reason"])
    raise RuntimeError("could not write a ledger checkpoint: 50 concurrent writers took every number")


def checkpoint_after(settings, ledger: Ledger | None, reason: str, *, prune=None) -> CheckpointWritten | None:
    """The hook after a certificate, report or prune (`prune`: the LedgerPrune just made):
    never fails its caller. A checkpoint that could not be written shows up in
    `aisg verify-ledger` as a missing checkpoint."""
    try:
        return write_checkpoint(settings, ledger, reason=reason, prune=prune)
    except Exception as exc:  # noqa: BLE001
        log.warning("ledger checkpoint after %s not written: %s", reason, exc)
        return None


def ensure_checkpointed(settings, ledger: Ledger | None = None) -> CheckpointWritten | None:
    """The in-place migration: a ledger without any checkpoint gets its first one now."""
    if _numbers(checkpoints_dir(settings)):
        return None
    return write_checkpoint(settings, ledger, reason="migration")


# -- the Prometheus witness -------------------------------------------------------------------
def ledger_gauges(settings, ledger: Ledger) -> dict[str, Any]:
    with ledger.engine.connect() as conn:
        head = _head(conn)
    newest = newest_checkpoint_info(settings)
    return {
        "head_seq": head.seq if head else 0,
        "checkpoint_no": newest["no"] if newest else 0,
        "checkpoint_head_seq": newest["head_seq"] if newest else 0,
        "checkpoint_timestamp": (_ts(newest["created_at"]).timestamp() if newest and _ts(newest["created_at"]) else 0),
    }


def read_textfile_witness(path: Path) -> dict[str, int]:
    """aisg_ledger_head_seq / aisg_ledger_checkpoint_number from a Prometheus textfile."""
    from .prometheus import read_samples

    samples = read_samples(path)
    return {name: int(samples[name]) for name in ("aisg_ledger_head_seq", "aisg_ledger_checkpoint_number") if name in samples}


# -- verification -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Finding:
    cause: str
    message: str


@dataclass
class LedgerVerification:
    ok: bool
    chain: ChainVerification
    findings: list[Finding]
    warnings: list[str] = field(default_factory=list)
    checkpoints: int = 0  # valid signed checkpoints
    newest_checkpoint: int | None = None
    certificates: int = 0  # certificate anchors checked
    reports: int = 0  # report heads checked
    checkpointed: bool = False  # the ledger has (or had) signed checkpoints

    @property
    def causes(self) -> list[str]:
        return list(dict.fromkeys(f.cause for f in self.findings))


def _chain_cause(problem: str) -> str:
    if "content does not match its hash" in problem:
        return EDITED
    if "deleted, inserted or reordered" in problem:
        return DELETED
    return FORGED  # the prune-checkpoint checks of Ledger.verify_chain


def _load_public_key(settings, public_key_path: Path | None):
    from .certificates import load_public_key

    path = Path(public_key_path) if public_key_path else default_public_key_path(settings)
    try:
        return load_public_key(path), path
    except (OSError, ValueError):
        return None, path


def verify_ledger(settings, ledger: Ledger | None = None, *, public_key_path: Path | None = None,
                  witness_head_seq: int | None = None, witness_checkpoint_no: int | None = None,
                  now: datetime | None = None) -> LedgerVerification:
    """The chain, and every anchor of it found outside the database (see the module doc)."""
    from . import certificates as certs

    from .context import as_governance

    now = _utc(now)
    ledger = ledger or as_governance(settings).ledger
    chain = ledger.verify_chain()
    findings = [Finding(_chain_cause(p), p) for p in chain.problems]
    warnings: list[str] = []

    with ledger.engine.connect() as conn:
        idx: dict[int, tuple[str, str, str]] = {
            r.seq: (r.event_hash, r.action, r.occurred_at)
            for r in conn.execute(sa.select(audit_events.c.seq, audit_events.c.event_hash, audit_events.c.action, audit_events.c.occurred_at))
        }
        certified = {}
        for r in conn.execute(sa.select(audit_events.c.seq, audit_events.c.details).where(audit_events.c.action == ErasureCertified.ACTION)):
            ev = ErasureCertified.from_payload(json.loads(r.details))
            certified[ev.certificate_id] = (r.seq, ev)
        cp = _latest_checkpoint(conn)
        rows = conn.execute(sa.select(ledger_signed_checkpoints).order_by(ledger_signed_checkpoints.c.checkpoint_no)).all()
        certified_refs, statuses = _request_refs(conn)
    by_hash = {h: s for s, (h, _, _) in idx.items()}
    max_seq = max(idx) if idx else None
    through = cp.through_seq if cp else None
    anchor = cp.anchor_hash if cp else GENESIS_HASH
    tails: list[tuple[str, int]] = []  # (what, seq past the head)
    rewrites: list[tuple[str, int, str]] = []  # (what, seq, detail)
    lost_ranges: list[tuple[int, int, str]] = []  # (after seq, through seq, why): restores accepted by a signed checkpoint

    def lost(what: str, seq: int) -> bool:
        for after, upto, why in lost_ranges:
            if after < seq <= upto:
                warnings.append(f"{what}: its event seq={seq} was lost in an accepted restore ({why})")
                return True
        return False

    def check(what: str, seq: int | None, h: str) -> bool:
        """One anchor (event seq + hash) against the database; False if it does not hold."""
        if seq is None:  # only a hash (reports written before head_seq was recorded)
            if h in by_hash or h == anchor or h == GENESIS_HASH:
                return True
            if through is not None:
                warnings.append(f"{what}: its ledger head {h[:12]}… is not in the kept chain; it may have been pruned (no seq recorded to tell)")
                return True
            rewrites.append((what, -1, f"its ledger head {h[:12]}… is nowhere in the ledger"))
            return False
        if seq in idx:
            if idx[seq][0] == h:
                return True
            if lost(what, seq):
                return True
            rewrites.append((what, seq, f"event seq={seq} ({idx[seq][1]}) now has hash {idx[seq][0][:12]}…, the anchor says {h[:12]}…"))
            return False
        if through is not None and seq <= through:
            if seq == through and h != anchor:
                rewrites.append((what, seq, f"the prune anchor at seq={seq} is {anchor[:12]}…, the anchor says {h[:12]}…"))
                return False
            return True  # removed by a (verified) 7-year prune
        if lost(what, seq):
            return True
        if max_seq is None or seq > max_seq:
            tails.append((what, seq))
            return False
        if h in by_hash:
            rewrites.append((what, seq, f"its event is now at seq={by_hash[h]} instead of seq={seq}"))
        elif chain.ok:
            rewrites.append((what, seq, f"event seq={seq} is gone but the chain still links: events were removed and the hashes recomputed"))
        else:
            findings.append(Finding(DELETED, f"{what}: event seq={seq} was deleted from the middle of the chain"))
        return False

    # 1. signed checkpoints ------------------------------------------------------------------
    directory = checkpoints_dir(settings)
    nums = _numbers(directory)
    cert_dir = Path(settings.exports_dir) / CERT_SUBDIR
    cert_files = sorted(cert_dir.glob("*.json")) if cert_dir.is_dir() else []
    public_key = None
    if nums or cert_files:
        public_key, key_path = _load_public_key(settings, public_key_path)
        if public_key is None:
            findings.append(Finding(NO_PUBLIC_KEY, f"public key {key_path} cannot be read: signed checkpoints and certificates cannot be checked (pass --public-key)"))
    stored = [read_checkpoint(n, p, public_key) for n, p in sorted(nums.items())] if public_key is not None else []
    valid = [c for c in stored if c.valid]
    by_no = {c.no: c for c in stored}
    for c in stored:
        if not c.valid:
            findings.append(Finding(FORGED, f"{c.path.name}: {c.problem}"))
    superseded: dict[int, StoredCheckpoint] = {}
    for c in valid:
        r = c.body.get("restore")
        if r:
            for n in r.get("superseded") or []:
                superseded[n] = c
            lost_ranges.append((r.get("restored_head_seq") or 0, r.get("lost_through_seq") or 0, f"{c.label()}: {r.get('reason')}"))
            warnings.append(f"{c.label()} accepted a restore: checkpoints {', '.join('#' + str(n) for n in r.get('superseded') or [])} "
                            f"and seq {(r.get('restored_head_seq') or 0) + 1}..{r.get('lost_through_seq')} were lost ({r.get('reason')})")
    if nums:
        top = max(nums)
        gaps = [n for n in range(1, top) if n not in nums]
        if gaps:
            findings.append(Finding(MISSING, f"checkpoint(s) {', '.join('#' + str(n) for n in gaps[:10])} missing from {directory} (checkpoint #{top} exists)"))
    for c in valid:
        p = c.body.get("previous")
        before = by_no.get(c.no - 1)
        if c.no > 1 and p is None:
            findings.append(Finding(FORGED, f"{c.label()} names no previous checkpoint"))
        elif p is not None and before is not None and p.get("sha256") != before.sha256:
            findings.append(Finding(FORGED, f"{before.path.name} is not the checkpoint #{c.no} was chained to: it was replaced"))
        if (before is not None and before.valid and not c.body.get("restore") and not c.body.get("prune_accepted") and c.body["reason"] != "prune"
                and before.body["ledger"].get("pruned_through_seq") != c.body["ledger"].get("pruned_through_seq")):
            findings.append(Finding(FORGED, f"{c.label()} signs a new prune state (through seq={c.body['ledger'].get('pruned_through_seq')}) "
                                            "but is not the checkpoint of that prune"))
        if before is not None and before.valid and (c.head_seq or 0) < (before.head_seq or 0) and not c.body.get("restore"):
            findings.append(Finding(FORGED, f"{c.label()} signs head seq={c.head_seq}, before the head seq={before.head_seq} of #{before.no}"))
    for r in rows:
        c = by_no.get(r.checkpoint_no)
        if r.checkpoint_no in superseded:
            continue
        if r.checkpoint_no not in nums:
            findings.append(Finding(MISSING, f"checkpoint #{r.checkpoint_no} ({r.created_at[:19]}, {r.reason}, head seq={r.head_seq}) "
                                             f"is recorded in the ledger database but its file {r.file_name} is gone from {directory}"))
        elif c is not None and c.sha256 != r.file_sha256:
            findings.append(Finding(FORGED, f"{c.path.name} is not the file written as checkpoint #{r.checkpoint_no} at {r.created_at[:19]} (its digest differs): replaced"))
    tf = _textfile_witness(settings)
    w_cp = max([n for n in (witness_checkpoint_no, tf.get("aisg_ledger_checkpoint_number")) if n is not None], default=None)
    if w_cp is not None and w_cp > (max(nums) if nums else 0):
        findings.append(Finding(MISSING, f"Prometheus witnessed checkpoint #{w_cp}, but the newest checkpoint file is #{max(nums) if nums else 'none'}: the newest checkpoints were deleted"))
    for c in valid:
        if c.head_seq is not None and c.no not in superseded:  # None: signed over an empty ledger
            check(c.label(), c.head_seq, c.head_hash)
    checkpointed = bool(nums or rows)
    newest_head = max((c.head_seq or 0 for c in valid if c.no not in superseded), default=None)
    newest = max(valid, key=lambda c: c.no, default=None)

    # 2. the prune state must be one a signed checkpoint attests ------------------------------
    if cp is not None and checkpointed and public_key is not None:
        attested = any(c.body["ledger"].get("pruned_through_seq") == cp.through_seq and c.body["ledger"].get("anchor_hash") == cp.anchor_hash
                       for c in valid)
        if not attested:
            rec = _ts(cp.created_at)
            msg = (f"the prune checkpoint through seq={cp.through_seq} ({cp.events_pruned_total} events removed) is attested by no signed "
                   "checkpoint: events were removed under a forged prune")
            if rec is not None and now - rec < GRACE:
                warnings.append(msg + " (or its checkpoint is still being written)")
            else:
                findings.append(Finding(FORGED, msg))

    # 3. events a checkpoint must follow, but none covers -------------------------------------
    if checkpointed and public_key is not None:
        uncovered = [(s, a, t) for s, (_, a, t) in sorted(idx.items()) if a in ANCHORED_ACTIONS and (newest_head is None or s > newest_head)]
        old = [u for u in uncovered if (_ts(u[2]) or now) < now - GRACE]
        if old:
            s, a, t = old[0]
            findings.append(Finding(MISSING, f"{len(old)} event(s) that are always followed by a signed checkpoint are covered by none, "
                                             f"from seq={s} ({a}, {t[:19]}): the newest checkpoints were deleted or never written"))
        elif uncovered:
            warnings.append(f"{len(uncovered)} recent event(s) from seq={uncovered[0][0]} not yet covered by a checkpoint")
        if newest is not None and max_seq is not None and (newest.head_seq or 0) < max_seq:
            t = _ts(newest.body["created_at"])
            if t is not None and now - t > HOURLY + GRACE:
                warnings.append(f"the newest checkpoint #{newest.no} is from {newest.body['created_at'][:19]} and {max_seq - (newest.head_seq or 0)} "
                                "seq(s) came after it: is the ledger_checkpoint_hourly schedule running? Events after the newest checkpoint are protected only by the plain chain")
    elif not checkpointed:
        warnings.append("no signed checkpoint yet: nothing outside the database vouches for this ledger (run `aisg ledger-checkpoint`; "
                        "the ledger_checkpoint_hourly schedule does it)")

    # 4. certificates --------------------------------------------------------------------------
    n_certs = 0
    for path in cert_files if public_key is not None else []:
        raw = path.read_bytes()
        v = certs.verify_bytes(raw, public_key)
        if not v.ok:
            findings.append(Finding(FORGED_CERTIFICATE, f"{path.name}: {v.message}"))
            continue
        cert = json.loads(raw)
        a = cert.get("ledger_anchor") or {}
        n_certs += 1
        what = f"certificate {cert.get('certificate_id')}"
        if not check(what + " (ledger_anchor)", a.get("event_seq"), str(a.get("event_hash"))):
            continue
        if through is not None and a.get("event_seq") is not None and a["event_seq"] <= through:
            continue  # its events were removed by a prune
        rec = certified.get(cert.get("certificate_id"))
        if rec is None:
            anchor_seq = a.get("event_seq") or 0
            if statuses.get(cert.get("request_id")) == "verified":
                warnings.append(f"{what}: written, but request {cert.get('request_id')} is not certified yet (an interrupted certification; it is re-run)")
            elif chain.ok:  # it came after its anchor: gone from an intact chain means cut from the tail (or rewritten away)
                tails.append((f"{what} (its erasure.certified event, after seq={anchor_seq})", max(anchor_seq, max_seq or 0) + 1))
            else:
                findings.append(Finding(DELETED, f"{what}: its erasure.certified event is nowhere in the ledger"))
        elif rec[1].certificate_sha256 != hashlib.sha256(raw).hexdigest():
            findings.append(Finding(FORGED_CERTIFICATE, f"{path.name} is not the file certified by event seq={rec[0]} (its digest differs)"))

    # 5. compliance reports --------------------------------------------------------------------
    n_reports = 0
    comp = Path(settings.exports_dir) / "compliance"
    for path in sorted(comp.glob("*/summary.json")) if comp.is_dir() else []:
        try:
            led = json.loads(path.read_text(encoding="utf-8")).get("ledger") or {}
        except (OSError, ValueError):
            warnings.append(f"{path}: not readable JSON")
            continue
        if not led.get("head_hash"):
            continue
        n_reports += 1
        check(f"report {path.parent.name} (ledger head)", led.get("head_seq"), led["head_hash"])

    # 6. the Prometheus witness ---------------------------------------------------------------
    w_head = max([n for n in (witness_head_seq, tf.get("aisg_ledger_head_seq")) if n is not None], default=None)
    if w_head is not None and w_head > (max_seq or 0) and not lost("the Prometheus witness", w_head):
        tails.append((f"Prometheus witness aisg_ledger_head_seq={w_head}", w_head))

    # classify -----------------------------------------------------------------------------
    if rewrites:
        rewrites.sort(key=lambda r: r[1])
        first = rewrites[0]
        more = f" (and {len(rewrites) - 1} later anchor(s))" if len(rewrites) > 1 else ""
        findings.append(Finding(REWRITE, f"{first[0]}: {first[2]}{more}: history was rewritten and the hashes recomputed"))
    if tails:
        tails.sort(key=lambda t: t[1])
        top_what, top_seq = tails[-1]
        head = f"the ledger ends at seq={max_seq}" if max_seq is not None else "the ledger has no event"
        whats = "; ".join(w for w, _ in tails[-3:])
        dangling = [f"checkpoint #{r.checkpoint_no} (head seq={r.head_seq})" for r in rows if r.head_seq is not None and (max_seq is None or r.head_seq > max_seq)]
        dangling += [f"erasure request {rid} (certified by event {h[:12]}…)" for rid, h in certified_refs if h not in by_hash and (through is None)]
        if dangling:
            findings.append(Finding(TRUNCATION, f"{head}, but {len(tails)} anchor(s) reach past it, up to seq={top_seq} ({whats}); the database itself still "
                                                f"refers to the lost events ({', '.join(dangling[:3])}): events were deleted from the tail"))
        else:
            last = idx[max_seq][2][:19] if max_seq is not None else "-"
            findings.append(Finding(OLDER_BACKUP, f"{head} (last event {last}) and is consistent with itself, but {len(tails)} anchor(s) reach past it, "
                                                  f"up to seq={top_seq} ({whats}): the database was replaced by an older copy "
                                                  "(or truncated together with every record of the lost events)"))
    return LedgerVerification(ok=not findings, chain=chain, findings=findings, warnings=warnings, checkpoints=len(valid),
                              newest_checkpoint=newest.no if newest else None, certificates=n_certs, reports=n_reports,
                              checkpointed=checkpointed)


def _textfile_witness(settings) -> dict[str, int]:
    from .prometheus import textfile_path as prometheus_textfile_path

    return read_textfile_witness(prometheus_textfile_path(Path(settings.exports_dir)))


def _request_refs(conn) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """(request_id, erasure.certified event hash) of every certified erasure request, and every request's status."""
    from .ledger import erasure_requests

    rows = conn.execute(sa.select(erasure_requests.c.request_id, erasure_requests.c.status, erasure_requests.c.progress)).all()
    out, statuses = [], {}
    for r in rows:
        statuses[r.request_id] = r.status
        if r.status != "certified":
            continue
        try:
            h = json.loads(r.progress or "{}").get("certified_event_hash")
        except ValueError:
            continue
        if h:
            out.append((r.request_id, h))
    return out, statuses


# -- erasure certificates: their anchor against the ledger -----------------------------------
def certificate_anchor(settings, cert_path: Path, ledger: Ledger | None = None) -> tuple[bool | None, str]:
    """(True/False, why) for the certificate's ledger_anchor; (None, why) when the ledger is not reachable."""
    try:
        cert = json.loads(Path(cert_path).read_bytes())
        a = cert["ledger_anchor"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return False, f"no ledger_anchor in the certificate ({exc})"
    try:
        ledger = ledger or _reachable_ledger(settings.ledger_url)
        if ledger is None:
            return None, "the ledger is not reachable"
        with ledger.engine.connect() as conn:
            seq, h = a.get("event_seq"), a.get("event_hash")
            q = sa.select(audit_events.c.seq, audit_events.c.event_hash, audit_events.c.action)
            row = conn.execute(q.where(audit_events.c.seq == seq) if seq is not None else q.where(audit_events.c.event_hash == h)).first()
            cp = _latest_checkpoint(conn)
            head = _head(conn)
            cert_ev = None
            # an access export (governance/access.py) is recorded by access.delivered, a certificate by erasure.certified
            issued = AccessDelivered if str(cert.get("schema", "")).startswith("aisg.access-export/") else ErasureCertified
            for r in conn.execute(sa.select(audit_events.c.seq, audit_events.c.details).where(audit_events.c.action == issued.ACTION)):
                ev = issued.from_payload(json.loads(r.details))
                if ev.certificate_id == cert.get("certificate_id"):
                    cert_ev = (r.seq, ev)
    except sa.exc.DBAPIError as exc:
        return None, f"the ledger is not reachable ({type(exc).__name__})"
    if row is None:
        if cp is not None and seq is not None and seq <= cp.through_seq:
            return True, f"its anchor event seq={seq} was removed by the 7-year prune through seq={cp.through_seq} (the prune checkpoint verifies it)"
        if head is None or (seq is not None and seq > head.seq):
            return False, f"{TRUNCATION}: its anchor event seq={seq} is past the ledger's head seq={head.seq if head else None}: the ledger lost its tail"
        return False, f"{REWRITE}: its anchor event seq={seq} ({str(h)[:12]}…) is not in the ledger"
    if row.event_hash != h:
        return False, f"{REWRITE}: ledger event seq={row.seq} ({row.action}) has hash {row.event_hash[:12]}…, the certificate anchors {str(h)[:12]}…"
    if cert_ev is None:
        return False, f"the anchor event seq={row.seq} is in the ledger but no {issued.ACTION} event records certificate {cert.get('certificate_id')}"
    if cert_ev[1].file_sha256 != hashlib.sha256(Path(cert_path).read_bytes()).hexdigest():
        return False, f"{FORGED_CERTIFICATE}: event seq={cert_ev[0]} certified a different file (digest differs)"
    return True, f"anchored: ledger event seq={row.seq} ({row.action}) has the signed hash, and event seq={cert_ev[0]} ({issued.ACTION}) records this file's digest"


def _reachable_ledger(url: str) -> Ledger | None:
    from .ledger import normalise_url

    url = normalise_url(url)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return None
    led = Ledger(url, create=False)
    if not sa.inspect(led.engine).has_table("audit_events"):
        return None
    return led
