"""devstack/cost_vector.py: AWS's item sizes and capacity units, and the vector's own sums."""

from __future__ import annotations

from devstack.cost_vector import (
    UPLOAD,
    IndexShape,
    TableShape,
    failed_write_units,
    item_size,
    list_page_read_units,
    read_units,
    write_units,
)

KEYS_ONLY = IndexShape("by-owner-status-shard", ("owner_status_shard", "created_at"), ())
WITH_STATUS = IndexShape("by-created-shard", ("created_shard", "created_at"), ("status",))
TABLE = TableShape(("id",), (KEYS_ONLY, WITH_STATUS))


def item(status: str, size: int = 10, **extra: str) -> dict[str, dict[str, str]]:
    attributes = {"id": "a" * 32, "status": status, "created_at": "2026-12-05", "blob": "x" * size, **extra}
    return {name: {"S": value} for name, value in attributes.items()}


def test_sizes_follow_the_published_rules() -> None:
    assert item_size({"ab": {"S": "héllo"}}) == 2 + 6  # names and UTF-8 values
    assert item_size({"n": {"N": "12345"}}) == 1 + 1 + 3  # about one byte per two digits, plus one
    assert item_size({"f": {"BOOL": True}, "z": {"NULL": True}}) == 4
    assert item_size({"m": {"M": {"k": {"S": "v"}}}}) == 1 + 3 + 1 + 1 + 1
    assert item_size(None) == 0


def test_a_write_costs_its_larger_version_and_every_index_entry_it_touches() -> None:
    created = item("pending", owner_status_shard="o#pending#5", created_shard="3")
    table, indexes = write_units(None, created, TABLE)
    assert table == 1 and indexes == {"by-owner-status-shard": {"o#pending#5": 1}, "by-created-shard": {"3": 1}}

    claimed = item("processing", 1500, owner_status_shard="o#processing#5", created_shard="3")
    table, indexes = write_units(created, claimed, TABLE)
    assert table == 2  # over 1 KB now
    # A key change moves the entry: a delete in one partition, a put in another; a projected
    # attribute's change rewrites the entry in place.
    assert indexes == {"by-owner-status-shard": {"o#pending#5": 1, "o#processing#5": 1}, "by-created-shard": {"3": 1}}


def test_unchanged_and_absent_entries_cost_nothing() -> None:
    record = item("done", owner_status_shard="o#done#5")
    same = write_units(record, {**record, "blob": {"S": "y"}}, TABLE)
    assert same == (1, {})  # KEYS_ONLY entry unchanged; no created_shard: not in that index at all
    removed = write_units(record, item("done"), TableShape(("id",), (KEYS_ONLY,)))[1]
    assert removed == {"by-owner-status-shard": {"o#done#5": 1}}  # a sparse index's entry removed


def test_a_failed_condition_costs_the_item_it_was_checked_against() -> None:
    assert failed_write_units(None) == 1
    assert failed_write_units(item("done", 1500)) == 2


def test_reads_cost_per_4_kb_and_half_when_eventually_consistent() -> None:
    assert read_units([100, 5000], consistent=True, per_item=True) == 1 + 2
    assert read_units([100, 5000], consistent=False, per_item=False) == 1  # 5.1 KB in all: 2 units, halved
    assert read_units([], consistent=True, per_item=False) == 1


def test_a_listing_page_reads_every_owner_shard_then_its_records() -> None:
    assert list_page_read_units(20) == 8 * 0.5 + 20 * 0.5  # each shard's 20 entries fit in 4 KB
    assert list_page_read_units(100) == 8 * 2.5 + 100 * 0.5


def test_an_uploads_write_units_are_its_tables_and_every_indexs() -> None:
    assert UPLOAD.write_units == 6 + 3 + 4 + 1 + 1 + 5
