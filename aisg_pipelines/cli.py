"""The `aisg` command line: a few top-level commands, plus each area's commands from `commands/`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .governance.context import Governance
from .settings import enforce_offline


@click.group(help="aisg_pipelines: data governance for AISG's RAG store.")
@click.version_option(package_name="aisg_pipelines")
def main() -> None:
    enforce_offline()


@main.command(help="Seed a sample landing zone and run the pipeline end to end on the embedded defaults.")
@click.option("--fresh", is_flag=True, help="Delete ./var first and start from nothing.")
def demo(fresh: bool) -> None:
    from .demo import run_demo

    sys.exit(run_demo(Governance.from_env(), fresh=fresh))


@main.command("verify-ledger", help="Verify the audit ledger: its hash chain and every anchor of it outside the database "
              "(signed checkpoints, certificates, reports, prune checkpoints, the Prometheus witness). Exit 1 if broken; "
              "the output names the cause (truncation, rewrite, forged or missing checkpoint, older backup, ...).")
@click.option("--public-key", type=click.Path(path_type=Path), default=None, help="PEM public key of the checkpoints and certificates (default: the deployment's).")
@click.option("--witness-head-seq", type=int, default=None, help="Highest aisg_ledger_head_seq Prometheus ever saw (e.g. max_over_time(aisg_ledger_head_seq[400d])).")
@click.option("--witness-checkpoint", type=int, default=None, help="Highest aisg_ledger_checkpoint_number Prometheus ever saw.")
@click.option("--chain-only", is_flag=True, help="Only the hash chain inside the database (what verify-ledger did before issue 18).")
def verify_ledger(public_key: Path | None, witness_head_seq: int | None, witness_checkpoint: int | None, chain_only: bool) -> None:

    s = Governance.from_env()
    led = s.ledger
    if chain_only:
        v = led.verify_chain()
        if v.ok:
            click.echo(f"chain OK: {v.events} events, head {v.head_hash} (anchors outside the database not checked)")
            return
        click.echo(f"chain BROKEN: {len(v.problems)} problem(s) in {v.events} events", err=True)
        for p in v.problems:
            click.echo(f"  - {p}", err=True)
        sys.exit(1)
    from .governance.checkpoints import verify_ledger as verify

    r = verify(s, led, public_key_path=public_key, witness_head_seq=witness_head_seq, witness_checkpoint_no=witness_checkpoint)
    v = r.chain
    if r.ok:
        pruned = f" ({v.pruned_events} older events removed by retention, anchor {v.anchor_hash[:12]}…)" if v.pruned_events else ""
        click.echo(f"ledger OK: {v.events} events, head seq={v.head_seq} {v.head_hash}{pruned}")
        click.echo(f"  anchors checked: {r.checkpoints} signed checkpoint(s)"
                   + (f" (newest #{r.newest_checkpoint})" if r.newest_checkpoint else "")
                   + f", {r.certificates} certificate(s), {r.reports} report(s)")
        for w in r.warnings:
            click.echo(f"  warning: {w}")
        return
    click.echo(f"ledger BROKEN: {len(r.findings)} problem(s) in {v.events} events; cause: {', '.join(r.causes)}", err=True)
    for f in r.findings:
        click.echo(f"  - [{f.cause}] {f.message}", err=True)
    for w in r.warnings:
        click.echo(f"  warning: {w}", err=True)
    sys.exit(1)


@main.command("ledger-checkpoint", help="Sign the ledger's current head and write it as the next checkpoint outside the database "
              "(the first one upgrades an existing ledger in place). The ledger_checkpoint_hourly schedule runs this.")
@click.option("--if-changed", is_flag=True, help="Write nothing when the head has not moved since the newest checkpoint.")
@click.option("--accept-restore", metavar="INCIDENT", default=None,
              help="After the DPO decided to restore the ledger from an older backup: sign a checkpoint that names the checkpoints "
              "and the seq range the restore lost (give the incident reference and why). docs/ledger_integrity.md.")
@click.option("--accept-prune", metavar="WHY", default=None,
              help="Sign a 7-year prune whose own checkpoint failed (check its ledger.pruned event first).")
def ledger_checkpoint(if_changed: bool, accept_restore: str | None, accept_prune: str | None) -> None:
    from .governance.checkpoints import write_checkpoint
    from .governance.ledger import LedgerTampered

    s = Governance.from_env()
    try:
        c = write_checkpoint(s, reason="manual", skip_unchanged=if_changed, accept_restore=accept_restore, accept_prune=accept_prune)
    except (LedgerTampered, ValueError) as exc:
        click.echo(f"NOT SIGNED: {exc}", err=True)
        sys.exit(1)
    verb = "unchanged since" if c.skipped else "wrote"
    click.echo(f"{verb} checkpoint #{c.no} ({c.reason}) over head seq={c.head_seq} {c.head_hash}: {c.path}")


# Each area's commands are plain click commands in commands/<area>_cli.py; they are added
# here, so imports run one way (cli -> commands -> defs -> governance) and no command imports cli.
from .commands import access_cli, core_cli, erasure_cli, orphans_cli, reports_cli, retention_cli, versions_cli  # noqa: E402

for _area in (core_cli, versions_cli, reports_cli, orphans_cli, erasure_cli, retention_cli, access_cli):
    for _command in _area.COMMANDS:
        main.add_command(_command)

if __name__ == "__main__":
    main()
