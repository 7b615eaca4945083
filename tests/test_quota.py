"""Quotas on the in-memory store and an injected clock: each limit, UTC windows rolling over,
open slots given back by the first claim or by time, the 429, and the settings that enable them.

The DynamoDB side of the same contract is tests/contract/test_quota_store.py; over real HTTP,
tests/test_quota_e2e.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from chalice.test import Client

from chalicelib import services
from chalicelib.auth.principal import Principal
from chalicelib.aws.quota_store import CONFLICT_TRIES, DynamoQuotaStore
from chalicelib.deadline import Deadline
from chalicelib.domain import iso
from chalicelib.endings import Endings
from chalicelib.errors import BadRequest, Busy, ConfigError, QuotaExceeded
from chalicelib.pipeline import UploadProcessor
from chalicelib.ports import Counter
from chalicelib.quota import CLEANED_BUCKETS, QuotaLimits, Quotas
from chalicelib.settings import Settings
from chalicelib.uploads import UploadRequest, create_upload
from tests.conftest import ENV, Aws, count_calls
from tests.fakes import FakePorts, InMemoryObjectStore, InMemoryQuotaStore, RecordingNotifier
from tests.test_pipeline import fake_render

T0 = datetime(2026, 11, 29, 12, 10, tzinfo=UTC)  # open-slot buckets of 900 s start at 12:00, 12:15, 12:30
ALICE, BOB, ADMIN = Principal("alice", False, "jwt"), Principal("bob", False, "jwt"), Principal("root", True, "jwt")


def quotas(**limits: int) -> tuple[Quotas, InMemoryQuotaStore]:
    store = InMemoryQuotaStore()
    return Quotas(QuotaLimits(**limits), store), store


def refused(meter: Quotas, caller: Principal, now: datetime, size: int | None = None) -> QuotaExceeded:
    with pytest.raises(QuotaExceeded) as raised:
        meter.take(caller, size, now)
    return raised.value


def at(hhmmss: str, day: int = 29) -> datetime:
    return datetime.fromisoformat(f"2026-11-{day:02d}T{hhmmss}+00:00")


def test_uploads_per_hour_roll_over_with_the_utc_hour() -> None:
    meter, _ = quotas(uploads_per_hour=3)
    for _ in range(3):
        meter.take(ALICE, None, T0)
    error = refused(meter, ALICE, T0)
    assert (error.http_status, error.limit, error.retry_after) == (429, "uploads_per_hour", 50 * 60)
    assert error.to_dict() == {
        "code": "quota_exceeded",
        "message": "At most 3 uploads may be started per hour (UTC). Retry in 3000 s.",
        "limit": "uploads_per_hour",
        "retry_after": 3000,
    }
    assert error.headers == {"Retry-After": "3000"}
    assert refused(meter, ALICE, at("12:59:59.500")).retry_after == 1
    meter.take(BOB, None, T0)  # another owner: unaffected
    meter.take(ALICE, None, at("13:00:00"))


def test_the_limit_that_frees_up_last_is_named() -> None:
    meter, _ = quotas(uploads_per_hour=2, uploads_per_day=3)
    meter.take(ALICE, None, T0)
    meter.take(ALICE, None, T0)
    assert refused(meter, ALICE, T0).limit == "uploads_per_hour"
    meter.take(ALICE, None, at("13:05:00"))
    error = refused(meter, ALICE, at("13:06:00"))
    assert (error.limit, error.retry_after) == ("uploads_per_day", (10 * 60 + 54) * 60)
    both, _ = quotas(uploads_per_hour=2, uploads_per_day=2)
    both.take(ALICE, None, T0)
    both.take(ALICE, None, T0)
    assert refused(both, ALICE, T0).limit == "uploads_per_day"  # hour and day are full: the day frees up last
    both.take(ALICE, None, at("00:00:00", day=30))


def test_a_refusal_without_the_values_before_names_the_longest_wait() -> None:
    limits = QuotaLimits(uploads_per_hour=5, uploads_per_day=50)
    error = limits.refusal(limits.charges(1, T0), {}, T0)  # the store showed nothing: any limit may be full
    assert (error.limit, error.retry_after) == ("uploads_per_day", (11 * 60 + 50) * 60)


def test_bytes_per_day_count_the_declared_sizes_and_need_them() -> None:
    meter, _ = quotas(bytes_per_day=1000)
    with pytest.raises(BadRequest) as missing:
        meter.take(ALICE, None, T0)
    assert missing.value.code == "missing_field" and "size" in missing.value.message
    meter.take(ALICE, 600, T0)
    error = refused(meter, ALICE, T0, size=500)  # refused: counts nothing
    assert error.limit == "bytes_per_day" and "600 are taken today and this upload declares 500" in error.message
    meter.take(ALICE, 400, T0)
    refused(meter, ALICE, T0, size=1)
    meter.take(ALICE, 1000, at("00:00:01", day=30))


def test_admins_and_stages_without_quotas_touch_no_counter() -> None:
    meter, store = quotas(uploads_per_hour=1, bytes_per_day=10, open_slots=1)
    for _ in range(5):
        meter.take(ADMIN, None, T0)
    unlimited, unlimited_store = quotas()
    unlimited.take(ALICE, None, T0)
    unlimited.release_slot("alice", iso(T0), T0)
    assert store.calls == {} and unlimited_store.calls == {}


def test_open_slots_are_given_back_by_their_first_claim() -> None:
    meter, _ = quotas(open_slots=2)
    meter.take(ALICE, None, T0)
    meter.take(ALICE, None, T0)
    error = refused(meter, ALICE, T0)
    # Both were made in this bucket, so both still count in the next: room at 12:30 at the latest.
    assert (error.limit, error.retry_after) == ("open_slots", 20 * 60)
    assert "upload slots may wait for their file" in error.message
    meter.release_slot("alice", iso(T0), T0 + timedelta(seconds=5))
    meter.take(ALICE, None, T0 + timedelta(seconds=6))
    refused(meter, ALICE, T0 + timedelta(seconds=7))


def test_unused_open_slots_stop_counting_when_the_following_bucket_ends() -> None:
    meter, _ = quotas(open_slots=2)
    meter.take(ALICE, None, T0)
    meter.take(ALICE, None, T0)
    assert refused(meter, ALICE, at("12:20:00")).retry_after == 10 * 60  # made in the previous bucket: gone at 12:30
    meter.take(ALICE, None, at("12:30:00"))
    # One made in each bucket: room when the older one's second bucket ends.
    meter.take(BOB, None, at("12:14:00"))
    meter.take(BOB, None, at("12:16:00"))
    assert refused(meter, BOB, at("12:17:00")).retry_after == 13 * 60


def test_a_slot_is_given_back_only_where_it_still_counts() -> None:
    meter, store = quotas(open_slots=5)
    bucket = meter.limits.bucket(T0)
    for _ in range(3):
        meter.take(ALICE, None, T0)
    meter.release_slot("alice", iso(T0), T0)
    assert store.counters == {
        ("alice", "2026-11-29", f"s{bucket}"): 2,
        ("alice", "2026-11-29", f"n{bucket}"): 2,
        ("alice", "2026-11-29", f"s{bucket + 1}"): 2,
    }
    meter.release_slot("alice", iso(T0), at("12:16:00"))  # next bucket: only that one still counts it
    assert store.counters[("alice", "2026-11-29", f"s{bucket + 1}")] == 1
    calls = store.calls["apply"]
    meter.release_slot("alice", iso(T0), at("12:31:00"))  # counted nowhere any more
    assert store.calls["apply"] == calls


def test_giving_back_a_slot_never_counted_takes_no_counter_below_zero() -> None:
    meter, store = quotas(open_slots=2)
    meter.release_slot("alice", iso(T0), T0)  # made before the limit was set: nothing was counted
    assert store.counters == {}
    meter.take(ALICE, None, T0)
    for _ in range(3):
        meter.release_slot("alice", iso(T0), T0)
    assert set(store.counters.values()) == {0}


def test_a_slot_made_in_the_days_last_bucket_counts_in_the_next_day() -> None:
    meter, store = quotas(open_slots=2)
    late = at("23:50:00")
    meter.take(ALICE, None, late)
    meter.take(ALICE, None, late)
    assert {window for _, window, _ in store.counters} == {"2026-11-29", "2026-11-30"}
    refused(meter, ALICE, at("00:05:00", day=30))
    meter.release_slot("alice", iso(late), at("00:05:00", day=30))
    meter.take(ALICE, None, at("00:05:01", day=30))


def test_an_owners_day_item_keeps_only_the_open_slot_counters_still_read() -> None:
    meter, store = quotas(open_slots=100)
    start = at("00:00:00")
    for bucket in range(90):  # every bucket of the day but the last few
        meter.take(ALICE, None, start + timedelta(seconds=900 * bucket))
    assert len(store.counters) == 3  # s and n of the last bucket, s of the one after
    for bucket in range(0, 90, CLEANED_BUCKETS + 2):  # gaps longer than the cleaning reach
        meter.take(BOB, None, start + timedelta(seconds=900 * bucket))
    assert len([key for key in store.counters if key[0] == "bob"]) <= 3 * (90 // (CLEANED_BUCKETS + 2) + 1)


@pytest.mark.parametrize(
    "env, variable",
    [
        ({"QUOTA_OPEN_SLOTS": "many"}, "QUOTA_OPEN_SLOTS"),
        ({"QUOTA_UPLOADS_PER_HOUR": "-1"}, "QUOTA_UPLOADS_PER_HOUR"),
        ({"QUOTA_BYTES_PER_DAY": "1000"}, "QUOTA_BYTES_PER_DAY"),
        ({"QUOTA_UPLOADS_PER_HOUR": "50", "QUOTA_UPLOADS_PER_DAY": "10"}, "QUOTA_UPLOADS_PER_HOUR"),
    ],
)
def test_bad_quota_settings_fail_naming_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=f"^{variable}:"):
        Settings.from_env({**ENV, **env})


def test_quota_settings_are_per_stage_and_unset_means_unlimited() -> None:
    assert not Settings.from_env(ENV).quotas.enabled
    limits = Settings.from_env(
        {
            **ENV,
            "QUOTA_UPLOADS_PER_HOUR": "3",
            "QUOTA_UPLOADS_PER_DAY": "0",
            "QUOTA_BYTES_PER_DAY": str(25 * 1024 * 1024),
            "QUOTA_OPEN_SLOTS": "4",
            "UPLOAD_URL_TTL_SECONDS": "300",
        }
    ).quotas
    assert limits == QuotaLimits(3, 0, 25 * 1024 * 1024, 4, 300)


# --- where quotas are taken and given back ------------------------------------------------------


def test_post_uploads_takes_the_quota_first_and_caps_the_upload_at_the_declared_size() -> None:
    settings = Settings.from_env({**ENV, "QUOTA_UPLOADS_PER_HOUR": "1", "QUOTA_BYTES_PER_DAY": str(30 * 1024 * 1024)})
    ports = FakePorts(quotas=Quotas(settings.quotas, InMemoryQuotaStore()), clock=lambda: T0)
    request = UploadRequest("image/jpeg", "default", "cat.jpg", 12345)
    created = create_upload(request, ALICE, settings, ports)
    assert created["upload"]["max_bytes"] == 12345
    assert ports.uploads.posts == [(created["upload"]["fields"]["key"], "image/jpeg", 12345, settings.upload_url_ttl)]
    with pytest.raises(QuotaExceeded):
        create_upload(request, ALICE, settings, ports)
    assert ports.records.calls["create"] == 1  # a refused request makes no slot


def test_the_first_claim_gives_the_slot_back_once() -> None:
    settings = Settings.from_env({**ENV, "QUOTA_OPEN_SLOTS": "1"})
    meter, clock = Quotas(settings.quotas, InMemoryQuotaStore()), (lambda: T0)
    ports = FakePorts(store=InMemoryObjectStore(ENV["OUTPUT_BUCKET"]), quotas=meter, clock=clock)
    records, store = ports.records, ports.store
    endings = Endings(records, RecordingNotifier(), clock)
    processor = UploadProcessor(settings, records, store, endings, fake_render, clock, meter)
    image_id = create_upload(UploadRequest("image/jpeg", "default"), ALICE, settings, ports)["id"]
    refused(meter, ALICE, T0)
    key = settings.upload_key(image_id)
    assert processor.process(_event(store, key, b"first bytes"), Deadline(60)) == "done"
    meter.take(ALICE, None, T0)  # the slot is no longer open: room for one more
    assert processor.process(_event(store, key, b"newer bytes"), Deadline(60)) == "done"  # a re-upload
    refused(meter, ALICE, T0)  # ...gave nothing back a second time


def test_a_failed_release_does_not_fail_the_upload() -> None:
    settings = Settings.from_env({**ENV, "QUOTA_OPEN_SLOTS": "1"})
    quota_store = InMemoryQuotaStore()
    meter, clock = Quotas(settings.quotas, quota_store), (lambda: T0)
    ports = FakePorts(store=InMemoryObjectStore(ENV["OUTPUT_BUCKET"]), quotas=meter, clock=clock)
    records, store = ports.records, ports.store
    endings = Endings(records, RecordingNotifier(), clock)
    processor = UploadProcessor(settings, records, store, endings, fake_render, clock, meter)
    image_id = create_upload(UploadRequest("image/jpeg", "default"), ALICE, settings, ports)["id"]
    quota_store.fail_next("apply")
    assert processor.process(_event(store, settings.upload_key(image_id), b"bytes"), Deadline(60)) == "done"
    refused(meter, ALICE, T0)  # still counted, until its buckets end
    meter.take(ALICE, None, at("12:30:00"))


def _event(store: InMemoryObjectStore, key: str, data: bytes) -> Any:
    from chalicelib.pipeline import UploadEvent

    etag = store.put_original(ENV["INPUT_BUCKET"], key, data)
    return UploadEvent(ENV["INPUT_BUCKET"], key, etag, len(data))


# --- the DynamoDB adapter's retries (DynamoDB's own answers, stubbed) -------------------------------


def stubbed_store() -> tuple[DynamoQuotaStore, Stubber, list[float]]:
    table = boto3.resource(
        "dynamodb", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    ).Table("imgpress-test")
    slept: list[float] = []
    return DynamoQuotaStore(table, sleep=slept.append), Stubber(table.meta.client), slept


SPANNING = [Counter("2026-11-29", "s1", 1, limit=2), Counter("2026-11-30", "s2", 1)]


def _cancelled(*codes: str) -> dict[str, Any]:
    return {
        "service_error_code": "TransactionCanceledException",
        "modeled_fields": {"CancellationReasons": [{"Code": code} for code in codes]},
    }


def test_a_transaction_cancelled_by_another_is_tried_again() -> None:
    store, stub, slept = stubbed_store()
    with stub:
        stub.add_client_error("transact_write_items", **_cancelled("TransactionConflict", "None"))
        stub.add_response("transact_write_items", {})
        assert store.apply("alice", SPANNING) is None
        stub.assert_no_pending_responses()
    assert len(slept) == 1


def test_lasting_contention_is_busy_and_other_faults_are_raised() -> None:
    store, stub, _ = stubbed_store()
    with stub:
        for _ in range(CONFLICT_TRIES):
            stub.add_client_error("transact_write_items", **_cancelled("None", "TransactionConflict"))
        with pytest.raises(Busy):
            store.apply("alice", SPANNING)
        stub.add_client_error("update_item", service_error_code="TransactionConflictException")
        stub.add_response("update_item", {})
        assert store.apply("alice", SPANNING[:1]) is None
        stub.add_client_error("update_item", service_error_code="ProvisionedThroughputExceededException")
        with pytest.raises(Exception, match="ProvisionedThroughputExceeded"):
            store.apply("alice", SPANNING[:1])


# --- through the API (Chalice's test client, moto) ------------------------------------------------


def test_post_uploads_costs_one_dynamodb_write_for_all_quotas_and_answers_429_when_used_up(
    client: Client, aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {"QUOTA_UPLOADS_PER_HOUR": "2", "QUOTA_UPLOADS_PER_DAY": "10", "QUOTA_OPEN_SLOTS": "5"}.items():
        monkeypatch.setenv(name, value)
    services.reset()
    calls: dict[str, int] = {}
    for operation in ("UpdateItem", "TransactWriteItems", "PutItem", "GetItem"):
        count_calls(services.table().meta.client, operation, calls)

    def post() -> Any:
        body = json.dumps({"content_type": "image/jpeg"}).encode()
        return client.http.post("/uploads", headers={"Content-Type": "application/json"}, body=body)

    assert post().status_code == 201
    # One conditional write takes all three quotas (a slot made in a day's last 15 minutes: one
    # TransactWriteItems instead), one writes the record.
    assert calls in ({"UpdateItem": 1, "PutItem": 1}, {"TransactWriteItems": 1, "PutItem": 1})
    assert post().status_code == 201
    response = post()
    assert response.status_code == 429
    error = json.loads(response.body)["error"]
    assert error["code"] == "quota_exceeded" and error["limit"] == "uploads_per_hour"
    assert response.headers["Retry-After"] == str(error["retry_after"])
    assert len(json.loads(client.http.get("/images").body)["items"]) == 2  # counters are no images
