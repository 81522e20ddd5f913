"""The web UI in a real browser: Debian's headless chromium, driven by selenium, against ``actorflow ui``.

The UI runs as a user runs it, a child process (``actorflow ui --dsn sqlite:///... --app
tests.ui.flow:workflow --port 0``); the test seeds the SQLite file through the workflow
and checks each change in the store. Screenshots of each page go to
``test-artifacts/ui/`` (``ACTORFLOW_ARTIFACTS`` moves it), where CI keeps them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the web UI needs the ui extra")
pytest.importorskip("selenium", reason="the browser tests need selenium (the dev extra)")

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

import actorflow as af
from tests.model import Order
from tests.services import unavailable
from tests.ui import flow

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("ACTORFLOW_ARTIFACTS", ROOT / "test-artifacts")) / "ui"
CHROMIUM, DRIVER = (
    shutil.which("chromium") or "/usr/bin/chromium",
    shutil.which("chromedriver") or "/usr/bin/chromedriver",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        unavailable(
            "Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,900",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "ui.db"


@pytest.fixture
def wf(db: Path, opened) -> af.Workflow[Any, Any]:
    wf = flow.build(str(db))
    for adapter in (wf.event_streamer, wf.record_store, wf.timeout_store):
        opened(adapter)
    return wf


@pytest.fixture
def ui_url(db: Path, wf) -> Iterator[str]:
    """``actorflow ui`` over the file, with the workflow's code, in a child process: its URL."""
    wf.trigger("seed", Order(id="seed"))  # the file exists before the UI opens it
    env = {**os.environ, "ACTORFLOW_UI_TEST_DB": str(db)}
    command = [sys.executable, "-m", "actorflow.cli", "ui", "--dsn", f"sqlite:///{db}", "--port", "0"]
    proc = subprocess.Popen(
        [*command, "--app", "tests.ui.flow:workflow"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("actorflow ui on http://127.0.0.1:"), line + (proc.stderr.read() if proc.stderr else "")
        yield line.split(" on ", 1)[1].strip()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=20)
        finally:
            proc.kill()
    assert proc.returncode == 0, err


def _shot(driver: webdriver.Chrome, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def _rows(driver: webdriver.Chrome) -> list[str]:
    """The run ids of the table's rows, read in one go (the live refresh may replace the table meanwhile)."""
    script = "return Array.from(document.querySelectorAll('tr[data-run-id]')).map(r => r.dataset.runId)"
    return list(driver.execute_script(script))


def _wait(driver: webdriver.Chrome, condition: Any, what: str) -> None:
    """Until ``condition(driver)``; an element missing, or gone with the page being replaced, is looked for again."""
    ignored = (NoSuchElementException, StaleElementReferenceException)  # a form posted: the next page is loading
    WebDriverWait(driver, 10, poll_frequency=0.05, ignored_exceptions=ignored).until(
        condition, message=f"waiting for {what}"
    )


def test_a_user_filters_opens_a_run_pauses_resumes_and_bulk_cancels(browser, ui_url, wf):
    store = wf.record_store
    orders = [wf.trigger(f"o-{i}", Order(id=f"o-{i}")) for i in range(4)]
    held = wf.trigger("big-0", Order(id="big-0", amount=5000))
    wf.pause(held, "large order: review it")
    bulk = [wf.trigger(f"bulk-{i}", Order(id=f"bulk-{i}")) for i in range(3)]
    for run_id in bulk:
        wf.pause(run_id, "duplicate?")

    # The list: every run, newest first.
    browser.get(ui_url)
    assert browser.title == "Runs · actorflow"
    assert _rows(browser)[:3] == bulk[::-1]
    assert len(_rows(browser)) == 9
    _shot(browser, "01-runs")

    # Filter by run state: only the paused runs remain.
    Select(browser.find_element(By.NAME, "run_state")).select_by_value("paused")
    browser.find_element(By.ID, "apply-filter").click()
    _wait(browser, lambda d: len(_rows(d)) == 4, "the paused runs only")
    assert set(_rows(browser)) == {held, *bulk}
    _shot(browser, "02-filtered")

    # Open the held run; resume it, then pause it again with a reason.
    browser.find_element(By.CSS_SELECTOR, f'tr[data-run-id="{held}"] a').click()
    _wait(browser, lambda d: d.find_element(By.ID, "run-id").text == held, "the run's page")
    assert browser.find_element(By.ID, "run-state").text == "Paused"
    assert "large order" in browser.find_element(By.ID, "reason").text
    assert '"amount": 5000' in browser.find_element(By.ID, "object").text
    _shot(browser, "03-run")
    browser.find_element(By.ID, "do-resume").click()
    _wait(browser, lambda d: d.find_element(By.ID, "run-state").text == "Running", "the run resumed")
    assert browser.find_element(By.ID, "done").text == "resumed."
    assert store.lookup(held).run_state is af.RunState.RUNNING
    browser.find_element(By.ID, "reason-pause").send_keys("call the customer")
    browser.find_element(By.ID, "do-pause").click()
    _wait(browser, lambda d: d.find_element(By.ID, "run-state").text == "Paused", "the run paused")
    assert store.lookup(held).meta.run_state_reason == "call the customer"
    timeline = browser.find_element(By.ID, "timeline").text
    assert "Running" in timeline
    assert "call the customer" in timeline

    # Bulk: cancel every paused run whose foreign id starts with bulk-, after a confirmation naming 3.
    browser.get(f"{ui_url}?run_state=paused&foreign_id=bulk-")
    assert set(_rows(browser)) == set(bulk)
    Select(browser.find_element(By.ID, "bulk-action")).select_by_value("cancel")
    browser.find_element(By.ID, "bulk-reason").send_keys("duplicates")
    browser.find_element(By.ID, "bulk-submit").click()
    _wait(browser, lambda d: d.find_elements(By.ID, "confirm-count"), "the confirmation")
    assert "This will cancel 3 runs" in browser.find_element(By.ID, "confirm-count").text
    assert {store.lookup(r).run_state for r in bulk} == {af.RunState.PAUSED}  # nothing before the confirmation
    _shot(browser, "04-confirm")
    browser.find_element(By.ID, "confirm").click()
    _wait(browser, lambda d: d.find_elements(By.ID, "bulk-outcome"), "the outcome")
    assert browser.find_element(By.ID, "bulk-outcome").text.startswith("3 cancelled; 0 refused")
    assert {store.lookup(r).run_state for r in bulk} == {af.RunState.CANCELLED}
    assert store.lookup(held).run_state is af.RunState.PAUSED
    assert {store.lookup(r).run_state for r in orders} == {af.RunState.INITIATED}


def test_the_diagram_shows_the_graph_with_live_counts_and_the_list_refreshes_itself(browser, ui_url, wf):
    for i in range(3):
        wf.trigger(f"d-{i}", Order(id=f"d-{i}"))
    browser.get(f"{ui_url}workflows")
    boxes = browser.find_elements(By.CSS_SELECTOR, "svg.diagram g.status")
    assert len(boxes) == 6
    started = browser.find_element(By.CSS_SELECTOR, 'svg.diagram g.status[data-status="1"]')
    assert "4 unfinished" in started.text  # the seed run and three more
    assert browser.find_element(By.CSS_SELECTOR, "svg.diagram").size["width"] > 300
    _shot(browser, "05-workflows")

    # Live: a run triggered elsewhere appears without a reload (the page's own script, under its CSP).
    browser.get(f"{ui_url}?live=1")
    before = _rows(browser)
    marker = browser.find_element(By.ID, "runs-live")
    new = wf.trigger("live-1", Order(id="live-1"))
    _wait(browser, lambda d: new in _rows(d), "the new run to appear")
    assert _rows(browser)[0] == new
    assert len(_rows(browser)) == len(before) + 1
    assert marker.is_displayed()  # the same page: refreshed in place
    logs = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert logs == []  # nothing refused by the Content-Security-Policy, no script error
    _shot(browser, "06-live")
