"""Core commands: sensor-free ingestion of whatever is in the landing zone."""

from __future__ import annotations

import click

from ..governance.context import Governance


@click.command(help="Ingest new landing-zone uploads now (one sensor tick, runs in this process).")
def ingest() -> None:
    from ..local_runner import ingest_pending, open_instance
    from ..definitions import defs

    s = Governance.from_env()
    instance = open_instance(s)
    summary = ingest_pending(defs, instance)
    click.echo(f"batches ingested: {summary['batches']} in {summary['runs']} runs, runs failed: {summary['failed']}")


# The commands this module adds to `aisg` (cli.py registers them with main.add_command).
COMMANDS = (ingest,)
