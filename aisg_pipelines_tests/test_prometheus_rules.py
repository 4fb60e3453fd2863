"""deploy/prometheus/alerts.yml: checked and unit-tested with promtool (issue 13), and the
operations textfile it reads, written with prometheus_client.

promtool comes from Debian's `prometheus` package (.ci/run installs it); the promtool tests
are skipped with that reason only where it cannot be found.
"""

import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

RULES_DIR = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus; .ci/run does it)")


@needs_promtool
def test_promtool_check_rules():
    out = subprocess.run([PROMTOOL, "check", "rules", "alerts.yml"], cwd=RULES_DIR, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 10 rules found" in out.stdout + out.stderr


@needs_promtool
def test_promtool_test_rules():
    out = subprocess.run([PROMTOOL, "test", "rules", "alerts_test.yml"], cwd=RULES_DIR, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout + out.stderr


def test_every_operations_gauge_has_a_rule():
    import yaml

    rules = yaml.safe_load((RULES_DIR / "alerts.yml").read_text())["groups"][0]["rules"]
    exprs = " ".join(r["expr"] for r in rules)
    for metric in ("aisg_erasure_sla_breaches", "aisg_erasure_failed_requests", "aisg_job_last_success_age_seconds", "aisg_ledger_chain_ok",
                   "aisg_pii_entities_scrubbed_total", "aisg_quarantined_files", "aisg_operations_gauges_timestamp_seconds"):
        assert metric in exprs, metric


def test_operations_textfile(settings):
    from prometheus_client.parser import text_string_to_metric_families

    from aisg_pipelines.governance.erasure import intake, parse_request, record_rejection
    from aisg_pipelines.governance.ledger import Ledger
    from aisg_pipelines.governance.metrics import write_textfile

    led = Ledger(settings.ledger_url)
    now = datetime.now(timezone.utc)
    req = parse_request({"request_id": "er-late", "subject_id": "subj-1", "requested_by": "dpo", "requested_at": (now - timedelta(days=35)).isoformat()},
                        source="inbox")
    intake(settings, led, req)
    record_rejection(led, "rej-1", "bad_signature", "no signature", source="inbox")
    led.append_event("ingest.documents", {"batch_id": "b1", "pii_removed": {"EMAIL_ADDRESS": 3, "KR_RRN": 2}})
    led.append_event("ingest.documents", {"batch_id": "b2", "pii_removed": {"EMAIL_ADDRESS": 1}})
    q = settings.quarantine_dir / "b1"
    q.mkdir(parents=True)
    (q / "a.txt.reason.txt").write_text("reason: too_large\nexplanation: x\n")
    (q / "b.txt.reason.txt").write_text("reason: too_large\n")
    (q / "c.bin.reason.txt").write_text("reason: unsupported_type\n")
    path = write_textfile(settings, now=now, last_success={"retention": now.timestamp() - 100, "governance_health": None})
    assert path.name == "aisg_operations.prom" and path.parent == settings.exports_dir / "metrics"
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(path.read_text()) for s in f.samples}
    assert samples[("aisg_erasure_sla_breaches", ())] == 1
    assert samples[("aisg_erasure_failed_requests", (("kind", "rejected"),))] == 1
    assert samples[("aisg_erasure_failed_requests", (("kind", "failed"),))] == 0
    assert samples[("aisg_ledger_chain_ok", ())] == 1
    assert samples[("aisg_pii_entities_scrubbed_total", (("entity_type", "EMAIL_ADDRESS"),))] == 4
    assert samples[("aisg_pii_entities_scrubbed_total", (("entity_type", "KR_RRN"),))] == 2
    assert samples[("aisg_quarantined_files", (("reason", "too_large"),))] == 2
    assert samples[("aisg_quarantined_files", (("reason", "unsupported_type"),))] == 1
    assert 99 <= samples[("aisg_job_last_success_age_seconds", (("job", "retention"),))] <= 101
    assert samples[("aisg_job_last_success_age_seconds", (("job", "governance_health"),))] == -1


def test_refresh_sensor_writes_both_textfiles(settings, code_location_env):
    import dagster as dg

    from .conftest import fresh_defs

    code_location_env(settings)
    defs = fresh_defs()
    sensor = defs.get_repository_def().get_sensor_def("prometheus_textfile_refresh")
    assert sensor.minimum_interval_seconds <= 300
    with dg.instance_for_test() as instance:
        ctx = dg.build_sensor_context(instance=instance, sensor_name=sensor.name, definitions=defs, resources=dict(defs.resources))
        res = sensor.evaluate_tick(ctx)
    assert not res.run_requests
    d = settings.exports_dir / "metrics"
    assert (d / "aisg_governance.prom").exists() and "aisg_job_last_success_age_seconds{job=\"retention\"} -1.0" in (d / "aisg_operations.prom").read_text()
