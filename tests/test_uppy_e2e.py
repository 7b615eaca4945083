"""Uppy (from npm) in headless Chromium against the local stack, set up by examples/uppy/imgpress-uppy.ts.

tests/uppy/ holds a minimal page that bundles that module (esbuild; `npm ci` and `npm run build`,
lock file committed). The page is served from its own origin, so the API's CORS and the input
bucket's (infra/resources.json, applied by the local stack) are exercised as a deployed front end would.

- A 30 MB image goes up in 5 MiB parts, each signed for its exact length, over a slow (high-latency)
  network; after two parts the page is reloaded. Golden Retriever restores the file and its multipart
  upload, Uppy asks the API for the parts S3 holds and sends only the others; the image ends `done`.
- A file over the API's limit is refused by Uppy before any request; the API's own message is what
  the page shows; a failed upload is aborted and its image ends `failed` with one message.
"""

from __future__ import annotations

import functools
import io
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from PIL import Image
from playwright.sync_api import Browser, Page, Request, Response

from devstack.stack import free_port
from tests.browser import require_chromium
from tests.conftest import ENV
from tests.live_stack import LiveStack, StackClient, running_stack
from tests.npm_packages import PACKAGES as PAGE
from tests.npm_packages import npm_ci

pytestmark = pytest.mark.e2e

require_chromium()

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
MIB = 1024 * 1024
LATENCY_MS = 600  # added to every request by Chromium's network emulation, so a reload lands mid-upload
SETTLE_MS = 120_000
MAX_UPLOAD_BYTES = 40 * MIB


def build_page() -> None:
    """The packages from the lock file, then the bundle."""
    subprocess.run([npm_ci(), "run", "build"], cwd=PAGE, check=True, capture_output=True, timeout=120)


def noise_png(width: int, height: int) -> bytes:
    """A real image of about width × height × 3 bytes: random pixels do not compress."""
    image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
    build_page()
    handler = functools.partial(QuietHandler, directory=str(PAGE))
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def live(page_origin: str) -> Iterator[LiveStack]:
    # The page's origin is another one than the API's and S3's, as deployed: CORS on both.
    with running_stack({"CORS_ALLOW_ORIGINS": page_origin, "MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES)}) as stack:
        yield stack


def test_a_30_mb_upload_resumes_after_a_reload_without_resending_finished_parts(
    browser: Browser, live: LiveStack, page_origin: str, tmp_path: Path
) -> None:
    source = tmp_path / "big.png"
    source.write_bytes(noise_png(3200, 3200))
    size = source.stat().st_size
    assert size > 30 * 1000 * 1000

    context = browser.new_context()
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": LATENCY_MS, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    reloaded = threading.Event()
    sent_parts: list[tuple[bool, int, int]] = []  # (after the reload?, part number, status)
    listed: list[int] = []  # the parts S3 held when the API first listed them to Uppy after the reload

    # Whether a request was sent after the reload, as its `request` event said: the part in flight at
    # the reload may report `requestfinished` only after it.
    sent_after: dict[Request, bool] = {}

    def finished(request: Request) -> None:
        url = urlsplit(request.url)
        response = request.response()
        if request.method == "PUT" and "partNumber" in url.query:
            number, status = int(parse_qs(url.query)["partNumber"][0]), response.status if response else 0
            sent_parts.append((sent_after.get(request, reloaded.is_set()), number, status))
            return
        listing = request.method == "GET" and url.path.startswith("/s3/multipart/") and url.path.count("/") == 3
        if listing and response is not None and reloaded.is_set() and not listed:
            listed.extend(part["PartNumber"] for part in response.json())

    context.on("request", lambda request: sent_after.setdefault(request, reloaded.is_set()))
    context.on("requestfinished", finished)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))

    open_page(page, page_origin, live)
    page.set_input_files("#file", str(source))
    page.wait_for_function("Number(document.querySelector('#state').dataset.parts || 0) >= 2", timeout=SETTLE_MS)
    page.wait_for_timeout(1200)  # Golden Retriever saves its state at most every 500 ms
    reloaded.set()
    page.reload()
    page.wait_for_function("document.querySelector('#state').dataset.status", timeout=SETTLE_MS)
    state = dataset(page)
    page.screenshot(path=str(ARTIFACTS / "uppy-resumed.png"), full_page=True)
    context.close()

    assert not problems, problems
    assert state.get("restored") == "true" and "error" not in state, state
    assert state["status"] == "done", state
    # S3 may also hold the part in flight at the reload: its answer was lost, its bytes were not.
    before = {number for after, number, status in sent_parts if not after and status == 200}
    after = [number for was_after, number, status in sent_parts if was_after and status == 200]
    print(f"parts held at the reload: {sorted(listed)}; sent after it: {after}; progress seen: {state['progress']}")
    assert len(before) >= 2 and before <= set(listed), "Uppy did not list the parts after the reload"
    expected_parts = -(-size // (5 * MIB))
    assert sorted(set(listed) | set(after)) == list(range(1, expected_parts + 1))
    assert not set(listed) & set(after), f"finished parts sent again: {sorted(set(listed) & set(after))}"
    progress = {int(value) for value in state["progress"].split()}
    assert len({p for p in progress if 0 < p < 100}) >= 3, sorted(progress)

    image = requests.get(f"{live.api}/images/{state['image']}", timeout=10).json()
    assert image["original"]["bytes"] == size and image["original"]["format"] == "PNG" and image["attempts"] == 1
    # moto announces a completed multipart upload twice (CompleteMultipartUpload, then Put) for one
    # ETag: the second event is a repeat the pipeline recognises, so there is one outcome, one message.
    live.idle()  # both events handled
    messages = [m for m in StackClient(live.api, live.aws).notifications() if m["id"] == state["image"]]
    assert [m["type"] for m in messages] == ["image.done"], messages


def open_page(page: Page, page_origin: str, live: LiveStack) -> None:
    page.goto(f"{page_origin}/index.html?api={live.api}")
    page.wait_for_function("document.querySelector('#state').dataset.ready", timeout=SETTLE_MS)


def dataset(page: Page) -> dict[str, str]:
    return dict(page.eval_on_selector("#state", "element => ({...element.dataset})"))


def test_a_file_over_the_apis_limit_is_refused_before_any_request(
    browser: Browser, live: LiveStack, page_origin: str, tmp_path: Path
) -> None:
    context = browser.new_context()
    page = context.new_page()
    open_page(page, page_origin, live)
    sent: list[str] = []
    context.on("request", lambda request: sent.append(f"{request.method} {request.url}"))
    big = tmp_path / "big.png"
    with open(big, "wb") as sparse:  # a path, not a buffer: Playwright would send 40 MB through its pipe
        sparse.truncate(MAX_UPLOAD_BYTES + 1)
    page.set_input_files("#file", files=[big])
    page.wait_for_function("document.querySelector('#state').dataset.refused", timeout=SETTLE_MS)
    refused = dataset(page)["refused"]
    context.close()
    assert "exceeds maximum allowed size" in refused, refused
    assert sent == [], sent


def test_the_apis_message_is_shown(browser: Browser, live: LiveStack, page_origin: str) -> None:
    context = browser.new_context()
    page = context.new_page()
    open_page(page, page_origin, live)
    named = {"name": "a" * 300 + ".png", "mimeType": "image/png", "buffer": b"x" * 1000}
    page.set_input_files("#file", files=[named])
    page.wait_for_function("document.querySelector('#state').dataset.error", timeout=SETTLE_MS)
    shown = dataset(page)["error"]
    context.close()
    assert shown == "filename may be at most 255 characters.", shown


def test_a_failed_upload_is_aborted_and_its_image_ends_failed_once(
    browser: Browser, live: LiveStack, page_origin: str
) -> None:
    context = browser.new_context()
    page = context.new_page()
    started: list[dict[str, str]] = []

    def answered(response: Response) -> None:
        if response.request.method == "POST" and urlsplit(response.url).path == "/s3/multipart":
            started.append(response.json())

    page.on("response", answered)
    s3_refusal = "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
    page.route("**/*partNumber=2*", lambda route: route.fulfill(status=403, body=s3_refusal))
    open_page(page, page_origin, live)
    two_parts = {"name": "two.png", "mimeType": "image/png", "buffer": os.urandom(6 * MIB)}
    page.set_input_files("#file", files=[two_parts])
    page.wait_for_function("document.querySelector('#state').dataset.error", timeout=SETTLE_MS)
    [slot] = started
    stack = StackClient(live.api, live.aws)
    deadline = time.monotonic() + 30
    while (image := requests.get(f"{live.api}/images/{slot['id']}", timeout=10).json())["status"] == "pending":
        assert time.monotonic() < deadline, "the failed upload was not aborted"
        time.sleep(0.2)
    context.close()
    assert image["status"] == "failed" and image["error"]["code"] == "upload_aborted", image
    assert not stack.s3.list_multipart_uploads(Bucket=ENV["INPUT_BUCKET"], Prefix=slot["key"]).get("Uploads")
    assert [m["status"] for m in stack.notifications() if m["id"] == slot["id"]] == ["failed"]
