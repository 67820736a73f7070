"""The docs page in a real headless Chromium: it renders offline and "Try it out" works.

Needs Debian's chromium and chromium-driver (`make test` installs them as root);
without them this test skips and says why.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.browser import Browser, browser_missing
from tests.support.service import ServiceProcess

pytestmark = pytest.mark.slow  # a service process and a browser

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "docs"
PREDICT = "#operations-default-predict_predict_post"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory):
    with ServiceProcess(MODEL_DIR=str(tmp_path_factory.mktemp("models"))) as running:
        running.wait_healthy(limit=120)
        yield running.url


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    missing = browser_missing()
    if missing:
        pytest.skip(f"no headless browser: {missing}")
    work = tmp_path_factory.mktemp("browser")
    session = Browser(work, work / "chromedriver.log")
    yield session
    session.close()


def test_try_it_out_on_predict_shows_a_200_with_the_word(service, browser):
    browser.open(f"{service}/docs")
    browser.wait_for("Swagger UI's operations", f"return !!document.querySelector('{PREDICT}')")
    browser.click(f"{PREDICT} .opblock-summary")
    browser.wait_for(
        "the Try it out button", f"return !!document.querySelector('{PREDICT} .try-out__btn')"
    )
    browser.click(f"{PREDICT} .try-out__btn")
    browser.wait_for("the Execute button", f"return !!document.querySelector('{PREDICT} .execute')")
    browser.click(f"{PREDICT} .execute")
    status = browser.wait_for(
        "the live response",
        f"const s = document.querySelector('{PREDICT} .live-responses-table tbody .response-col_status');"
        "return s && s.textContent.trim();",
        timeout_s=120,
    )
    body = browser.script(
        f"return document.querySelector('{PREDICT} .live-responses-table tbody .response-col_description').textContent;"
    )
    # Show the response with the text item the word landed in.
    browser.script(
        f"const table = document.querySelector('{PREDICT} .live-responses-table');"
        "table.scrollIntoView({block: 'start'});"
        "const pre = table.querySelector('tbody pre'); pre.scrollTop = pre.scrollHeight;"
    )
    shot = browser.screenshot(ARTIFACTS / "docs-predict-try-it-out.png")
    assert status == "200", f"response status {status}; screenshot: {shot}"
    assert '"HELLO"' in body and '"textarea"' in body


def test_the_page_loaded_nothing_from_outside_the_service(service, browser):
    browser.open(f"{service}/docs")
    browser.wait_for("Swagger UI's operations", f"return !!document.querySelector('{PREDICT}')")
    loaded = browser.script(
        "return [location.href, ...performance.getEntriesByType('resource').map(e => e.name)];"
    )
    assert len(loaded) >= 4  # the page, its script, its stylesheet, openapi.json
    outside = [url for url in loaded if not url.startswith((service + "/", "data:"))]
    assert outside == []
    title = browser.script("return document.querySelector('.info .title').textContent;")
    assert title.startswith("ocr-backend")
    browser.screenshot(ARTIFACTS / "docs-page.png")
