"""GET /docs in headless Chromium: Redoc (vendored) renders /openapi.json, and nothing comes from elsewhere."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from tests.browser import ARTIFACTS, require_chromium
from tests.live_stack import LiveStack, running_stack

pytestmark = pytest.mark.e2e

require_chromium()


@pytest.fixture(scope="module")
def live() -> Iterator[LiveStack]:
    with running_stack() as stack:
        yield stack


def test_the_api_reference_renders_every_operation_from_this_stack_alone(browser: Browser, live: LiveStack) -> None:
    requested: list[str] = []
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("requestfinished", lambda request: requested.append(request.url))
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(f"{live.api}/docs")
    page.get_by_text("Start a resumable upload").first.wait_for(state="attached", timeout=30_000)
    text = page.inner_text("body")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "api-reference.png"))
    page.close()
    assert not problems, problems
    for summary in ("Ask for an upload slot", "A URL to PUT one part to", "One image: status, metadata, outputs"):
        assert summary in text
    foreign = [url for url in requested if not url.startswith((live.api, "data:", "blob:", "about:"))]
    assert not foreign, foreign  # the page's Content-Security-Policy refuses Redoc's CDN logo
    assert f"{live.api}/openapi.json" in requested
