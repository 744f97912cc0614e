"""The registry's pages in a real headless Chromium (Selenium): the board's order, the filter form,
the plots on a submission page, hostile text shown as text, and the pages with JavaScript turned off.

One SQLite store and one server for the module; one browser session, and a second one without
JavaScript for the check that needs it. Debian's `chromium` and `chromium-driver` packages provide
the binaries; without them the module fails unless TRAINMARK_TESTS_WITHOUT_BROWSER is set.
"""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from urllib.parse import parse_qs, urlsplit

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait
from trainmark.registry.api import create_app
from trainmark.registry.database import upgrade
from trainmark.registry.intake import submit_archive
from trainmark.registry.store import BoardQuery, Store
from trainmark.scorer.plots import PALETTE

from tests.live_server import LiveServer

pytestmark = pytest.mark.slow  # a real Chromium: left out of make test-fast

SCRIPT_SUBMITTER = "<script>alert(1)</script> Lab"
WINDOW = (1400, 1800)
PAGE_LOAD_S = 15


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def registry(tmp_path_factory, archives):
    """(base URL, store, {archive name: bundle id}) of a served SQLite registry holding the four archives."""
    folder = tmp_path_factory.mktemp("browser-registry")
    url = f"sqlite:///{folder / 'registry.db'}"
    upgrade(url)
    store = Store(url, folder / "blobs")
    ids = {name: submit_archive(store, path, None).id for name, path in archives.items()}
    with LiveServer(create_app(store, submissions_per_minute=1000)) as server:
        yield server.url, store, ids
    store.close()


def _chrome_binaries() -> tuple[str, str]:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    if os.environ.get("TRAINMARK_TESTS_WITHOUT_BROWSER"):
        pytest.skip("TRAINMARK_TESTS_WITHOUT_BROWSER is set and chromium or chromedriver was not found")
    pytest.fail(
        f"the browser tests need chromium and chromedriver on PATH (found {browser or 'no chromium'}, "
        f"{driver or 'no chromedriver'}): install Debian's chromium and chromium-driver packages, or set "
        "TRAINMARK_TESTS_WITHOUT_BROWSER=1 to skip them"
    )


def _start_chrome(javascript: bool) -> WebDriver:
    browser, driver = _chrome_binaries()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    # --no-sandbox because CI runs as root, where Chromium refuses to start with its sandbox.
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if not javascript:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    # A Service with an explicit path keeps Selenium Manager from trying to download a driver.
    chrome = webdriver.Chrome(options=options, service=Service(driver))
    chrome.set_page_load_timeout(PAGE_LOAD_S)
    return chrome


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium with JavaScript on, shared by the module."""
    chrome = _start_chrome(javascript=True)
    yield chrome
    chrome.quit()


@pytest.fixture(scope="module")
def browser_without_javascript():
    """Headless Chromium with JavaScript off, for the check that the pages need none."""
    chrome = _start_chrome(javascript=False)
    yield chrome
    chrome.quit()


# ---------------------------------------------------------------- helpers


def board_rows(driver: WebDriver) -> list[dict]:
    """The board's rows as the page shows them: bundle id (from the link), rank cell, submitter, score."""
    rows = []
    for row in driver.find_elements(By.CSS_SELECTOR, "table.board tbody tr:not(.workload)"):
        link = row.find_element(By.CSS_SELECTOR, "a.entry")
        cells = row.find_elements(By.TAG_NAME, "td")
        rows.append(
            {
                "id": urlsplit(link.get_attribute("href")).path.removeprefix("/submissions/"),
                "rank": cells[0].text,
                "submitter": link.text,
                "classes": row.get_attribute("class").split(),
                "score": float(row.find_element(By.CSS_SELECTOR, "td.score").text.split()[0]),
                "hardware": cells[3].text,
                "precision": cells[4].text,
            }
        )
    return rows


def apply_filters(
    driver: WebDriver, base_url: str, selects: dict[str, str], inputs: dict[str, str] | None = None
) -> dict[str, list[str]]:
    """Fill the board's filter form from a fresh board, click Apply, and return the new page's query."""
    driver.get(base_url + "/")
    form = driver.find_element(By.CSS_SELECTOR, "form.filters")
    for name, text in selects.items():
        Select(form.find_element(By.NAME, name)).select_by_visible_text(text)
    for name, text in (inputs or {}).items():
        field = form.find_element(By.NAME, name)
        field.clear()
        field.send_keys(text)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(driver, PAGE_LOAD_S).until(expected_conditions.staleness_of(form))
    # The footer closes the page: once it is there, the whole new page has arrived.
    WebDriverWait(driver, PAGE_LOAD_S).until(expected_conditions.presence_of_element_located((By.TAG_NAME, "footer")))
    return parse_qs(urlsplit(driver.current_url).query)


def expected_ids(store: Store, **filters) -> list[str]:
    """The bundle ids the store ranks for these filters, in order."""
    return [row["id"] for row in store.leaderboard(BoardQuery(**filters)).rows]


def assert_no_alert(driver: WebDriver) -> None:
    """No JavaScript dialog is open."""
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.accept()  # raises when no alert is open (and would close one that is)


def png_pixels(png: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """(width, height, RGB pixels) of an 8-bit, non-interlaced RGB or RGBA PNG (what Chromium writes)."""
    assert png.startswith(b"\x89PNG\r\n\x1a\n"), "not a PNG"
    position, header, data = 8, None, b""
    while position < len(png):
        length, kind = struct.unpack(">I4s", png[position : position + 8])
        body = png[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            data += body
        elif kind == b"IEND":
            break
    assert header is not None, "the PNG has no IHDR chunk"
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, f"unexpected PNG format {header}"
    channels = 4 if colour == 6 else 3
    stride = width * channels
    raw = zlib.decompress(data)
    assert len(raw) == height * (stride + 1), "the PNG's pixel data does not match its size"
    previous = bytearray(stride)
    pixels = []
    for line in range(height):
        start = line * (stride + 1)
        kind, current = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = current[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                current[i] = (current[i] + left) & 0xFF
            elif kind == 2:
                current[i] = (current[i] + up) & 0xFF
            elif kind == 3:
                current[i] = (current[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                guess = left + up - corner
                nearest = min((abs(guess - left), 0, left), (abs(guess - up), 1, up), (abs(guess - corner), 2, corner))
                current[i] = (current[i] + nearest[2]) & 0xFF
        pixels += [tuple(current[i : i + 3]) for i in range(0, stride, channels)]
        previous = current
    return width, height, pixels


def near(pixel: tuple[int, int, int], hex_colour: str, tolerance: int = 40) -> bool:
    """Whether an RGB pixel is within `tolerance` (per channel, 0-255) of a #rrggbb colour."""
    target = bytes.fromhex(hex_colour.lstrip("#"))
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, target))


# ---------------------------------------------------------------- the tests


def test_the_board_lists_submissions_in_rank_order(registry, browser):
    url, store, ids = registry
    browser.get(url + "/")
    assert browser.title == "trainmark registry"
    shown = board_rows(browser)
    ranked = store.leaderboard(BoardQuery()).rows
    assert len(ranked) == 4
    assert [row["id"] for row in shown] == [row["id"] for row in ranked]
    assert [row["score"] for row in shown] == [round(row["score"], 3) for row in ranked]
    assert [row["score"] for row in shown] == sorted((row["score"] for row in shown), reverse=True)
    # Ranks count within a workload: the GPU model's alone, then the CPU one's, where the example and
    # its renamed copy tie on bound and score (they share rank 1) and the two-run copy comes last.
    assert [row["workload"] for row in ranked] == ["gpt2-124m / openwebtext-10k / bf16_autocast"] + [
        "tiny / trainmark-sample-text / fp32"
    ] * 3
    assert (ranked[1]["score"], ranked[1]["steps_per_second_low"]) == (
        ranked[2]["score"],
        ranked[2]["steps_per_second_low"],
    )
    assert [row["rank"] for row in shown] == ["1", "1=", "1=", "3"]
    headings = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "table.board tr.workload th")]
    assert headings == [
        "workload: gpt2-124m / openwebtext-10k / bf16_autocast",
        "workload: tiny / trainmark-sample-text / fp32",
    ]  # one heading over each workload's rows
    assert all("ranked" in row["classes"] for row in shown)
    assert shown[0]["id"] == ids["gpu"] and shown[0]["hardware"] == "2 × NVIDIA H100 80GB HBM3"
    assert shown[-1]["submitter"] == "Lab Two"


@pytest.mark.parametrize(
    "selects, query, check",
    [
        ({"precision": "bf16_autocast"}, {"precision": "bf16_autocast"}, ("precision", "bf16_autocast")),
        ({"device_model": "AMD EPYC 7B13"}, {"device_model": "AMD EPYC 7B13"}, ("hardware", "1 × AMD EPYC 7B13")),
    ],
    ids=["precision", "device model"],
)
def test_the_filter_form_narrows_the_board(registry, browser, selects, query, check):
    url, store, _ = registry
    params = apply_filters(browser, url, selects)
    for name, value in selects.items():
        assert params[name] == [value]
        assert Select(browser.find_element(By.NAME, name)).first_selected_option.text == value  # the form remembers
    shown = board_rows(browser)
    assert [row["id"] for row in shown] == expected_ids(store, **query)
    assert 0 < len(shown) < 4
    column, value = check
    assert {row[column] for row in shown} == {value}


def test_a_filter_without_matches_says_so(registry, browser):
    url, _, _ = registry
    params = apply_filters(browser, url, {"precision": "bf16_autocast", "device_model": "AMD EPYC 7B13"})
    assert params["precision"] == ["bf16_autocast"] and params["device_model"] == ["AMD EPYC 7B13"]
    assert browser.find_elements(By.CSS_SELECTOR, "table.board") == []
    empty = browser.find_element(By.CSS_SELECTOR, "p.empty")
    assert empty.is_displayed() and empty.text.startswith("No submissions match.")
    assert urlsplit(empty.find_element(By.LINK_TEXT, "Clear the filters").get_attribute("href")).path == "/"


def test_a_submission_page_shows_its_plots(registry, browser, tmp_path):
    url, store, ids = registry
    browser.get(url + "/")
    browser.get_log("browser")  # drop what came before: only this page's messages count below
    browser.find_element(By.CSS_SELECTOR, f'a.entry[href="/submissions/{ids["gpu"]}"]').click()
    WebDriverWait(browser, PAGE_LOAD_S).until(expected_conditions.url_to_be(f"{url}/submissions/{ids['gpu']}"))
    record = store.get(ids["gpu"])
    summary = record["submission"]
    heading = browser.find_element(By.TAG_NAME, "h1").text
    assert heading == f"{summary['model_name']} on {summary['device_count']} × {summary['device_model']}"
    assert browser.find_element(By.CSS_SELECTOR, "strong.submitter").text == summary["submitter"]

    sections = browser.find_elements(By.CSS_SELECTOR, "section.run")
    assert [section.get_attribute("id") for section in sections] == [f"run-{run['run_id']}" for run in record["runs"]]
    # Every run in one plot per quantity, with a legend; the first run's phases shaded behind the step times.
    traces = browser.find_element(By.CSS_SELECTOR, "section.traces")
    series = [item for item in record["series"] if item["kind"] != "phase"]
    first_run = record["series"][0]["run_id"]
    phases = [item for item in record["series"] if item["run_id"] == first_run and item["kind"] == "phase"]
    plots = traces.find_elements(By.CSS_SELECTOR, "svg.plot")
    runs = len(record["runs"])
    assert [plot.get_attribute("aria-label") for plot in plots] == [
        f"{name}: {runs} run(s)" for name in ("Loss", "Step time", "Power", "Memory")
    ]
    assert {phase["label"] for phase in phases} == {"warm-up", "profiled"}
    step_plot = plots[1]
    assert len(step_plot.find_elements(By.CSS_SELECTOR, "rect.phase")) == sum(len(phase["points"]) for phase in phases)
    for plot in plots:
        assert plot.is_displayed() and plot.size["width"] > 300 and plot.size["height"] > 100, plot.size
    lines = traces.find_elements(By.CSS_SELECTOR, "svg.plot polyline.series")
    assert sorted(int(line.get_attribute("data-points")) for line in lines) == sorted(
        len(item["points"]) for item in series
    )
    for line in lines:
        points = int(line.get_attribute("data-points"))
        assert points > 0 and len(line.get_attribute("points").split()) == points
        assert line.size["width"] > 0

    power = plots[2]
    shot = tmp_path / "power.png"
    assert power.screenshot(str(shot))
    width, height, pixels = png_pixels(shot.read_bytes())
    assert abs(width - power.size["width"]) <= 2 and abs(height - power.size["height"]) <= 2
    assert len(set(pixels)) > 20  # text, grid, and each series' colour, not a blank box
    assert sum(near(pixel, PALETTE[0]) for pixel in pixels) > 200  # the first series is drawn
    assert sum(near(pixel, PALETTE[1]) for pixel in pixels) > 200  # and the second
    assert [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"] == []


def test_a_hostile_submitter_is_shown_as_text(registry, browser):
    url, _, ids = registry
    browser.get(url + "/")
    link = browser.find_element(By.CSS_SELECTOR, f'a.entry[href="/submissions/{ids["cpu-script"]}"]')
    assert link.text == SCRIPT_SUBMITTER
    description = link.find_element(By.XPATH, "following-sibling::div[@class='sub']")
    assert description.text == '=HYPERLINK("http://evil")'
    assert_no_alert(browser)
    assert browser.find_elements(By.TAG_NAME, "script") == []

    link.click()
    WebDriverWait(browser, PAGE_LOAD_S).until(expected_conditions.url_contains(ids["cpu-script"]))
    assert browser.find_element(By.CSS_SELECTOR, "strong.submitter").text == SCRIPT_SUBMITTER
    assert browser.title.startswith(SCRIPT_SUBMITTER + " · ")
    assert_no_alert(browser)
    assert browser.find_elements(By.TAG_NAME, "script") == []

    # The filter refuses the name (it holds < and >), and says so as text too.
    apply_filters(browser, url, {}, {"submitter": SCRIPT_SUBMITTER})
    assert "submitter may hold" in browser.find_element(By.CSS_SELECTOR, "p.error").text
    assert browser.find_element(By.NAME, "submitter").get_attribute("value") == SCRIPT_SUBMITTER
    assert_no_alert(browser)
    assert browser.find_elements(By.TAG_NAME, "script") == []


def test_the_pages_work_without_javascript(registry, browser_without_javascript):
    url, store, ids = registry
    driver = browser_without_javascript
    # Prove the preference took: a page that would rewrite its own text with a script keeps it.
    driver.get(
        "data:text/html,<p id=probe>static</p><script>document.getElementById('probe').textContent='scripted'</script>"
    )
    assert driver.find_element(By.ID, "probe").text == "static"

    params = apply_filters(driver, url, {"precision": "fp32"}, {"submitter": "Lab Two"})
    assert params["precision"] == ["fp32"] and params["submitter"] == ["Lab Two"]
    shown = board_rows(driver)
    assert (
        [row["id"] for row in shown]
        == expected_ids(store, precision="fp32", submitter="Lab Two")
        == [ids["cpu-two-runs"]]
    )
    driver.find_element(By.CSS_SELECTOR, "a.entry").click()
    WebDriverWait(driver, PAGE_LOAD_S).until(expected_conditions.url_contains(ids["cpu-two-runs"]))
    assert len(driver.find_elements(By.CSS_SELECTOR, "section.run")) == 2
    assert all(plot.is_displayed() for plot in driver.find_elements(By.CSS_SELECTOR, "svg.plot"))
