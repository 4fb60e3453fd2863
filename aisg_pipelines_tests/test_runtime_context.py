"""The runtime context (governance/context.py) and the one Dagster resource that builds it."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from aisg_pipelines.governance.context import Governance, age_days, as_governance, open_request_ages


def test_store_ledger_and_salt_open_once(settings):
    gov = Governance(settings)
    assert gov.store is gov.store and gov.ledger is gov.ledger
    assert gov.salt == gov.salt and len(gov.salt) == 32
    assert (settings.secrets_dir / "subject_hash_salt").exists()
    # a Governance answers every Settings attribute, and as_governance keeps a context as it is
    assert gov.landing_dir == settings.landing_dir and gov.ledger_url == settings.ledger_url
    assert as_governance(gov) is gov and as_governance(settings).settings is settings


def test_key_paths_resolved_in_one_place(settings, tmp_path, monkeypatch):
    monkeypatch.delenv("AISG_SIGNING_KEY_FILE", raising=False)
    monkeypatch.delenv("AISG_SIGNING_PUBLIC_KEY_FILE", raising=False)
    gov = Governance(settings)
    assert gov.signing_key_path == settings.secrets_dir / "erasure_signing_key.pem"
    assert gov.public_key_path == Path(str(settings.secrets_dir / "erasure_signing_key.pem") + ".pub.pem")
    monkeypatch.setenv("AISG_SIGNING_KEY_FILE", str(tmp_path / "prod.pem"))
    assert gov.public_key_path == tmp_path / "prod.pem.pub.pem"
    monkeypatch.setenv("AISG_SIGNING_PUBLIC_KEY_FILE", str(tmp_path / "pub.pem"))
    assert gov.public_key_path == tmp_path / "pub.pem"
    from aisg_pipelines.commands.erasure_cli import default_public_key
    from aisg_pipelines.governance.checkpoints import default_public_key_path
    from aisg_pipelines.governance.reports import signing_public_key_path

    assert default_public_key(gov) == default_public_key_path(settings) == signing_public_key_path(settings) == tmp_path / "pub.pem"


def test_request_ages():
    now = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
    rows = [{"status": "received", "requested_at": "2026-11-10T12:00:00+00:00"},
            {"status": "certified", "requested_at": "2026-10-01T00:00:00+00:00"},
            {"status": "in_progress", "requested_at": "2026-11-19T00:00:00Z"}]
    assert open_request_ages(now, rows, ("received", "in_progress")) == [10 * 86400.0, 36 * 3600.0]
    assert age_days(now, "2026-11-10T12:00:00") == 10.0 and age_days(now, None) is None


def test_one_governance_resource_for_every_definition(settings):
    from aisg_pipelines.defs.resources import GovernanceResource, build_resources

    res = GovernanceResource.for_settings(replace(settings, lancedb_storage_options={"region": "x"}))
    assert res.to_settings() == replace(settings, lancedb_storage_options={"region": "x"})
    assert set(build_resources(settings)) == {"governance", "embedding_model", "pii"}
    from aisg_pipelines.definitions import defs

    repo = defs.get_repository_def()
    keys = set()
    for a in repo.assets_defs_by_key.values():
        keys |= set(a.required_resource_keys)
    for c in repo.asset_checks_defs_by_key.values():
        keys |= set(c.required_resource_keys)
    for s in repo.sensor_defs:
        keys |= set(s.required_resource_keys)
    for j in repo.get_all_jobs():
        for node in j.graph.iterate_op_defs():
            keys |= set(node.required_resource_keys)
    assert keys <= {"governance", "embedding_model", "pii", "erasure_clock", "io_manager"}, keys
    assert "governance" in keys


def test_malformed_storage_options_are_refused_with_the_variables_name(tmp_path, monkeypatch):
    """A careless deployment: a typo in AISG_LANCEDB_STORAGE_OPTIONS fails at start-up, naming the
    variable, from the environment and from the Dagster resource's field alike."""
    import pytest

    from aisg_pipelines.defs.resources import GovernanceResource

    monkeypatch.setenv("AISG_DATA_DIR", str(tmp_path))
    for text, why in (("{region: us-east-1}", "is not valid JSON"), ('["us-east-1"]', "must be a JSON object, got list")):
        monkeypatch.setenv("AISG_LANCEDB_STORAGE_OPTIONS", text)
        with pytest.raises(ValueError, match=f"AISG_LANCEDB_STORAGE_OPTIONS {why}"):
            Governance.from_env()
    monkeypatch.setenv("AISG_LANCEDB_STORAGE_OPTIONS", '{"region": "us-east-1"}')
    assert Governance.from_env().settings.lancedb_storage_options == {"region": "us-east-1"}
    resource = GovernanceResource(**{f: str(tmp_path) for f in ("data_dir", "lancedb_uri", "landing_dir", "quarantine_dir",
                                                             "logs_dir", "metrics_dir", "exports_dir", "erasure_inbox", "secrets_dir")},
                                  ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}", lancedb_storage_options="{oops")
    with pytest.raises(ValueError, match="AISG_LANCEDB_STORAGE_OPTIONS is not valid JSON"):
        resource.to_settings()
