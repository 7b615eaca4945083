"""The cost vector: the AWS requests and DynamoDB capacity units of one upload, one reprocess and
a front end's requests, and the rules AWS weighs those units by.

One owner for both, because three parties must agree on them: the local stack's request ledger
(devstack/ledger.py) weighs every DynamoDB request it serves by these rules;
tests/test_capacity_e2e.py asserts the ledger measures exactly UPLOAD and REPROCESS; bench/cost.py
prices the vector and bench/capacity.py scales it to a rate. It lives beside the ledger rather than
in bench/ because the stack runs these rules on every request, and `make run` should need nothing
from the benchmark: the benchmark reads what the stack measures, not the other way round.

The rules as AWS publishes them (read on RULES_READ): item sizes and read/write units
(CapacityUnitCalculations), index writes (GSI throughput considerations); the pages are in UNIT_RULES.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.aws.records import OWNER_SHARDS

RULES_READ = "2026-12-05"
UNIT_RULES = {
    "item size, read and write units": "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html",
    "index write units": "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html#GSI.ThroughputConsiderations",
}
INDEX_ENTRY_OVERHEAD = 100  # bytes AWS adds to each index entry


# -- DynamoDB's sizes and units -------------------------------------------------------------------


def value_size(value: Mapping[str, Any]) -> int:
    """Bytes of one attribute value in DynamoDB JSON, by AWS's item size rules."""
    (kind, inner), *_ = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        digits = str(inner).lstrip("-").replace(".", "").strip("0") or "0"
        return 1 + math.ceil(len(digits) / 2) + (1 if str(inner).startswith("-") else 0)
    if kind == "B":
        return len(inner) * 3 // 4  # base64 in JSON
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in inner.items())
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: v}) for v in inner)
    raise ValueError(f"unknown DynamoDB type {kind}")


def item_size(item: Mapping[str, Any] | None) -> int:
    return sum(len(name.encode()) + value_size(value) for name, value in (item or {}).items())


@dataclass(frozen=True)
class IndexShape:
    name: str
    keys: tuple[str, ...]  # partition, then sort if any
    projected: tuple[str, ...] | None  # None: ALL


@dataclass(frozen=True)
class TableShape:
    """What the unit rules need to know of a table: its key attributes and its global indexes."""

    keys: tuple[str, ...]  # partition, then sort if any
    indexes: tuple[IndexShape, ...] = ()


def index_entry(index: IndexShape, table_keys: tuple[str, ...], item: Mapping[str, Any] | None) -> dict[str, Any]:
    """The item's entry in a sparse index: empty when the item lacks an index key attribute."""
    if not item or any(key not in item for key in index.keys):
        return {}
    names = set(item) if index.projected is None else {*index.keys, *table_keys, *index.projected}
    return {name: item[name] for name in names if name in item}


def write_units(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, table: TableShape
) -> tuple[float, dict[str, dict[str, float]]]:
    """Write units of one item write: the larger of its versions per started KB; and per index and
    partition key value, one unit per KB of entry added, removed or changed there (an index key
    change is two writes: the old entry deleted from its partition, the new one put in its own)."""
    units = max(1, math.ceil(max(item_size(before), item_size(after)) / 1024))
    by_index: dict[str, dict[str, float]] = {}
    for index in table.indexes:
        old, new = index_entry(index, table.keys, before), index_entry(index, table.keys, after)
        if old == new:
            continue
        partitions: dict[str, float] = {}
        moved = bool(old and new and any(old[k] != new[k] for k in index.keys))
        for entry in [old, new] if moved else [new or old]:
            partition = _plain_value(entry[index.keys[0]])
            partitions[partition] = partitions.get(partition, 0) + math.ceil(
                (item_size(entry) + INDEX_ENTRY_OVERHEAD) / 1024
            )
        by_index[index.name] = partitions
    return float(units), by_index


def failed_write_units(before: Mapping[str, Any] | None) -> float:
    """A write whose condition failed still costs the write of the item it was checked against."""
    return float(max(1, math.ceil(item_size(before) / 1024)))


def _plain_value(value: Mapping[str, Any]) -> str:
    (_, inner), *_ = value.items()
    return str(inner)


def read_units(sizes: Iterable[int], consistent: bool, per_item: bool) -> float:
    """A GetItem or BatchGetItem costs per item per started 4 KB; a Query or Scan per started 4 KB
    of everything it read. Eventually consistent reads cost half."""
    sizes = list(sizes)
    units = sum(max(1, math.ceil(s / 4096)) for s in sizes) if per_item else max(1, math.ceil(sum(sizes) / 4096))
    return units if consistent else units / 2


# -- the vector -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Vector:
    """AWS requests and DynamoDB units of one operation. Index writes are keyed by their partition
    key value, with `{owner}`, `{shard}` (of SHARDS), `{owner_shard}` (of OWNER_SHARDS) and
    `{sha256}` standing for the record's own."""

    requests: Mapping[str, int]
    table_write_units: float
    read_units: float
    index_writes: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    @property
    def write_units(self) -> float:
        return self.table_write_units + sum(sum(p.values()) for p in self.index_writes.values())


# One default-profile upload (web 2048 px + thumb 320 px WebP): slot, browser POST, handler, notification.
UPLOAD = Vector(
    requests={
        "dynamodb:GetItem": 1,  # the handler reads the record
        "dynamodb:PutItem": 4,  # created (POST /uploads), claimed, completed, marked notified
        "s3:GetObject": 1,  # the handler reads the original
        "s3:PostObject": 1,  # the browser's upload
        "s3:PutObject": 2,  # one per output
        "sns:Publish": 1,
    },
    table_write_units=6.0,  # 1 + 1 + 2 + 2: the completed record is over 1 KB
    read_units=1.0,
    index_writes={
        "by-created-shard": {"{shard}": 3},  # it projects status: each status change rewrites the entry
        "by-open-shard": {"pending#{shard}": 2, "processing#{shard}": 2},  # in, moved, out
        "by-owner-sha256": {"{owner}#{sha256}": 1},  # once the sha256 is known
        "by-owner-shard": {"{owner}#{owner_shard}": 1},
        "by-owner-status-shard": {  # in, moved, moved
            "{owner}#done#{owner_shard}": 1,
            "{owner}#pending#{owner_shard}": 2,
            "{owner}#processing#{owner_shard}": 2,
        },
    },
)
# POST /images/{id}/reprocess of a done image, then the queue consumer's work.
REPROCESS = Vector(
    requests={
        "dynamodb:GetItem": 2,  # the API's read, the consumer's
        "dynamodb:PutItem": 4,  # request recorded, claimed, completed, marked notified
        "s3:DeleteObjects": 1,  # the outputs the new ones replace
        "s3:GetObject": 1,
        "s3:HeadObject": 1,  # the API checks the original is still there
        "s3:PutObject": 2,
        "sns:Publish": 1,
        "sqs:DeleteMessageBatch": 1,
        "sqs:ReceiveMessage": 1,
        "sqs:SendMessageBatch": 1,
    },
    table_write_units=8.0,  # the record is over 1 KB in all four writes
    read_units=2.0,
    index_writes={"by-open-shard": {"processing#{shard}": 2}},  # status stays done: only the sweeper's entry
)

# What a front end's requests cost.
POLL_READS = 1  # GET /images/{id}: one consistent GetItem of a record under 4 KB, 1 read unit
LONG_POLL_READS = 17  # GET /images/{id}?wait=25 at most: reads 0.1, 0.2, 0.4 ... 2 s apart (docs: waiting)
LIST_REQUESTS = {"dynamodb:Query": OWNER_SHARDS, "dynamodb:BatchGetItem": 1}  # GET /images, one page
INDEX_ENTRY_BYTES = 200  # a keys-only entry of an owner's listing index, AWS's 100 bytes included
RECORD_BYTES = 2048  # a finished record at most: its completed write costs 2 units (UPLOAD)


def list_page_read_units(records: int) -> float:
    """Read units of one GET /images page of `records`: a Query on each of the owner's shards (up to
    `records` keys-only entries each, eventually consistent), then one eventually consistent
    BatchGetItem of the page's records."""
    per_shard = read_units([INDEX_ENTRY_BYTES] * records, consistent=False, per_item=False)
    return OWNER_SHARDS * per_shard + read_units([RECORD_BYTES] * records, consistent=False, per_item=True)
