"""The RecordStore contract: DynamoRecordStore (moto) and InMemoryRecordStore behave alike."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.domain import Failure, ImageRecord, OriginalInfo, Outcome, OutputInfo, Status, new_image_id
from chalicelib.errors import BadRequest
from chalicelib.ports import ListQuery, RecordExists

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def pending(owner: str = "alice", at: datetime = T0, image_id: str | None = None, **changes: Any) -> ImageRecord:
    record = ImageRecord.pending(
        image_id or new_image_id(),
        owner=owner,
        profile="default",
        content_type="image/jpeg",
        input_bucket="in",
        input_key="uploads/x",
        now=at,
        filename="cat.jpg",
        declared_size=1234,
    )
    return replace(record, **changes)


def done(
    store: Any, owner: str = "alice", at: datetime = T0, sha256: str = "ab" * 32, profile: str = "default"
) -> ImageRecord:
    record = pending(owner, at, profile=profile)
    store.create(record)
    claimed = store.save(record.claimed("t" * 32, "etag", 10, 1e12, at))
    output = OutputInfo("webp", "image/webp", 20, 10, 99, "out", f"processed/{record.id}/tttt/web.webp")
    outcome = Outcome(OriginalInfo(10, "JPEG", 40, 20), {"web": output}, sha256=sha256)
    return store.save(claimed.completed(outcome, at))


def test_create_then_get_returns_the_same_record(record_store: Any) -> None:
    record = pending()
    record_store.create(record)
    assert record_store.get(record.id) == record
    assert record_store.get(new_image_id()) is None
    with pytest.raises(RecordExists):
        record_store.create(record)


def test_save_is_conditional_on_the_version_read(record_store: Any) -> None:
    record = pending()
    record_store.create(record)
    first = record_store.save(record.claimed("a" * 32, "e1", 5, 100.5, T0))
    assert first is not None and first.version == record.version + 1
    assert record_store.get(record.id) == first
    assert record_store.save(record.claimed("b" * 32, "e1", 5, 100.5, T0)) is None  # stale: read before `first`
    assert record_store.get(record.id) == first
    assert record_store.save(pending()) is None  # never created


def test_every_field_survives_a_round_trip(record_store: Any) -> None:
    record = pending()
    record_store.create(record)
    claimed = record_store.save(record.claimed("c" * 32, "etag-1", 2048, 1_800_000_000.125, T0))
    outputs = {
        "web": OutputInfo(
            "webp", "image/webp", 2048, 1365, 123456, "out", "processed/x/r/web.webp", "reencoded", 82, 0.9712
        ),
        "thumb": OutputInfo(
            "jpeg", "image/jpeg", 320, 213, 9000, "out", "processed/x/r/thumb.jpg", "original_stripped"
        ),
    }
    outcome = Outcome(
        OriginalInfo(2048, "JPEG", 3000, 2000), outputs, "cd" * 32, True, {"thumbhash": "abc", "dominant": "#fff"}, None
    )
    finished = record_store.save(claimed.completed(outcome, T0 + timedelta(seconds=3)))
    assert record_store.get(record.id) == finished
    failed = record_store.save(finished.failed(Failure("corrupt", "bad"), Outcome(OriginalInfo(7)), T0))
    assert record_store.get(record.id) == failed and failed.error == Failure("corrupt", "bad")


def _all_pages(store: Any, query: ListQuery) -> list[ImageRecord]:
    items: list[ImageRecord] = []
    while True:
        page = store.list_page(query)
        items.extend(page.items)
        if page.next_cursor is None:
            return items
        query = replace(query, cursor=page.next_cursor)


@pytest.mark.parametrize("limit", [1, 3, 100])
def test_listing_is_per_owner_newest_first_and_pages_completely(record_store: Any, limit: int) -> None:
    alices = [pending("alice", T0 + timedelta(seconds=n)) for n in range(7)]
    for record in [*alices, pending("bob"), pending("bob")]:
        record_store.create(record)
    listed = _all_pages(record_store, ListQuery("alice", limit))
    assert [r.id for r in listed] == [r.id for r in reversed(alices)]


def test_listing_filters_by_status_and_sha256_within_the_owner(record_store: Any) -> None:
    first, second = done(record_store, at=T0), done(record_store, at=T0 + timedelta(seconds=1))
    done(record_store, owner="bob")  # same bytes, another owner: never found by alice's lookup
    open_one = pending()
    record_store.create(open_one)
    assert [r.id for r in _all_pages(record_store, ListQuery("alice", 10, status=Status.DONE))] == [second.id, first.id]
    assert [r.id for r in _all_pages(record_store, ListQuery("alice", 10, status=Status.PENDING))] == [open_one.id]
    by_hash = _all_pages(record_store, ListQuery("alice", 10, sha256="ab" * 32))
    assert [r.id for r in by_hash] == [second.id, first.id]


def test_an_admin_listing_merges_every_owner_newest_first(record_store: Any) -> None:
    records = [pending(f"user{n % 5}", T0 + timedelta(seconds=n)) for n in range(40)]
    for record in records:
        record_store.create(record)
    for limit in (1, 7, 100):
        listed = _all_pages(record_store, ListQuery(None, limit))
        assert [r.id for r in listed] == [r.id for r in reversed(records)]
    pending_only = _all_pages(record_store, ListQuery(None, 10, status=Status.PENDING))
    assert len(pending_only) == 40


def test_deleted_records_leave_every_listing(record_store: Any) -> None:
    record = done(record_store)
    tombstone = record_store.save(record.tombstone(T0))
    assert record_store.get(record.id) == tombstone
    assert _all_pages(record_store, ListQuery("alice", 10)) == []
    assert _all_pages(record_store, ListQuery(None, 10)) == []
    assert record_store.find_done_twin("alice", "ab" * 32, "default", "x" * 32) is None


def _forged(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    ["", "not base64 at all!", _forged({"id": "x"}), _forged([1, 2]), _forged("x"), _forged({"shards": {}})],
    ids=["empty", "garbage", "forged-key", "list", "string", "shards"],
)
def test_cursors_not_issued_for_the_query_are_bad_requests(record_store: Any, cursor: str) -> None:
    for record in [pending("alice"), pending("alice")]:
        record_store.create(record)
    for owner in ("alice", None):
        with pytest.raises(BadRequest) as raised:
            record_store.list_page(ListQuery(owner, 1, cursor=cursor or "=="))
        assert raised.value.code == "invalid_cursor"


def test_a_cursor_only_continues_the_listing_it_came_from(record_store: Any) -> None:
    for record in [pending("alice"), pending("alice"), pending("bob"), pending("bob")]:
        record_store.create(record)
    cursor = record_store.list_page(ListQuery("alice", 1)).next_cursor
    assert cursor is not None
    pending_cursor = record_store.list_page(ListQuery("alice", 1, status=Status.PENDING)).next_cursor
    assert pending_cursor is not None
    admin_cursor = record_store.list_page(ListQuery(None, 1)).next_cursor
    assert admin_cursor is not None
    for other in (
        ListQuery("bob", 1, cursor=cursor),
        ListQuery(None, 1, cursor=cursor),
        ListQuery("alice", 1, status=Status.PENDING, cursor=cursor),
        ListQuery("alice", 1, cursor=pending_cursor),
        ListQuery("alice", 1, status=Status.DONE, cursor=pending_cursor),
        ListQuery("alice", 1, cursor=admin_cursor),
    ):
        with pytest.raises(BadRequest):
            record_store.list_page(other)


def test_an_owner_listing_pages_newest_first_across_every_shard(record_store: Any) -> None:
    """Ids spread over every shard of the owner's indexes, created in an order unrelated to them."""
    ids = [f"{(n * 0x1111 + 0x0900) % 0x10000:04x}" + "0" * 28 for n in range(24)]
    records = [pending("alice", T0 + timedelta(seconds=n), image_id=i) for n, i in enumerate(ids)]
    for record in records:
        record_store.create(record)
    newest_first = [r.id for r in reversed(records)]
    for limit in (1, 5, 8, 30):
        assert [r.id for r in _all_pages(record_store, ListQuery("alice", limit))] == newest_first
        assert [
            r.id for r in _all_pages(record_store, ListQuery("alice", limit, status=Status.PENDING))
        ] == newest_first
    assert _all_pages(record_store, ListQuery("alice", 5, status=Status.DONE)) == []


def test_the_done_twin_is_the_owners_newest_with_the_same_bytes_and_profile(record_store: Any) -> None:
    older, newer = done(record_store, at=T0), done(record_store, at=T0 + timedelta(seconds=5))
    done(record_store, owner="bob", at=T0 + timedelta(seconds=9))
    done(record_store, at=T0 + timedelta(seconds=9), profile="avatar")
    assert record_store.find_done_twin("alice", "ab" * 32, "default", "x" * 32).id == newer.id
    assert record_store.find_done_twin("alice", "ab" * 32, "default", newer.id).id == older.id
    assert record_store.find_done_twin("carol", "ab" * 32, "default", "x" * 32) is None


def test_open_records_are_those_that_entered_their_open_status_in_the_window(record_store: Any) -> None:
    early, late = pending(at=T0), pending(at=T0 + timedelta(minutes=30))
    for record in (early, late):
        record_store.create(record)
    finished = done(record_store, at=T0)
    stuck = pending(at=T0 - timedelta(hours=1))
    record_store.create(stuck)
    record_store.save(stuck.claimed("d" * 32, "e", 1, 5.0, T0 + timedelta(minutes=1)))  # processing since 12:01
    window = ("2026-11-29T11:00:00.000Z", "2026-11-29T12:10:00.000Z")
    assert {r.id for r in record_store.open_records(Status.PENDING, *window)} == {early.id}
    assert {r.id for r in record_store.open_records(Status.PROCESSING, *window)} == {stuck.id}
    redriven = record_store.save(record_store.get(early.id).marked_redriven(T0 + timedelta(hours=2)))
    assert {r.id for r in record_store.open_records(Status.PENDING, *window)} == {redriven.id}  # still since creation
    assert finished.id not in {r.id for r in record_store.open_records(Status.PROCESSING, *window)}
