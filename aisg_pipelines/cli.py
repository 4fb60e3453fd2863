"""The `aisg` command line. Each governance area adds its commands here."""

from __future__ import annotations

import sys

import click

from .settings import Settings, enforce_offline


@click.group(help="aisg_pipelines: data governance for AISG's RAG store.")
@click.version_option(package_name="aisg_pipelines")
def main() -> None:
    enforce_offline()


@main.command(help="Seed a sample landing zone and run the pipeline end to end on the embedded defaults.")
@click.option("--fresh", is_flag=True, help="Delete ./var first and start from nothing.")
def demo(fresh: bool) -> None:
    from .demo import run_demo

    sys.exit(run_demo(Settings.from_env(), fresh=fresh))


@main.command("verify-ledger", help="Verify the audit ledger's hash chain (exit 1 if broken).")
def verify_ledger() -> None:
    from .governance.ledger import Ledger

    v = Ledger(Settings.from_env().ledger_url).verify_chain()
    if v.ok:
        pruned = f" ({v.pruned_events} older events removed by retention, anchor {v.anchor_hash[:12]}…)" if v.pruned_events else ""
        click.echo(f"ledger OK: {v.events} events, head {v.head_hash}{pruned}")
        return
    click.echo(f"ledger BROKEN: {len(v.problems)} problem(s) in {v.events} events", err=True)
    for p in v.problems:
        click.echo(f"  - {p}", err=True)
    sys.exit(1)


# Area commands register themselves on `main` when imported (one line per area).
from .commands import core_cli  # noqa: E402,F401
from .commands import versions_cli  # noqa: E402,F401
from .commands import reports_cli  # noqa: E402,F401
from .commands import orphans_cli  # noqa: E402,F401
from .commands import erasure_cli  # noqa: E402,F401
from .commands import retention_cli  # noqa: E402,F401

if __name__ == "__main__":
    main()
