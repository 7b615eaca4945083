"""DynamoDB: the image record and its state machine, guarded by conditional writes.

pending -> processing -> done | failed. A claim is a lease (token + expiry) so a crashed
worker's claim can be taken over by the next delivery, and a duplicate delivery of the
same upload (same ETag) finds the record finished and does nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.errors import BadRequest

PENDING, PROCESSING, DONE, FAILED = "pending", "processing", "done", "failed"
STATUSES = (PENDING, PROCESSING, DONE, FAILED)
RECORD_KIND = "image"  # constant partition of the newest-first index
PENDING_TTL_SECONDS = 7 * 24 * 3600  # abandoned upload slots expire from the table
_CURSOR_KEYS = {"id", "kind", "status", "created_at", "sha256"}
# Attributes complete() may set besides status/original/outputs.
COMPLETION_DETAILS = {"sha256", "type_mismatch", "placeholders", "deduplicated_from"}


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; give callers ints and floats."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def stored(value: Any) -> Any:
    """DynamoDB takes no floats: send them as Decimal (plain() turns them back)."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: stored(v) for k, v in value.items()}
    if isinstance(value, list):
        return [stored(v) for v in value]
    return value


def _is_conditional_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class ImageRecords:
    """The `images` table, speaking the domain. Takes a boto3 Table resource."""

    def __init__(self, table: Any, clock: Callable[[], datetime] = utc_now) -> None:
        self._table = table
        self._clock = clock

    def create_pending(
        self,
        image_id: str,
        *,
        filename: str | None,
        content_type: str,
        profile: str,
        declared_size: int | None,
        input_bucket: str,
        input_key: str,
    ) -> dict[str, Any]:
        now = self._clock()
        item: dict[str, Any] = {
            "id": image_id,
            "kind": RECORD_KIND,
            "status": PENDING,
            "filename": filename,
            "content_type": content_type,
            "profile": profile,
            "declared_size": declared_size,
            "input_bucket": input_bucket,
            "input_key": input_key,
            "created_at": iso(now),
            "updated_at": iso(now),
            "expires_at": int(now.timestamp()) + PENDING_TTL_SECONDS,
            "error": None,
        }
        item = {k: v for k, v in item.items() if v is not None or k == "error"}
        self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(id)")
        return item

    def get(self, image_id: str) -> dict[str, Any] | None:
        item = self._table.get_item(Key={"id": image_id}, ConsistentRead=True).get("Item")
        return plain(item) if item else None

    def list_page(
        self, status: str | None, limit: int, cursor: str | None, sha256: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first; `cursor` is the opaque `next_cursor` of the previous page."""
        query: dict[str, Any] = {"Limit": limit, "ScanIndexForward": False}
        if sha256:
            query.update(
                IndexName="by-sha256", KeyConditionExpression="sha256 = :h", ExpressionAttributeValues={":h": sha256}
            )
            if status:
                query.update(FilterExpression="#s = :s", ExpressionAttributeNames={"#s": "status"})
                query["ExpressionAttributeValues"][":s"] = status
        elif status:
            query.update(
                IndexName="by-status",
                KeyConditionExpression="#s = :s",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":s": status},
            )
        else:
            query.update(
                IndexName="by-created",
                KeyConditionExpression="kind = :k",
                ExpressionAttributeValues={":k": RECORD_KIND},
            )
        if cursor:
            query["ExclusiveStartKey"] = decode_cursor(cursor)
        page = self._table.query(**query)
        last = page.get("LastEvaluatedKey")
        return [plain(item) for item in page.get("Items", [])], encode_cursor(last) if last else None

    def find_done_twin(self, sha256: str, profile: str, exclude_id: str) -> dict[str, Any] | None:
        """The newest finished image with the same bytes and profile, if any (for dedupe)."""
        page = self._table.query(
            IndexName="by-sha256",
            KeyConditionExpression="sha256 = :h",
            ScanIndexForward=False,
            FilterExpression="#s = :done AND profile = :p AND id <> :me",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":h": sha256, ":done": DONE, ":p": profile, ":me": exclude_id},
        )
        items = page.get("Items", [])
        return plain(items[0]) if items else None

    def claim(self, image_id: str, etag: str, object_size: int, lease_seconds: int) -> str | None:
        """Take the record for processing; returns the claim token, or None if it is not claimable."""
        token = uuid.uuid4().hex
        now = time.time()
        try:
            self._table.update_item(
                Key={"id": image_id},
                UpdateExpression=(
                    "SET #s = :processing, claim_token = :token, lease_until = :lease, source_etag = :etag,"
                    " object_size = :size, updated_at = :now, notified = :false REMOVE expires_at"
                ),
                ConditionExpression=(
                    "attribute_exists(id) AND (#s = :pending"
                    " OR (#s = :processing AND lease_until < :epoch)"
                    " OR (#s IN (:done, :failed) AND source_etag <> :etag))"
                ),
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":processing": PROCESSING,
                    ":pending": PENDING,
                    ":done": DONE,
                    ":failed": FAILED,
                    ":token": token,
                    ":lease": Decimal(str(round(now + lease_seconds, 3))),
                    ":epoch": Decimal(str(round(now, 3))),
                    ":etag": etag,
                    ":size": object_size,
                    ":now": iso(self._clock()),
                    ":false": False,
                },
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                return None
            raise
        return token

    def release(self, image_id: str, token: str) -> None:
        """Give a claim back after a transient fault so Lambda's retry can take it at once."""
        self._guarded_update(image_id, token, "SET lease_until = :zero", {":zero": 0})

    def complete(
        self,
        image_id: str,
        token: str,
        original: dict[str, Any],
        outputs: dict[str, Any],
        details: dict[str, Any] | None = None,
    ) -> bool:
        """processing -> done, only for the holder of the claim. False if the claim was lost.

        `details` (COMPLETION_DETAILS: sha256, type_mismatch, placeholders, deduplicated_from) are set too.
        """
        now = iso(self._clock())
        details = {k: v for k, v in (details or {}).items() if v is not None}
        unknown = set(details) - COMPLETION_DETAILS
        if unknown:
            raise ValueError(f"unknown completion details {sorted(unknown)}")
        extra = "".join(f", {name} = :{name}" for name in sorted(details))
        return self._guarded_update(
            image_id,
            token,
            "SET #s = :done, original = :original, outputs = :outputs, #e = :none,"
            f" updated_at = :now, completed_at = :now{extra} REMOVE lease_until",
            {
                ":done": DONE,
                ":original": original,
                ":outputs": outputs,
                ":none": None,
                ":now": now,
                **{f":{name}": value for name, value in details.items()},
            },
            require_processing=True,
        )

    def fail(
        self,
        image_id: str,
        token: str,
        error: dict[str, str],
        original: dict[str, Any] | None,
        sha256: str | None = None,
    ) -> bool:
        """processing -> failed with a reason code; no outputs are advertised."""
        now = iso(self._clock())
        return self._guarded_update(
            image_id,
            token,
            "SET #s = :failed, #e = :error, original = :original, outputs = :outputs,"
            " updated_at = :now, completed_at = :now"
            + (", sha256 = :sha256" if sha256 else "")
            + " REMOVE lease_until",
            {
                ":failed": FAILED,
                ":error": error,
                ":original": original,
                ":outputs": {},
                ":now": now,
                **({":sha256": sha256} if sha256 else {}),
            },
            require_processing=True,
        )

    def mark_notified(self, image_id: str, token: str) -> None:
        self._guarded_update(image_id, token, "SET notified = :true", {":true": True})

    def delete(self, image_id: str) -> None:
        self._table.delete_item(Key={"id": image_id})

    def _guarded_update(
        self, image_id: str, token: str, expression: str, values: dict[str, Any], require_processing: bool = False
    ) -> bool:
        condition = "claim_token = :token"
        names: dict[str, str] = {}
        if "#s" in expression or require_processing:
            names["#s"] = "status"
        if "#e" in expression:
            names["#e"] = "error"
        if require_processing:
            condition += " AND #s = :processing"
            values = {**values, ":processing": PROCESSING}
        kwargs: dict[str, Any] = {
            "Key": {"id": image_id},
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": stored({**values, ":token": token}),
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        try:
            self._table.update_item(**kwargs)
        except ClientError as error:
            if _is_conditional_failure(error):
                return False
            raise
        return True


def encode_cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(plain(key), separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    """Reject anything that is not a cursor we issued, before it reaches DynamoDB."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("cursor is not a valid next_cursor value", "invalid_cursor") from exc
    if (
        not isinstance(key, dict)
        or not key
        or set(key) - _CURSOR_KEYS
        or not all(isinstance(v, str) and len(v) < 100 for v in key.values())
    ):
        raise BadRequest("cursor is not a valid next_cursor value", "invalid_cursor")
    return key
