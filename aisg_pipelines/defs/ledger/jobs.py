"""ledger_checkpoint: sign the audit ledger's head outside the database, hourly (issue 18).

The logic is in governance/checkpoints.py; this is the Dagster wrapper: an op, its job and
the hourly schedule. The same checkpoint is also written right after every erasure
certificate, compliance report and 7-year prune, by the code that makes them.
"""

import dagster as dg

from ..retry import aisg_retry
from ..resources import GovernanceResource


@dg.op(
    description="Sign the ledger's current head (seq, hash, event count, prune state) with the Ed25519 key and write it "
    "create-only as the next checkpoint outside the database; then refresh the Prometheus textfile (aisg_ledger_head_seq, "
    "aisg_ledger_checkpoint_number). The first run upgrades an existing ledger in place. Fails if the chain does not verify "
    "from the previous checkpoint: a rewritten history is never signed.",
    tags={"aisg/area": "ledger"},
)
@aisg_retry
def sign_ledger_checkpoint(
    context: dg.OpExecutionContext,
    governance: GovernanceResource,
) -> dg.Output[dict]:
    from ...governance.checkpoints import write_checkpoint
    from ...governance.reports import update_ledger_gauges

    s = governance.context()
    led = s.ledger
    c = write_checkpoint(s, led, reason="hourly", skip_unchanged=True)
    try:
        prom = str(update_ledger_gauges(s, ledger=led))  # only the aisg_ledger_* gauges: cheap enough for hourly
    except Exception as exc:  # noqa: BLE001 - the checkpoint stands; the gauges come back at the next run
        context.log.warning(f"Prometheus textfile not refreshed: {exc}")
        prom = None
    verb = "head unchanged since" if c.skipped else "wrote"
    context.log.info(f"{verb} checkpoint #{c.no} over head seq={c.head_seq} {c.head_hash}")
    value = {"checkpoint_no": c.no, "head_seq": c.head_seq, "head_hash": c.head_hash, "skipped": c.skipped, "path": str(c.path)}
    return dg.Output(
        value,
        metadata={
            "checkpoint_no": c.no,
            "head_seq": c.head_seq if c.head_seq is not None else -1,
            "head_hash": c.head_hash,
            "written": not c.skipped,
            "checkpoint": dg.MetadataValue.path(str(c.path)),
            **({"prometheus_textfile": dg.MetadataValue.path(prom)} if prom else {}),
        },
    )


@dg.job(
    name="ledger_checkpoint",
    description="Sign the audit ledger's head and write it outside the database (signed checkpoints, issue 18).",
    tags={"aisg/job": "ledger"},
)
def ledger_checkpoint():
    sign_ledger_checkpoint()


ledger_checkpoint_hourly = dg.ScheduleDefinition(
    name="ledger_checkpoint_hourly",
    job=ledger_checkpoint,
    cron_schedule="7 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly signed checkpoint of the audit ledger (nothing new is written when the head has not moved). "
    "Events after the newest checkpoint are protected only by the plain hash chain: see docs/ledger_integrity.md.",
)
