"""Lambda's asynchronous invocation, locally: the event queue, retries, and the on-failure destination.

S3 notifications and schedules invoke a function asynchronously: Lambda queues the event, runs it,
and on a function error (a timeout is one) runs it again up to MaximumRetryAttempts times, waiting
between attempts, with the same request id. An event that exhausts its attempts, or waits longer
than MaximumEventAgeInSeconds, becomes an invocation record on the on-failure destination (an SQS
queue here) in AWS's format, and is dropped.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3

from devstack.functions import EventInvokeConfig
from devstack.lambda_runtime import FunctionPool, Invocation, Stopped

log = logging.getLogger("devstack.lambda")


@dataclass(order=True)
class AsyncEvent:
    """One queued event; ordered by when it is due."""

    due: float
    sequence: int
    request_id: str = field(compare=False)
    payload: Any = field(compare=False)
    queued_at: float = field(compare=False)
    attempts: int = field(default=0, compare=False)
    last: Invocation | None = field(default=None, compare=False)


def invocation_record(function_arn: str, event: AsyncEvent, condition: str) -> dict[str, Any]:
    """AWS's record of a failed asynchronous invocation ("Capturing records of Lambda asynchronous invocations")."""
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {
            "requestId": event.request_id,
            "functionArn": f"{function_arn}:$LATEST",
            "condition": condition,
            "approximateInvokeCount": event.attempts,
        },
        "requestPayload": event.payload,
    }
    if event.last is not None:  # an event too old to run at all has no response
        record["responseContext"] = {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
        record["responsePayload"] = event.last.payload
    return record


class AsyncInvoker:
    """Invoke type `Event` for one function: `submit` returns at once; dispatchers, one per sandbox, run the queue."""

    def __init__(self, pool: FunctionPool, config: EventInvokeConfig) -> None:
        self.pool = pool
        self.config = config
        self._queue: list[AsyncEvent] = []
        self._sequence = itertools.count()
        self._changed = threading.Condition()
        self._stopped = False
        self._active = 0  # events taken off the queue and not yet finished (their retries included)
        self._threads = [
            threading.Thread(target=self._dispatch, name=f"async-{pool.function.name}-{n}", daemon=True)
            for n in range(pool.size)
        ]
        # Made here, in the starting thread: boto3's default session is not safe to share while creating clients.
        self._sqs = boto3.client("sqs") if config.on_failure_queue else None
        self._destination_url = ""

    def start(self) -> AsyncInvoker:
        for thread in self._threads:
            thread.start()
        return self

    def submit(self, payload: Any) -> str:
        """Queue one event (Lambda answers 202); returns its request id, the same on every attempt."""
        now = time.monotonic()
        event = AsyncEvent(now, next(self._sequence), str(uuid.uuid4()), payload, now)
        self._push(event)
        return event.request_id

    def _push(self, event: AsyncEvent) -> None:
        with self._changed:
            heapq.heappush(self._queue, event)
            self._changed.notify()

    def _next_due(self) -> AsyncEvent | None:
        with self._changed:
            while not self._stopped:
                wait = self._queue[0].due - time.monotonic() if self._queue else 0.5
                if wait <= 0:
                    self._active += 1
                    return heapq.heappop(self._queue)
                self._changed.wait(min(wait, 0.5))
        return None

    def _dispatch(self) -> None:
        while (event := self._next_due()) is not None:
            try:
                self._attempt(event)
            except Stopped:
                return
            except Exception:
                log.exception(
                    "[%s %s] async invocation failed in the runtime", self.pool.function.name, event.request_id
                )
            finally:
                with self._changed:
                    self._active -= 1

    def pending(self) -> int:
        """Events queued, due for a retry or running: 0 when this function has nothing left to do."""
        with self._changed:
            return len(self._queue) + self._active

    def _attempt(self, event: AsyncEvent) -> None:
        if time.monotonic() - event.queued_at > self.config.maximum_event_age_seconds:
            self._give_up(event, "EventAgeExceeded")
            return
        event.attempts += 1
        event.last = self.pool.invoke(event.payload, event.request_id)
        if not event.last.failed:
            return
        if event.attempts > self.config.maximum_retry_attempts:
            self._give_up(event, "RetriesExhausted")
            return
        delay = self.config.retry_delay(event.attempts)
        log.info(
            "[%s %s] attempt %d failed; retrying in %.1f s",
            self.pool.function.name,
            event.request_id,
            event.attempts,
            delay,
        )
        event.due = time.monotonic() + delay
        self._push(event)

    def _give_up(self, event: AsyncEvent, condition: str) -> None:
        name = self.pool.function.name
        if self._sqs is None:
            log.warning(
                "[%s %s] %s after %d attempts; no on-failure destination, event dropped",
                name,
                event.request_id,
                condition,
                event.attempts,
            )
            return
        record = invocation_record(self.pool.function.arn, event, condition)
        if not self._destination_url:
            self._destination_url = self._sqs.get_queue_url(QueueName=self.config.on_failure_queue)["QueueUrl"]
        self._sqs.send_message(QueueUrl=self._destination_url, MessageBody=json.dumps(record))
        log.warning(
            "[%s %s] %s after %d attempts; record sent to %s",
            name,
            event.request_id,
            condition,
            event.attempts,
            self.config.on_failure_queue,
        )

    def request_stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify_all()

    def stop(self) -> None:
        self.request_stop()
        for thread in self._threads:
            if thread.ident is not None:  # started
                thread.join(timeout=2)
