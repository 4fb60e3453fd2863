"""Retention and legal-hold commands: `aisg retention run`, `aisg hold add|release|list`."""

from __future__ import annotations

import json
import sys

import click

from ..governance.context import Governance


@click.group(help="Retention: delete expired data everywhere, purge it from disk, keep what is held.")
def retention() -> None:
    pass


@retention.command("run", help="Run the retention job now (in this process, recorded in the Dagster instance).")
@click.option("--dry-run", is_flag=True, help="Report what would be deleted; change nothing.")
@click.option("--as-of", default="", help="Pretend it is this ISO-8601 time (default: now).")
@click.option("--policy-file", default="", help="Policy YAML (default: the packaged config/retention.yaml).")
@click.option("--json", "as_json", is_flag=True, help="Print the run's metadata as JSON.")
def retention_run(dry_run: bool, as_of: str, policy_file: str, as_json: bool) -> None:
    import dagster as dg

    from ..local_runner import open_instance
    from ..definitions import build_defs
    from ..governance.retention import load_policies
    from ..local_runner import run_job

    load_policies(policy_file or None)  # refuse a bad policy file before starting a run
    s = Governance.from_env()
    instance = open_instance(s)
    cfg = {"dry_run": dry_run, "as_of": as_of, "policy_file": policy_file}
    res = run_job(build_defs(), instance, "retention", run_config={"ops": {"retention_report": {"config": cfg}}}, raise_on_error=False)
    if not res.success:
        click.echo(f"retention run {res.run_id} failed; see `make dev` -> Runs", err=True)
        sys.exit(1)
    md = instance.get_latest_materialization_event(dg.AssetKey("retention_report")).asset_materialization.metadata
    if as_json:
        click.echo(json.dumps({k: v.value if not hasattr(v.value, "text") else v.value.text for k, v in md.items()}, default=str, indent=2))
    else:
        click.echo(md["summary"].value)
    failed = [c.check_name for c in res.get_asset_check_evaluations() if not c.passed]
    if failed and not dry_run:
        click.echo(f"checks failing: {', '.join(failed)}", err=True)


def _target(subject_id: str | None, doc_id: str | None) -> tuple[str, str]:
    from ..governance.ids import DOC_ID_RE, SUBJECT_ID_RE, require, subject_hash

    if bool(subject_id) == bool(doc_id):
        raise click.UsageError("give exactly one of --subject-id or --doc-id")
    from ..governance.ids import InvalidIdentifier

    try:
        value = require(SUBJECT_ID_RE, subject_id, "subject_id") if subject_id else require(DOC_ID_RE, doc_id, "doc_id")
    except InvalidIdentifier as exc:
        raise click.BadParameter(str(exc)) from None
    salt = Governance.from_env().salt
    return ("subject" if subject_id else "document"), subject_hash(value, salt)


@click.group(help="Legal holds: held subjects/documents are never deleted by retention (stored as salted hashes).")
def hold() -> None:
    pass


@hold.command("add", help="Put a subject or a document under legal hold.")
@click.option("--subject-id")
@click.option("--doc-id")
@click.option("--reason", required=True, help="Why (case number, regulator request); no personal data.")
def hold_add(subject_id: str | None, doc_id: str | None, reason: str) -> None:

    scope, h = _target(subject_id, doc_id)
    hold_id = Governance.from_env().ledger.add_legal_hold(scope, h, reason)
    click.echo(f"hold {hold_id} added ({scope} {h[:12]}…)")


@hold.command("release", help="Release the active holds on a subject or document (or one hold by --hold-id).")
@click.option("--subject-id")
@click.option("--doc-id")
@click.option("--hold-id")
@click.option("--reason", required=True, help="Why the hold ends (case closed, regulator's decision); recorded in the audit ledger. No personal data.")
@click.option("--approved-by", default=None, help="Who approved the release (default: the OS user running the command).")
def hold_release(subject_id: str | None, doc_id: str | None, hold_id: str | None, reason: str, approved_by: str | None) -> None:
    import getpass

    import sqlalchemy as sa

    from ..governance.ledger import legal_holds

    led = Governance.from_env().ledger
    if hold_id:
        ids = [hold_id]
    else:
        scope, h = _target(subject_id, doc_id)
        with led.engine.connect() as c:
            ids = [r[0] for r in c.execute(sa.select(legal_holds.c.hold_id).where(legal_holds.c.scope == scope, legal_holds.c.target_hash == h, legal_holds.c.released_at.is_(None)))]
    if not ids:
        click.echo("no active hold matches", err=True)
        sys.exit(1)
    if not reason.strip():
        raise click.BadParameter("a reason is required to release a legal hold", param_hint="--reason")
    who = (approved_by or "").strip() or f"cli:{getpass.getuser()}"
    for i in ids:
        led.release_legal_hold(i, reason=reason.strip(), released_by=who)
        click.echo(f"hold {i} released (approved by {who})")


@hold.command("list", help="List legal holds (active ones unless --all); optionally for one subject/document.")
@click.option("--subject-id")
@click.option("--doc-id")
@click.option("--all", "show_all", is_flag=True)
def hold_list(subject_id: str | None, doc_id: str | None, show_all: bool) -> None:
    import sqlalchemy as sa

    from ..governance.ledger import legal_holds

    led = Governance.from_env().ledger
    q = sa.select(legal_holds).order_by(legal_holds.c.created_at)
    if not show_all:
        q = q.where(legal_holds.c.released_at.is_(None))
    if subject_id or doc_id:
        scope, h = _target(subject_id, doc_id)
        q = q.where(legal_holds.c.scope == scope, legal_holds.c.target_hash == h)
    with led.engine.connect() as c:
        rows = list(c.execute(q))
    for r in rows:
        click.echo(f"{r.hold_id}  {r.scope:<8} {r.target_hash[:16]}…  {r.created_at}  {'released ' + r.released_at if r.released_at else 'active'}  {r.reason}")
    click.echo(f"{len(rows)} hold(s)")


# The commands this module adds to `aisg` (cli.py registers them with main.add_command).
COMMANDS = (retention, hold)
