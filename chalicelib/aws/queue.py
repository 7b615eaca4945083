"""SQS: the reprocess queue, written by the API and read by the `reprocess_images` consumer.

Takes a boto3 SQS client and the queue names (the stage's REPROCESS_QUEUE and
REPROCESS_DEAD_LETTER_QUEUE); their URLs are looked up once, on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Final

from chalicelib.ports import QueueDepth, ReprocessMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

_SEND_BATCH = 10  # SendMessageBatch takes at most this many entries
_WAITING: Final = "ApproximateNumberOfMessages"
_IN_FLIGHT: Final = "ApproximateNumberOfMessagesNotVisible"


class SqsReprocessQueue:
    def __init__(self, sqs: SQSClient, queue_name: str, dead_letter_queue_name: str = "") -> None:
        self._sqs = sqs
        self._queue_name = queue_name
        self._dead_letter_queue_name = dead_letter_queue_name

    @cached_property
    def _url(self) -> str:
        return str(self._sqs.get_queue_url(QueueName=self._queue_name)["QueueUrl"])

    @cached_property
    def _dead_letter_url(self) -> str:
        if not self._dead_letter_queue_name:
            return ""
        return str(self._sqs.get_queue_url(QueueName=self._dead_letter_queue_name)["QueueUrl"])

    def send(self, messages: Sequence[ReprocessMessage]) -> list[ReprocessMessage]:
        """SendMessageBatch answers 200 even when single entries fail: read its Failed list."""
        unsent: list[ReprocessMessage] = []
        for start in range(0, len(messages), _SEND_BATCH):
            batch = list(messages[start : start + _SEND_BATCH])
            response = self._sqs.send_message_batch(
                QueueUrl=self._url,
                Entries=[{"Id": str(n), "MessageBody": m.to_body()} for n, m in enumerate(batch)],
            )
            unsent.extend(batch[int(failure["Id"])] for failure in response.get("Failed", []))
        return unsent

    def depth(self) -> QueueDepth:
        queue = self._sqs.get_queue_attributes(QueueUrl=self._url, AttributeNames=[_WAITING, _IN_FLIGHT])["Attributes"]
        dead = 0
        if self._dead_letter_url:
            attributes = self._sqs.get_queue_attributes(QueueUrl=self._dead_letter_url, AttributeNames=[_WAITING])
            dead = int(attributes["Attributes"][_WAITING])
        return QueueDepth(int(queue[_WAITING]), int(queue[_IN_FLIGHT]), dead)
