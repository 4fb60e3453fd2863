import dagster as dg

from .jobs import ledger_checkpoint, ledger_checkpoint_hourly

defs = dg.Definitions(jobs=[ledger_checkpoint], schedules=[ledger_checkpoint_hourly])
