"""The local stack running the sample app (`python -m devstack`, as `make run` starts it): S3 events
with retries and the on-failure queue, an SQS mapping with partial batch failures, a schedule."""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import boto3
import pytest

from tests.devstack.sample_app import read_journal
from tests.live_stack import LiveStack, running_stack

pytestmark = pytest.mark.e2e

FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:sample-local-handle_upload"
SETTINGS = {
    "LOCAL_APP_MODULE": "tests.devstack.sample_app",
    "LOCAL_RESOURCES_TEMPLATE": str(Path(__file__).parent / "resources.json"),
    "LOCAL_LAMBDA_TIMEOUT_HANDLE_UPLOAD": "1",
    "LOCAL_LAMBDA_TIMEOUT_CONSUME_BATCH": "1",
    "LOCAL_LAMBDA_TIMEOUT_CONSUME_FAILURES": "2",
    "LOCAL_LAMBDA_TIMEOUT_TICK": "5",
    "LOCAL_ASYNC_RETRY_DELAYS": "0.5,1",
    "LOCAL_SCHEDULE_SECONDS": "1",
    "WORKERS": "2",
}


class Sample:
    def __init__(self, live: LiveStack, journal: Path) -> None:
        self.live = live
        self.journal = journal
        options = {"endpoint_url": live.aws, "region_name": "us-east-1"}
        keys = {"aws_access_key_id": "imgpress-local", "aws_secret_access_key": "imgpress-local"}
        self.s3 = boto3.client("s3", **options, **keys)
        self.sqs = boto3.client("sqs", **options, **keys)

    def read(self, kind: str) -> list[dict[str, Any]]:
        return read_journal(self.journal, kind)

    def queue(self, name: str) -> str:
        return str(self.sqs.get_queue_url(QueueName=name)["QueueUrl"])


@pytest.fixture(scope="module")
def sample() -> Iterator[Sample]:
    with tempfile.TemporaryDirectory() as journal, running_stack({**SETTINGS, "SAMPLE_JOURNAL": journal}) as live:
        yield Sample(live, Path(journal))


def wait_for(condition: Callable[[], Any], seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while not (result := condition()):
        assert time.monotonic() < deadline, f"not true within {seconds} s"
        time.sleep(0.1)
    return result


def test_a_terminated_stack_is_gone_at_once_with_its_sandboxes() -> None:
    """SIGTERM (what tests' fixtures send) stops the stack as Ctrl-C does: sandboxes killed, then exit,
    without waiting for its pollers' long polls."""
    with tempfile.TemporaryDirectory() as journal:
        with running_stack({**SETTINGS, "SAMPLE_JOURNAL": journal}) as live:
            sandboxes = [int(pid) for pid in Path(f"/proc/{live.pid}/task/{live.pid}/children").read_text().split()]
            stopping = time.monotonic()
        stopped_in = time.monotonic() - stopping
    assert len(sandboxes) == 7  # 2 + 2 + 2 + 1: the sample app's functions' sandboxes
    assert not [pid for pid in sandboxes if Path(f"/proc/{pid}").exists()]
    assert stopped_in < 5, stopped_in


def test_start_prints_what_runs_with_which_timeout_retries_and_schedule(sample: Sample) -> None:
    output = sample.live.output()
    assert (
        "handle_upload: 1 s, 1769 MB, 2 sandbox(es); S3 s3:ObjectCreated:* on s3://imgpress-local-input/uploads/*"
        in output
    )
    assert "async: 2 retries after 0.5 s, 1 s; on failure -> imgpress-local-upload-failures" in output
    assert "consume_batch: 1 s, 128 MB, 2 sandbox(es); SQS sample-local-batch, batches of 10 (window 1 s)" in output
    assert "tick: 5 s, 128 MB, 1 sandbox(es); schedule rate(5 minutes), locally every 1 s" in output


def test_every_attempt_failing_ends_in_one_invocation_record_on_the_failure_queue(sample: Sample) -> None:
    """Both a raising and a timed-out handler: three attempts each, the retry delays apart, one record."""
    keys = ["uploads/raise-async", "uploads/sleep-async"]
    for key in keys:
        sample.s3.put_object(Bucket="imgpress-local-input", Key=key, Body=b"x")
    records = wait_for(lambda: len(sample.read("failure_records")) >= 2 and sample.read("failure_records"), 20)
    time.sleep(1.5)  # nothing more arrives
    assert len(sample.read("failure_records")) == 2
    # The request payload is S3's event as sent: its key URL-encoded.
    by_key = {unquote_plus(e["record"]["requestPayload"]["Records"][0]["s3"]["object"]["key"]): e for e in records}
    assert sorted(by_key) == keys
    for key in keys:
        tries = [a for a in sample.read("attempts") if a["key"] == key]
        assert len(tries) == 3
        request_ids = {a["context"]["aws_request_id"] for a in tries}
        assert len(request_ids) == 1  # one event, retried under the same request id
        gaps = [later["at"] - earlier["at"] for earlier, later in pairwise(tries)]
        assert gaps[0] >= 0.5 and gaps[1] >= 1.0, gaps
        record = by_key[key]["record"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record.pop("timestamp"))
        response = record.pop("responsePayload")
        assert record == {
            "version": "1.0",
            "requestContext": {
                "requestId": request_ids.pop(),
                "functionArn": f"{FUNCTION_ARN}:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": 3,
            },
            "requestPayload": record["requestPayload"],
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        }
        assert record["requestPayload"]["Records"][0]["eventSource"] == "aws:s3"
        if "raise" in key:
            assert response["errorType"] == "RuntimeError" and response["errorMessage"] == f"planned failure for {key}"
        else:
            assert response == {
                "errorType": "Sandbox.Timedout",
                "errorMessage": f"RequestId: {record['requestContext']['requestId']} Error: Task timed out after 1.00 seconds",
            }
            assert len({a["pid"] for a in tries}) == 3  # each timed-out sandbox was replaced
    assert not sample.read("finally")
    delivered = records[0]["sqs_record"]
    assert delivered["eventSource"] == "aws:sqs" and delivered["awsRegion"] == "us-east-1"
    assert delivered["eventSourceARN"] == "arn:aws:sqs:us-east-1:123456789012:imgpress-local-upload-failures"
    assert delivered["md5OfBody"] == hashlib.md5(delivered["body"].encode()).hexdigest()
    assert delivered["attributes"]["ApproximateReceiveCount"] == "1"
    assert "Task timed out after 1.00 seconds" in sample.live.output()


def test_partial_batch_failures_keep_only_the_failed_messages(sample: Sample) -> None:
    bodies = ["ok-1", "fail-1", "ok-2", "fail-2"]
    entries = [{"Id": str(n), "MessageBody": body} for n, body in enumerate(bodies)]
    sample.sqs.send_message_batch(QueueUrl=sample.queue("sample-local-batch"), Entries=entries)
    dead_letters = sample.queue("sample-local-batch-dlq")

    def in_dead_letter_queue() -> bool:
        attributes = sample.sqs.get_queue_attributes(
            QueueUrl=dead_letters, AttributeNames=["ApproximateNumberOfMessages"]
        )
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"]) == 2

    wait_for(in_dead_letter_queue, 15)
    seen = [record for batch in sample.read("batches") for record in batch["records"]]
    counts = {body: sum(r["body"] == body for r in seen) for body in bodies}
    assert counts == {"ok-1": 1, "ok-2": 1, "fail-1": 2, "fail-2": 2}  # maxReceiveCount 2, then the DLQ
    moved = sample.sqs.receive_message(QueueUrl=dead_letters, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in moved) == ["fail-1", "fail-2"]
    first = next(r for r in seen if r["body"] == "ok-1")
    assert first["eventSourceARN"] == "arn:aws:sqs:us-east-1:123456789012:sample-local-batch"
    assert set(first["attributes"]) >= {"ApproximateReceiveCount", "SentTimestamp", "ApproximateFirstReceiveTimestamp"}


def test_schedules_fire_with_eventbridges_event_and_a_fresh_deadline(sample: Sample) -> None:
    sweeps = wait_for(lambda: len(sample.read("sweeps")) >= 3 and sample.read("sweeps"), 10)
    gaps = [later["at"] - earlier["at"] for earlier, later in pairwise(sweeps)]
    assert all(0.8 <= gap <= 3 for gap in gaps), gaps
    event = sweeps[-1]["event"]
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events" and event["detail"] == {}
    assert event["resources"] == ["arn:aws:events:us-east-1:123456789012:rule/sample-local-tick-event"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["time"])
    assert all(4000 < s["remaining_ms"] <= 5000 for s in sweeps)
    assert json.dumps(event)  # plain JSON all the way
