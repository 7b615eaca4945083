"""DynamoDB: per-owner quota counters, in the images table under the id `quota#<owner>#<UTC day>`.

One item per owner and UTC day holds every counter of that day (chalicelib/quota.py), so a take is
one conditional UpdateItem: `ADD` the amounts, `SET` the item's expiry, the condition being every
limit at once. DynamoDB applies writes to one item one after another, so of any number of racing
requests exactly as many as fit get through. A change that spans two days (a slot made in a day's
last open-slot bucket also counts in the next day's first) is one TransactWriteItems instead.

Quota items carry none of the attributes the indexes are keyed on (records.index_attributes), so
no listing, lookup or sweep ever sees them, and `expires_at` lets DynamoDB's TTL remove each one
a day after its day has ended. Image ids are 32 hex digits, so `quota#…` can never be one.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from chalicelib.errors import Busy
from chalicelib.ports import Counter
from chalicelib.quota import day_ends

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

KEY_PREFIX = "quota#"
TTL_GRACE_SECONDS = 24 * 3600  # an item outlives its day by this much (late releases still find it)
CONFLICT_TRIES = 4  # a transaction cancelled by a concurrent one is tried again this often


def quota_key(owner: str, window: str) -> str:
    """Unambiguous even if `owner` contains `#`: the window is the last part and never does."""
    return f"{KEY_PREFIX}{owner}#{window}"


class DynamoQuotaStore:
    """Takes the boto3 Table resource of the images table."""

    def __init__(self, table: Table, sleep: Callable[[float], None] = time.sleep) -> None:
        self._table = table
        self._dynamodb = table.meta.client  # for TransactWriteItems, with the resource's value conversion
        self._sleep = sleep

    def apply(
        self, owner: str, changes: Sequence[Counter], expired: Sequence[tuple[str, str]] = ()
    ) -> dict[tuple[str, str], int] | None:
        from botocore.exceptions import ClientError

        windows: dict[str, list[Counter]] = {}
        for change in changes:
            windows.setdefault(change.window, []).append(change)
        updates = [_update(owner, window, counters, expired) for window, counters in windows.items()]
        for attempt in range(1, CONFLICT_TRIES + 1):
            try:
                self._write(updates)
                return None
            except ClientError as error:
                before = _refused(error, list(windows.values()))
                if before is not None:
                    return before
                if not _conflict(error):
                    raise
            self._sleep(random.uniform(0.01, 0.05) * attempt)
        raise Busy("Too many uploads of this owner at once; retry in a moment.")

    def _write(self, updates: list[dict[str, Any]]) -> None:
        if len(updates) == 1:
            self._table.update_item(**updates[0])
            return
        name = self._table.name
        items: list[Any] = [{"Update": {"TableName": name, **update}} for update in updates]  # the resource's values
        self._dynamodb.transact_write_items(
            TransactItems=items,
            ClientRequestToken=uuid.uuid4().hex,  # an SDK retry of a transaction that went through is a no-op
        )


def _update(owner: str, window: str, counters: Sequence[Counter], expired: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """UpdateItem parameters: ADD each amount, SET the expiry, REMOVE expired counters of this item;
    the condition is every counter's bound (a ceiling for a rise, zero for a fall)."""
    names = {"#expires": "expires_at"}
    values: dict[str, Any] = {":expires": day_ends(window) + TTL_GRACE_SECONDS}
    adds, conditions = [], []
    for n, counter in enumerate(counters):
        names[f"#c{n}"] = counter.attribute
        values[f":c{n}"] = counter.amount
        adds.append(f"#c{n} :c{n}")
        if counter.amount < 0:
            values[f":floor{n}"] = -counter.amount
            conditions.append(f"#c{n} >= :floor{n}")
        elif counter.limit:
            values[f":ceiling{n}"] = counter.limit - counter.amount
            absent_fits = counter.amount <= counter.limit
            conditions.append(
                f"(attribute_not_exists(#c{n}) OR #c{n} <= :ceiling{n})" if absent_fits else f"#c{n} <= :ceiling{n}"
            )
    expression = f"ADD {', '.join(adds)} SET #expires = :expires"
    written = {counter.attribute for counter in counters}
    removed = [attribute for day, attribute in expired if day == window and attribute not in written]
    for n, attribute in enumerate(removed):
        names[f"#x{n}"] = attribute
    if removed:
        expression += " REMOVE " + ", ".join(f"#x{n}" for n in range(len(removed)))
    update: dict[str, Any] = {
        "Key": {"id": quota_key(owner, window)},
        "UpdateExpression": expression,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }
    if conditions:
        update.update(ConditionExpression=" AND ".join(conditions), ReturnValuesOnConditionCheckFailure="ALL_OLD")
    return update


def _refused(error: Exception, items: list[list[Counter]]) -> dict[tuple[str, str], int] | None:
    """The counters' values before, from a refused condition (None if the error is no refusal)."""
    response: Mapping[str, Any] = getattr(error, "response", None) or {}
    code = response.get("Error", {}).get("Code")
    if code == "ConditionalCheckFailedException":
        return _values(items[0], response.get("Item"))
    reasons = response.get("CancellationReasons") or []
    if code != "TransactionCanceledException" or not any(r.get("Code") == "ConditionalCheckFailed" for r in reasons):
        return None
    before: dict[tuple[str, str], int] = {}
    for counters, reason in zip(items, reasons):
        if reason.get("Code") == "ConditionalCheckFailed":
            before.update(_values(counters, reason.get("Item")))
    return before


def _values(counters: Sequence[Counter], item: Mapping[str, Any] | None) -> dict[tuple[str, str], int]:
    """ALL_OLD comes back in DynamoDB's wire format ({"N": "3"}), even through the Table resource."""
    from boto3.dynamodb.types import TypeDeserializer

    stored = {name: TypeDeserializer().deserialize(value) for name, value in (item or {}).items()}
    return {counter.key: int(stored.get(counter.attribute, 0)) for counter in counters}


def _conflict(error: Exception) -> bool:
    """Another transaction had the item: nothing was written, and trying again is right."""
    response: Mapping[str, Any] = getattr(error, "response", None) or {}
    code = response.get("Error", {}).get("Code")
    if code == "TransactionConflictException":
        return True
    reasons = response.get("CancellationReasons") or []
    return code == "TransactionCanceledException" and any(r.get("Code") == "TransactionConflict" for r in reasons)
