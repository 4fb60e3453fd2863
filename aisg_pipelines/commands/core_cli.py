"""Core commands: sensor-free ingestion of whatever is in the landing zone."""

from __future__ import annotations

import click

from ..cli import main
from ..settings import Settings


@main.command(help="Ingest new landing-zone uploads now (one sensor tick, runs in this process).")
def ingest() -> None:
    from ..demo import ingest_pending, open_instance
    from ..definitions import defs

    s = Settings.from_env()
    instance = open_instance(s)
    summary = ingest_pending(defs, instance)
    click.echo(f"batches ingested: {summary['batches']}, runs failed: {summary['failed']}")
