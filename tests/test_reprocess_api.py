"""Reprocessing through the HTTP API and the `reprocess_images` handler: Chalice's test client, moto,
the queues of infra/resources.json and real images."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from chalice.test import Client

from tests import images
from tests.conftest import ENV, Aws, invoke
from tests.test_handler import deliver, new_upload, record


@pytest.fixture
def queue(aws: Aws) -> Iterator[str]:
    """The reprocess queue's URL (the local stage's queues, created from the template)."""
    from devstack.functions import ACCOUNT, REGION
    from devstack.resources import RESOURCES_TEMPLATE, create_queues

    create_queues(RESOURCES_TEMPLATE, "local", ACCOUNT, REGION)
    yield aws.sqs.get_queue_url(QueueName=ENV["REPROCESS_QUEUE"])["QueueUrl"]


def post(client: Client, path: str, payload: Any = None) -> tuple[int, Any]:
    raw = json.dumps(payload).encode() if payload is not None else b""
    response = client.http.post(path, headers={"Content-Type": "application/json"}, body=raw)
    return response.status_code, json.loads(response.body) if response.body else None


def sqs_event(aws: Aws, queue: str) -> dict[str, Any]:
    """The queue's messages as Lambda's poller would put them in one event."""
    received = aws.sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    records = [
        {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"], "attributes": {}}
        for m in received
    ]
    return {"Records": [{**r, "eventSource": "aws:sqs", "messageAttributes": {}} for r in records]}


def done_image(client: Client, aws: Aws) -> str:
    image_id = new_upload(client)
    deliver(client, aws, image_id, images.jpeg(1200, 800))
    assert record(client, image_id)["status"] == "done"
    return image_id


def test_a_done_image_is_reprocessed_with_another_profile(client: Client, aws: Aws, queue: str) -> None:
    image_id = done_image(client, aws)
    before = record(client, image_id)
    status, accepted = post(client, f"/images/{image_id}/reprocess", {"profile": "thumbnail200"})
    assert status == 202 and accepted["status"] == "done" and accepted["outputs"].keys() == before["outputs"].keys()
    assert accepted["reprocess"]["status"] == "queued" and accepted["reprocess"]["profile"] == "thumbnail200"
    assert invoke(client, "reprocess_images", sqs_event(aws, queue)) == {"batchItemFailures": []}
    after = record(client, image_id)
    assert after["profile"] == "thumbnail200" and after["generation"] == 1 and after["reprocess"] is None
    assert {n: (o["format"], o["width"]) for n, o in after["outputs"].items()} == {"thumbnail": ("jpeg", 200)}
    assert aws.output_keys() == [after["outputs"]["thumbnail"]["key"]]
    messages = aws.notifications()
    assert [(m["type"], m["generation"]) for m in messages] == [("image.done", 0), ("image.done", 1)]


def test_refusals_change_nothing(client: Client, aws: Aws, queue: str) -> None:
    pending = new_upload(client)
    assert post(client, f"/images/{pending}/reprocess")[1]["error"]["code"] == "not_final"
    image_id = done_image(client, aws)
    status, answer = post(client, f"/images/{image_id}/reprocess", {"profile": "nope"})
    assert (status, answer["error"]["code"]) == (400, "unknown_profile")
    assert post(client, f"/images/{'0' * 32}/reprocess")[0] == 404
    before = aws.table.get_item(Key={"id": image_id})["Item"]
    aws.s3.delete_object(Bucket=ENV["INPUT_BUCKET"], Key=f"uploads/{image_id}")  # expired by retention
    status, answer = post(client, f"/images/{image_id}/reprocess")
    assert (status, answer["error"]["code"]) == (410, "original_gone")
    assert aws.table.get_item(Key={"id": image_id})["Item"] == before  # not even a version bump
    assert aws.sqs.receive_message(QueueUrl=queue).get("Messages") is None


def test_a_backfill_page_queues_and_its_progress_reads_back(client: Client, aws: Aws, queue: str) -> None:
    ids = {done_image(client, aws) for _ in range(2)}
    status, page = post(client, "/backfills", {"profile": "avatar", "limit": 1})
    assert status == 200 and page["queued"] == 1 and page["next_cursor"]
    status, rest = post(
        client, "/backfills", {"profile": "avatar", "backfill": page["backfill"], "cursor": page["next_cursor"]}
    )
    assert rest["queued"] == 1 and rest["next_cursor"] is None
    progress = json.loads(client.http.get(f"/backfills/{page['backfill']}").body)
    assert progress["queued"] == 2 and progress["queue"] == {"waiting": 2, "in_flight": 0, "dead_letters": 0}
    assert invoke(client, "reprocess_images", sqs_event(aws, queue)) == {"batchItemFailures": []}
    progress = json.loads(client.http.get(f"/backfills/{page['backfill']}").body)
    assert (progress["done"], progress["failed"]) == (2, 0)
    assert {i for i in ids if record(client, i)["profile"] == "avatar"} == ids
    assert client.http.get("/backfills/bf-nothing").status_code == 404


@pytest.mark.parametrize(
    "field, value",
    [("status", {}), ("status", ["done"]), ("owner", 5), ("since", {}), ("limit", "9"), ("dry_run", "yes")],
)
def test_a_backfill_page_with_a_field_of_the_wrong_type_is_a_400(client: Client, field: str, value: Any) -> None:
    """Found by Schemathesis: `"status": {}` was a 500."""
    body = json.dumps({"profile": "default", field: value}).encode()
    answer = client.http.post("/backfills", headers={"Content-Type": "application/json"}, body=body)
    assert answer.status_code == 400 and json.loads(answer.body)["error"]["code"] == "invalid_field", answer.body


@pytest.mark.parametrize(
    "field, value", [("since", "0001-01-01T00:00:00+01:00"), ("since", "9999-12-31T23:59:59-01:00"), ("limit", 1.5)]
)
def test_a_backfill_page_with_a_date_or_number_out_of_range_is_a_400(client: Client, field: str, value: Any) -> None:
    """Found by Schemathesis: a `since` near year 1 or 9999 with an offset overflowed into a 500."""
    body = json.dumps({"profile": "default", field: value}).encode()
    answer = client.http.post("/backfills", headers={"Content-Type": "application/json"}, body=body)
    assert answer.status_code == 400 and json.loads(answer.body)["error"]["code"] == "invalid_field", answer.body


def test_a_backfill_page_takes_a_limit_written_as_a_json_float(client: Client) -> None:
    """JSON has one number type: 60.0 is the integer the schema allows (found by Schemathesis)."""
    body = json.dumps({"profile": "default", "limit": 60.0, "dry_run": True}).encode()
    assert client.http.post("/backfills", headers={"Content-Type": "application/json"}, body=body).status_code == 200


@pytest.mark.parametrize("path", ["/backfills", "/images/{id}/reprocess"])
def test_deeply_nested_or_oversized_json_is_a_4xx_with_a_code(client: Client, aws: Aws, path: str) -> None:
    path = path.format(id="0" * 32)
    nested = b'{"profile": ' + b"[" * 1500 + b"]" * 1500 + b"}"
    answer = client.http.post(path, headers={"Content-Type": "application/json"}, body=nested)
    assert answer.status_code == 400 and json.loads(answer.body)["error"]["code"] == "invalid_json"
    oversized = json.dumps({"profile": "x" * 20_000}).encode()
    answer = client.http.post(path, headers={"Content-Type": "application/json"}, body=oversized)
    assert answer.status_code == 413 and json.loads(answer.body)["error"]["code"] == "body_too_large"
