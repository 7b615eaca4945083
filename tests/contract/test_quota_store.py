"""The QuotaStore contract: DynamoQuotaStore (moto) and InMemoryQuotaStore behave alike."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from chalicelib.aws.quota_store import TTL_GRACE_SECONDS, DynamoQuotaStore, quota_key
from chalicelib.aws.records import DynamoRecordStore
from chalicelib.domain import Status
from chalicelib.ports import Counter, ListQuery
from chalicelib.quota import day_ends

DAY, NEXT_DAY = "2026-11-29", "2026-11-30"


def value(store: Any, owner: str, window: str, attribute: str) -> int:
    """A counter as stored: a fall no counter can take is refused and shows the value before."""
    before = store.apply(owner, [Counter(window, attribute, -(10**15))])
    assert before is not None
    return int(before[(window, attribute)])


def test_changes_add_up_per_owner_window_and_attribute(quota_store: Any) -> None:
    assert value(quota_store, "alice", DAY, "uploads") == 0
    for _ in range(3):
        assert quota_store.apply("alice", [Counter(DAY, "uploads", 1), Counter(DAY, "bytes", 700)]) is None
    quota_store.apply("alice", [Counter(NEXT_DAY, "uploads", 1)])
    quota_store.apply("bob", [Counter(DAY, "uploads", 5)])
    assert value(quota_store, "alice", DAY, "uploads") == 3 and value(quota_store, "alice", DAY, "bytes") == 2100
    assert value(quota_store, "alice", NEXT_DAY, "uploads") == 1 and value(quota_store, "bob", DAY, "uploads") == 5
    # An owner may contain the key separator: its items are still its own.
    quota_store.apply("alice#2026-11-29", [Counter(DAY, "uploads", 9)])
    assert value(quota_store, "alice", DAY, "uploads") == 3


def test_a_ceiling_refuses_the_change_that_would_pass_it_and_nothing_of_that_change_is_made(quota_store: Any) -> None:
    changes = [Counter(DAY, "h12", 1, limit=2), Counter(DAY, "bytes", 400, limit=1000)]
    assert quota_store.apply("alice", changes) is None
    assert quota_store.apply("alice", changes) is None
    assert quota_store.apply("alice", changes) == {(DAY, "h12"): 2, (DAY, "bytes"): 800}  # the hour is full
    assert value(quota_store, "alice", DAY, "bytes") == 800
    bigger = [Counter(DAY, "h13", 1, limit=2), Counter(DAY, "bytes", 201, limit=1000)]
    assert quota_store.apply("alice", bigger) == {(DAY, "h13"): 0, (DAY, "bytes"): 800}
    assert value(quota_store, "alice", DAY, "h13") == 0
    exact = [Counter(DAY, "h13", 1, limit=2), Counter(DAY, "bytes", 200, limit=1000)]
    assert quota_store.apply("alice", exact) is None and value(quota_store, "alice", DAY, "bytes") == 1000


def test_an_amount_over_its_ceiling_is_refused_even_on_a_fresh_counter(quota_store: Any) -> None:
    assert quota_store.apply("alice", [Counter(DAY, "bytes", 11, limit=10)]) == {(DAY, "bytes"): 0}
    assert value(quota_store, "alice", DAY, "bytes") == 0


def test_a_fall_never_goes_below_zero(quota_store: Any) -> None:
    assert quota_store.apply("alice", [Counter(DAY, "s7", -1)]) == {(DAY, "s7"): 0}  # absent: nothing to take back
    quota_store.apply("alice", [Counter(DAY, "s7", 2), Counter(DAY, "n7", 1)])
    fall = [Counter(DAY, "s7", -1), Counter(DAY, "n7", -1)]
    assert quota_store.apply("alice", fall) is None
    assert quota_store.apply("alice", fall) == {(DAY, "s7"): 1, (DAY, "n7"): 0}  # all or nothing
    assert value(quota_store, "alice", DAY, "s7") == 1


def test_changes_in_two_windows_are_made_together_or_not_at_all(quota_store: Any) -> None:
    quota_store.apply("alice", [Counter(NEXT_DAY, "s9", 3)])
    spanning = [Counter(DAY, "s8", 1, limit=3), Counter(DAY, "n8", 1), Counter(NEXT_DAY, "s9", 1, limit=4)]
    assert quota_store.apply("alice", spanning) is None
    assert value(quota_store, "alice", DAY, "s8") == 1 and value(quota_store, "alice", NEXT_DAY, "s9") == 4
    refused = quota_store.apply("alice", spanning)
    assert refused is not None and refused[(NEXT_DAY, "s9")] == 4
    assert value(quota_store, "alice", DAY, "s8") == 1 and value(quota_store, "alice", DAY, "n8") == 1


def test_expired_counters_go_only_from_the_items_written(quota_store: Any) -> None:
    quota_store.apply("alice", [Counter(DAY, "s1", 2), Counter(DAY, "n1", 2), Counter(NEXT_DAY, "s1", 4)])
    expired = [(DAY, "s1"), (DAY, "n1"), (NEXT_DAY, "s1")]
    assert quota_store.apply("alice", [Counter(DAY, "s3", 1)], expired) is None
    assert value(quota_store, "alice", DAY, "s1") == 0 and value(quota_store, "alice", DAY, "n1") == 0
    assert value(quota_store, "alice", NEXT_DAY, "s1") == 4  # that item was not written
    # A counter both changed and listed as expired is changed.
    assert quota_store.apply("alice", [Counter(DAY, "s3", 1)], [(DAY, "s3")]) is None
    assert value(quota_store, "alice", DAY, "s3") == 2


@contextmanager
def one_request_at_a_time(store: Any) -> Iterator[None]:
    """DynamoDB applies the writes to one item one after another; moto in-process makes no such
    promise between threads, so its requests are serialized here, as DynamoDB would serialize them."""
    if not isinstance(store, DynamoQuotaStore):
        yield
        return
    lock = threading.Lock()
    events = store._table.meta.client.meta.events

    def take(**_: Any) -> None:
        lock.acquire()

    def give(**_: Any) -> None:
        lock.release()

    events.register("before-call.dynamodb", take)
    events.register("after-call.dynamodb", give)
    events.register("after-call-error.dynamodb", give)
    try:
        yield
    finally:
        events.unregister("before-call.dynamodb", take)
        events.unregister("after-call.dynamodb", give)
        events.unregister("after-call-error.dynamodb", give)


def test_of_many_racing_for_the_last_units_exactly_the_limit_succeed(quota_store: Any) -> None:
    limit, racers = 5, 24
    quota_store.apply("alice", [Counter(DAY, "s5", 2)])
    granted: list[int] = []
    start = threading.Barrier(racers)

    def race(n: int) -> None:
        start.wait()
        changes = [Counter(DAY, "h09", 1, limit=limit + 2), Counter(DAY, "s5", 1, limit=limit), Counter(DAY, "n5", 1)]
        if quota_store.apply("alice", changes) is None:
            granted.append(n)

    with one_request_at_a_time(quota_store):
        threads = [threading.Thread(target=race, args=(n,)) for n in range(racers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(granted) == limit - 2
    assert value(quota_store, "alice", DAY, "s5") == limit and value(quota_store, "alice", DAY, "h09") == limit - 2


def test_quota_items_are_invisible_to_every_listing_and_expire_a_day_after_their_day(aws: Any) -> None:
    records = DynamoRecordStore(aws.table)
    DynamoQuotaStore(aws.table).apply("alice", [Counter(DAY, "uploads", 1), Counter(NEXT_DAY, "s1", 1)])
    assert records.list_page(ListQuery("alice", 10)).items == []
    assert records.list_page(ListQuery(None, 10)).items == []
    assert records.list_page(ListQuery("alice", 10, sha256="ab" * 32)).items == []
    for status in (Status.PENDING, Status.PROCESSING):
        assert records.open_records(status, "0000-01-01T00:00:00.000Z", "9999-12-31T00:00:00.000Z") == []
    item = aws.table.get_item(Key={"id": quota_key("alice", DAY)})["Item"]
    assert item == {"id": "quota#alice#2026-11-29", "uploads": 1, "expires_at": day_ends(DAY) + TTL_GRACE_SECONDS}
    assert day_ends(DAY) == 1795996800  # 2026-11-30T00:00:00Z
