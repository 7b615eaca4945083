"""The cost vector: every AWS request one upload and one reprocess cause on the local stack, and
what a front end adds to them. Pinned, so a change that adds a request shows up here
(docs/capacity.md explains each line; devstack/ledger.py counts them)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests import images
from tests.live_stack import StackClient, ledger, running_stack

pytestmark = pytest.mark.e2e

# One default-profile upload (web 2048 px + thumb 320 px WebP), from the slot to the notification.
UPLOAD_REQUESTS = {
    "dynamodb:GetItem": 1,  # the handler reads the record
    "dynamodb:PutItem": 4,  # created (POST /uploads), claimed, completed, marked notified
    "s3:GetObject": 1,  # the handler reads the original
    "s3:PostObject": 1,  # the browser's upload
    "s3:PutObject": 2,  # one per output
    "sns:Publish": 1,
}
UPLOAD_UNITS = {
    "dynamodb_table_write_units": 6.0,  # 1 + 1 + 2 + 2: the completed record is over 1 KB
    "dynamodb_index_write_units": {
        "by-created-shard": 3,  # it projects status: every status change rewrites its entry
        "by-open-shard": 4,  # added, its key changed (pending -> processing: 2), removed
        "by-owner": 1,
        "by-owner-sha256": 1,  # added when the sha256 is known
        "by-owner-status": 5,  # added, then its key changed twice
    },
    "dynamodb_write_units": 20.0,
    "dynamodb_read_units": 1.0,
}
# POST /images/{id}/reprocess of that image, then the queue consumer's work.
REPROCESS_REQUESTS = {
    "dynamodb:GetItem": 2,  # the API's read, the consumer's
    "dynamodb:PutItem": 4,  # request recorded, claimed, completed, marked notified
    "s3:DeleteObjects": 1,  # the outputs the new ones replace
    "s3:GetObject": 1,
    "s3:HeadObject": 1,  # the API checks the original is still there
    "s3:PutObject": 2,
    "sns:Publish": 1,
    "sqs:DeleteMessageBatch": 1,
    "sqs:ReceiveMessage": 1,
    "sqs:SendMessageBatch": 1,
}
REPROCESS_UNITS = {
    "dynamodb_table_write_units": 8.0,  # the record is over 1 KB in all four writes
    "dynamodb_index_write_units": {"by-open-shard": 2},  # the claim adds it, the end removes it; status stays done
    "dynamodb_write_units": 10.0,
    "dynamodb_read_units": 2.0,
}


@pytest.fixture(scope="module")
def quiet_stack() -> Iterator[StackClient]:
    """No sweeper runs during these tests: its periodic queries are no upload's cost."""
    with running_stack({"LOCAL_SCHEDULE_SECONDS": "3600"}) as live:
        yield StackClient(live.api, live.aws)


def settled(stack: StackClient, since: int, image_id: str, puts: int) -> dict[str, Any]:
    """The image's ledger once its `puts`-th PutItem (the one after the publish) is in."""
    deadline = time.monotonic() + 60
    while True:
        report = ledger(stack.aws, since, image_id)
        if report["totals"]["requests"].get("dynamodb:PutItem", 0) >= puts or time.monotonic() > deadline:
            time.sleep(0.5)  # anything else it would still cause
            return ledger(stack.aws, since, image_id)
        time.sleep(0.2)


def test_one_upload_and_one_reprocess_cost_exactly_these_requests(quiet_stack: StackClient) -> None:
    stack = quiet_stack
    since = ledger(stack.aws)["next"]
    image_id = stack.upload(images.jpeg(1200, 800), "image/jpeg", "photo.jpg")
    totals = settled(stack, since, image_id, 4)["totals"]
    assert totals["requests"] == UPLOAD_REQUESTS
    assert {name: totals[name] for name in UPLOAD_UNITS} == UPLOAD_UNITS

    since = ledger(stack.aws)["next"]
    asked = requests.post(f"{stack.api}/images/{image_id}/reprocess", json={"profile": "default"}, timeout=10)
    assert asked.status_code == 202, asked.text
    report = settled(stack, since, image_id, 4)
    assert report["totals"]["requests"] == REPROCESS_REQUESTS
    assert {name: report["totals"][name] for name in REPROCESS_UNITS} == REPROCESS_UNITS


def test_what_each_kind_of_front_end_adds(quiet_stack: StackClient) -> None:
    """API requests per upload, and the AWS requests behind them, for a front end that polls every
    0.5 s, one that long-polls (`?wait=25`), and one that listens to SNS (no request at all)."""
    stack = quiet_stack
    data = images.jpeg(1200, 800)

    since = ledger(stack.aws)["next"]
    requests.get(f"{stack.api}/images/{'0' * 32}", timeout=10)
    assert ledger(stack.aws, since)["totals"]["requests"] == {"dynamodb:GetItem": 1}  # one poll

    image_id = stack.upload(data, "image/jpeg", "photo.jpg")
    polls = 0
    while True:
        polls += 1
        if requests.get(f"{stack.api}/images/{image_id}", timeout=10).json()["status"] in ("done", "failed"):
            break
        time.sleep(0.5)

    since = ledger(stack.aws)["next"]
    image_id = stack.upload(data, "image/jpeg", "photo.jpg")
    answer = requests.get(f"{stack.api}/images/{image_id}", params={"wait": 25}, timeout=30).json()
    assert answer["status"] == "done"
    waited = settled(stack, since, image_id, 4)["totals"]["requests"]["dynamodb:GetItem"] - 1  # less the handler's

    since = ledger(stack.aws)["next"]
    listed = requests.get(f"{stack.api}/images", params={"limit": 20}, timeout=10)
    assert listed.status_code == 200
    assert ledger(stack.aws, since)["totals"]["requests"] == {"dynamodb:BatchGetItem": 1, "dynamodb:Query": 1}
    print(f"polls every 0.5 s: {polls}; one ?wait=25: {waited} GetItem")
    assert 1 <= waited <= 17
