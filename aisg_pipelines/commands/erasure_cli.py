"""GDPR erasure commands: `aisg erase`, `aisg verify-certificate`, `aisg erasure-status`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..governance.context import Governance


def _partitions(s: Governance):
    """The Dagster instance's ingest_batches partitions: the erasure deletes the keys it leaves empty."""
    from ..defs.orphans.assets import DagsterPartitions
    from ..local_runner import open_instance

    return DagsterPartitions(open_instance(s))


@click.command(help="Record a GDPR erasure request and run it now (or --no-run to only enqueue it for the sensor).")
@click.option("--subject-id", required=True, help="The data subject's identifier (treated as data, never code).")
@click.option("--requested-by", required=True, help="Who asked (e.g. the DPO's address).")
@click.option("--reason", default="", help="Why (free text; no personal data).")
@click.option("--request-id", default=None, help="Use this request id (default: a new one).")
@click.option("--no-run", is_flag=True, help="Only record the request; the erasure_inbox_sensor's next run processes it.")
def erase(subject_id: str, requested_by: str, reason: str, request_id: str | None, no_run: bool) -> None:
    from ..governance.erasure import erase_subject

    s = Governance.from_env()
    intake, res = erase_subject(s, subject_id, requested_by=requested_by, reason=reason, request_id=request_id, run=not no_run,
                                partitions=None if no_run else _partitions(s))
    if not intake.accepted:
        click.echo(f"request REJECTED ({intake.code}): {intake.detail}", err=True)
        sys.exit(2)
    click.echo(f"request {intake.request_id} recorded" + (" (already pending)" if intake.redelivery else ""))
    if res is None:
        click.echo("not run (--no-run): the erasure_inbox_sensor launches it, or run `aisg erase-pending`")
        return
    for o in res.outcomes:
        items = sum(c.get("items", 0) for c in o.counts.values())
        if o.status == "certified":
            click.echo(f"{o.request_id}: certified, {items} items erased; certificate {o.certificate_path}")
        else:
            click.echo(f"{o.request_id}: {o.status}: {o.failure}", err=True)
    timings = ", ".join(f"{k} {v:.2f}s" for k, v in res.timings.items())
    click.echo(f"timings: {timings}")
    if any(o.status != "certified" for o in res.outcomes):
        sys.exit(1)


@click.command("erase-pending", help="Process every pending erasure request now, in this process (resumes killed runs).")
def erase_pending() -> None:
    from ..governance.erasure import process_requests

    s = Governance.from_env()
    res = process_requests(s, partitions=_partitions(s))
    click.echo(f"{len(res.certified)} certified, {len(res.failed)} failed of {len(res.outcomes)}")
    for o in res.outcomes:
        click.echo(f"  {o.request_id}: {o.status} {o.certificate_path or o.failure or ''}")


def default_public_key(settings: Governance) -> Path:
    from ..governance.secrets import public_key_path

    return public_key_path(settings)


def verify_certificate_file(cert: Path, public_key: Path | None = None):
    """What `aisg verify-certificate` runs (the demo calls it too): offline, public key only."""
    from ..governance.certificates import verify_file

    return verify_file(Path(cert), Path(public_key) if public_key else default_public_key(Governance.from_env()))


@click.command("verify-certificate", help="Verify an erasure certificate's signature with the public key and, when the ledger is "
              "reachable, its ledger_anchor against the ledger (exit 1 if either fails). Offline it checks the signature only, and says so.")
@click.argument("cert", type=click.Path(path_type=Path))
@click.option("--public-key", type=click.Path(path_type=Path), default=None, help="PEM public key (default: the deployment's key next to the signing key).")
@click.option("--offline", is_flag=True, help="Do not look for the ledger: check the signature only.")
def verify_certificate(cert: Path, public_key: Path | None, offline: bool) -> None:
    v = verify_certificate_file(cert, public_key)
    click.echo(v.message, err=not v.ok)
    if not v.ok:
        sys.exit(1)
    if offline:
        click.echo("checked the signature only (--offline): the ledger anchor was NOT checked")
        return
    from ..governance.checkpoints import certificate_anchor

    ok, why = certificate_anchor(Governance.from_env(), cert)
    if ok is None:
        click.echo(f"checked the signature only: {why}, so the ledger anchor was NOT checked")
    elif ok:
        click.echo(f"ledger anchor OK: {why}")
    else:
        click.echo(f"ANCHOR BROKEN: {why} (run `aisg verify-ledger`)", err=True)
        sys.exit(1)


@click.command("erasure-status", help="List erasure requests with their status and age; exit 1 if the 30-day SLA is breached.")
def erasure_status() -> None:
    from ..governance.erasure import list_requests, sla_status

    led = Governance.from_env().ledger
    for r in list_requests(led):
        click.echo(f"{r['request_id']:<32} {r['status']:<12} requested {r['requested_at'][:19]}  {r['certificate_path'] or r['failure'] or ''}")
    st = sla_status(led)
    click.echo(f"SLA: {'OK' if st.ok else 'BREACHED: ' + ', '.join(st.overdue)}")
    sys.exit(0 if st.ok else 1)


# The commands this module adds to `aisg` (cli.py registers them with main.add_command).
COMMANDS = (erase, erase_pending, verify_certificate, erasure_status)
