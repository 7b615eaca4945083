"""Structured logs: every line imgpress writes is one JSON object, so CloudWatch Logs Insights reads
its fields without parsing, and EMF metric records (chalicelib/metrics.py) are lines like the rest.

Each line carries the stage, the function and the invocation's request id (set by app.py's handlers
with `begin`), and, when it is about an image, `image_id` and the owner's hash: a query on
`image_id` follows an image from `POST /uploads` to its SNS message (docs: troubleshooting).
Owners are never written as they are, tokens and presigned URLs never at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from chalicelib.settings import get_stage

EVENTS = logging.getLogger("imgpress.pipeline")
METRICS = logging.getLogger("imgpress.metrics")


@dataclass(frozen=True)
class Invocation:
    """The function running and the request it serves (a Lambda request id, or API Gateway's)."""

    function: str
    request_id: str | None


OUTSIDE = Invocation("unknown", None)  # before any handler began (a test, a tool)
# Per thread: the local stack serves API requests on several threads of one process.
_invocation: ContextVar[Invocation] = ContextVar("imgpress_invocation", default=OUTSIDE)


def begin(function: str, request_id: str | None) -> None:
    """What every line written until the next `begin` says about where it comes from."""
    _invocation.set(Invocation(function, request_id))


def current() -> Invocation:
    return _invocation.get()


def owner_hash(owner: str) -> str:
    """A pseudonym for an owner in logs: stable (a query can find one owner's lines from their id),
    not the id itself."""
    return hashlib.sha256(owner.encode()).hexdigest()[:16]


def outcome(name: str, image_id: str | None, **fields: Any) -> None:
    """One line for one thing that happened (to an image, when `image_id` is given)."""
    EVENTS.info(name, extra={"fields": {"outcome": name, "image_id": image_id, **fields}})


class JsonFormatter(logging.Formatter):
    """A record as one JSON line: when and where, then the event's fields (or the message), then the
    exception, if any, as one string (a traceback stays on its line)."""

    def format(self, record: logging.LogRecord) -> str:
        invocation = current()
        line: dict[str, Any] = {
            "timestamp": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "stage": get_stage(),
            "function": invocation.function,
            "request_id": invocation.request_id,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        else:
            line["message"] = record.getMessage()
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


def _timestamp(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


def configure(logger: logging.Logger, level: str) -> None:
    """JSON lines from `logger`'s handlers (Chalice's, on stdout) at `level`; metric records always,
    whatever the level (an alarm must not depend on LOG_LEVEL)."""
    for handler in logger.handlers:
        handler.setFormatter(JsonFormatter())
    logger.setLevel(level)
    METRICS.setLevel(logging.INFO)
