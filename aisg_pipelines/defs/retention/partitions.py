"""Day partitions of the telemetry assets: dynamic, so retention can remove expired days."""

import dagster as dg

system_log_days = dg.DynamicPartitionsDefinition(name="system_log_days")
metric_days = dg.DynamicPartitionsDefinition(name="metric_days")

BY_KIND = {"system_logs": system_log_days, "metrics": metric_days}
