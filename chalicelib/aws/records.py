"""DynamoDB: image records as items, the version-conditioned write, and the access patterns.

The domain (domain.py) decides every transition; this adapter only maps records to items and
back and makes each write conditional on the version it was derived from. Indexes are keyed
by owner and a shard, or by a shard, so no partition key value takes more than an eighth of one
owner's traffic or a sixteenth of everyone's (docs: capacity); their attributes are derived here
and absent when a query must not see the record (sparse indexes: tombstones vanish from
listings, finished images from the sweeper's).
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from chalicelib.domain import Failure, ImageRecord, OriginalInfo, OutputInfo, Reprocess, ReprocessStatus, Status
from chalicelib.errors import BadRequest
from chalicelib.ports import BackfillProgress, ListQuery, Page, RecordExists

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

# Index name -> (partition attribute, sort attribute). Every index is KEYS_ONLY or INCLUDEs a
# few small attributes, so a status change writes a few dozen bytes to each, not the whole item.
BY_OWNER_SHARD = "by-owner-shard"
BY_OWNER_STATUS_SHARD = "by-owner-status-shard"
BY_OWNER_SHA256 = "by-owner-sha256"
BY_CREATED_SHARD = "by-created-shard"
BY_OPEN_SHARD = "by-open-shard"
INDEX_KEYS: dict[str, tuple[str, str]] = {
    BY_OWNER_SHARD: ("owner_shard", "created_at"),
    BY_OWNER_STATUS_SHARD: ("owner_status_shard", "created_at"),
    BY_OWNER_SHA256: ("owner_sha256", "created_at"),
    BY_CREATED_SHARD: ("created_shard", "created_at"),
    BY_OPEN_SHARD: ("open_shard", "open_since"),
}
# Writes to the admin listing and the sweeper's index are spread over this many partition keys.
SHARDS = 16
# Writes to one owner's listing indexes are spread over this many: one owner uploading everything
# then puts 2 write units per upload on each `<owner>#pending#<k>` over 8 keys (4,000 uploads a
# second before one key takes 1,000), and a listing page costs 8 small queries (docs: capacity).
OWNER_SHARDS = 8
_BATCH_GET_LIMIT = 100
_POSITION_LIMIT = 200  # characters of a cursor's created_at or id: ours are far shorter


def shard_of(image_id: str) -> str:
    """Ids are uniformly random hex, so their first digits spread records evenly over shards."""
    return str(int(image_id[:4], 16) % SHARDS)


def owner_shard_of(image_id: str) -> str:
    return str(int(image_id[:4], 16) % OWNER_SHARDS)


def index_attributes(record: ImageRecord) -> dict[str, str]:
    """The derived attributes that place `record` in each index (none for a tombstone)."""
    if record.is_deleted:
        return {}
    attributes = {
        "owner_shard": f"{record.owner}#{owner_shard_of(record.id)}",
        "owner_status_shard": f"{record.owner}#{record.status}#{owner_shard_of(record.id)}",
        "created_shard": shard_of(record.id),
    }
    if record.sha256:
        attributes["owner_sha256"] = f"{record.owner}#{record.sha256}"
    if record.open_since is not None:
        # open_status: pending, or processing (an upload's claim or a claimed reprocess; a merely
        # queued reprocess is not the sweeper's: the queue retries it, a backfill may queue millions).
        attributes["open_shard"] = f"{record.open_status}#{shard_of(record.id)}"
        attributes["open_since"] = record.open_since
    return attributes


def to_item(record: ImageRecord) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": record.id,
        "owner": record.owner,
        "status": str(record.status),
        "profile": record.profile,
        "content_type": record.content_type,
        "input_bucket": record.input_bucket,
        "input_key": record.input_key,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "version": record.version,
        "filename": record.filename,
        "declared_size": record.declared_size,
        "upload_id": record.upload_id,
        "expires_at": record.expires_at,
        "source_etag": record.source_etag,
        "object_size": record.object_size,
        "claim_token": record.claim_token,
        "lease_until": record.lease_until,
        "claim_request": record.claim_request,
        "attempts": record.attempts,
        "claimed_at": record.claimed_at,
        "redriven_at": record.redriven_at,
        "completed_at": record.completed_at,
        "notified": record.notified,
        "original": record.original.to_dict() if record.original else None,
        "outputs": {name: output.to_dict() for name, output in record.outputs.items()},
        "sha256": record.sha256,
        "type_mismatch": record.type_mismatch,
        "placeholders": dict(record.placeholders) if record.placeholders is not None else None,
        "deduplicated_from": record.deduplicated_from,
        "animation": record.animation,
        "error": record.error.to_dict() if record.error else None,
        "deleted_at": record.deleted_at,
        "generation": record.generation,
        "reprocessed_by": record.reprocessed_by,
        "backfill": record.backfill,
        "reprocess": record.reprocess.to_dict() if record.reprocess else None,
        **index_attributes(record),
    }
    return {name: _stored(value) for name, value in item.items() if value is not None}


def from_item(item: Mapping[str, Any]) -> ImageRecord:
    data = _plain(dict(item))
    original = data.get("original")
    error = data.get("error")
    return ImageRecord(
        id=data["id"],
        owner=data["owner"],
        status=Status(data["status"]),
        profile=data["profile"],
        content_type=data["content_type"],
        input_bucket=data["input_bucket"],
        input_key=data["input_key"],
        created_at=data["created_at"],
        updated_at=data["updated_at"],
        version=data["version"],
        filename=data.get("filename"),
        declared_size=data.get("declared_size"),
        upload_id=data.get("upload_id"),
        expires_at=data.get("expires_at"),
        source_etag=data.get("source_etag"),
        object_size=data.get("object_size"),
        claim_token=data.get("claim_token"),
        lease_until=_float(data.get("lease_until")),
        claim_request=data.get("claim_request"),
        attempts=data.get("attempts", 0),
        claimed_at=data.get("claimed_at"),
        redriven_at=data.get("redriven_at"),
        completed_at=data.get("completed_at"),
        notified=bool(data.get("notified")),
        original=OriginalInfo(**original) if original else None,
        outputs={name: OutputInfo(**output) for name, output in (data.get("outputs") or {}).items()},
        sha256=data.get("sha256"),
        type_mismatch=bool(data.get("type_mismatch")),
        placeholders=data.get("placeholders"),
        deduplicated_from=data.get("deduplicated_from"),
        animation=data.get("animation"),
        error=Failure(**error) if error else None,
        deleted_at=data.get("deleted_at"),
        generation=data.get("generation", 0),
        reprocessed_by=data.get("reprocessed_by"),
        backfill=data.get("backfill"),
        reprocess=_reprocess(data.get("reprocess")),
    )


def _reprocess(data: Mapping[str, Any] | None) -> Reprocess | None:
    if not data:
        return None
    error = data.get("error")
    return Reprocess(
        id=data["id"],
        profile=data["profile"],
        requested_at=data["requested_at"],
        status=ReprocessStatus(data.get("status", "queued")),
        backfill=data.get("backfill"),
        attempts=data.get("attempts", 0),
        error=Failure(**error) if error else None,
    )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal: ints and floats for the domain."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _stored(value: Any) -> Any:
    """DynamoDB takes no floats: Decimal from their shortest repr."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _stored(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_stored(v) for v in value]
    return value


def _conditional_check_failed(error: Exception) -> bool:
    response = getattr(error, "response", None) or {}
    return bool(response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


class DynamoRecordStore:
    """The `images` table. Takes a boto3 Table resource (and uses its client for batch reads)."""

    def __init__(self, table: Table) -> None:
        self._table = table
        # The Table resource's client, for batch reads; it converts Python values to DynamoDB's and back.
        self._dynamodb = table.meta.client

    def create(self, record: ImageRecord) -> None:
        if not self._put(record, "attribute_not_exists(id)", {}):
            raise RecordExists(record.id)

    def get(self, image_id: str) -> ImageRecord | None:
        item = self._table.get_item(Key={"id": image_id}, ConsistentRead=True).get("Item")
        return from_item(item) if item else None

    def save(self, record: ImageRecord) -> ImageRecord | None:
        saved = replace(record, version=record.version + 1)
        return saved if self._put(saved, "#v = :expected", {":expected": record.version}) else None

    def _put(self, record: ImageRecord, condition: str, values: dict[str, Any]) -> bool:
        from botocore.exceptions import ClientError

        kwargs: dict[str, Any] = {"Item": to_item(record), "ConditionExpression": condition}
        if values:
            kwargs.update(ExpressionAttributeNames={"#v": "version"}, ExpressionAttributeValues=values)
        try:
            self._table.put_item(**kwargs)
        except ClientError as error:
            if _conditional_check_failed(error):
                return False
            raise
        return True

    def list_page(self, query: ListQuery) -> Page:
        if query.owner is None:
            shards = {str(shard): str(shard) for shard in range(SHARDS)}
            return self._merged(BY_CREATED_SHARD, shards, query, None, str(query.status or "") or None)
        if query.sha256:
            index, partition = BY_OWNER_SHA256, f"{query.owner}#{query.sha256}"
            keys, last = self._query_keys(index, partition, query.limit, _start_key(query.cursor, index, partition))
            records = [r for r in self._read_all(keys) if _matches(r, query)]
            return Page(records, encode_cursor(last) if last else None)
        owner = f"{query.owner}#{query.status}" if query.status else query.owner
        index = BY_OWNER_STATUS_SHARD if query.status else BY_OWNER_SHARD
        shards = {str(k): f"{owner}#{k}" for k in range(OWNER_SHARDS)}
        return self._merged(index, shards, query, [query.owner, query.status and str(query.status)], None)

    def _query_keys(
        self, index: str, partition: str, limit: int, start: dict[str, str] | None, filter_status: str | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        partition_attribute = INDEX_KEYS[index][0]
        request: dict[str, Any] = {
            "IndexName": index,
            "KeyConditionExpression": "#p = :p",
            "ExpressionAttributeNames": {"#p": partition_attribute},
            "ExpressionAttributeValues": {":p": partition},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if start:
            request["ExclusiveStartKey"] = start
        if filter_status:
            request["FilterExpression"] = "#s = :s"
            request["ExpressionAttributeNames"]["#s"] = "status"
            request["ExpressionAttributeValues"][":s"] = filter_status
        response = self._table.query(**request)
        return list(response.get("Items", [])), response.get("LastEvaluatedKey")

    def _read_all(self, keys: Sequence[Mapping[str, Any]]) -> list[ImageRecord]:
        """Full items for index hits, in the index's order (BatchGetItem, retrying unprocessed keys)."""
        ids = [str(key["id"]) for key in keys]
        found: dict[str, ImageRecord] = {}
        name = self._table.name
        for start in range(0, len(ids), _BATCH_GET_LIMIT):
            pending: dict[str, Any] = {name: {"Keys": [{"id": i} for i in ids[start : start + _BATCH_GET_LIMIT]]}}
            while pending:
                response = self._dynamodb.batch_get_item(RequestItems=pending)
                for item in response.get("Responses", {}).get(name, []):
                    record = from_item(item)
                    found[record.id] = record
                pending = response.get("UnprocessedKeys") or {}
        return [found[i] for i in ids if i in found and not found[i].is_deleted]

    def _merged(
        self,
        index: str,
        partitions: Mapping[str, str],
        query: ListQuery,
        scope: list[str | None] | None,
        filter_status: str | None,
    ) -> Page:
        """Newest first over write-sharded partitions: each queried from its own position, merged.

        The cursor holds each shard's position (and `scope`, an owner's listing's owner and status,
        so it continues only the listing it came from): a page costs one small query per shard.
        """
        positions = _shard_positions(query.cursor, partitions, scope)
        candidates: list[tuple[str, str, str]] = []  # (created_at, id, shard)
        exhausted_after: dict[str, bool] = {}
        for shard, start in positions.items():
            if start == "done":
                continue
            partition = partitions[shard]
            keys, last = self._query_keys(
                index, partition, query.limit, _position_key(index, partition, start), filter_status
            )
            exhausted_after[shard] = last is None
            candidates.extend((str(key["created_at"]), str(key["id"]), shard) for key in keys)
        taken = heapq.nlargest(query.limit, candidates)
        next_positions: dict[str, Any] = dict(positions)
        for created_at, image_id, shard in taken:
            next_positions[shard] = [created_at, image_id]
        for shard, exhausted in exhausted_after.items():
            untaken = any(c[2] == shard and c not in taken for c in candidates)
            if exhausted and not untaken:
                next_positions[shard] = "done"
        more = any(position != "done" for position in next_positions.values())
        records = [r for r in self._read_all([{"id": image_id} for _, image_id, _ in taken]) if _matches(r, query)]
        issued = {"shards": next_positions, **({"of": scope} if scope is not None else {})}
        return Page(records, encode_cursor(issued) if more and taken else None)

    def find_done_twin(self, owner: str, sha256: str, profile: str, exclude_id: str) -> ImageRecord | None:
        keys, _ = self._query_keys(BY_OWNER_SHA256, f"{owner}#{sha256}", 25, None, filter_status=str(Status.DONE))
        for record in self._read_all([key for key in keys if key["id"] != exclude_id]):
            if record.status == Status.DONE and record.profile == profile:
                return record
        return None

    def open_records(self, status: Status, since: str, before: str) -> list[ImageRecord]:
        keys: list[dict[str, Any]] = []
        for shard in range(SHARDS):
            start: dict[str, Any] | None = None
            while True:
                request: dict[str, Any] = {
                    "IndexName": BY_OPEN_SHARD,
                    "KeyConditionExpression": "open_shard = :s AND open_since BETWEEN :since AND :before",
                    "ExpressionAttributeValues": {":s": f"{status}#{shard}", ":since": since, ":before": before},
                }
                if start:
                    request["ExclusiveStartKey"] = start
                response = self._table.query(**request)
                keys.extend(response.get("Items", []))
                start = response.get("LastEvaluatedKey")
                if not start:
                    break
        return [r for r in self._read_all(keys) if r.open_status == status and r.open_since and r.open_since < before]


BACKFILL_KEY_PREFIX = "backfill#"  # never an image id (32 hex digits), so never read as an image
BACKFILL_TTL_SECONDS = 90 * 24 * 3600
BACKFILL_COUNTERS = frozenset({"queued", "done", "failed"})


class DynamoBackfillLog:
    """Backfill progress as one small item per backfill in the images table. It carries none of the
    index attributes, so no listing, lookup or sweep ever sees it; it expires by TTL."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def start(self, backfill: BackfillProgress) -> bool:
        from botocore.exceptions import ClientError

        item: dict[str, str | int] = {
            "id": BACKFILL_KEY_PREFIX + backfill.id,
            "owner": backfill.owner,
            "profile": backfill.profile,
            "queued": backfill.queued,
            "done": backfill.done,
            "failed": backfill.failed,
            "expires_at": int(time.time()) + BACKFILL_TTL_SECONDS,
        }
        try:
            self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(id)")
        except ClientError as error:
            if _conditional_check_failed(error):
                return False
            raise
        return True

    def get(self, backfill_id: str) -> BackfillProgress | None:
        item = self._table.get_item(Key={"id": BACKFILL_KEY_PREFIX + backfill_id}, ConsistentRead=True).get("Item")
        if not item:
            return None
        data = _plain(dict(item))
        counters = {name: int(data.get(name, 0)) for name in BACKFILL_COUNTERS}
        return BackfillProgress(backfill_id, str(data["owner"]), str(data["profile"]), **counters)

    def count(self, backfill_id: str, counter: str, amount: int = 1) -> None:
        if counter not in BACKFILL_COUNTERS:
            raise ValueError(f"no backfill counter {counter!r}")
        self._table.update_item(
            Key={"id": BACKFILL_KEY_PREFIX + backfill_id},
            UpdateExpression="ADD #c :n",
            ConditionExpression="attribute_exists(id)",
            ExpressionAttributeNames={"#c": counter},
            ExpressionAttributeValues={":n": amount},
        )


def _matches(record: ImageRecord, query: ListQuery) -> bool:
    """Index entries are eventually consistent: re-check what the query asked of the full item."""
    if query.owner is not None and record.owner != query.owner:
        return False
    if query.status is not None and record.status != query.status:
        return False
    return query.sha256 is None or record.sha256 == query.sha256


def encode_cursor(key: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(_plain(dict(key)), separators=(",", ":")).encode()).decode().rstrip("=")


def _invalid_cursor() -> BadRequest:
    return BadRequest("cursor is not a next_cursor value issued for this query", "invalid_cursor")


def _decode_cursor(cursor: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise _invalid_cursor() from exc


def _start_key(cursor: str | None, index: str, partition: str) -> dict[str, str] | None:
    """The ExclusiveStartKey a cursor stands for, only if it is exactly one this query issued:
    the index's keys plus the table's, its partition value the query's own (so a forged cursor
    can neither reach DynamoDB's validation nor another owner's partition)."""
    if cursor is None:
        return None
    key = _decode_cursor(cursor)
    partition_attribute, sort_attribute = INDEX_KEYS[index]
    if (
        not isinstance(key, dict)
        or set(key) != {"id", partition_attribute, sort_attribute}
        or key[partition_attribute] != partition
        or not all(isinstance(v, str) and 0 < len(v) <= 200 for v in key.values())
    ):
        raise _invalid_cursor()
    return key


def _shard_positions(
    cursor: str | None, partitions: Mapping[str, str], scope: list[str | None] | None
) -> dict[str, Any]:
    """Each shard's position a merged listing's cursor holds: exactly the query's shards, and the
    query's own scope (an owner's cursor continues neither another owner's listing nor the admin's)."""
    if cursor is None:
        return {shard: None for shard in partitions}
    decoded = _decode_cursor(cursor)
    expected = {"shards", "of"} if scope is not None else {"shards"}
    if not isinstance(decoded, dict) or set(decoded) != expected or decoded.get("of", None) != scope:
        raise _invalid_cursor()
    shards = decoded["shards"]
    if not isinstance(shards, dict) or set(shards) != set(partitions):
        raise _invalid_cursor()
    for position in shards.values():
        valid = position is None or position == "done"
        valid = valid or (
            isinstance(position, list)
            and len(position) == 2
            and all(isinstance(p, str) and 0 < len(p) <= _POSITION_LIMIT for p in position)
        )
        if not valid:
            raise _invalid_cursor()
    return dict(shards)


def _position_key(index: str, partition: str, position: Any) -> dict[str, str] | None:
    """The ExclusiveStartKey of a shard's position, in the partition the query itself names."""
    if position is None:
        return None
    created_at, image_id = position
    partition_attribute, sort_attribute = INDEX_KEYS[index]
    return {"id": image_id, partition_attribute: partition, sort_attribute: created_at}
