"""`aisg report`: export the compliance report for any week or month; `aisg prometheus-textfile`."""

from __future__ import annotations

import sys
from datetime import datetime, timezone

import click

from ..governance.context import Governance


def _check_results(settings: Governance, since_ts: float | None) -> list[dict] | None:
    """Asset-check history from the local Dagster instance, or None when there is none."""
    import os
    from pathlib import Path

    home = Path(os.environ.get("DAGSTER_HOME") or settings.data_dir / "dagster_home")
    if not (home / "dagster.yaml").exists():
        return None
    from ..defs.reports.assets import asset_check_results
    from ..local_runner import open_instance
    from ..definitions import defs

    instance = open_instance(settings)
    return asset_check_results(instance, defs.get_repository_def().asset_graph.asset_check_keys, since_ts=since_ts)


@click.command(help="Export the compliance report (HTML, PDF, summary.json, CSVs) for a week or a month; prints the file paths.")
@click.option("--period", "week", metavar="YYYY-Www", help="ISO week, e.g. 2026-W47 (default: the current week).")
@click.option("--month", metavar="YYYY-MM", help="Calendar month, e.g. 2026-11.")
@click.option("--timezone", "tz", default=None, help="Report timezone (default $AISG_REPORT_TIMEZONE or Asia/Seoul).")
@click.option("--no-checks", is_flag=True, help="Do not read asset-check history from the Dagster instance.")
def report(week: str | None, month: str | None, tz: str | None, no_checks: bool) -> None:
    from ..governance.report_render import summary_markdown
    from ..governance.reports import build_report, month_period, week_containing, week_period

    if week and month:
        raise click.UsageError("give --period (a week) or --month, not both")
    try:
        if month:
            period = month_period(month, tz)
        elif week:
            period = week_period(week, tz)
        else:
            period = week_containing(datetime.now(timezone.utc), tz)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    s = Governance.from_env()
    checks = None if no_checks else _check_results(s, period.start.timestamp())
    res = build_report(s, period, check_results=checks)
    click.echo(summary_markdown(res.summary))
    click.echo("")
    click.echo(f"exported {period.label} ({period.start.isoformat()} to {period.end.isoformat()}):")
    for _, p in sorted(res.paths.items(), key=lambda kv: str(kv[1])):
        click.echo(f"  {p}")
    click.echo(f"prometheus textfile: {res.prometheus_path}")
    sys.exit(0)


@click.command("prometheus-textfile", help="Write the governance gauges for Prometheus' textfile collector; prints the path.")
@click.option("--path", "path", default=None, help="Target file (default $AISG_PROMETHEUS_TEXTFILE or $AISG_EXPORTS_DIR/metrics/aisg_governance.prom).")
def prometheus_textfile(path: str | None) -> None:
    from ..governance.reports import write_prometheus_textfile

    click.echo(str(write_prometheus_textfile(Governance.from_env(), path=path)))


# The commands this module adds to `aisg` (cli.py registers them with main.add_command).
COMMANDS = (report, prometheus_textfile)
