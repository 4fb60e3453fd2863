"""The connected governance lineage in the Dagster UI (issue 13), in headless Chromium:
external stores -> ingest -> governance assets -> compliance reports, all groups expanded.
Saves docs/screenshots/governance_lineage.png. No data is needed: the graph is the definitions'."""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import env_for
from .test_browser import CHROMIUM, CHROMIUM_ARGS, _dismiss_dialogs, _free_port, _shot, playwright_api

pytestmark = pytest.mark.integration

GROUPS = ("governance_stores", "ingest", "telemetry", "governance", "retention", "erasure", "compliance")


def test_governance_lineage_is_connected_in_the_ui(settings, code_location_env):
    home = code_location_env(settings)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    port = _free_port()
    env = {**os.environ, **env_for(settings), "DAGSTER_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    log = settings.data_dir / "webserver.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "dagster-webserver"), "-m", "aisg_pipelines.definitions", "-h", "127.0.0.1",
                                 "-p", str(port)], env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(base + "/server_info", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        expanded = ",".join(f"global%40global%3A{g}" for g in GROUPS)
        with playwright_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                page.set_default_timeout(45_000)
                page.goto(base + f"/asset-groups/?expanded={expanded}", wait_until="domcontentloaded")
                _dismiss_dialogs(page)
                page.get_by_text("landing_zone", exact=True).first.wait_for(state="visible")
                page.wait_for_timeout(1500)  # the layout animation
                # the graph virtualises what is off screen: zoom out until every node is drawn
                page.get_by_role("button", name="Hide navigation").first.click()
                for _ in range(4):  # the zoom-out button under the zoom slider
                    page.mouse.click(1572, 851)
                    page.wait_for_timeout(400)
                page.wait_for_timeout(1000)
                body = page.content()
                for name in ("landing_zone", "erasure_inbox", "audit_ledger", "orphan_report", "retention_report", "erasure_requests",
                             "incoming_telemetry"):  # long names are shortened in the graph (complianc…_weekly)
                    assert name in body, name
                _shot(page, "governance_lineage.png")
            finally:
                browser.close()
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.wait(20)
                break
            except subprocess.TimeoutExpired:
                pass
