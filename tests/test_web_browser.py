"""The page in a real headless Chromium (Debian's chromium + chromedriver, driven by selenium) on a live run.

`.ci/run` installs chromium and chromium-driver; without them this test skips. The screenshots it takes are saved
as `test-artifacts/web_page.png` (1280 px) and `web_page_412.png` (a phone); FUME_EDGE_TEST_ARTIFACTS overrides
the folder.
"""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path
from collections.abc import Iterator

import pytest

from fume_edge.alerts.store import AlertStore
from fume_edge.alerts.summary import SummaryRow, record_summary
from fume_edge.labels import PH_CLASS_NAMES
from mqtt_broker import free_port
from pipeline_support import FRAME_SIZE
from web_support import ARTIFACTS, WebRun, copied_database, serve_until_healthy
from waiting import eventually

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromium-driver (apt; .ci/run installs them)",
)

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
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=430,2400",
    ):
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
            record_summary(
                store,
                SummaryRow(
                    minute=now - now % 60 - (70 - i) * 60,
                    device_id="barn-1",
                    subject="cow-7",
                    frames=600,
                    degraded=0,
                    probs={"Healthy": 0.95 - 0.9 * acid, "Transitional": 0.04, "Acidotic": 0.01 + 0.9 * acid},
                    gas_areas={"co2": 0.15 + 0.03 * acid, "ch4": 0.002 + 0.01 * acid},
                ),
            )


OVERFLOW = """
const doc = document.documentElement, table = document.getElementById("cam-table");
return {page: [doc.scrollWidth, doc.clientWidth], pipeline: [table.scrollWidth, table.parentElement.clientWidth]};
"""
HISTORY_ON_A_PHONE = """
const cell = document.querySelector("#history td.probs"), img = document.querySelector("#history img");
if (!cell || !img || !img.complete) return null;
return {probs_height: cell.getBoundingClientRect().height, line: parseFloat(getComputedStyle(cell).lineHeight) || 20,
        img_right: img.getBoundingClientRect().right, width: window.innerWidth};
"""


def _viewport(browser, width: int) -> None:  # type: ignore[no-untyped-def]
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 2400, "deviceScaleFactor": 1, "mobile": width < 600},
    )


def _fits(browser, width: int) -> None:  # type: ignore[no-untyped-def]
    sizes = browser.execute_script(OVERFLOW)
    assert sizes["page"][0] <= sizes["page"][1], (width, "page scrolls sideways", sizes)
    assert sizes["pipeline"][0] <= sizes["pipeline"][1], (width, "Pipeline table clipped", sizes)


def test_page_shows_cameras_ph_and_an_alert_that_starts_while_it_is_open(tmp_path: Path, browser) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    db = tmp_path / "run" / "alerts.db"
    db.parent.mkdir()
    _seed_earlier_hour(db)
    run = WebRun(tmp_path / "run", "--duration", "300", yaml=HEALTHY_THEN_ACIDOTIC).wait_ready()  # no token set
    try:
        _viewport(browser, 412)
        browser.get(run.url + "/")  # as typed, without the printed address's token
        by_id = lambda name: browser.find_element(By.ID, name)  # noqa: E731
        eventually(lambda: by_id("ph-class").text in PH_CLASS_NAMES, "the pH class", timeout_s=60, every_s=0.25)
        eventually(
            lambda: "printed at start" in by_id("subject-msg").text,
            "the page explaining the token",
            timeout_s=10,
            every_s=0.25,
        )
        assert str(run.folder / "web-token") in by_id("subject-msg").text

        browser.get(run.page_url())  # the address fume-edge printed: http://127.0.0.1:PORT/#token=...
        browser.execute_script("window.__sameDocument = true;")  # survives only as long as no reload happens
        eventually(lambda: by_id("ph-class").text in PH_CLASS_NAMES, "the pH class", timeout_s=60, every_s=0.25)
        assert browser.execute_script("return location.hash;") == ""  # the token left the address bar
        by_id("subject-input").send_keys("cow-42")
        by_id("subject-form").submit()
        eventually(
            lambda: run.get("/api/status").json()["subject"] == "cow-42",
            "the subject set from the page",
            timeout_s=20,
            every_s=0.25,
        )
        eventually(lambda: by_id("subject").text == "cow-42", "the subject shown", timeout_s=10, every_s=0.25)

        tint = {
            cam: eventually(
                lambda cam=cam: browser.execute_script(COUNT_TINT, f"frame-{cam}"),
                f"the {cam} image",
                timeout_s=60,
                every_s=0.25,
            )
            for cam in ("co2", "ch4")
        }
        for cam, counts in tint.items():
            assert (counts["width"], counts["height"]) == (320, 240), cam  # run.yaml http.frame_width
            assert counts["gas"] + counts["tube"] > 0.005 * 320 * 240, (cam, counts)  # the mask overlay is drawn
        assert run.get("/api/status").json()["open_alerts"] == [], "the alert must start after the page loaded"
        assert by_id("open-alerts").text == "none"

        # The trend fits the stored hour (not a 6 h window), with a labelled time axis.
        labels = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#trend .x-axis text")]
        assert "time (UTC)" in labels and len(labels) >= 3, labels
        assert len(browser.find_elements(By.CSS_SELECTOR, "#trend path.series")) == 5  # 3 pH classes + 2 gases
        assert 60 <= len(browser.find_elements(By.CSS_SELECTOR, "#trend circle.point")) // 5 <= 62

        eventually(
            lambda: "acidosis_risk" in by_id("open-alerts").text,
            "acidosis_risk on the page",
            timeout_s=150,
            every_s=0.25,
        )
        assert browser.execute_script("return window.__sameDocument === true;"), "the page was reloaded"
        eventually(
            lambda: "acidosis_risk" in by_id("history").text,
            "the alert in the history table",
            timeout_s=30,
            every_s=0.25,
        )
        assert by_id("ph-class").text == "Acidotic"
        eventually(
            lambda: browser.execute_script(COUNT_TINT, "frame-ch4"), "fresh camera images", timeout_s=10, every_s=0.25
        )

        # An open acidosis_risk beside a Healthy reading gets the reason next to it (the page's own renderer,
        # given such a status; the live one here reads Acidotic).
        note = browser.execute_script("""
            showPh({ph: {class: "Healthy", classes: ["Healthy", "Transitional", "Acidotic"],
                         smoothed: {Healthy: 0.7, Transitional: 0.2, Acidotic: 0.1}}, gas_areas: null,
                    open_alerts: [{type: "acidosis_risk", cameras: ["co2", "ch4"], since: "2026-01-01T00:00:00Z"}]});
            const note = document.getElementById("ph-note");
            return note.hidden ? null : note.textContent;""")
        assert note and "smoothed over minutes" in note and "Healthy is the reading now" in note, note

        phone = eventually(
            lambda: browser.execute_script(HISTORY_ON_A_PHONE), "the history on a phone", timeout_s=30, every_s=0.25
        )
        assert phone["probs_height"] < 2.5 * phone["line"], phone  # the pH column on one line, not per character
        assert phone["img_right"] <= phone["width"], phone  # the snapshot reachable without sideways scrolling
        _fits(browser, 412)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(ARTIFACTS / "web_page_412.png"))
        _viewport(browser, 1280)
        browser.execute_script("window.dispatchEvent(new Event('resize'));")
        time.sleep(1.0)  # let the next image refresh land before the picture
        _fits(browser, 1280)
        assert browser.save_screenshot(str(ARTIFACTS / "web_page.png"))
    finally:
        run.stop()


def test_the_page_on_a_stored_database_shows_history_and_trend_without_live_panels(tmp_path: Path, browser) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    db, _ = copied_database(tmp_path / "copy")
    port = free_port()
    proc = serve_until_healthy(db, port)
    try:
        _viewport(browser, 412)
        browser.get(f"http://127.0.0.1:{port}/")
        by_id = lambda name: browser.find_element(By.ID, name)  # noqa: E731
        eventually(
            lambda: "No live run here" in by_id("archive-box").text, "the archive banner", timeout_s=30, every_s=0.25
        )
        assert "barn-7" in by_id("archive-box").text and by_id("subject").text == "cow-11"
        assert not by_id("cams").is_displayed() and not by_id("perf").is_displayed()
        eventually(
            lambda: len(browser.find_elements(By.CSS_SELECTOR, "#history tbody tr")) == 3,
            "three history rows",
            timeout_s=30,
            every_s=0.25,
        )
        eventually(
            lambda: (
                browser.execute_script(
                    "return [...document.querySelectorAll('#history img')].every(i => i.complete && i.naturalWidth > 0)"
                    " || null;"
                )
                is not None
            ),
            "snapshots shown",
            timeout_s=30,
            every_s=0.25,
        )
        eventually(
            lambda: len(browser.find_elements(By.CSS_SELECTOR, "#trend path.series")) == 5,
            "the trend",
            timeout_s=30,
            every_s=0.25,
        )
        sizes = browser.execute_script("const d = document.documentElement; return [d.scrollWidth, d.clientWidth];")
        assert sizes[0] <= sizes[1], sizes
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(ARTIFACTS / "web_archive_412.png"))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


# Three stations on small synthetic frames; only pen-2's acidosis_risk can start (its threshold is low, after 20 s
# of it: after the page has loaded); pen-1's and pen-3's wait an hour.
_QUIET = "alerts: {acidosis_risk: {start_after_s: 3600, single_gas_start_after_s: null}}"
THREE_STATIONS = f"""
stations:
  - {{id: pen-1, co2: synthetic, ch4: synthetic, {_QUIET}}}
  - {{id: pen-2, co2: synthetic, ch4: synthetic, alerts: {{acidosis_risk: {{start_at: 0.01, end_below: 0.0,
                                                                              start_after_s: 20.0}}}}}}
  - {{id: pen-3, co2: synthetic, ch4: synthetic, {_QUIET}}}
sources:
  co2: {{width: {FRAME_SIZE[0]}, height: {FRAME_SIZE[1]}}}
  ch4: {{width: {FRAME_SIZE[0]}, height: {FRAME_SIZE[1]}}}
  synthetic: {{fps: 8.0, segments: [{{ph: 6.4, seconds: 300.0}}], outage: null}}
"""
# The camera images' paths once loaded (null while one has not loaded).
FRAME_PATHS = """
return ["co2", "ch4"].map((cam) => {
  const img = document.getElementById("frame-" + cam);
  return img.complete && img.naturalWidth > 0 ? new URL(img.src).pathname : null;
});
"""
STATION_CARDS = """
return Array.from(document.querySelectorAll("#station-grid .station")).map(
  (e) => [e.dataset.station, e.innerText, e.getBoundingClientRect().right <= window.innerWidth]);
"""


def test_the_page_shows_every_station_and_one_stations_alert_without_reload(  # type: ignore[no-untyped-def]
    tmp_path: Path, browser, small_onnx: Path
) -> None:
    from selenium.webdriver.common.by import By

    run = WebRun(
        tmp_path / "run", "--model", str(small_onnx), "--duration", "300", yaml=THREE_STATIONS, stations=True
    ).wait_ready()
    try:
        _viewport(browser, 1280)
        browser.get(run.page_url())
        browser.execute_script("window.__sameDocument = true;")
        by_id = lambda name: browser.find_element(By.ID, name)  # noqa: E731

        def cards_when(condition):  # type: ignore[no-untyped-def]
            return lambda: (lambda c: c if condition(c) else None)(browser.execute_script(STATION_CARDS))

        cards = eventually(cards_when(lambda c: len(c) == 3), "three station cards", timeout_s=60, every_s=0.25)
        assert [c[0] for c in cards] == ["pen-1", "pen-2", "pen-3"]
        assert "no open alerts" in cards[1][1], "pen-2's alert must start after the page loaded"
        cards = eventually(
            cards_when(lambda c: "acidosis_risk" in c[1][1]),
            "pen-2's acidosis_risk in the grid",
            timeout_s=120,
            every_s=0.25,
        )
        assert "no open alerts" in cards[0][1] and "no open alerts" in cards[2][1], cards
        assert all("FPS" in c[1] and "CO2" in c[1] for c in cards), cards
        assert browser.execute_script("return window.__sameDocument === true;"), "the page was reloaded"

        def frames_of(station: str) -> object:
            wanted = [f"/api/frame/{station}/{cam}.jpg" for cam in ("co2", "ch4")]
            return lambda: browser.execute_script(FRAME_PATHS) == wanted or None

        # The detail view of pen-2: its open alert, its own camera images, and a subject set for pen-2 only.
        assert "acidosis_risk" not in by_id("open-alerts").text  # pen-1, the first, is shown at first
        eventually(frames_of("pen-1"), "pen-1's camera images", timeout_s=20, every_s=0.25)
        browser.find_element(By.CSS_SELECTOR, '#station-grid [data-station="pen-2"]').click()
        eventually(
            lambda: "acidosis_risk" in by_id("open-alerts").text and "pen-2" in by_id("open").text,
            "pen-2's details",
            timeout_s=20,
            every_s=0.25,
        )
        eventually(frames_of("pen-2"), "pen-2's camera images", timeout_s=20, every_s=0.25)
        assert by_id("cams").is_displayed() and "pen-2" in by_id("cams").text  # the captions name it
        by_id("subject-input").send_keys("cow-9")
        by_id("subject-form").submit()
        eventually(
            lambda: run.get("/api/status?station=pen-2").json()["subject"] == "cow-9",
            "pen-2's subject",
            timeout_s=20,
            every_s=0.25,
        )
        eventually(lambda: by_id("subject").text == "cow-9", "the subject shown", timeout_s=10, every_s=0.25)
        assert run.get("/api/status?station=pen-1").json()["subject"] is None
        assert run.get("/api/status?station=pen-4").status_code == 404

        _fits(browser, 1280)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(ARTIFACTS / "web_stations.png"))
        _viewport(browser, 412)
        browser.execute_script("window.dispatchEvent(new Event('resize'));")
        _fits(browser, 412)
        assert all(c[2] for c in browser.execute_script(STATION_CARDS)), "a station card out of the screen"
        assert browser.save_screenshot(str(ARTIFACTS / "web_stations_412.png"))
    finally:
        run.stop()
