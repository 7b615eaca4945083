"""What invokes the functions locally: S3 notifications, SQS event source mappings, schedules.

moto cannot invoke Lambda, so each S3-triggered function gets a transport queue that the bucket
notifies; its events go into Lambda's asynchronous queue (devstack.async_invoke), as S3's would.
SQS mappings poll like Lambda's pollers: batches of `batch_size` gathered for up to the batching
window, `maximum_concurrency` batches at a time, messages deleted only after success, and with
ReportBatchItemFailures only the reported ones kept. Schedules fire every few seconds instead of
their rate or cron expression, as EventBridge would: asynchronously, retried on failure.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import boto3
from chalice.app import S3EventConfig, ScheduledEventConfig, ScheduleExpression, SQSEventConfig

from devstack.async_invoke import AsyncInvoker
from devstack.functions import ACCOUNT, REGION
from devstack.lambda_runtime import FunctionPool, Invocation, Stopped

DEFAULT_SQS_CONCURRENCY = 2  # Lambda's minimum MaximumConcurrency; locally enough to show overlap
POLL_SECONDS = 1  # long-poll wait: short, so that stopping the stack is quick
log = logging.getLogger("devstack")


class ConfigurationError(Exception):
    """A trigger AWS would refuse to create, named with AWS's own reason."""


class EventSource:
    """Threads that turn something into invocations until stopped."""

    def __init__(self, name: str, threads: int) -> None:
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._run, name=f"{name}-{n}", daemon=True) for n in range(threads)]

    def start(self) -> EventSource:
        for thread in self._threads:
            thread.start()
        return self

    def request_stop(self) -> None:
        self._stopping.set()

    def stop(self) -> None:
        self.request_stop()
        for thread in self._threads:
            if thread.ident is not None:  # started
                thread.join(timeout=POLL_SECONDS + 2)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._step()
            except Stopped:
                return
            except Exception:
                if self._stopping.is_set():
                    return
                log.exception("%s failed; carrying on", threading.current_thread().name)
                self._stopping.wait(1)

    def _step(self) -> None:
        raise NotImplementedError

    def queue_name(self) -> str | None:
        """The SQS queue this source reads, if any (a message there is work still to come)."""
        return None

    def describe(self) -> str:
        raise NotImplementedError


class S3Notifications(EventSource):
    """The bucket notifies `queue_url`; each record becomes one asynchronous invocation `{"Records": [record]}`."""

    def __init__(self, invoker: AsyncInvoker, trigger: S3EventConfig, queue_url: str) -> None:
        super().__init__(f"s3-{trigger.name}", 1)
        self.invoker = invoker
        self.trigger = trigger
        self.queue_url = queue_url
        self._sqs = boto3.client("sqs")

    def _step(self) -> None:
        response = self._sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=POLL_SECONDS
        )
        for message in response.get("Messages", []):
            # S3 also sends {"Event": "s3:TestEvent"} when a notification is configured; Lambda never sees it.
            for record in json.loads(message["Body"]).get("Records", []):
                self.invoker.submit({"Records": [record]})
            self._sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def queue_name(self) -> str:
        return self.queue_url.rsplit("/", 1)[-1]

    def describe(self) -> str:
        where = f"s3://{self.trigger.bucket}/{self.trigger.prefix or ''}*{self.trigger.suffix or ''}"
        return f"S3 {','.join(self.trigger.events)} on {where}; {describe_async(self.invoker)}"


def describe_async(invoker: AsyncInvoker) -> str:
    config = invoker.config
    delays = ", ".join(f"{delay:g} s" for delay in config.retry_delays)
    failure = config.on_failure_queue or "none (dropped)"
    return f"async: {config.maximum_retry_attempts} retries after {delays}; on failure -> {failure}"


def sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """One message as Lambda's SQS poller puts it in the event."""
    record = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {name: _attribute(value) for name, value in message.get("MessageAttributes", {}).items()},
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def _attribute(value: dict[str, Any]) -> dict[str, Any]:
    attribute: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return attribute


def failed_message_ids(
    invocation: Invocation, message_ids: Iterable[str], report_batch_item_failures: bool
) -> set[str]:
    """The messages to leave on the queue after one invocation, by Lambda's rules.

    A function error fails the whole batch. With ReportBatchItemFailures a response
    `{"batchItemFailures": [{"itemIdentifier": <messageId>}, ...]}` fails only those; an empty or
    missing list fails none; an identifier that is empty or not in the batch fails them all.
    """
    batch = set(message_ids)
    if invocation.failed:
        return batch
    response = invocation.payload
    if not report_batch_item_failures or not isinstance(response, dict):
        return set()
    failures = response.get("batchItemFailures") or []
    if not isinstance(failures, list):
        return batch
    failed = {item.get("itemIdentifier") if isinstance(item, dict) else None for item in failures}
    reported = {i for i in failed if isinstance(i, str) and i in batch}
    return reported if reported == failed else batch


def sqs_concurrency(trigger: SQSEventConfig) -> int:
    return trigger.maximum_concurrency or DEFAULT_SQS_CONCURRENCY


class SqsMapping(EventSource):
    """An SQS event source mapping: `maximum_concurrency` pollers, each invoking with one batch at a time."""

    def __init__(self, pool: FunctionPool, trigger: SQSEventConfig, report_batch_item_failures: bool) -> None:
        super().__init__(f"sqs-{trigger.name}", sqs_concurrency(trigger))
        self.pool = pool
        self.trigger = trigger
        self.report_batch_item_failures = report_batch_item_failures
        self._sqs = boto3.client("sqs")
        self._queue_name = trigger.queue or str(trigger.queue_arn).rsplit(":", 1)[-1]
        self.queue_url, self.queue_arn = self._connect()

    def _connect(self) -> tuple[str, str]:
        """Refuse what CreateEventSourceMapping refuses: a missing queue, or one that hides messages too briefly."""
        try:
            url = self._sqs.get_queue_url(QueueName=self._queue_name)["QueueUrl"]
        except self._sqs.exceptions.QueueDoesNotExist as error:
            raise ConfigurationError(
                f"{self.trigger.name} reads SQS queue {self._queue_name!r}, which does not exist: define it in "
                "infra/resources.json (the local stack creates the queues defined there)"
            ) from error
        attributes = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn", "VisibilityTimeout"])
        visibility = int(attributes["Attributes"]["VisibilityTimeout"])
        if visibility < self.pool.function.timeout:
            raise ConfigurationError(
                f"{self.trigger.name}: Queue visibility timeout: {visibility} seconds is less than Function timeout: "
                f"{self.pool.function.timeout:g} seconds (AWS refuses this mapping; raise the queue's VisibilityTimeout "
                "in infra/resources.json or lower the function's lambda_timeout in .chalice/config.json)"
            )
        return str(url), str(attributes["Attributes"]["QueueArn"])

    def _step(self) -> None:
        messages = self._receive_batch()
        if not messages:
            return
        invocation = self.pool.invoke({"Records": [sqs_record(m, self.queue_arn) for m in messages]})
        failed = failed_message_ids(invocation, (m["MessageId"] for m in messages), self.report_batch_item_failures)
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            entries = [
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done[start : start + 10])
            ]
            self._sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        if failed:
            log.info(
                "[%s %s] %d of %d messages stay on %s",
                self.trigger.name,
                invocation.request_id,
                len(failed),
                len(messages),
                self._queue_name,
            )

    def _receive_batch(self) -> list[dict[str, Any]]:
        """Up to batch_size messages: the first long-polled, the rest gathered within the batching window."""
        size = self.trigger.batch_size
        batch = self._receive(size, POLL_SECONDS)
        closes = time.monotonic() + self.trigger.maximum_batching_window_in_seconds
        while batch and len(batch) < size and (left := closes - time.monotonic()) > 0:
            more = self._receive(size - len(batch), min(POLL_SECONDS, int(left)))
            batch += more
            if not more:
                self._stopping.wait(min(left, 0.1))
        return batch

    def _receive(self, count: int, wait: int) -> list[dict[str, Any]]:
        response = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(count, 10),
            WaitTimeSeconds=wait,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages", []))

    def queue_name(self) -> str:
        return self._queue_name

    def describe(self) -> str:
        window = self.trigger.maximum_batching_window_in_seconds
        reporting = "batchItemFailures honoured" if self.report_batch_item_failures else "batchItemFailures ignored"
        return (
            f"SQS {self._queue_name}, batches of {self.trigger.batch_size} (window {window} s), "
            f"{len(self._threads)} at a time, {reporting}"
        )


def scheduled_event(rule_arn: str) -> dict[str, Any]:
    """The event EventBridge sends for a schedule rule."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [rule_arn],
        "detail": {},
    }


class Schedule(EventSource):
    """A schedule rule firing every `seconds`, whatever its expression says (kept short locally)."""

    def __init__(self, invoker: AsyncInvoker, trigger: ScheduledEventConfig, seconds: float) -> None:
        super().__init__(f"schedule-{trigger.name}", 1)
        self.invoker = invoker
        self.trigger = trigger
        self.seconds = seconds
        # Chalice names the rule <app>-<stage>-<function>-event.
        self.rule_arn = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{invoker.pool.function.deployed_name}-event"

    def _step(self) -> None:
        if not self._stopping.wait(self.seconds):
            self.invoker.submit(scheduled_event(self.rule_arn))

    def describe(self) -> str:
        expression = self.trigger.schedule_expression
        text = expression.to_string() if isinstance(expression, ScheduleExpression) else expression
        return f"schedule {text}, locally every {self.seconds:g} s; {describe_async(self.invoker)}"
