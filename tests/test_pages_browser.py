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

from trainmark.registry.api import create_app
from trainmark.registry.database import upgrade
from trainmark.registry.store import Store
from tests.live_server import LiveServer
from tests.test_registry_browser import PAGE_LOAD_S, _start_chrome

WIDTH = 1280


@pytest.fixture(scope="module")
def served(tmp_path_factory, archives):
    """(base URL, {archive name: bundle id}) of a served SQLite registry."""
    folder = tmp_path_factory.mktemp("pages-registry")
    url = f"sqlite:///{folder / 'registry.db'}"
    upgrade(url)
    store = Store(url, folder / "blobs")
    ids = {name: store.submit(path, None).id for name, path in archives.items()}
    with LiveServer(create_app(store, submissions_per_minute=1000)) as server:
        yield server.url, ids
    store.close()


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
        ".filter(e => e.initiatorType !== 'img').map(e => e.name))")


def fits_the_window(driver) -> tuple[int, int, list[str]]:
    """(document width, window width, tags of elements whose right edge passes the window)."""
    return driver.execute_script("""
        const width = document.documentElement.clientWidth;
        const over = [...document.querySelectorAll('table, svg, pre, figure, section')]
            .filter(e => e.getBoundingClientRect().right > width + 1)
            .map(e => e.tagName + '.' + e.className.baseVal + e.className);
        return [document.documentElement.scrollWidth, width, over];""")


@pytest.mark.parametrize(("path", "ready", "kind"), [
    ("/docs", ".swagger-ui .info .title", "swagger"),
    ("/redoc", "h1", "redoc"),
])
def test_the_api_documentation_renders_offline(served, chrome, shots, path, ready, kind):
    url, _ = served
    chrome.get(url + path)
    title = WebDriverWait(chrome, PAGE_LOAD_S).until(
        expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, ready)))
    WebDriverWait(chrome, PAGE_LOAD_S).until(lambda driver: "trainmark registry" in title.text)
    WebDriverWait(chrome, PAGE_LOAD_S).until(lambda driver: "/api/v1/leaderboard" in driver.find_element(
        By.TAG_NAME, "body").text)
    sources = loaded_from(chrome)
    assert any("/static-docs/" in source for source in sources), sources
    assert all(source.startswith(url) or source.startswith(("blob:", "data:")) for source in sources), sources
    chrome.save_screenshot(str(shots / f"docs-{kind}.png"))
    policy = httpx.get(url + path).headers["content-security-policy"]
    assert "default-src 'self'" in policy and "img-src 'self' data:" in policy and "https:" not in policy
