"""The promise, checked from outside over `make run`: every upload ends `done` or `failed`, within a
bound, with one SNS message, and describes the bytes last uploaded; a DELETE leaves nothing behind.

Faults are made the way they happen on AWS: a stage timeout too short for the file, a function
killed for its memory on every attempt, an S3 event that never came.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
import requests

from tests import images
from tests.live_stack import StackClient, running_stack

pytestmark = pytest.mark.e2e

# Lambda's timeout for the handler on the timeout test's stack, and the margin each attempt keeps for
# its last writes: renders get about 2 s, not enough for 50 MP. (Only that test runs on it: on a busy
# machine a photo's render can take that long too.) The other tests use `make run`'s own stack.
SHORT_TIMEOUT = {"LOCAL_LAMBDA_TIMEOUT_HANDLE_UPLOAD": "3", "DEADLINE_MARGIN_SECONDS": "1"}


def messages_for(stack: StackClient, image_id: str, seen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen.extend(stack.notifications())
    return [m for m in seen if m["id"] == image_id]


def test_a_file_that_needs_longer_than_the_stage_allows_ends_processing_timeout() -> None:
    with running_stack(SHORT_TIMEOUT) as live:
        stack = StackClient(live.api, live.aws)
        started = time.monotonic()
        image_id = stack.upload(images.large_webp(), "image/webp", "huge.webp")
        record = stack.wait(image_id, timeout=30)
        assert record["status"] == "failed" and record["error"]["code"] == "processing_timeout", record
        assert time.monotonic() - started < 30 and record["outputs"] == {}
        assert [m["status"] for m in messages_for(stack, image_id, [])] == ["failed"]
        prefix = f"processed/{image_id}/"
        assert stack.s3.list_objects_v2(Bucket="imgpress-local-output", Prefix=prefix).get("KeyCount") == 0


def test_a_second_upload_to_the_same_slot_is_what_the_record_describes(stack: StackClient) -> None:
    slot = stack.slot()
    stack.send(slot, images.jpeg(3000, 2000))
    stack.send(slot, images.jpeg(600, 400))  # while the first is (probably) still being processed
    image_id = slot["id"]
    deadline = time.monotonic() + 30
    while True:
        record = stack.wait(image_id)
        if record["original"]["width"] == 600 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert record["status"] == "done" and record["original"]["width"] == 600, record
    stack.idle()  # both uploads' attempts have ended and published what they publish
    messages = messages_for(stack, image_id, [])
    assert messages and messages[-1]["original"]["width"] == 600
    assert len(messages) <= 2  # one per outcome: the first upload's, if it finished before the second landed
    keys = stack.s3.list_objects_v2(Bucket="imgpress-local-output", Prefix=f"processed/{image_id}/").get("Contents", [])
    assert sorted(k["Key"] for k in keys) == sorted(o["key"] for o in record["outputs"].values())


def test_after_a_delete_answers_204_nothing_of_the_image_is_left_or_announced(stack: StackClient) -> None:
    slot = stack.slot()
    stack.send(slot, images.jpeg(4000, 3000))
    image_id = slot["id"]
    assert requests.delete(f"{stack.api}/images/{image_id}", timeout=30).status_code == 204
    stack.idle()  # any attempt in flight has ended
    assert requests.get(f"{stack.api}/images/{image_id}", timeout=10).status_code == 404
    for bucket, prefix in (
        ("imgpress-local-output", f"processed/{image_id}/"),
        ("imgpress-local-input", f"uploads/{image_id}"),
    ):
        assert stack.s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount") == 0, bucket
    assert [m for m in messages_for(stack, image_id, []) if m["status"] == "done"] == []


@pytest.mark.parametrize(
    "cursor",
    [base64.urlsafe_b64encode(json.dumps({"id": "x"}).encode()).decode(), "%%%", "eyJzaGFyZHMiOnt9fQ"],
    ids=["forged-key", "not-base64", "shards"],
)
def test_a_forged_cursor_is_a_400(stack: StackClient, cursor: str) -> None:
    response = requests.get(f"{stack.api}/images", params={"cursor": cursor}, timeout=10)
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_cursor"


def test_an_upload_whose_s3_event_never_came_is_redriven_by_the_sweeper(stack: StackClient) -> None:
    bucket = "imgpress-local-input"
    wiring = stack.s3.get_bucket_notification_configuration(Bucket=bucket)
    wiring.pop("ResponseMetadata", None)
    stack.s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    slot = stack.slot()
    stack.send(slot, images.jpeg(800, 600))  # S3 keeps it; no event is sent
    stack.s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=wiring)
    assert requests.get(f"{stack.api}/images/{slot['id']}", timeout=10).json()["status"] == "pending"
    record = stack.wait(slot["id"], timeout=60)
    assert record["status"] == "done", record
    assert [m["status"] for m in messages_for(stack, slot["id"], [])] == ["done"]


def test_a_function_killed_on_every_attempt_still_ends_the_image_once() -> None:
    """Each attempt exceeds the function's memory and is killed, with no `finally`; after Lambda's
    retries the on-failure queue's consumer ends the image. (Only a stage that lets a render use more
    memory than its function has gets there: by default the file is refused as too_much_memory.)"""
    with running_stack({"LOCAL_LAMBDA_MEMORY_HANDLE_UPLOAD": "256", "RENDER_MEMORY_MB": "4096"}) as live:
        stack = StackClient(live.api, live.aws)
        started = time.monotonic()
        image_id = stack.upload(images.large_webp(), "image/webp", "huge.webp")
        record = stack.wait(image_id, timeout=60)
        assert record["status"] == "failed" and record["error"]["code"] == "processing_error", record
        assert time.monotonic() - started < 60
        assert live.output().count("out of memory") == 3  # every attempt was killed
        stack.idle()
        assert [m["status"] for m in messages_for(stack, image_id, [])] == ["failed"]
