"""embed_version commands: `aisg versions list|register`, `aisg reindex`, `aisg rollback`, `aisg search`."""

from __future__ import annotations

import json
import sys

import click

from ..governance.context import Governance


def _open(s: Governance):
    return s.store, s.ledger


@click.group(help="The embed_version registry (declared in embed_versions.yaml or $AISG_EMBED_VERSIONS_FILE).")
def versions() -> None:
    pass


@versions.command("list", help="Every registered version with its status, transitions and row count.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def versions_list(as_json: bool) -> None:
    from ..governance.versions import VersionRegistry

    store, ledger = _open(Governance.from_env())
    rows = []
    for v in VersionRegistry(ledger).all():
        rows.append({
            "name": v.name, "status": v.status, "model": v.model_name, "dims": v.dims, "max_seq_length": v.max_seq_length,
            "normalize": v.normalize, "chunk_size": v.chunk_size, "chunk_overlap": v.chunk_overlap, "backend": v.backend, "quantization": v.quantization,
            "fingerprint": v.weights_fingerprint[:12], "vectors": store.count(v.table), "registered_at": v.registered_at,
            "building_at": v.building_at, "validated_at": v.validated_at, "activated_at": v.activated_at, "retired_at": v.retired_at,
        })
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no embed_version registered yet (the first ingest registers v1)")
        return
    click.echo(f"{'name':<8} {'status':<10} {'vectors':>8} {'dims':>5} {'seq':>5} {'chunker':<9} {'fingerprint':<13} model")
    for r in rows:
        click.echo(f"{r['name']:<8} {r['status']:<10} {r['vectors']:>8} {r['dims']:>5} {r['max_seq_length']:>5} "
                   f"{str(r['chunk_size']) + '/' + str(r['chunk_overlap']):<9} {r['fingerprint']:<13} {r['model']}"
                   + (f" [{r['backend']}]" if r["backend"] != "torch" else ""))


def _spec_options(f):
    for opt in reversed([
        click.option("--model-path", default=None, help="Local sentence-transformers directory ('bundled' = all-MiniLM-L6-v2)."),
        click.option("--max-seq-length", type=int, default=None),
        click.option("--normalize/--no-normalize", default=None),
        click.option("--chunk-size", type=int, default=None),
        click.option("--chunk-overlap", type=int, default=None),
        click.option("--backend", type=click.Choice(["torch", "onnx", "onnx-int8"]), default=None,
                     help="Runtime: torch (sentence-transformers), onnx (fp32, same vectors), onnx-int8 (quantized, parity-gated)."),
    ]):
        f = opt(f)
    return f


@versions.command("register", help="Register NAME (from embed_versions.yaml, overridden by options); refuses a changed meaning.")
@click.argument("name")
@_spec_options
def versions_register(name, model_path, max_seq_length, normalize, chunk_size, chunk_overlap, backend) -> None:
    from ..local_runner import open_instance
    from ..governance.reindex import register_version, resolve_spec
    from ..governance.versions import VersionConflict, VersionRegistry

    s = Governance.from_env()
    _, ledger = _open(s)
    registry = VersionRegistry(ledger)
    overrides = dict(model_path=model_path, max_seq_length=max_seq_length, normalize=normalize, chunk_size=chunk_size, chunk_overlap=chunk_overlap, backend=backend)
    try:
        spec = resolve_spec(name, overrides, registry=registry)
        instance = open_instance(s)
        v, created = register_version(registry, spec, lambda n: _add_version_key(instance, n))
    except (VersionConflict, KeyError, ValueError) as exc:
        click.echo(f"refused: {exc}", err=True)
        sys.exit(1)
    click.echo(f"{'registered' if created else 'already registered'}: {v.name} ({v.model_name}, {v.dims} dims, max_seq_length {v.max_seq_length}"
               + (f", backend {v.backend}" if v.backend != "torch" else "") + f") status {v.status}")


def _add_version_key(instance, name: str) -> None:
    from ..defs.embeddings.reindex import ensure_partition_keys

    ensure_partition_keys(instance, "embed_versions", [name])


@click.command(help="Re-embed every chunk under --version, validate it, and activate it (runs the reindex_all job in this process).")
@click.option("--version", "version", required=True, help="Target embed_version name (declared in embed_versions.yaml or given by options).")
@click.option("--no-activate", is_flag=True, help="Stop after validation (status validated).")
@_spec_options
def reindex(version, no_activate, model_path, max_seq_length, normalize, chunk_size, chunk_overlap, backend) -> None:
    from ..definitions import defs
    from ..local_runner import open_instance
    from ..local_runner import run_job

    cfg = {"version": version, "activate": not no_activate}
    for k, v in dict(model_path=model_path, max_seq_length=max_seq_length, normalize=normalize, chunk_size=chunk_size, chunk_overlap=chunk_overlap, backend=backend).items():
        if v is not None:
            cfg[k] = v
    s = Governance.from_env()
    result = run_job(defs, open_instance(s), "reindex_all", run_config={"ops": {"reindex_all_op": {"config": cfg}}}, raise_on_error=False)
    if not result.success:
        for ev in result.all_events:
            if ev.is_failure and ev.event_specific_data is not None and getattr(ev.event_specific_data, "error", None):
                click.echo(f"reindex {version} FAILED: {ev.event_specific_data.error.message.strip()}", err=True)
                break
        sys.exit(1)
    out = result.output_for_node("reindex_all_op")
    click.echo(
        f"{out['version']}: {out['embedded']} chunks embedded, {out['skipped']} already present, {out['batches']} batches, "
        f"{out['embedded_per_second']} chunks/s; validation passed (self top-1 {out['validation']['self_top1']:.1%}"
        + (f", parity recall@10 {out['validation']['parity']['recall_at_10']:.3f} vs {out['validation']['parity']['reference']}" if out["validation"].get("parity") else "")
        + f"); status {out['status']}"
        + (f" (previous active: {out['previous_active']})" if out["activated"] else "")
    )


@click.command(help="Re-activate the previously active embed_version (runs the rollback_embed_version job).")
@click.option("--to", "to_version", default="", help="Version to re-activate (default: the one active before the current).")
def rollback(to_version: str) -> None:
    from ..definitions import defs
    from ..local_runner import open_instance
    from ..local_runner import run_job

    result = run_job(defs, open_instance(Governance.from_env()), "rollback_embed_version",
                     run_config={"ops": {"rollback_embed_version_op": {"config": {"to_version": to_version}}}}, raise_on_error=False)
    if not result.success:
        click.echo("rollback FAILED; see the run in the Dagster UI (make dev)", err=True)
        sys.exit(1)
    out = result.output_for_node("rollback_embed_version_op")
    click.echo(f"active embed_version: {out['version']} (was {out['previous']}); {out['embedded']} chunks caught up")


@click.command(help="Nearest chunks to QUERY in the active embed_version (or --version).")
@click.argument("query")
@click.option("--version", "version", default=None, help="Search this version's table instead of the active one.")
@click.option("-k", default=5, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def search(query: str, version: str | None, k: int, as_json: bool) -> None:
    if version is None:
        # The active version through the reader API AISG's retriever uses (aisg_pipelines.serving).
        from ..serving import Retriever

        try:
            answer = Retriever.from_env().search(query, k)
        except LookupError as exc:
            click.echo(str(exc), err=True)
            sys.exit(1)
        hits = [{"chunk_id": h.chunk_id, "doc_id": h.doc_id, "distance": h.distance, "text": h.text,
                 "embed_version": answer.version} for h in answer.hits]
        label = f"embed_version {answer.version} (active; encoder {answer.encoder})"
    else:
        from ..governance.pipeline import search as do_search
        from ..governance.versions import VersionRegistry

        store, ledger = _open(Governance.from_env())
        v = VersionRegistry(ledger).require(version)
        hits = do_search(store, v, query, k)
        label = f"embed_version {v.name} ({v.status})"
    if as_json:
        click.echo(json.dumps(hits, ensure_ascii=False, indent=2))
        return
    click.echo(f"{label}, {len(hits)} hits")
    for h in hits:
        click.echo(f"  {h['distance']:.4f}  {h['doc_id']}  {h['chunk_id'][:12]}  {h['text'][:100]!r}")


# The commands this module adds to `aisg` (cli.py registers them with main.add_command).
COMMANDS = (versions, reindex, rollback, search)
