"""On-demand variants over `make run`, from outside (issue 27): a signed link at a ladder width comes
back at that width in the asked format, `auto` follows `Accept`, tampered, foreign and expired links
are refused, a second request does not render again (`/_metrics`), a render past its deadline ends
with a code, remembered, and DELETE removes the derived objects.

One stack for the module, with keys the test knows (so it can sign an expired link, and one with
the previous key of a rotation), the stand-in playing the CDN (STABLE_URLS), and on-demand renders
held to 1 s, which a 36 MP original in AVIF at 4096 px cannot make (about 8 s here).
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from PIL import Image

from chalicelib.signing import SigningKeys
from tests import images
from tests.live_stack import LiveStack, StackClient, metrics, running_stack

pytestmark = pytest.mark.e2e

CURRENT, PREVIOUS = "now:" + "c" * 40, "before:" + "p" * 40
SETTINGS = {"TRANSFORM_KEYS": f"{CURRENT},{PREVIOUS}", "STABLE_URLS": "1", "TRANSFORM_RENDER_SECONDS": "1"}
CHROME = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
SAFARI_15 = "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5"


@pytest.fixture(scope="module")
def live() -> Iterator[LiveStack]:
    with running_stack(SETTINGS) as stack:
        yield stack


@pytest.fixture(scope="module")
def photo(live: LiveStack) -> dict[str, Any]:
    """A done 1200x800 photo, as GET /images/{id} shows it."""
    stack = StackClient(live.api, live.aws)
    record = stack.wait(stack.upload(images.jpeg(1200, 800), "image/jpeg", "photo.jpg"))
    assert record["status"] == "done"
    return record


def url(live: LiveStack, record: dict[str, Any], width: int | str, fmt: str) -> str:
    template = record["links"]["transform"]
    return live.api + template.replace("{width}", str(width)).replace("{format}", fmt)


def counts(aws: str, name: str) -> int:
    return sum(
        m["count"] for (found, dims), m in metrics(aws).items() if found == name and dict(dims).keys() == {"Stage"}
    )


def fetch(link: str, accept: str | None = None) -> tuple[requests.Response, Image.Image]:
    """The 302 and the image it leads to, decoded."""
    headers = {"Accept": accept} if accept else {}
    redirect = requests.get(link, headers=headers, allow_redirects=False, timeout=30)
    assert redirect.status_code == 302, redirect.text
    stored = requests.get(redirect.headers["Location"], timeout=30)
    assert stored.status_code == 200
    return redirect, Image.open(io.BytesIO(stored.content))


def test_a_ladder_width_comes_back_in_the_asked_format_and_is_rendered_once(
    live: LiveStack, photo: dict[str, Any]
) -> None:
    rendered, hits = counts(live.aws, "TransformsRendered"), counts(live.aws, "TransformHits")
    redirect, image = fetch(url(live, photo, 320, "webp"))
    assert (image.format, image.size) == ("WEBP", (320, 213))
    assert redirect.headers["Location"].startswith(f"{live.aws}/") and "Vary" not in redirect.headers
    assert fetch(url(live, photo, 640, "jpeg"))[1].size == (640, 427)
    again, image = fetch(url(live, photo, 320, "webp"))
    assert again.headers["Location"] == redirect.headers["Location"] and image.size == (320, 213)
    deadline = time.monotonic() + 10  # the API's metric lines reach /_metrics as they are written
    while counts(live.aws, "TransformHits") < hits + 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert counts(live.aws, "TransformsRendered") == rendered + 2
    assert counts(live.aws, "TransformHits") == hits + 1


def test_auto_follows_accept_and_varies_on_it(live: LiveStack, photo: dict[str, Any]) -> None:
    for accept, expected in ((CHROME, "AVIF"), (SAFARI_15, "WEBP"), (None, "JPEG")):
        redirect, image = fetch(url(live, photo, 160, "auto"), accept)
        assert (image.format, image.width) == (expected, 160)
        assert redirect.headers["Vary"] == "Accept"
    assert fetch(url(live, photo, "avatar", "webp"))[1].size == (128, 128)  # a preset: its box, filled


def test_tampered_foreign_expired_and_off_ladder_links_are_refused(live: LiveStack, photo: dict[str, Any]) -> None:
    stack = StackClient(live.api, live.aws)
    other = stack.wait(stack.upload(images.jpeg(320, 240), "image/jpeg", "other.jpg"))
    link = url(live, photo, 160, "webp")
    query = dict(parse_qsl(urlsplit(link).query))
    foreign = url(live, other, 160, "webp").split("?")[0] + "?" + urlsplit(link).query
    tampered = link.replace(f"sig={query['sig']}", f"sig={query['sig'][::-1]}")
    expired_query = SigningKeys.parse(CURRENT, "keys").sign(photo["id"], int(time.time()) - 60).query()
    expired = link.split("?")[0] + "?" + expired_query
    refused = {
        "tampered": (tampered, 403, "invalid_signature"),
        "foreign": (foreign, 403, "invalid_signature"),
        "unsigned": (link.split("?")[0], 403, "invalid_signature"),
        "expired": (expired, 403, "link_expired"),
        "off the ladder": (url(live, photo, 321, "webp"), 400, "width_not_allowed"),
        "png": (url(live, photo, 320, "png"), 400, "invalid_field"),
    }
    for case, (target, status, code) in refused.items():
        answer = requests.get(target, allow_redirects=False, timeout=10)
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), case
    ladder = requests.get(url(live, photo, 321, "webp"), timeout=10).json()["error"]["message"]
    assert "16, 32, 48" in ladder and "4096" in ladder
    # A link signed with the previous key of a rotation still works.
    previous = SigningKeys.parse(PREVIOUS, "keys").sign(photo["id"], int(time.time()) + 600).query()
    assert fetch(link.split("?")[0] + "?" + previous)[1].width == 160


def test_a_render_past_its_deadline_ends_with_a_code_and_is_not_tried_again(live: LiveStack) -> None:
    stack = StackClient(live.api, live.aws)
    big = io.BytesIO()
    Image.linear_gradient("L").resize((7200, 5000)).convert("RGB").save(big, "JPEG", quality=80)  # 36 MP, in 1 s
    record = stack.wait(stack.upload(big.getvalue(), "image/jpeg", "big.jpg"), timeout=90)
    assert record["status"] == "done"
    started = time.monotonic()
    first = requests.get(url(live, record, 4096, "avif"), allow_redirects=False, timeout=30)
    assert time.monotonic() - started < 10
    assert (first.status_code, first.json()["error"]["code"]) == (422, "processing_timeout")
    started = time.monotonic()
    again = requests.get(url(live, record, 4096, "avif"), allow_redirects=False, timeout=30)
    assert again.json() == first.json() and time.monotonic() - started < 1  # remembered, not rendered again
    assert requests.get(f"{live.api}/health", timeout=5).status_code == 200  # the API lives on


def test_delete_removes_the_on_demand_objects(live: LiveStack) -> None:
    stack = StackClient(live.api, live.aws)
    record = stack.wait(stack.upload(images.jpeg(640, 480), "image/jpeg", "gone.jpg"))
    fetch(url(live, record, 96, "webp"))
    bucket = urlsplit(record["outputs"]["web"]["url"]).path.split("/")[1]
    prefix = f"processed/{record['id']}/"
    keys = [o["Key"] for o in stack.s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    assert any("/od/" in key for key in keys)
    assert requests.delete(f"{live.api}/images/{record['id']}", timeout=30).status_code == 204
    assert stack.s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount", 0) == 0
    gone = requests.get(url(live, record, 96, "webp"), allow_redirects=False, timeout=10)
    assert (gone.status_code, gone.json()["error"]["code"]) == (404, "not_found")
