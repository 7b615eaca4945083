"""DynamoDB: the on-demand variants ledger, in the images table beside the records and quota items.

- `transform#<object key>`: one variant, its state (rendering under a lease, done, failed);
- `transform-count#<image id>#<revision>`: how many distinct variants that revision of the image has;
- `transform-day#<UTC day>`: how many the stage rendered that day (expires a day after it ends).

A new variant is one TransactWriteItems: put its item if absent, and raise both counters within
their caps, so of racing first requests exactly one renders and no cap is passed. None of these
items has the attributes the indexes are keyed on, so no listing or sweep sees them; object keys
and image ids never contain `#`, so the ids cannot collide with an image's or a quota item's.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from chalicelib.ports import Claim, TransformEntry, TransformLimits, TransformState
from chalicelib.quota import day_ends

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

DAY_GRACE_SECONDS = 24 * 3600
COUNT_SECONDS = 400 * 24 * 3600  # a revision's count outlives any link signed for it


def entry_key(key: str) -> str:
    return f"transform#{key}"


class DynamoTransformLedger:
    """Takes the boto3 Table resource of the images table."""

    def __init__(self, table: Table) -> None:
        self._table = table
        self._dynamodb = table.meta.client

    def get(self, key: str) -> TransformEntry | None:
        item = self._table.get_item(Key={"id": entry_key(key)}, ConsistentRead=True).get("Item")
        return _entry(item) if item else None

    def claim(
        self, key: str, counted_as: str, day: str, lease_until: float, now: float, limits: TransformLimits
    ) -> tuple[Claim, TransformEntry | None]:
        from botocore.exceptions import ClientError

        name = self._table.name
        put: dict[str, Any] = {
            "Put": {
                "TableName": name,
                "Item": {
                    "id": entry_key(key),
                    "state": str(TransformState.RENDERING),
                    "lease_until": Decimal(str(lease_until)),
                },
                "ConditionExpression": "attribute_not_exists(id)",
            }
        }
        counters = [
            _raise(name, f"transform-count#{counted_as}", limits.per_image, int(now) + COUNT_SECONDS),
            _raise(name, f"transform-day#{day}", limits.per_day, day_ends(day) + DAY_GRACE_SECONDS),
        ]
        try:
            items: list[Any] = [put, *counters]  # the resource's values, as quota_store.py sends them
            self._dynamodb.transact_write_items(TransactItems=items)
            return Claim.CLAIMED, TransformEntry(TransformState.RENDERING, lease_until)
        except ClientError as error:
            reasons = [r.get("Code") for r in (getattr(error, "response", {}) or {}).get("CancellationReasons", [])]
            if len(reasons) != 3 or "ConditionalCheckFailed" not in reasons:
                raise
        if reasons[0] == "ConditionalCheckFailed":
            return self._take_over(key, lease_until, now)
        return (Claim.IMAGE_FULL if reasons[1] == "ConditionalCheckFailed" else Claim.STAGE_FULL), None

    def _take_over(self, key: str, lease_until: float, now: float) -> tuple[Claim, TransformEntry | None]:
        """The variant has an item: a dead render or an expired failure is taken over, else it stands."""
        from botocore.exceptions import ClientError

        try:
            self._table.update_item(
                Key={"id": entry_key(key)},
                UpdateExpression="SET #state = :rendering, lease_until = :lease REMOVE code, message, expires_at",
                ConditionExpression=(
                    "(#state = :rendering AND lease_until <= :now)"
                    " OR (attribute_exists(expires_at) AND expires_at <= :now)"
                ),
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":rendering": str(TransformState.RENDERING),
                    ":lease": Decimal(str(lease_until)),
                    ":now": Decimal(str(now)),
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return Claim.CLAIMED, TransformEntry(TransformState.RENDERING, lease_until)
        except ClientError as error:
            response = getattr(error, "response", {}) or {}
            if response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            from boto3.dynamodb.types import TypeDeserializer

            old = {k: TypeDeserializer().deserialize(v) for k, v in (response.get("Item") or {}).items()}
            return Claim.TAKEN, _entry(old) if old else self.get(key)

    def finish(self, key: str, entry: TransformEntry, keep_seconds: int, now: float) -> None:
        item: dict[str, Any] = {"id": entry_key(key), "state": str(entry.state), "lease_until": Decimal(0)}
        if entry.code is not None:
            item.update(code=entry.code, message=entry.message or "")
        if keep_seconds:
            item["expires_at"] = int(now) + keep_seconds
        self._table.put_item(Item=item)


def _raise(table: str, item_id: str, limit: int, expires_at: int) -> dict[str, Any]:
    update: dict[str, Any] = {
        "TableName": table,
        "Key": {"id": item_id},
        "UpdateExpression": "ADD variants :one SET expires_at = :expires",
        "ExpressionAttributeValues": {":one": 1, ":expires": expires_at},
    }
    if limit:
        update["ConditionExpression"] = "attribute_not_exists(variants) OR variants < :limit"
        update["ExpressionAttributeValues"][":limit"] = limit
    return {"Update": update}


def _entry(item: Mapping[str, Any]) -> TransformEntry:
    expires = item.get("expires_at")
    return TransformEntry(
        TransformState(str(item["state"])),
        float(item.get("lease_until", 0)),
        item.get("code"),
        item.get("message"),
        float(expires) if expires is not None else None,
    )
