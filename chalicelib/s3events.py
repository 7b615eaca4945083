"""From Chalice's S3 event to ours. Chalice's S3Event unquotes the key; we never unquote again."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from chalice.app import S3Event

from chalicelib.domain import parse_iso
from chalicelib.pipeline import UploadEvent


class UploadNotification(S3Event):
    """An S3Event that survives notifications without records.

    S3 sends `{"Event": "s3:TestEvent", ...}` when a notification is configured; Chalice's
    S3Event would raise KeyError on it, failing the invocation and triggering retries.
    """

    def _extract_attributes(self, event_dict: dict[str, Any]) -> None:
        if event_dict.get("Records"):
            super()._extract_attributes(event_dict)
        else:
            self.bucket = str(event_dict.get("Bucket", ""))
            self.key = ""

    def upload_events(self) -> list[UploadEvent]:
        """The object-created records as UploadEvents (none for a test event)."""
        records = self.to_dict().get("Records") or []
        if not records:
            return []
        obj = records[0].get("s3", {}).get("object", {})
        return [
            UploadEvent(
                bucket=self.bucket,
                key=self.key,
                etag=str(obj.get("eTag", "")).strip('"'),
                size=int(obj.get("size", 0)),
                uploaded_at=event_time(records[0]),
            )
        ]


def event_time(record: dict[str, Any]) -> datetime | None:
    """An S3 event record's `eventTime` (when the object was created), None if it has none."""
    try:
        return parse_iso(str(record["eventTime"]))
    except (KeyError, ValueError):
        return None


@dataclass(frozen=True)
class AbandonedUpload:
    """An S3 object whose ObjectCreated event used up every Lambda attempt."""

    bucket: str
    key: str  # URL-decoded once
    reason: str  # Lambda's condition: RetriesExhausted, EventAgeExceeded
    request_id: str | None  # the failed invocation's (its retries shared it)
    uploaded_at: datetime | None  # the S3 event's time


def abandoned_uploads(body: str) -> list[AbandonedUpload]:
    """Read one record of the handler's on-failure destination (an SQS message body).

    Lambda wraps the original event: {"requestContext": {"condition": ...}, "requestPayload":
    {"Records": [...]}, ...}. Anything else (a test message, garbage) yields nothing.
    """
    try:
        record = json.loads(body)
        context = record.get("requestContext", {})
        reason, request_id = str(context.get("condition", "unknown")), context.get("requestId")
        s3_records = record.get("requestPayload", {}).get("Records", [])
        return [
            AbandonedUpload(
                str(r["s3"]["bucket"]["name"]),
                unquote_plus(str(r["s3"]["object"]["key"])),
                reason,
                request_id,
                event_time(r),
            )
            for r in s3_records
        ]
    except (ValueError, AttributeError, KeyError, TypeError):
        return []
