"""The upload page in headless Chromium against the local stack, as a person would use it.

Debian's `chromium` (installed by .ci/run) driven by Playwright (tests/browser.py); skipped
locally without it, failed under CI.
"""

from __future__ import annotations

import base64
import functools
import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from chalicelib import webpage
from tests import images
from tests.browser import ARTIFACTS, FINISHED, require_chromium
from tests.live_stack import LiveStack, running_stack

pytestmark = pytest.mark.e2e

SETTLE_MS = 60_000

require_chromium()


@pytest.fixture(scope="module")
def live() -> Iterator[LiveStack]:
    with running_stack() as stack:
        yield stack


@pytest.fixture
def page(browser: Browser, live: LiveStack) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    opened.goto(f"{live.api}/")
    yield opened
    context.close()
    assert not problems, problems


def card(page: Page, filename: str) -> Any:
    return page.locator(f'article.card[data-file="{filename}"]')


def wait_until_settled(page: Page, count: int) -> None:
    page.wait_for_function(f"document.querySelectorAll('{FINISHED}').length >= {count}", timeout=SETTLE_MS)


def test_page_is_served_by_the_app_and_calls_its_own_origin(page: Page, live: LiveStack) -> None:
    assert page.title() == "imgpress · upload images"
    assert page.locator("#api-url").inner_text() == live.api


def test_several_images_upload_with_progress_previews_figures_and_failures(
    page: Page, live: LiveStack, tmp_path: Path
) -> None:
    files = {
        "photo.jpg": images.jpeg(2400, 1600),
        "drawing.png": images.rgba_png(600, 400),
        "broken.png": bytes(range(256)) * 4,  # binary junk, whatever the name says
        "notes.txt": b"plain text",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    page.set_input_files("#files", [str(tmp_path / name) for name in files])
    wait_until_settled(page, len(files))
    assert page.locator("article.card").evaluate_all("cards => cards.map(c => c.dataset.file)") == list(files)

    photo = card(page, "photo.jpg")
    assert photo.get_attribute("data-status") == "done"
    assert photo.locator("progress").evaluate("bar => bar.value") == 100
    assert photo.locator(".percent").inner_text() == f"100% of {len(files['photo.jpg']) / 1024:.1f} KB"
    figures = {figure.get_attribute("data-variant"): figure.inner_text() for figure in photo.locator("figure").all()}
    assert list(figures) == ["original", "web", "thumb", "on demand"]
    assert "JPEG · 2400×1600" in figures["original"]
    on_demand = photo.locator('figure[data-variant="on demand"] img')
    assert on_demand.get_attribute("srcset").count("/od/") == 4 and ".auto?exp=" in on_demand.get_attribute("srcset")
    assert "webp · 2048×1365" in figures["web"] and "smaller than the original" in figures["web"]
    assert "webp · 320×213" in figures["thumb"]
    record = requests.get(f"{live.api}/images/{photo.get_attribute('data-id')}", timeout=10).json()
    web_kb = f"{record['outputs']['web']['bytes'] / 1024:.1f} KB"
    assert web_kb in figures["web"]
    assert f"({record['savings']['percent']}%)" in photo.locator(".summary").inner_text()
    # The on-demand one is rendered on its first request: wait for it to come in.
    on_demand.evaluate("img => img.complete || new Promise(done => { img.onload = img.onerror = done; })")
    # Every preview really loaded: the original from the file, the variants from their presigned URLs,
    # the on-demand one rendered for Chromium's Accept (AVIF) at the srcset width it picked.
    for image in photo.locator("figure img").all():
        assert image.evaluate("img => img.complete && img.naturalWidth > 0"), image.get_attribute("src")

    assert on_demand.evaluate("img => [img.currentSrc.includes('/160.auto?'), img.naturalWidth]") == [True, 160]

    drawing = card(page, "drawing.png")
    assert drawing.get_attribute("data-status") == "done"
    assert "webp · 600×400" in drawing.locator('figure[data-variant="web"]').inner_text()

    broken = card(page, "broken.png")
    assert broken.get_attribute("data-status") == "failed"
    assert broken.locator(".error code").inner_text() == "not_an_image"
    assert broken.locator(".error").inner_text().endswith("The file is not an image.")
    assert broken.locator('figure[data-variant="original"] .no-preview').inner_text() == "no preview"

    refused = card(page, "notes.txt")
    assert refused.get_attribute("data-status") == "not_uploaded"
    assert refused.locator(".error code").inner_text() == "unsupported_type"
    assert refused.locator(".progress").is_hidden() and refused.locator("button.delete").is_hidden()

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "upload-page.png"), full_page=True)


def test_an_animated_gif_plays_as_an_animated_webp_beside_its_still_thumb(page: Page, tmp_path: Path) -> None:
    (tmp_path / "cartoon.gif").write_bytes(images.fixture("animated/chi.gif"))
    page.set_input_files("#files", [str(tmp_path / "cartoon.gif")])
    wait_until_settled(page, 1)
    cartoon = card(page, "cartoon.gif")
    assert cartoon.get_attribute("data-status") == "done"
    figures = {figure.get_attribute("data-variant"): figure.inner_text() for figure in cartoon.locator("figure").all()}
    assert "animated · 31 frames · 3.1 s" in figures["original"]
    assert "animated · 31 frames" in figures["web"] and "poster" in figures["thumb"]
    # What Chromium itself decodes from the stored output: an animation of several frames.
    decoded = cartoon.locator('figure[data-variant="web"] img').evaluate(
        """async img => {
            const decoder = new ImageDecoder({data: (await fetch(img.src)).body, type: "image/webp"});
            await decoder.tracks.ready;
            const track = decoder.tracks.selectedTrack;
            return {animated: track.animated, frames: track.frameCount, loaded: img.complete && img.naturalWidth};
        }"""
    )
    assert decoded["animated"] and decoded["frames"] > 1 and decoded["loaded"] == 320, decoded


def test_progress_bar_follows_a_slow_upload(page: Page) -> None:
    """Throttle the browser's upload bandwidth: the bar must move through values, not jump to 100."""
    session = page.context.new_cdp_session(page)
    session.send("Network.enable")
    session.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 1_000_000},
    )
    page.evaluate(
        """() => {
            window.progressSeen = [];
            new MutationObserver(changes => changes.forEach(change => window.progressSeen.push(change.target.value)))
              .observe(document.getElementById("images"), {attributes: true, subtree: true, attributeFilter: ["value"]});
        }"""
    )
    data = images.jpeg(2400, 1600)
    page.set_input_files("#files", {"name": "slow.jpg", "mimeType": "image/jpeg", "buffer": data})
    wait_until_settled(page, 1)
    seen = page.evaluate("window.progressSeen")
    assert seen[-1] == 100 and any(0 < value < 100 for value in seen), seen
    assert card(page, "slow.jpg").get_attribute("data-status") == "done"


def test_drag_and_drop_then_delete(page: Page, live: LiveStack) -> None:
    data = images.png(320, 240)
    page.evaluate(
        """([name, b64]) => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type: "image/png"}));
            document.getElementById("drop").dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
        }""",
        ["dropped.png", base64.b64encode(data).decode()],
    )
    wait_until_settled(page, 1)
    dropped = card(page, "dropped.png")
    assert dropped.get_attribute("data-status") == "done"
    assert "PNG · 320×240" in dropped.locator('figure[data-variant="original"]').inner_text()
    image_id = dropped.get_attribute("data-id")

    dropped.locator("button.delete").click()
    dropped.wait_for(state="detached", timeout=10_000)
    assert requests.get(f"{live.api}/images/{image_id}", timeout=10).status_code == 404


@dataclass(frozen=True)
class StaticSite:
    """The page's files served by a plain static server on another origin, like a front end on a CDN,
    with the `page-config` file its publisher writes beside it."""

    url: str
    root: Path

    def allow(self, *apis: str) -> None:
        config = {"auth": {"mode": "none"}, "allowed_apis": list(apis)}
        (self.root / "page-config").write_text(json.dumps(config))


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaticSite]:
    root = tmp_path_factory.mktemp("site")
    shutil.copy(webpage.STATIC / "index.html", root / "index.html")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield StaticSite(f"http://127.0.0.1:{server.server_port}", root)
    server.shutdown()
    server.server_close()


def test_a_page_on_another_origin_needs_cors_allow_origins(
    browser: Browser, live: LiveStack, elsewhere: StaticSite
) -> None:
    context = browser.new_context()
    page = context.new_page()
    data = images.jpeg(640, 480)

    elsewhere.allow(live.api)  # the site lets its page call the API; the API does not allow the site yet
    page.goto(f"{elsewhere.url}/index.html?api={live.api}")
    page.set_input_files("#files", {"name": "blocked.jpg", "mimeType": "image/jpeg", "buffer": data})
    wait_until_settled(page, 1)
    assert card(page, "blocked.jpg").locator(".error code").inner_text() == "unreachable"
    assert "CORS_ALLOW_ORIGINS" in card(page, "blocked.jpg").locator(".error").inner_text()

    with running_stack({"CORS_ALLOW_ORIGINS": elsewhere.url}) as allowed:
        elsewhere.allow(allowed.api)
        page.goto(f"{elsewhere.url}/index.html?api={allowed.api}")
        expect(page.locator("#api-url")).to_have_text(allowed.api)
        page.set_input_files("#files", {"name": "allowed.jpg", "mimeType": "image/jpeg", "buffer": data})
        wait_until_settled(page, 1)
        allowed_card = card(page, "allowed.jpg")
        assert allowed_card.get_attribute("data-status") == "done"
        allowed_card.locator("button.delete").click()  # DELETE needs the CORS preflight too
        allowed_card.wait_for(state="detached", timeout=10_000)
    context.close()
