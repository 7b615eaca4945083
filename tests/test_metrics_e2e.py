"""The signals of `make run`, checked from outside: a known sequence of uploads gives exactly the
expected counts in `GET <aws>/_metrics`, with sensible latencies, and every log line about an image
is one JSON object carrying its id (docs: troubleshooting, local-stack).

One stack for the module: 256 MB for the upload handler, and renders allowed more than that
(RENDER_MEMORY_MB), so a 49 MP PNG is killed on every attempt and ends through the failure queue
(as in test_guarantees_e2e.py); and at most 5 open slots, so a sixth is a 429.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests import images
from tests.live_stack import LiveStack, StackClient, metrics, running_stack

pytestmark = pytest.mark.e2e

SETTINGS = {
    "LOCAL_LAMBDA_MEMORY_HANDLE_UPLOAD": "256",
    "RENDER_MEMORY_MB": "4096",
    "LOCAL_ASYNC_RETRY_DELAYS": "0.2",
    "QUOTA_OPEN_SLOTS": "5",
}
STAGE = {"Stage": "local"}


@pytest.fixture(scope="module")
def live() -> Iterator[LiveStack]:
    with running_stack(SETTINGS) as stack:
        yield stack


def series(found: dict[Any, dict[str, Any]], name: str, **dimensions: str) -> dict[str, Any]:
    return found.get((name, tuple(sorted({**STAGE, **dimensions}.items()))), {"count": 0, "sum": 0.0})


def log_lines(live: LiveStack) -> list[dict[str, Any]]:
    """imgpress's own lines: the API's as printed, the functions' after the stack's `[function request]` prefix."""
    found = []
    for line in live.output().splitlines():
        start = line.find("{")
        if start >= 0 and '"logger":"imgpress' in line:
            found.append(json.loads(line[start:]))
    return found


def test_a_known_sequence_gives_exactly_its_counts_and_sensible_latencies(live: LiveStack) -> None:
    stack = StackClient(live.api, live.aws)
    assert series(metrics(live.aws), "ImagesDone")["count"] == 0
    types = ["image/jpeg", "image/jpeg", "image/jpeg", "image/png", "image/jpeg"]
    slots = [stack.slot(content_type) for content_type in types]  # each stays open until its upload is claimed
    refused = requests.post(f"{live.api}/uploads", json={"content_type": "image/jpeg"}, timeout=10)
    assert refused.status_code == 429 and refused.json()["error"]["limit"] == "open_slots"
    good, other_good, broken, huge, _unused = slots
    stack.send(good, images.jpeg(640, 480))
    stack.send(other_good, images.jpeg(480, 640))
    stack.send(broken, b"this is no image at all", "image/jpeg")
    stack.send(huge, images.flat_png(), "image/png", "huge.png")
    ends = {slot["id"]: stack.wait(slot["id"], timeout=60) for slot in (good, other_good, broken, huge)}
    assert [record["status"] for record in ends.values()] == ["done", "done", "failed", "failed"]
    assert ends[broken["id"]]["error"]["code"] == "unsupported_format"
    assert ends[huge["id"]]["error"]["code"] == "processing_error"

    deadline = time.monotonic() + 10  # the consumer's line follows its record's write
    while series(found := metrics(live.aws), "EndedByFailureQueue")["count"] < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    counts = {
        name: series(found, name)["count"]
        for name in ("ImagesDone", "ImagesFailed", "EndedByFailureQueue", "QuotaRefusals", "UploadToFinal")
    }
    assert counts == {
        "ImagesDone": 2,
        "ImagesFailed": 2,
        "EndedByFailureQueue": 1,
        "QuotaRefusals": 1,
        "UploadToFinal": 4,
    }
    assert series(found, "ImagesFailed", Function="handle_upload", Code="unsupported_format")["count"] == 1
    assert series(found, "ImagesFailed", Function="end_abandoned_uploads", Code="processing_error")["count"] == 1
    assert series(found, "QuotaRefusals", Function="api_handler", Code="open_slots")["count"] == 1
    assert series(found, "Attempts")["sum"] == 1 + 1 + 1 + 3  # the huge one was killed on every attempt
    assert series(found, "BytesSaved", Function="handle_upload", Profile="default")["count"] == 2

    done = series(found, "UploadToFinal", Function="handle_upload", Profile="default")
    render = series(found, "RenderTime", Function="handle_upload", Profile="default")
    assert 0 < render["min"] <= render["max"] < done["max"] < 30_000
    abandoned = series(found, "UploadToFinal", Function="end_abandoned_uploads", Code="processing_error")
    waited = series(found, "RetryWait", Function="end_abandoned_uploads", Code="processing_error")
    assert 0 < waited["max"] <= abandoned["max"] < 60_000


def test_every_log_line_is_json_and_follows_an_image_from_its_slot_to_its_end(live: LiveStack) -> None:
    stack = StackClient(live.api, live.aws)
    image_id = stack.upload(images.jpeg(320, 240), "image/jpeg", "photo.jpg")
    assert stack.wait(image_id)["status"] == "done"
    deadline = time.monotonic() + 10
    while not [line for line in log_lines(live) if line.get("image_id") == image_id and line["outcome"] == "notified"]:
        assert time.monotonic() < deadline, "no `notified` line"
        time.sleep(0.2)
    story = [line for line in log_lines(live) if line.get("image_id") == image_id]
    assert [line["outcome"] for line in story] == ["slot_opened", "claimed", "done", "notified"]
    assert [line["function"] for line in story] == ["api_handler", "handle_upload", "handle_upload", "handle_upload"]
    assert all(line["stage"] == "local" and line["request_id"] for line in story)
    assert story[0]["owner"] == story[2]["owner"] != "anonymous"  # hashed, the same in every line
