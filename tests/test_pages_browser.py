"""Pages people look at, in a real headless Chromium at 1280 px: the API documentation served
offline (Swagger UI and ReDoc from the fastapi-offline package, nothing from another host), and the
board, a submission page, a report and a comparison fitting the window (no column off the side).

Screenshots go to TRAINMARK_SCREENSHOTS when it is set (to look at them), else to a temporary folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from tests.test_registry_browser import PAGE_LOAD_S, _start_chrome, registry  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow  # a real Chromium: left out of make test-fast

WIDTH = 1280


@pytest.fixture(scope="module")
def served(registry):  # noqa: F811 (the imported fixture, by name)
    """(base URL, {archive name: bundle id}) of the served SQLite registry the board tests use."""
    url, _, ids = registry
    return url, ids


@pytest.fixture(scope="module")
def chrome():
    """Headless Chromium, 1280 px wide."""
    driver = _start_chrome(javascript=True)
    driver.set_window_size(WIDTH, 1000)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("TRAINMARK_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def loaded_from(driver) -> list[str]:
    """The URLs of the page, its scripts, styles and data (not images: ReDoc asks for its maker's
    logo from a CDN, which the page's Content-Security-Policy refuses; see the header check)."""
    return driver.execute_script(
        "return [location.href].concat(performance.getEntriesByType('resource')"
        ".filter(e => e.initiatorType !== 'img').map(e => e.name))"
    )


def fits_the_window(driver) -> tuple[int, int, list[str]]:
    """(document width, window width, tags of elements whose right edge passes the window)."""
    return driver.execute_script("""
        const width = document.documentElement.clientWidth;
        const over = [...document.querySelectorAll('table, svg, pre, figure, section')]
            .filter(e => e.getBoundingClientRect().right > width + 1)
            .map(e => e.tagName + '.' + e.className.baseVal + e.className);
        return [document.documentElement.scrollWidth, width, over];""")


@pytest.mark.parametrize(
    ("path", "ready", "kind"),
    [
        ("/docs", ".swagger-ui .info .title", "swagger"),
        ("/redoc", "h1", "redoc"),
    ],
)
def test_the_api_documentation_renders_offline(served, chrome, shots, path, ready, kind):
    url, _ = served
    chrome.get(url + path)
    title = WebDriverWait(chrome, PAGE_LOAD_S).until(
        expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, ready))
    )
    WebDriverWait(chrome, PAGE_LOAD_S).until(lambda driver: "trainmark registry" in title.text)
    WebDriverWait(chrome, PAGE_LOAD_S).until(
        lambda driver: "/api/v1/leaderboard" in driver.find_element(By.TAG_NAME, "body").text
    )
    sources = loaded_from(chrome)
    assert any("/static-docs/" in source for source in sources), sources
    assert all(source.startswith(url) or source.startswith(("blob:", "data:")) for source in sources), sources
    chrome.save_screenshot(str(shots / f"docs-{kind}.png"))
    policy = httpx.get(url + path).headers["content-security-policy"]
    assert "default-src 'self'" in policy and "img-src 'self' data:" in policy and "https:" not in policy


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    """`trainmark report` of the GPU example and of the CPU one, and `compare --html` of the two."""
    from trainmark.scorer.compare import compare
    from trainmark.scorer.report import bundle_report_html, comparison_html

    from tests.bundles import VALID_BUNDLES

    folder = tmp_path_factory.mktemp("pages")
    bundles = {path.name: path for path in VALID_BUNDLES}
    made = {}
    for name in ("gpu-h100-gpt2", "cpu-tiny"):
        made[name] = folder / f"{name}.html"
        made[name].write_text(bundle_report_html(bundles[name])[0])
    made["compare"] = folder / "compare.html"
    made["compare"].write_text(comparison_html(compare([bundles["cpu-tiny"], bundles["gpu-h100-gpt2"]], None)))
    return made


def overlapping_texts(driver, selector: str) -> list[tuple[str, str]]:
    """Pairs of text elements inside `selector` whose boxes overlap."""
    return driver.execute_script(
        """
        const found = [];
        for (const svg of document.querySelectorAll(arguments[0])) {
            const boxes = [...svg.querySelectorAll('text')].map(t => [t.textContent, t.getBoundingClientRect()]);
            for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
                const [a, p] = boxes[i], [b, q] = boxes[j];
                if (p.left < q.right - 1 && q.left < p.right - 1 && p.top < q.bottom - 1 && q.top < p.bottom - 1)
                    found.push([a, b]);
            }
        }
        return found;""",
        selector,
    )


def test_the_report_leads_with_what_matters_and_fits_1280_px(pages, chrome, shots):
    chrome.get(pages["gpu-h100-gpt2"].as_uri())
    figures = {
        figure.get_attribute("data-metric"): figure.text
        for figure in chrome.find_elements(By.CSS_SELECTOR, ".glance .figure")
    }
    assert list(figures)[:3] == ["steps_per_second", "time_per_step", "total_energy"]
    assert "13.9 steps/s" in figures["steps_per_second"] and "29.9 GiB" in figures["peak_memory"]
    assert "7.55 kJ" in figures["total_energy"] and "J/sample" in figures["energy_per_sample"]
    plots = {
        plot.get_attribute("aria-label"): plot
        for plot in chrome.find_elements(By.CSS_SELECTOR, "section.traces svg.plot")
    }
    # one plot per quantity, every run in it with a legend, the loss curve first
    assert list(plots) == ["Loss: 3 run(s)", "Step time: 3 run(s)", "Power: 3 run(s)", "Memory: 3 run(s)"]
    loss = plots["Loss: 3 run(s)"]
    assert [line.get_attribute("data-label") for line in loss.find_elements(By.CSS_SELECTOR, "polyline.series")] == [
        "run-1",
        "run-2",
        "run-3",
    ]
    steps = plots["Step time: 3 run(s)"]
    assert "scaled to the steady state" in steps.find_element(By.CSS_SELECTOR, "text.off-scale").text
    assert {band.get_attribute("data-label") for band in steps.find_elements(By.CSS_SELECTOR, "rect.phase")} == {
        "warm-up",
        "profiled",
    }
    assert overlapping_texts(chrome, "section.traces svg.plot") == []
    width, window, over = fits_the_window(chrome)
    assert width <= window and over == [], (width, window, over)
    advice = chrome.find_elements(By.CSS_SELECTOR, "table.advice tbody tr")
    assert advice and advice[0].get_attribute("data-part") == "confidence"
    chrome.save_screenshot(str(shots / "report-gpu.png"))
    chrome.get(pages["cpu-tiny"].as_uri())
    width, window, over = fits_the_window(chrome)
    assert width <= window and over == [], (width, window, over)
    assert chrome.find_element(By.CSS_SELECTOR, 'table.advice tr[data-part="tier"] td.num').text == "+7.0"


def test_the_comparison_names_columns_by_bundle_and_fits_1280_px(pages, chrome, shots):
    chrome.get(pages["compare"].as_uri())
    headers = [cell.text for cell in chrome.find_elements(By.CSS_SELECTOR, "table.comparison thead th")]
    assert headers == ["Quantity", "cpu-tiny", "gpu-h100-gpt2"]
    rows = [
        row.find_element(By.TAG_NAME, "th").text.split("\n")[0]
        for row in chrome.find_elements(By.CSS_SELECTOR, "table.comparison tbody tr")
    ]
    assert "peak memory, forward" in rows and "energy per step" in rows
    for cell in chrome.find_elements(By.CSS_SELECTOR, "table.comparison td"):  # every cell in view, none scrolled
        box = cell.rect
        assert box["x"] >= 0 and box["x"] + box["width"] <= WIDTH, box
    energy = chrome.find_element(By.CSS_SELECTOR, 'td[data-metric="energy_per_step"]:last-child')
    assert energy.text.startswith("126 J/step")
    width, window, over = fits_the_window(chrome)
    assert width <= window and over == [], (width, window, over)
    chrome.save_screenshot(str(shots / "compare.png"))


def test_the_board_and_a_submission_page_fit_1280_px(served, chrome, shots):
    url, ids = served
    chrome.get(url + "/")
    width, window, over = fits_the_window(chrome)
    assert width <= window and over == [], (width, window, over)
    chrome.save_screenshot(str(shots / "board.png"))
    chrome.get(f"{url}/submissions/{ids['gpu']}")
    width, window, over = fits_the_window(chrome)
    assert width <= window and over == [], (width, window, over)
    chrome.save_screenshot(str(shots / "submission.png"))
