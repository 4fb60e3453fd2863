"""The access_export job (its asset is in assets.py). Kept apart so that the erasure inbox sensor,
which launches it, imports no other part of this area."""

import dagster as dg

ACCESS_REQUESTS_TAG = "aisg/access_requests"

access_export_job = dg.define_asset_job(
    "access_export",
    selection=dg.AssetSelection.assets("access_requests"),
    description="Export pending GDPR access requests: discover (erasure's code), sign, render HTML/PDF in en and ko.",
    tags={"aisg/job": "access_export"},
)
