"""The page in a real headless Chromium (Debian's chromium + chromedriver, driven by selenium) on a live run.

`.ci/run` installs chromium and chromium-driver; without them this test skips. The screenshot it takes is saved
as `test-artifacts/web_page.png` (FUME_EDGE_TEST_ARTIFACTS overrides the folder).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Iterator

import pytest

from fume_edge.alerts.store import AlertStore
from fume_edge.alerts.summary import SummaryRow, record_summary
from fume_edge.labels import PH_CLASS_NAMES
from web_support import ARTIFACTS, WebRun

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                                reason="needs Debian's chromium and chromium-driver (apt; .ci/run installs them)")

# Full-size synthetic cameras on the bundled model: healthy for 25 s (the page loads meanwhile), then acidotic,
# which starts `acidosis_risk` a few seconds later, while the page is open.
HEALTHY_THEN_ACIDOTIC = """
sources:
  synthetic:
    segments: [{ph: 6.4, seconds: 25.0}, {ph: 5.2, seconds: 300.0}]
    outage: null
"""

# Counts the overlay's tinted pixels of an <img> (the camera frames are grayscale: any colour is the overlay).
COUNT_TINT = """
const img = document.getElementById(arguments[0]);
if (!img.complete || !img.naturalWidth) return null;
const c = document.createElement("canvas"); c.width = img.naturalWidth; c.height = img.naturalHeight;
const g = c.getContext("2d"); g.drawImage(img, 0, 0);
const d = g.getImageData(0, 0, c.width, c.height).data;
let gas = 0, tube = 0;
for (let i = 0; i < d.length; i += 4) {
  if (d[i] - d[i + 2] > 60) gas++;          // orange-red: gas
  else if (d[i + 2] - d[i] > 60) tube++;    // light blue: tube
}
return {gas: gas, tube: tube, width: c.width, height: c.height};
"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=430,2400"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _seed_earlier_hour(db: Path) -> None:
    """Trend rows as an earlier run on this device left them (the trend reads the database, not this run)."""
    now = time.time()
    with AlertStore(db) as store:
        for i in range(60):
            acid = min(1.0, max(0.0, (i - 20) / 25))
            record_summary(store, SummaryRow(
                minute=now - now % 60 - (70 - i) * 60, device_id="barn-1", subject="cow-7", frames=600, degraded=0,
                probs={"Healthy": 0.95 - 0.9 * acid, "Transitional": 0.04, "Acidotic": 0.01 + 0.9 * acid},
                gas_areas={"co2": 0.15 + 0.03 * acid, "ch4": 0.002 + 0.01 * acid}))


def _wait(what: str, condition, timeout: float):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_page_shows_cameras_ph_and_an_alert_that_starts_while_it_is_open(tmp_path: Path, browser) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    db = tmp_path / "run" / "alerts.db"
    db.parent.mkdir()
    _seed_earlier_hour(db)
    run = WebRun(tmp_path / "run", "--duration", "300", yaml=HEALTHY_THEN_ACIDOTIC).wait_ready()
    try:
        browser.get(run.url + "/")
        browser.execute_script("window.__sameDocument = true;")  # survives only as long as no reload happens
        by_id = lambda name: browser.find_element(By.ID, name)  # noqa: E731
        _wait("the pH class", lambda: by_id("ph-class").text in PH_CLASS_NAMES, 60)
        tint = {cam: _wait(f"the {cam} image", lambda cam=cam: browser.execute_script(COUNT_TINT, f"frame-{cam}"), 60)
                for cam in ("co2", "ch4")}
        for cam, counts in tint.items():
            assert (counts["width"], counts["height"]) == (320, 240), cam  # run.yaml http.frame_width
            assert counts["gas"] + counts["tube"] > 0.005 * 320 * 240, (cam, counts)  # the mask overlay is drawn
        assert run.get("/api/status").json()["open_alerts"] == [], "the alert must start after the page loaded"
        assert by_id("open-alerts").text == "none"

        _wait("acidosis_risk on the page", lambda: "acidosis_risk" in by_id("open-alerts").text, 150)
        assert browser.execute_script("return window.__sameDocument === true;"), "the page was reloaded"
        _wait("the alert in the history table", lambda: "acidosis_risk" in by_id("history").text, 30)
        assert by_id("ph-class").text == "Acidotic"
        assert len(browser.find_elements(By.CSS_SELECTOR, "#trend polyline")) == 5  # 3 pH classes + 2 gases
        _wait("fresh camera images", lambda: browser.execute_script(COUNT_TINT, "frame-ch4"), 10)
        time.sleep(1.0)  # let the next image refresh land before the picture
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(ARTIFACTS / "web_page.png"))
    finally:
        run.stop()
