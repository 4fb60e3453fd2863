"""The Dagster UI in a real headless Chromium (Debian's `chromium`, driven by Playwright with
executable_path; no browser download). One small batch is ingested and embedded through the
real sensors and jobs (in-process, sqlite instance), then `dagster-webserver` serves it and the
test checks the asset graph and a materialised asset's metadata, saving screenshots (to
docs/screenshots/ for the docs with AISG_UPDATE_SCREENSHOTS=1, else to a temp dir)."""

from __future__ import annotations

import os
import tempfile
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import pytest

from .conftest import env_for, fresh_defs

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
# `make test` leaves the tree clean: screenshots go to a temp dir unless
# AISG_UPDATE_SCREENSHOTS=1 asks to refresh the ones in docs/screenshots/.
SHOTS = (REPO / "docs" / "screenshots") if os.environ.get("AISG_UPDATE_SCREENSHOTS") == "1" else (
    Path(tempfile.gettempdir()) / "aisg_screenshots")
CHROMIUM = os.environ.get("AISG_CHROMIUM", "/usr/bin/chromium")
# FIELD_NOTES: flags that let Debian's chromium run headless on these machines
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage",
]
MAX_PNG_BYTES = 500_000

playwright_api = pytest.importorskip("playwright.sync_api", reason="the `playwright` package (test extra) is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing: `apt-get install -y chromium` (.ci/run does it)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def materialised(settings, code_location_env):
    """One batch of 2 uploads, ingested and embedded through the real sensors and jobs."""
    from aisg_pipelines.sample_data import generate_landing_zone
    from aisg_pipelines.local_runner import tick_sensor

    import dagster as dg

    home = code_location_env(settings)
    # no "join the community" dialog over the screenshots
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    generate_landing_zone(
        settings.landing_dir, now=datetime.now(timezone.utc), n_subjects=1, docs_per_subject=2,
        span_days=1, include_bad_inputs=False,
    )
    stamp = time.time()
    for f in settings.landing_dir.rglob("*"):
        os.utime(f, (stamp, stamp))  # one upload day -> one batch
    defs = fresh_defs()
    with dg.DagsterInstance.get() as instance:
        ingest = tick_sensor(defs, instance, "landing_zone_sensor")
        assert len(ingest.launched) == 1 and ingest.all_succeeded
        batch = ingest.launched[0].tags["dagster/partition"]
        # the ingest run embedded its batch under v1 (issue 20): the embed sensor has nothing left
        assert instance.get_materialized_partitions(dg.AssetKey("embeddings")) == {f"{batch}|v1"}
        embed = tick_sensor(defs, instance, "embed_new_batches_sensor")
        assert embed.launched == []
        mat = instance.get_latest_materialization_event(dg.AssetKey("documents")).asset_materialization
        assert mat.metadata["dagster/row_count"].value == 2
    return settings, batch, mat


@pytest.fixture
def webserver(materialised):
    settings, batch, mat = materialised
    port = _free_port()
    env = {**os.environ, **env_for(settings), "DAGSTER_HOME": os.environ["DAGSTER_HOME"], "HF_HUB_OFFLINE": "1"}
    log = settings.data_dir / "webserver.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-webserver"), "-m", "aisg_pipelines.definitions",
             "-h", "127.0.0.1", "-p", str(port)],
            env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError("dagster-webserver exited:\n" + log.read_text()[-3000:])
            try:
                with urllib.request.urlopen(base + "/server_info", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("dagster-webserver did not answer /server_info within 90s:\n" + log.read_text()[-3000:])
            time.sleep(0.5)
        yield base, batch, mat
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the code server child, if it outlived the webserver
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait(10)


def _dismiss_dialogs(page) -> None:
    page.wait_for_load_state("networkidle")
    skip = page.get_by_role("button", name="Skip")
    if skip.count():
        skip.first.click()


def _shot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    page.screenshot(path=str(path), full_page=False)
    if path.stat().st_size > MAX_PNG_BYTES:  # keep commit-worthy: re-take at a smaller scale
        page.set_viewport_size({"width": 1200, "height": 750})
        page.screenshot(path=str(path), full_page=False)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert 10_000 < path.stat().st_size <= MAX_PNG_BYTES, path.stat().st_size
    return path


def test_asset_graph_and_materialised_metadata_in_chromium(webserver):
    base, batch, mat = webserver
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 850})
            page.set_default_timeout(45_000)

            # 1) the global asset graph (Lineage), with the ingest group expanded, shows the assets
            page.goto(base + "/asset-groups/?expanded=global%40global%3Aingest", wait_until="domcontentloaded")
            _dismiss_dialogs(page)
            for name in ("documents", "chunks", "embeddings"):
                page.get_by_text(name, exact=True).first.wait_for(state="visible")
            page.wait_for_timeout(1500)  # let the graph finish its layout animation
            _shot(page, "asset_graph.png")

            # 2) the documents asset's page: the latest materialisation's metadata is visible
            page.goto(base + "/assets/documents?view=events", wait_until="domcontentloaded")
            _dismiss_dialogs(page)
            page.get_by_text("pii_removed_by_type").first.wait_for(state="visible")
            page.get_by_text("dagster/row_count").first.wait_for(state="visible")
            body = page.inner_text("body")
            assert f"Partition {batch} materialized" in body, "the materialised partition is listed"
            assert "files_in_batch" in body and "pii_removed_total" in body
            # the values shown are the materialisation's metadata
            assert f"pii_removed_total\n\t\n{mat.metadata['pii_removed_total'].value}" in body
            page.wait_for_timeout(500)
            _shot(page, "asset_metadata.png")
        finally:
            browser.close()
