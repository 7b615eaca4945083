"""The rules of resumable uploads and of ?wait, on the in-memory ports (unit tier)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pytest

from chalicelib import multipart
from chalicelib.domain import Failure, OriginalInfo, Outcome, utc_now
from chalicelib.errors import BadRequest, Gone, NotFound, TooLarge
from chalicelib.images import MAX_WAIT_SECONDS, wait_for_outcome
from chalicelib.multipart import PART_BYTES, PartPlan
from chalicelib.settings import Settings
from chalicelib.uploads import UploadRequest
from tests.conftest import ENV
from tests.fakes import FakePorts

MIB = 1024 * 1024


@dataclass(frozen=True)
class Viewer:
    owner: str
    is_admin: bool = False


ALICE, MALLORY = Viewer("alice"), Viewer("mallory", is_admin=True)


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env(ENV)


def started(settings: Settings, ports: FakePorts, size: int | None = None) -> dict[str, Any]:
    return multipart.start(UploadRequest("image/jpeg", "default", "a.jpg", size), ALICE, settings, ports)


def test_parts_are_fixed_size_and_exact_when_the_size_was_declared(settings: Settings) -> None:
    ports = FakePorts()
    uploads = ports.uploads
    declared = started(settings, ports, size=2 * PART_BYTES + 7)
    assert declared["max_parts"] == 3
    for number in (1, 2, 3):
        multipart.sign_part(declared["uploadId"], str(number), {"key": declared["key"]}, ALICE, settings, ports)
    assert [size for _, _, size in uploads.signed] == [PART_BYTES, PART_BYTES, 7]
    plan = PartPlan(PART_BYTES, settings.imaging.max_upload_bytes, None)
    assert plan.max_parts == 5 and plan.size_of(5) is None


def test_only_the_owner_of_a_pending_slot_reaches_its_upload(settings: Settings) -> None:
    ports = FakePorts()
    records = ports.records
    slot = started(settings, ports)
    key = {"key": slot["key"]}
    with pytest.raises(NotFound):  # an admin too: uploads belong to their owner alone
        multipart.list_parts(slot["uploadId"], key, MALLORY, settings, ports)
    record = records.get(slot["id"])
    records.save(record.failed(Failure("corrupt", "x"), Outcome(OriginalInfo(1)), utc_now()))
    with pytest.raises(Gone) as ended:  # no longer pending: nothing to upload into, as its owner is told
        multipart.list_parts(slot["uploadId"], key, ALICE, settings, ports)
    assert ended.value.code == "upload_ended"
    with pytest.raises(NotFound):  # and anyone else is not
        multipart.list_parts(slot["uploadId"], key, MALLORY, settings, ports)
    with pytest.raises(BadRequest):
        multipart.list_parts("bad/id", key, ALICE, settings, ports)


def test_an_upload_id_reaches_only_the_slot_it_was_started_for(settings: Settings) -> None:
    ports = FakePorts()
    mine, theirs = started(settings, ports), started(settings, ports)
    assert ports.records.get(mine["id"]).upload_id == mine["uploadId"]
    before = dict(ports.uploads.calls)
    for call in (multipart.list_parts, multipart.abort):
        with pytest.raises(NotFound):  # my key with their upload id: refused before S3 is asked
            call(theirs["uploadId"], {"key": mine["key"]}, ALICE, settings, ports)
    with pytest.raises(NotFound):
        multipart.sign_part(theirs["uploadId"], "1", {"key": mine["key"]}, ALICE, settings, ports)
    assert ports.uploads.calls == before
    assert ports.uploads.parts(theirs["key"], theirs["uploadId"]) == []  # theirs is untouched


def test_an_aborted_upload_ends_its_image_failed_with_one_message(settings: Settings) -> None:
    ports = FakePorts()
    slot = started(settings, ports)
    multipart.abort(slot["uploadId"], {"key": slot["key"]}, ALICE, settings, ports)
    record = ports.records.get(slot["id"])
    assert record.status == "failed" and record.error is not None and record.error.code == "upload_aborted"
    assert [r.id for r in ports.notifier.published] == [slot["id"]] and record.notified
    with pytest.raises(Gone):  # nothing left to abort, list or complete
        multipart.abort(slot["uploadId"], {"key": slot["key"]}, ALICE, settings, ports)
    assert len(ports.notifier.published) == 1


def test_an_upload_completed_before_the_abort_is_left_to_be_processed(settings: Settings) -> None:
    ports = FakePorts()
    slot = started(settings, ports)
    ports.store.put_original(settings.input_bucket, slot["key"], b"photo")
    multipart.abort(slot["uploadId"], {"key": slot["key"]}, ALICE, settings, ports)
    assert ports.records.get(slot["id"]).status == "pending" and ports.notifier.published == []


def test_the_server_trusts_s3s_sizes_not_the_client(settings: Settings) -> None:
    ports = FakePorts()
    uploads = ports.uploads
    slot = started(settings, ports)
    etag = uploads.put_part(slot["key"], slot["uploadId"], 1, b"x" * (PART_BYTES + 1))
    with pytest.raises(TooLarge) as refused:
        multipart.complete(
            slot["uploadId"],
            {"key": slot["key"]},
            {"parts": [{"PartNumber": 1, "ETag": etag}]},
            ALICE,
            settings,
            ports,
        )
    assert refused.value.code == "part_too_large"
    assert uploads.calls.get("abort") == 1 and uploads.calls.get("complete") is None
    record = ports.records.get(slot["id"])  # refused for good: the image ends, not pending forever
    assert record.status == "failed" and record.error is not None and record.error.code == "too_large"
    assert [r.id for r in ports.notifier.published] == [slot["id"]]


def test_a_slot_past_its_expiry_signs_nothing(settings: Settings) -> None:
    ports = FakePorts()
    slot = started(settings, ports)
    later = utc_now() + timedelta(seconds=settings.upload_url_ttl + 1)
    ports.clock = lambda: later
    with pytest.raises(Gone):
        multipart.sign_part(slot["uploadId"], "1", {"key": slot["key"]}, ALICE, settings, ports)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 3))
        self.now += seconds


def test_wait_reads_back_off_to_two_seconds_and_stop_at_the_deadline(settings: Settings) -> None:
    ports = FakePorts()
    records = ports.records
    slot = started(settings, ports)
    clock = Clock()
    record = wait_for_outcome(slot["id"], ALICE, ports, MAX_WAIT_SECONDS, clock.sleep, lambda: clock.now)
    assert record.status == "pending" and clock.now == pytest.approx(MAX_WAIT_SECONDS)
    assert clock.sleeps[:6] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0] and max(clock.sleeps) == 2.0
    assert records.calls["get"] == 17  # the most a 25 s wait costs: 17 strongly consistent GetItems


def test_wait_answers_as_soon_as_the_image_is_final(settings: Settings) -> None:
    ports = FakePorts()
    records = ports.records
    slot = started(settings, ports)
    clock = Clock()

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if len(clock.sleeps) == 3:  # the image fails while the request waits
            current = records.get(slot["id"])
            records.save(replace(current.failed(Failure("corrupt", "x"), Outcome(OriginalInfo(1)), utc_now())))

    record = wait_for_outcome(slot["id"], ALICE, ports, 20, sleep, lambda: clock.now)
    assert record.status == "failed" and clock.now == pytest.approx(0.7)
    assert records.calls["get"] - 1 == 4  # the wait's own reads (less the test's, to fail the image)


def test_waiting_zero_seconds_is_one_read(settings: Settings) -> None:
    ports = FakePorts()
    records = ports.records
    slot = started(settings, ports)
    wait_for_outcome(slot["id"], ALICE, ports, 0)
    assert records.calls["get"] == 1
