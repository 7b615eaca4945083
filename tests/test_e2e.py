"""End to end over real HTTP: start the local stack as `make run` does, upload like a browser."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests

from devstack.stack import NOTIFICATIONS_QUEUE
from tests import images
from tests.live_stack import running_stack


class Stack:
    def __init__(self, api: str, aws: str) -> None:
        self.api = api
        self.sqs = boto3.client(
            "sqs",
            endpoint_url=aws,
            region_name="us-east-1",
            aws_access_key_id="imgpress-local",
            aws_secret_access_key="imgpress-local",
        )
        self.queue = self.sqs.get_queue_url(QueueName=NOTIFICATIONS_QUEUE)["QueueUrl"]

    def notifications(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages"
        ):
            for message in batch:
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])
        return found

    def upload(self, data: bytes, content_type: str, filename: str) -> str:
        slot = requests.post(
            f"{self.api}/uploads",
            json={"filename": filename, "content_type": content_type, "size": len(data)},
            timeout=10,
        )
        assert slot.status_code == 201, slot.text
        upload = slot.json()["upload"]
        # Exactly what a browser's FormData POST does: the policy fields, then the file last.
        sent = requests.post(
            upload["url"], data=upload["fields"], files={"file": (filename, data, content_type)}, timeout=30
        )
        assert sent.status_code in (200, 201, 204), sent.text
        return str(slot.json()["id"])

    def wait(self, image_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = requests.get(f"{self.api}/images/{image_id}", timeout=10).json()
            if record["status"] in ("done", "failed"):
                return dict(record)
            time.sleep(0.2)
        raise AssertionError(f"{image_id} still {record['status']} after {timeout}s")


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack() as live:
        yield Stack(live.api, live.aws)


def test_browser_style_upload_is_processed_end_to_end(stack: Stack) -> None:
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


def test_a_bad_file_fails_with_a_reason_and_delete_cleans_up(stack: Stack) -> None:
    image_id = stack.upload(bytes(range(256)) * 4, "image/png", "fake.png")
    record = stack.wait(image_id)
    assert record["status"] == "failed" and record["error"]["code"] == "not_an_image"
    assert [m["status"] for m in stack.notifications() if m["id"] == image_id] == ["failed"]
    assert requests.delete(f"{stack.api}/images/{image_id}", timeout=10).status_code == 204
    assert requests.get(f"{stack.api}/images/{image_id}", timeout=10).status_code == 404
