"""Each port's fake and its AWS adapter, as one parametrized fixture: the same tests run on both."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.aws.notify import SnsNotifier
from chalicelib.aws.queue import SqsReprocessQueue
from chalicelib.aws.quota_store import DynamoQuotaStore
from chalicelib.aws.records import DynamoBackfillLog, DynamoRecordStore
from chalicelib.aws.storage import S3ObjectStore, S3Uploads
from chalicelib.aws.transform_ledger import DynamoTransformLedger
from chalicelib.ports import ReprocessMessage
from tests.conftest import ENV
from tests.fakes import (
    InMemoryBackfillLog,
    InMemoryObjectStore,
    InMemoryQuotaStore,
    InMemoryRecordStore,
    InMemoryReprocessQueue,
    InMemoryTransformLedger,
    InMemoryUploads,
    RecordingNotifier,
)


@pytest.fixture(params=["memory", "dynamodb"])
def record_store(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        yield InMemoryRecordStore()
    else:
        aws = request.getfixturevalue("aws")
        yield DynamoRecordStore(aws.table)


@pytest.fixture(params=["memory", "dynamodb"])
def quota_store(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        yield InMemoryQuotaStore()
    else:
        aws = request.getfixturevalue("aws")
        yield DynamoQuotaStore(aws.table)


@pytest.fixture(params=["memory", "dynamodb"])
def transform_ledger(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        yield InMemoryTransformLedger()
    else:
        aws = request.getfixturevalue("aws")
        yield DynamoTransformLedger(aws.table)


@pytest.fixture(params=["memory", "s3"])
def object_store(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        yield InMemoryObjectStore(ENV["OUTPUT_BUCKET"])
    else:
        aws = request.getfixturevalue("aws")
        yield S3ObjectStore(aws.s3, ENV["OUTPUT_BUCKET"], "public, max-age=60")


@pytest.fixture(params=["memory", "sns"])
def notifier(request: pytest.FixtureRequest) -> Iterator[tuple[Any, Any]]:
    """(notifier, a function returning the message bodies published so far)."""
    if request.param == "memory":
        from chalicelib.views import result_message

        fake = RecordingNotifier()
        yield fake, lambda: [result_message(r) for r in fake.published]
    else:
        import boto3

        aws = request.getfixturevalue("aws")
        yield SnsNotifier(boto3.client("sns"), ENV["TOPIC_ARN"]), aws.notifications


@pytest.fixture(params=["memory", "dynamodb"])
def backfill_log(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        yield InMemoryBackfillLog()
    else:
        aws = request.getfixturevalue("aws")
        yield DynamoBackfillLog(aws.table)


@pytest.fixture(params=["memory", "sqs"])
def reprocess_queue(request: pytest.FixtureRequest) -> Iterator[tuple[Any, Any]]:
    """(queue, a function taking the messages sent so far off it, as the consumer would)."""
    if request.param == "memory":
        fake = InMemoryReprocessQueue()
        yield fake, fake.drain
    else:
        import boto3

        from devstack.functions import ACCOUNT, REGION
        from devstack.resources import RESOURCES_TEMPLATE, create_queues

        request.getfixturevalue("aws")
        create_queues(RESOURCES_TEMPLATE, "local", ACCOUNT, REGION)
        sqs = boto3.client("sqs")
        url = sqs.get_queue_url(QueueName=ENV["REPROCESS_QUEUE"])["QueueUrl"]

        def receive() -> list[ReprocessMessage]:
            taken: list[ReprocessMessage] = []
            while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
                for message in batch:
                    parsed = ReprocessMessage.from_body(message["Body"])
                    assert parsed is not None
                    taken.append(parsed)
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            return taken

        yield SqsReprocessQueue(sqs, ENV["REPROCESS_QUEUE"], ENV["REPROCESS_DEAD_LETTER_QUEUE"]), receive


@pytest.fixture(params=["memory", "s3"])
def uploads(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        yield InMemoryUploads()
    else:
        import boto3
        from botocore.config import Config

        request.getfixturevalue("aws")
        yield S3Uploads(boto3.client("s3", config=Config(signature_version="s3v4")), ENV["INPUT_BUCKET"])
