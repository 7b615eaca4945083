"""End to end over real HTTP: start the local stack as `make run` does, upload like a browser."""

from __future__ import annotations

import pytest
import requests

from tests import images
from tests.live_stack import StackClient

pytestmark = pytest.mark.e2e


def test_browser_style_upload_is_processed_end_to_end(stack: StackClient) -> None:
    data = images.jpeg(2400, 1600)
    image_id = stack.upload(data, "image/jpeg", "photo.jpg")
    record = stack.wait(image_id)
    assert record["status"] == "done", record
    assert record["original"]["bytes"] == len(data)
    for name, size in (("web", (2048, 1365)), ("thumb", (320, 213))):
        output = record["outputs"][name]
        fetched = requests.get(output["url"], timeout=10)
        assert fetched.status_code == 200 and fetched.headers["Content-Type"] == "image/webp"
        assert images.decode(fetched.content).size == size == (output["width"], output["height"])
    listed = requests.get(f"{stack.api}/images?status=done", timeout=10).json()
    assert image_id in [item["id"] for item in listed["items"]]
    messages = [m for m in stack.notifications() if m["id"] == image_id]
    assert len(messages) == 1 and messages[0]["status"] == "done"


def test_a_bad_file_fails_with_a_reason_and_delete_cleans_up(stack: StackClient) -> None:
    image_id = stack.upload(bytes(range(256)) * 4, "image/png", "fake.png")
    record = stack.wait(image_id)
    assert record["status"] == "failed" and record["error"]["code"] == "not_an_image"
    assert [m["status"] for m in stack.notifications() if m["id"] == image_id] == ["failed"]
    assert requests.delete(f"{stack.api}/images/{image_id}", timeout=10).status_code == 204
    assert requests.get(f"{stack.api}/images/{image_id}", timeout=10).status_code == 404
