"""Lineage that tells the governance story: external stores, dependencies, owners, code versions.

The areas define their assets; this module adds, in one place, what connects them:

- external AssetSpecs for what AISG writes and this code location only reads: the landing
  zone, incoming telemetry, the erasure inbox (the audit ledger is in health.py);
- the dependencies of the governance assets on the stores they scan: `orphan_report`,
  `retention_report`, `erasure_requests` and `access_requests` on documents, chunks,
  embeddings, telemetry, the landing zone and the ledger; the compliance reports on those;
- an owner and a `code_version` for every asset (bump the version when an asset's logic
  changes what it produces).

`annotate` is applied by definitions.build_defs through Definitions.map_asset_specs.
"""

import dagster as dg

PLATFORM = "team:aisg-platform"
PRIVACY = "team:aisg-privacy"

landing_zone = dg.AssetSpec(
    "landing_zone", group_name="governance_stores", kinds={"files"}, owners=[PLATFORM],
    description="AISG_LANDING_DIR: uploads + <file>.meta.json sidecars dropped by AISG (read by landing_zone_sensor and ingest).",
)
incoming_telemetry = dg.AssetSpec(
    "incoming_telemetry", group_name="governance_stores", kinds={"files"}, owners=[PLATFORM],
    description="AISG_LOGS_DIR and AISG_METRICS_DIR: JSON-lines system logs (snake_case or camelCase WideEvents) and metric samples.",
)
erasure_inbox = dg.AssetSpec(
    "erasure_inbox", group_name="governance_stores", kinds={"files"}, owners=[PRIVACY],
    description="AISG_ERASURE_INBOX: HMAC-signed erasure and access requests written by AISG's /analytics/erase.",
)
EXTERNAL = [landing_zone, incoming_telemetry, erasure_inbox]

_STORES = ["documents", "chunks", "embeddings", "system_logs", "metrics", "landing_zone", "audit_ledger"]
DEPS: dict[str, list[str]] = {
    "documents": ["landing_zone"],
    "system_logs": ["incoming_telemetry"],
    "metrics": ["incoming_telemetry"],
    "orphan_report": ["documents", "chunks", "embeddings", "landing_zone", "audit_ledger"],
    "retention_report": _STORES,
    "erasure_requests": ["erasure_inbox", *_STORES],
    "access_requests": ["erasure_inbox", *_STORES],
    "compliance_report_weekly": ["retention_report", "orphan_report", "erasure_requests", "access_requests", "audit_ledger"],
    "compliance_report_monthly": ["retention_report", "orphan_report", "erasure_requests", "access_requests", "audit_ledger"],
}
OWNERS = {
    "erasure_requests": PRIVACY, "access_requests": PRIVACY, "retention_report": PRIVACY,
    "compliance_report_weekly": PRIVACY, "compliance_report_monthly": PRIVACY,
}
# Bump when what an asset produces changes meaning.
CODE_VERSIONS = {
    "documents": "3", "chunks": "2", "embeddings": "3", "system_logs": "2", "metrics": "1", "orphan_report": "2",
    "retention_report": "2", "erasure_requests": "3", "access_requests": "1",
    "compliance_report_weekly": "2", "compliance_report_monthly": "2",
}


def annotate(spec: dg.AssetSpec) -> dg.AssetSpec:
    name = spec.key.to_user_string()
    existing = {d.asset_key.to_user_string() for d in spec.deps}
    extra = [d for d in DEPS.get(name, []) if d not in existing and d != name]
    if extra:
        spec = spec.merge_attributes(deps=extra)
    if not spec.owners:
        spec = spec.merge_attributes(owners=[OWNERS.get(name, PLATFORM)])
    if spec.code_version is None and name in CODE_VERSIONS:
        spec = spec.replace_attributes(code_version=CODE_VERSIONS[name])
    return spec
