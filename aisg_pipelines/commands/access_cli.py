"""GDPR access commands: `aisg access-export`, `aisg access-status` (issue 17)."""

from __future__ import annotations

import sys

import click

from ..governance.context import Governance


@click.command("access-export", help="Record a GDPR Art. 15/20 access request and export now (or --no-run to leave it to the "
              "erasure_inbox_sensor): a signed export.json with HTML and PDF in English and Korean. Validated and rejected like erasure requests.")
@click.option("--subject-id", required=True, help="The data subject's identifier (treated as data, never code).")
@click.option("--requested-by", required=True, help="Who asked (e.g. the DPO's address).")
@click.option("--reason", default="", help="Why (free text; no personal data).")
@click.option("--request-id", default=None, help="Use this request id (default: a new one).")
@click.option("--no-run", is_flag=True, help="Only record the request; the erasure_inbox_sensor launches access_export.")
def access_export(subject_id: str, requested_by: str, reason: str, request_id: str | None, no_run: bool) -> None:
    from ..governance.access import request_access

    s = Governance.from_env()
    intake, outcomes = request_access(s, subject_id, requested_by=requested_by, reason=reason, request_id=request_id, run=not no_run)
    if not intake.accepted:
        click.echo(f"request REJECTED ({intake.code}): {intake.detail}", err=True)
        sys.exit(2)
    click.echo(f"request {intake.request_id} recorded" + (" (already pending)" if intake.redelivery else ""))
    if no_run:
        click.echo("not run (--no-run): the erasure_inbox_sensor launches the access_export job")
        return
    for o in outcomes:
        if o["status"] == "delivered":
            click.echo(f"{o['request_id']}: delivered, {'data found' if o['found'] else 'no data held'}; export {o['export_path']}")
            click.echo("  verify with: aisg verify-certificate " + o["export_path"])
        else:
            click.echo(f"{o['request_id']}: {o['status']}: {o.get('failure', '')}", err=True)
    if any(o["status"] != "delivered" for o in outcomes):
        sys.exit(1)


@click.command("access-status", help="List access requests with status and age; exit 1 if the 30-day deadline is breached.")
def access_status() -> None:
    from ..governance.access import list_requests, sla_status

    led = Governance.from_env().ledger
    for r in list_requests(led):
        click.echo(f"{r.request_id:<32} {r.status:<10} requested {r.requested_at[:19]}  {r.export_path or r.failure or ''}")
    st = sla_status(led)
    click.echo(f"SLA: {'OK' if st.ok else 'BREACHED: ' + ', '.join(st.overdue)}")
    sys.exit(0 if st.ok else 1)


# The commands this module adds to `aisg` (cli.py registers them with main.add_command).
COMMANDS = (access_export, access_status)
