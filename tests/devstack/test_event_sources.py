"""Lambda's rules for SQS batches and async events, checked without sandboxes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devstack.async_invoke import AsyncInvoker
from devstack.event_sources import failed_message_ids, sqs_record
from devstack.functions import EventInvokeConfig, FunctionConfig
from devstack.lambda_runtime import Invocation
from tests.conftest import use_fake_account

pytestmark = pytest.mark.integration

BATCH = ["m1", "m2", "m3"]


@pytest.mark.parametrize(
    "invocation, reporting, failed",
    [
        (Invocation("r", {"errorType": "ValueError"}, "Unhandled"), True, set(BATCH)),
        (Invocation("r", None), True, set()),
        (Invocation("r", {"batchItemFailures": []}), True, set()),
        (Invocation("r", {"batchItemFailures": [{"itemIdentifier": "m2"}]}), True, {"m2"}),
        (Invocation("r", {"batchItemFailures": [{"itemIdentifier": "m2"}]}), False, set()),
        (Invocation("r", {"batchItemFailures": [{"itemIdentifier": "elsewhere"}]}), True, set(BATCH)),
        (Invocation("r", {"batchItemFailures": [{"itemIdentifier": ""}]}), True, set(BATCH)),
        (Invocation("r", {"batchItemFailures": [{"id": "m2"}]}), True, set(BATCH)),
        (Invocation("r", {"batchItemFailures": "m2"}), True, set(BATCH)),
    ],
    ids=["error", "none", "empty", "one", "not-reporting", "unknown-id", "empty-id", "no-id", "not-a-list"],
)
def test_which_messages_stay_on_the_queue(invocation: Invocation, reporting: bool, failed: set[str]) -> None:
    assert failed_message_ids(invocation, BATCH, reporting) == failed


def test_an_sqs_record_is_what_lambdas_poller_sends() -> None:
    message = {
        "MessageId": "m1",
        "ReceiptHandle": "handle",
        "Body": "hello",
        "MD5OfBody": "5d41402abc4b2a76b9719d911017c592",
        "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1"},
        "MD5OfMessageAttributes": "abc",
        "MessageAttributes": {
            "kind": {"DataType": "String", "StringValue": "image"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    }
    assert sqs_record(message, "arn:aws:sqs:us-east-1:123456789012:q") == {
        "messageId": "m1",
        "receiptHandle": "handle",
        "body": "hello",
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1"},
        "messageAttributes": {
            "kind": {"stringValue": "image", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
            "blob": {"binaryValue": "AAE=", "stringListValues": [], "binaryListValues": [], "dataType": "Binary"},
        },
        "md5OfBody": "5d41402abc4b2a76b9719d911017c592",
        "md5OfMessageAttributes": "abc",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
        "awsRegion": "us-east-1",
    }


class FailingPool:
    """Stands in for a FunctionPool whose every invocation fails."""

    function = FunctionConfig("handle_upload", "app", "handle_upload", "imgpress-local-handle_upload", 1.0, 128)
    size = 1

    def __init__(self) -> None:
        self.calls = 0

    def invoke(self, event: Any, request_id: str | None = None) -> Invocation:
        self.calls += 1
        return Invocation(str(request_id), {"errorType": "RuntimeError", "errorMessage": "no"}, "Unhandled")


@pytest.fixture
def failure_queue(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    use_fake_account(monkeypatch)
    with mock_aws():
        sqs = boto3.client("sqs")
        yield sqs, sqs.create_queue(QueueName="failures")["QueueUrl"]


def test_an_event_older_than_its_maximum_age_is_recorded_as_such(failure_queue: tuple[Any, str]) -> None:
    sqs, url = failure_queue
    pool = FailingPool()
    config = EventInvokeConfig(
        maximum_retry_attempts=2, maximum_event_age_seconds=1, retry_delays=(1.5,), on_failure_queue="failures"
    )
    invoker = AsyncInvoker(pool, config).start()  # type: ignore[arg-type]
    request_id = invoker.submit({"Records": []})
    deadline = time.monotonic() + 5
    while not (messages := sqs.receive_message(QueueUrl=url).get("Messages")) and time.monotonic() < deadline:
        time.sleep(0.05)
    invoker.stop()
    record = json.loads(messages[0]["Body"])
    assert pool.calls == 1  # the retry found the event too old and never ran it
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["requestContext"]["requestId"] == request_id
    assert record["responsePayload"] == {"errorType": "RuntimeError", "errorMessage": "no"}
