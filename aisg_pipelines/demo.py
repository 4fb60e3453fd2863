"""`aisg demo` (what `make demo` runs): seed a landing zone and drive every job end to end.

Each governance area adds one step function to DEMO_STEPS. Steps run in order against
the same Dagster instance (DAGSTER_HOME under ./var), so `make dev` shows the same runs.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg

from .settings import Settings


@dataclass
class DemoContext:
    settings: Settings
    instance: dg.DagsterInstance
    defs: dg.Definitions
    now: datetime
    manifest: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)


def open_instance(settings: Settings) -> dg.DagsterInstance:
    from .local_runner import ensure_dagster_home

    ensure_dagster_home(settings.data_dir)
    return dg.DagsterInstance.get()


def ingest_pending(defs: dg.Definitions, instance: dg.DagsterInstance) -> dict:
    """One landing-sensor tick, then one embed-sensor tick, each run executed in-process."""
    from .local_runner import tick_sensor

    ingest = tick_sensor(defs, instance, "landing_zone_sensor")
    embed = tick_sensor(defs, instance, "embed_new_batches_sensor")
    failed = [r.run_id for r in ingest.launched + embed.launched if not r.is_success]
    return {"batches": len(ingest.launched), "embedded": len(embed.launched), "failed": len(failed), "failed_runs": failed}


def _heading(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)))


def step_ingest(ctx: DemoContext) -> None:
    from .governance.sample_data import generate_landing_zone
    from .governance.store import CHUNKS, DOCUMENTS, LanceStore

    s = ctx.settings
    _heading("1. Ingest: landing zone -> documents -> chunks -> embeddings")
    if not any(s.landing_dir.rglob("*")) and not (s.data_dir / "lancedb").exists():
        ctx.manifest = generate_landing_zone(s.landing_dir, now=ctx.now, max_file_bytes=s.max_file_bytes)
        (s.data_dir / "sample_manifest.json").write_text(json.dumps(ctx.manifest, indent=2, default=str))
        print(f"seeded {len(ctx.manifest['documents'])} uploads and {len(ctx.manifest['bad_inputs'])} bad inputs into {s.landing_dir}")
    elif (s.data_dir / "sample_manifest.json").exists():
        ctx.manifest = json.loads((s.data_dir / "sample_manifest.json").read_text())
    t0 = time.perf_counter()
    res = ingest_pending(ctx.defs, ctx.instance)
    print(f"runs: {res['batches']} ingest, {res['embedded']} embed, {res['failed']} failed ({time.perf_counter() - t0:.1f}s)")
    if res["failed"]:
        raise SystemExit(f"demo: {res['failed']} runs failed: {res['failed_runs']}; see `make dev` -> Runs")

    store = LanceStore(s.lancedb_uri, s.lancedb_storage_options)
    pii = Counter()
    for row in store.scan(DOCUMENTS, ["pii_counts"]).to_pylist():
        pii.update(json.loads(row["pii_counts"]))
    quarantined = Counter()
    for reason in s.quarantine_dir.rglob("*.reason.txt"):
        quarantined[reason.read_text(encoding="utf-8").splitlines()[0].removeprefix("reason: ")] += 1
    print(f"documents:  {store.count(DOCUMENTS)}")
    print(f"chunks:     {store.count(CHUNKS)}")
    for version, table in sorted(store.embedding_tables().items()):
        print(f"embeddings: {store.count(table)} in {version} ({table})")
    print("PII entities removed by type:")
    for k, v in sorted(pii.items()):
        print(f"  {k:<20} {v}")
    print(f"files quarantined: {sum(quarantined.values())} " + json.dumps(dict(sorted(quarantined.items()))))
    print("stored in:")
    print(f"  LanceDB          {s.lancedb_uri}")
    print(f"  ledger           {s.ledger_url}")
    print(f"  landing zone     {s.landing_dir}")
    print(f"  quarantine       {s.quarantine_dir}")
    print(f"  Dagster instance {ctx.instance.root_directory}")


DEMO_STEPS: list[Callable[[DemoContext], None]] = [step_ingest]


def run_demo(settings: Settings, *, fresh: bool = False) -> int:
    if fresh and settings.data_dir.exists():
        shutil.rmtree(settings.data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    from .definitions import defs

    ctx = DemoContext(settings=settings, instance=open_instance(settings), defs=defs, now=datetime.now(timezone.utc))
    for step in DEMO_STEPS:
        step(ctx)
    print("\nOpen the Dagster UI on the same data with: make dev")
    return 0
