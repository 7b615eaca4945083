"""Issue #23's files from outside, over `make run`: each ends `failed` with its code on the first
attempt, within seconds, with one SNS message, and the handler's memory stays under its size."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests import crafted
from tests.live_stack import LiveStack, StackClient, running_stack

pytestmark = pytest.mark.e2e

# name in crafted.REJECTED -> the content type a phone or browser would declare
FILES = {
    "heif-clap-over-30-tiles-with-alpha": "image/heic",
    "heif-alpha-larger-than-image": "image/heic",
    "heif-clap-over-one-picture": "image/heic",
    "heif-exif-type-not-text": "image/heic",
    "png-palette-without-plte": "image/png",
    "jpeg-5000-scans": "image/jpeg",
    "webp-huge-canvas": "image/webp",
}
_REPORT = re.compile(r"\[handle_upload\] REPORT .* Memory Size: (\d+) MB Max Memory Used: (\d+) MB")


@pytest.fixture(scope="module")
def live() -> Iterator[LiveStack]:
    with running_stack() as stack:
        yield stack


@pytest.fixture(scope="module")
def outcomes(live: LiveStack) -> dict[str, tuple[dict[str, Any], float, list[dict[str, Any]]]]:
    """Every file uploaded at once; each one's final record, the seconds it took, its SNS messages."""
    client = StackClient(live.api, live.aws)
    started = time.monotonic()
    ids = {}
    for name, content_type in FILES.items():
        build, _code = crafted.REJECTED[name]
        ids[name] = client.upload(build(), content_type, f"{name}.{content_type.split('/')[1]}")
    records = {name: (client.wait(image_id, timeout=60), time.monotonic() - started) for name, image_id in ids.items()}
    messages: list[dict[str, Any]] = []
    while {m["id"] for m in messages} < set(ids.values()) and time.monotonic() - started < 90:
        messages += client.notifications()  # each poll ends once the queue has been empty for a second
    messages += client.notifications()
    return {
        name: (record, seconds, [m for m in messages if m["id"] == ids[name]])
        for name, (record, seconds) in records.items()
    }


@pytest.mark.parametrize("name", sorted(FILES))
def test_each_file_fails_with_its_code_on_the_first_attempt_with_one_message(
    outcomes: dict[str, tuple[dict[str, Any], float, list[dict[str, Any]]]], name: str
) -> None:
    record, seconds, messages = outcomes[name]
    assert record["status"] == "failed" and record["error"]["code"] == crafted.REJECTED[name][1], record
    assert record["attempts"] == 1
    assert seconds < 30  # all seven together, on a shared machine; each is refused in milliseconds
    assert [m["status"] for m in messages] == ["failed"]


def test_the_handler_never_used_more_than_its_memory_size(
    live: LiveStack, outcomes: dict[str, tuple[dict[str, Any], float, list[dict[str, Any]]]]
) -> None:
    reports = [(int(size), int(used)) for size, used in _REPORT.findall(live.output())]
    assert len(reports) >= len(outcomes)  # one per invocation, none of them killed
    assert all(used < size for size, used in reports), reports
    assert "Runtime.OutOfMemory" not in live.output()
