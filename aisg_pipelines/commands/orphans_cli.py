"""`aisg orphans report` and `aisg orphans cleanup [--execute]` (same plain code as the Dagster job)."""

from __future__ import annotations

import json
import sys

import click

from ..governance.context import Governance


@click.group(help="Orphans across documents, chunks, every embed_version, the landing zone and the partitions.")
def orphans() -> None:
    pass


def _scope_and_parts(grace: float):
    from ..defs.orphans.assets import DagsterPartitions
    from ..local_runner import open_instance
    from ..governance.orphans import OrphanScope

    s = Governance.from_env()
    led = s.ledger
    return s, led, OrphanScope.from_settings(s, ledger=led, grace_seconds=grace), DagsterPartitions(open_instance(s))


@orphans.command("report", help="Detect orphans, print the count per kind and write a CSV of every orphan id.")
@click.option("--grace-seconds", default=3600.0, show_default=True, help="landing files younger than this are pending, not orphans")
@click.option("--json", "as_json", is_flag=True, help="print the counts as JSON")
def report_cmd(grace_seconds: float, as_json: bool) -> None:
    from ..governance.orphans import audit_report, detect_orphans

    s, led, scope, parts = _scope_and_parts(grace_seconds)
    rep = detect_orphans(scope, parts.keys())
    path = rep.write_csv(scope.exports_dir)
    audit_report(led, rep, path, actor="cli")
    if as_json:
        click.echo(json.dumps({"counts": rep.counts, "total": rep.total, "cleanable_total": rep.cleanable_total, "csv": str(path)}))
    else:
        click.echo(rep.markdown())
        click.echo(f"\n{rep.total} orphans, {rep.cleanable_total} cleanable; CSV: {path} ({rep.seconds:.2f}s)")
    sys.exit(1 if rep.cleanable_total else 0)


@orphans.command("cleanup", help="Clean the cleanable kinds. Dry run unless --execute.")
@click.option("--execute", is_flag=True, help="really delete/move (default: dry run, report only)")
@click.option("--grace-seconds", default=3600.0, show_default=True)
def cleanup_cmd(execute: bool, grace_seconds: float) -> None:
    from ..governance.orphans import cleanup_orphans, detect_orphans

    s, led, scope, parts = _scope_and_parts(grace_seconds)
    rep = detect_orphans(scope, parts.keys())
    path = rep.write_csv(scope.exports_dir)
    res = cleanup_orphans(scope, rep, dry_run=not execute, partitions=parts, ledger=led, actor="cli")
    click.echo(res.markdown())
    verb = "would clean" if res.dry_run else "cleaned"
    click.echo(f"\n{verb} {res.total}; ids in {path}" + ("" if execute else "; run again with --execute to apply"))
    if rep.counts["denylisted_subject_data"]:
        click.echo(f"{rep.counts['denylisted_subject_data']} rows belong to a subject on the erasure denylist: run `aisg erase` (not orphan cleanup).")


# The commands this module adds to `aisg` (cli.py registers them with main.add_command).
COMMANDS = (orphans,)
