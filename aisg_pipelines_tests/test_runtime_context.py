"""The runtime context (governance/context.py) and the one Dagster resource that builds it."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

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


NUMERIC_SETTINGS = [  # (variable, kind, minimum, maximum): every number a deployment sets in the environment
    ("AISG_MAX_FILE_BYTES", int, 1, None),
    ("AISG_EMBED_BATCH_SIZE", int, 1, 4096),
    ("AISG_LANDING_SETTLE_SECONDS", float, 0, None),
    ("AISG_READER_REFRESH_SECONDS", float, 0, 300),
]


def test_malformed_numbers_are_refused_with_the_variables_name(tmp_path, monkeypatch):
    """A careless deployment: a number that is not one, or out of range, fails where the settings
    are read, naming the variable and the value; blank means the default."""
    import pytest

    from aisg_pipelines.settings import Settings, reader_refresh_seconds

    monkeypatch.setenv("AISG_DATA_DIR", str(tmp_path))
    read = lambda var: reader_refresh_seconds() if var == "AISG_READER_REFRESH_SECONDS" else Settings.from_env()  # noqa: E731
    for var, kind, lo, hi in NUMERIC_SETTINGS:
        bad = ["abc", "12 MB", "nan", "inf", str(lo - 1)] + ([str(hi + 1)] if hi is not None else []) + (["1.5", "1e3"] if kind is int else [])
        for text in bad:
            monkeypatch.setenv(var, text)
            with pytest.raises(ValueError, match=f"^{var} must be a (whole )?number.*got '{re.escape(text)}'$"):
                read(var)
        monkeypatch.setenv(var, " ")
        read(var)  # blank: the default
        monkeypatch.setenv(var, f" {lo + 2} ")
        got = read(var)
        field = {"AISG_MAX_FILE_BYTES": "max_file_bytes", "AISG_EMBED_BATCH_SIZE": "embed_batch_size",
                 "AISG_LANDING_SETTLE_SECONDS": "landing_settle_seconds"}.get(var)
        assert (getattr(got, field) if field else got) == kind(lo + 2)
        monkeypatch.delenv(var)


def test_a_bad_sensor_setting_stops_the_code_location_with_its_name(tmp_path):
    """AISG_MAX_BATCHES_PER_RUN / AISG_SENSOR_INTERVAL_SECONDS are read when the code location loads:
    a typo fails the load (what the webserver shows), not the first sensor tick minutes later."""
    import subprocess
    import sys

    for var, text, why in (("AISG_MAX_BATCHES_PER_RUN", "twenty", "a whole number"), ("AISG_MAX_BATCHES_PER_RUN", "0", "a whole number >= 1 and <= 10000"),
                           ("AISG_SENSOR_INTERVAL_SECONDS", "30s", "a whole number")):
        env = {**os.environ, "AISG_DATA_DIR": str(tmp_path), var: text}
        p = subprocess.run([sys.executable, "-c", "import aisg_pipelines.definitions"], env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode != 0
        assert p.stderr.strip().splitlines()[-1] == f"ValueError: {var} must be {why}, got {text!r}"


@settings(max_examples=300, deadline=None)
@given(text=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12) | st.from_regex(r"\s*-?[0-9]{1,6}(\.[0-9]{1,3})?(e-?[0-9])?\s*", fullmatch=True),
       kind=st.sampled_from([int, float]), lo=st.none() | st.integers(-5, 5), span=st.none() | st.integers(0, 1000))
def test_env_number_returns_a_bounded_number_or_names_the_variable(text, kind, lo, span):
    """For any text: a finite number of the kind within the bounds, equal to what the text says,
    or a ValueError that names the variable; never another exception, never an out-of-range value."""
    import math

    from aisg_pipelines.settings import env_number

    hi = None if span is None or lo is None else lo + span
    name = "AISG_PROPERTY_NUMBER"
    os.environ[name] = text
    try:
        try:
            value = env_number(name, 7, kind=kind, minimum=lo, maximum=hi)
        except ValueError as exc:
            assert str(exc).startswith(f"{name} must be ")
            return
        if not text.strip():
            assert value == 7
            return
        assert isinstance(value, kind) and math.isfinite(value) and value == kind(text.strip())
        assert (lo is None or value >= lo) and (hi is None or value <= hi)
    finally:
        del os.environ[name]
