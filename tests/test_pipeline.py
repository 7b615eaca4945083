"""The pipeline's state machine on in-memory fakes: every outcome, race and fault, in milliseconds.

The same scenarios through Lambda's handler, moto and real images are in tests/test_handler.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.deadline import Deadline
from chalicelib.domain import Failure, ImageRecord, Status, new_image_id
from chalicelib.endings import Endings
from chalicelib.errors import Busy, ImageRejected, NotFound, StorageError
from chalicelib.images import delete_image, get_record
from chalicelib.imaging.results import RenderedVariant, Rendering, SourceInfo
from chalicelib.imaging.settings import ImagingSettings
from chalicelib.imaging.specs import VariantSpec
from chalicelib.pipeline import ClaimHeld, UploadEvent, UploadProcessor
from chalicelib.ports import NoSuchUpload
from chalicelib.recovery import Recovery
from chalicelib.settings import Settings
from tests.conftest import ENV
from tests.fakes import (
    FakePorts,
    InjectedFault,
    InMemoryObjectStore,
    InMemoryRecordStore,
    InMemoryUploads,
    RecordingNotifier,
)

INPUT = ENV["INPUT_BUCKET"]


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class FakeTimer:
    """A monotonic clock that only moves when told to; `sleep` moves it."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds

    def sleep(self, seconds: float) -> None:
        self.seconds += seconds


@dataclass(frozen=True)
class Viewer:
    owner: str
    is_admin: bool = False


def fake_render(data: bytes, variants: Sequence[VariantSpec], settings: ImagingSettings) -> Rendering:
    """A renderer with the real one's contract and none of its cost: b"BAD..." is corrupt."""
    if data.startswith(b"BAD"):
        raise ImageRejected("The image data is corrupt.", "corrupt")
    rendered = tuple(
        RenderedVariant(v.name, "webp", "image/webp", "webp", 40, 30, b"%s:%s" % (v.name.encode(), data[:16]))
        for v in variants
    )
    return Rendering(SourceInfo("JPEG", 400, 300, len(data), 1), rendered, {"thumbhash": "x"})


@dataclass
class Rig:
    settings: Settings
    clock: FakeClock = field(default_factory=FakeClock)
    records: InMemoryRecordStore = field(default_factory=InMemoryRecordStore)
    store: InMemoryObjectStore = field(default_factory=lambda: InMemoryObjectStore(ENV["OUTPUT_BUCKET"]))
    notifier: RecordingNotifier = field(default_factory=RecordingNotifier)
    uploads: InMemoryUploads = field(default_factory=InMemoryUploads)
    render: Callable[..., Rendering] = fake_render

    @property
    def endings(self) -> Endings:
        return Endings(self.records, self.notifier, self.clock)

    @property
    def processor(self) -> UploadProcessor:
        return UploadProcessor(self.settings, self.records, self.store, self.endings, self.render, self.clock)

    @property
    def recovery(self) -> Recovery:
        return Recovery(self.settings, self.records, self.store, self.uploads, self.endings, self.clock)

    @property
    def ports(self) -> FakePorts:
        return FakePorts(records=self.records, store=self.store, clock=self.clock)

    def new_image(self, owner: str = "alice", profile: str = "default", multipart: bool = False) -> str:
        image_id = new_image_id()
        key = self.settings.upload_key(image_id)
        self.records.create(
            ImageRecord.pending(
                image_id,
                owner=owner,
                profile=profile,
                content_type="image/jpeg",
                input_bucket=INPUT,
                input_key=key,
                now=self.clock(),
                upload_id=self.uploads.start(key, "image/jpeg") if multipart else None,
            )
        )
        return image_id

    def upload(self, image_id: str, data: bytes) -> UploadEvent:
        key = self.settings.upload_key(image_id)
        etag = self.store.put_original(INPUT, key, data)
        return UploadEvent(INPUT, key, etag, len(data))

    def deliver(self, event: UploadEvent, seconds: float = 60, timer: Callable[[], float] = time.monotonic) -> str:
        return self.processor.process(event, Deadline(seconds, timer))

    def record(self, image_id: str) -> ImageRecord:
        found = self.records.get(image_id)
        assert found is not None
        return found

    def outputs(self) -> list[str]:
        return self.store.keys(ENV["OUTPUT_BUCKET"])


@pytest.fixture
def rig() -> Rig:
    return Rig(Settings.from_env(ENV))


def test_an_upload_is_rendered_stored_recorded_and_announced_once(rig: Rig) -> None:
    image_id = rig.new_image()
    assert rig.deliver(rig.upload(image_id, b"photo bytes")) == "done"
    done = rig.record(image_id)
    assert done.status == Status.DONE and done.notified and done.attempts == 1 and done.lease_until is None
    assert set(done.outputs) == {"web", "thumb"}
    revision = str(done.claim_token)[:12]
    assert rig.outputs() == [f"processed/{image_id}/{revision}/thumb.webp", f"processed/{image_id}/{revision}/web.webp"]
    assert [m.status for m in rig.notifier.messages_for(image_id)] == [Status.DONE]


def test_a_repeated_event_reads_nothing_and_announces_nothing(rig: Rig) -> None:
    image_id = rig.new_image()
    event = rig.upload(image_id, b"photo")
    rig.deliver(event)
    reads = rig.store.calls["read_original"]
    assert rig.deliver(event) == "duplicate" and rig.deliver(event) == "duplicate"
    assert rig.store.calls["read_original"] == reads and len(rig.notifier.published) == 1


def test_a_concurrent_delivery_of_the_same_bytes_is_retried_later(rig: Rig) -> None:
    image_id = rig.new_image()
    event = rig.upload(image_id, b"photo")
    record = rig.record(image_id)
    rig.records.save(record.claimed("h" * 32, event.etag, event.size, rig.clock().timestamp() + 60, rig.clock()))
    with pytest.raises(ClaimHeld):
        rig.deliver(event)
    assert rig.notifier.published == [] and rig.outputs() == []


def test_a_dead_workers_claim_is_taken_over_once_its_lease_is_over(rig: Rig) -> None:
    image_id = rig.new_image()
    event = rig.upload(image_id, b"photo")
    record = rig.record(image_id)
    rig.records.save(record.claimed("h" * 32, event.etag, event.size, rig.clock().timestamp() + 60, rig.clock()))
    rig.clock.advance(61)
    assert rig.deliver(event) == "done"
    assert rig.record(image_id).attempts == 2 and len(rig.notifier.published) == 1


def test_a_newer_upload_takes_over_and_the_older_attempt_discards_its_work(rig: Rig) -> None:
    """The second upload lands while the first is rendering: the record ends with the second's
    bytes, the first attempt's outputs are deleted, and only the second outcome is announced."""
    image_id = rig.new_image()
    first = rig.upload(image_id, b"first upload")
    newer: list[str] = []

    def render_while_reuploaded(data: bytes, variants: Sequence[VariantSpec], settings: ImagingSettings) -> Rendering:
        if data == b"first upload" and not newer:
            newer.append(rig.deliver(rig.upload(image_id, b"second upload")))
        return fake_render(data, variants, settings)

    rig.render = render_while_reuploaded
    assert rig.deliver(first) == "superseded" and newer == ["done"]
    final = rig.record(image_id)
    assert final.status == Status.DONE and final.source_etag == rig.store.head_original(INPUT, first.key).etag
    assert all(
        rig.store.objects[(ENV["OUTPUT_BUCKET"], o.key)].data.endswith(b"second upload") for o in final.outputs.values()
    )
    assert rig.outputs() == sorted(o.key for o in final.outputs.values())
    assert len(rig.notifier.messages_for(image_id)) == 1


def test_a_late_event_for_replaced_bytes_changes_nothing(rig: Rig) -> None:
    image_id = rig.new_image()
    stale = rig.upload(image_id, b"old bytes")
    current = rig.upload(image_id, b"new bytes")
    assert rig.deliver(current) == "done"
    assert rig.deliver(stale) == "duplicate"  # the object is the new bytes, already processed
    assert rig.record(image_id).source_etag == current.etag and len(rig.notifier.published) == 1


def test_an_event_older_than_the_object_processes_the_object(rig: Rig) -> None:
    image_id = rig.new_image()
    stale = rig.upload(image_id, b"old bytes")
    current = rig.upload(image_id, b"new bytes")
    assert rig.deliver(stale) == "done"
    assert rig.record(image_id).source_etag == current.etag
    assert rig.deliver(current) == "duplicate" and len(rig.notifier.published) == 1


def test_uploading_again_replaces_the_outputs_only_once_the_new_ones_exist(rig: Rig) -> None:
    image_id = rig.new_image()
    rig.deliver(rig.upload(image_id, b"version one"))
    old_keys = sorted(o.key for o in rig.record(image_id).outputs.values())
    seen_while_processing: list[list[str]] = []

    def render_and_look(data: bytes, variants: Sequence[VariantSpec], settings: ImagingSettings) -> Rendering:
        during = rig.record(image_id)
        seen_while_processing.append(sorted(o.key for o in during.outputs.values()))
        assert all((ENV["OUTPUT_BUCKET"], k) in rig.store.objects for k in seen_while_processing[-1])
        return fake_render(data, variants, settings)

    rig.render = render_and_look
    assert rig.deliver(rig.upload(image_id, b"version two")) == "done"
    assert seen_while_processing == [old_keys]  # still advertised and still there meanwhile
    new_keys = sorted(o.key for o in rig.record(image_id).outputs.values())
    assert rig.outputs() == new_keys and not set(new_keys) & set(old_keys)
    assert [m.status for m in rig.notifier.messages_for(image_id)] == [Status.DONE, Status.DONE]


def test_bad_bytes_end_failed_with_their_code_once(rig: Rig) -> None:
    image_id = rig.new_image()
    event = rig.upload(image_id, b"BAD bytes")
    assert rig.deliver(event) == "failed"
    failed = rig.record(image_id)
    assert failed.error is not None and failed.error.code == "corrupt" and failed.outputs == {}
    assert failed.original is not None and failed.original.bytes == 9 and failed.sha256
    assert rig.deliver(event) == "duplicate" and len(rig.notifier.published) == 1


def test_an_oversize_object_is_measured_and_failed_without_being_read(rig: Rig) -> None:
    rig.settings = replace(rig.settings, imaging=replace(rig.settings.imaging, max_upload_bytes=100))
    image_id = rig.new_image()
    assert rig.deliver(rig.upload(image_id, b"x" * 101)) == "failed"
    assert rig.record(image_id).error.code == "too_large" and rig.store.bytes_read == 0


@pytest.mark.parametrize(
    "fake, operation, skip",
    [
        ("store", "read_original", 0),
        ("store", "put_output", 0),
        ("store", "put_output", 1),
        ("records", "save", 0),  # the claim
        ("records", "save", 1),  # the completion
        ("notifier", "publish", 0),
        ("records", "save", 2),  # marking it notified after the publish
    ],
)
def test_a_transient_fault_raises_and_the_retry_finishes_with_one_message(
    rig: Rig, fake: str, operation: str, skip: int
) -> None:
    image_id = rig.new_image()
    event = rig.upload(image_id, b"photo")
    getattr(rig, fake).fail_next(operation, skip=skip)
    if (fake, skip) == ("records", 2):
        assert rig.deliver(event) == "done"  # published; only the mark failed: nothing to retry
    else:
        with pytest.raises(InjectedFault):
            rig.deliver(event)
        interim = rig.record(image_id)
        assert interim.status != Status.DONE or not interim.lease_live(rig.clock().timestamp())
        rig.deliver(event)  # Lambda's retry
    final = rig.record(image_id)
    assert final.status == Status.DONE
    assert rig.outputs() == sorted(o.key for o in final.outputs.values())
    assert len(rig.notifier.messages_for(image_id)) == 1


def test_the_stages_last_attempt_ends_the_image_whatever_fails(rig: Rig) -> None:
    image_id = rig.new_image()
    event = rig.upload(image_id, b"photo")
    for attempt in range(1, 4):
        rig.store.fail_next("put_output")
        if attempt < rig.settings.max_attempts:
            with pytest.raises(InjectedFault):
                rig.deliver(event)
            assert rig.record(image_id).status == Status.PROCESSING and rig.notifier.published == []
        else:
            assert rig.deliver(event) == "failed"
    failed = rig.record(image_id)
    assert failed.status == Status.FAILED and failed.error.code == "processing_error" and failed.attempts == 3
    assert "InjectedFault" in failed.error.message and rig.outputs() == []
    assert len(rig.notifier.published) == 1


def test_an_attempt_past_its_deadline_is_interrupted_and_ends_processing_timeout(rig: Rig) -> None:
    """A render that never returns on its own: the deadline's timer interrupts it."""

    def render_forever(data: bytes, variants: Sequence[VariantSpec], settings: ImagingSettings) -> Rendering:
        while True:
            sum(range(1000))

    rig.render = render_forever
    image_id = rig.new_image()
    started = time.process_time()
    assert rig.deliver(rig.upload(image_id, b"photo"), seconds=0.2) == "failed"
    assert time.process_time() - started < 5  # CPU time: a loaded machine cannot stretch it
    failed = rig.record(image_id)
    assert failed.error.code == "processing_timeout" and failed.notified and rig.outputs() == []
    assert len(rig.notifier.published) == 1


def test_the_deadline_is_also_checked_between_outputs(rig: Rig) -> None:
    """Off the main thread there is no timer: the steps between outputs still stop the attempt."""
    image_id = rig.new_image()
    event = rig.upload(image_id, b"photo")
    outcome: list[str] = []

    timer = FakeTimer()

    def deliver_on_a_thread() -> None:
        original_put = rig.store.put_output

        def slow_put(*args: object) -> None:
            original_put(*args)  # type: ignore[arg-type]
            timer.sleep(0.3)

        rig.store.put_output = slow_put  # type: ignore[method-assign]
        outcome.append(rig.deliver(event, seconds=0.2, timer=timer))

    thread = threading.Thread(target=deliver_on_a_thread)
    thread.start()
    thread.join()
    assert outcome == ["failed"] and rig.record(image_id).error.code == "processing_timeout"
    assert rig.outputs() == []  # the one written before the deadline was removed


def test_every_delivery_racing_on_the_same_bytes_yields_one_result(rig: Rig) -> None:
    image_id = rig.new_image()
    event = rig.upload(image_id, b"photo")
    outcomes: list[str] = []

    def deliver() -> None:
        try:
            outcomes.append(rig.deliver(event))
        except ClaimHeld:
            outcomes.append("retry")

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    while "retry" in outcomes:  # Lambda's retries of the deferred ones
        outcomes.remove("retry")
        outcomes.append(rig.deliver(event))
    assert outcomes.count("done") == 1 and rig.store.calls["put_output"] == 2
    assert len(rig.notifier.published) == 1


def test_dedupe_copies_a_twin_of_the_same_owner_only(rig: Rig) -> None:
    rig.settings = replace(rig.settings, dedupe=True)
    first = rig.new_image("alice")
    rig.deliver(rig.upload(first, b"same bytes"))
    copy, strangers = rig.new_image("alice"), rig.new_image("bob")
    rig.deliver(rig.upload(copy, b"same bytes"))
    rig.deliver(rig.upload(strangers, b"same bytes"))
    assert rig.record(copy).deduplicated_from == first and rig.store.calls["copy_output"] == 2
    assert rig.record(strangers).deduplicated_from is None  # no cross-owner "this file exists" oracle


# -- the failure queue and the sweeper -----------------------------------------------------------


def test_an_abandoned_upload_is_ended_failed_once(rig: Rig) -> None:
    image_id = rig.new_image()
    event = rig.upload(image_id, b"photo")
    recovery = rig.recovery
    assert recovery.end_abandoned(INPUT, event.key, "RetriesExhausted") == "failed"
    assert recovery.end_abandoned(INPUT, event.key, "RetriesExhausted") == "duplicate"
    failed = rig.record(image_id)
    assert failed.error.code == "processing_error" and "RetriesExhausted" in failed.error.message
    assert rig.deliver(event) == "done"  # a late upload's own event still gets processed
    assert [m.status for m in rig.notifier.messages_for(image_id)] == [Status.FAILED, Status.DONE]


def test_an_abandoned_event_leaves_finished_and_live_work_alone(rig: Rig) -> None:
    finished, live = rig.new_image(), rig.new_image()
    rig.deliver(rig.upload(finished, b"photo"))
    event = rig.upload(live, b"photo")
    record = rig.record(live)
    rig.records.save(record.claimed("h" * 32, event.etag, 5, rig.clock().timestamp() + 30, rig.clock()))
    recovery = rig.recovery
    assert recovery.end_abandoned(INPUT, rig.settings.upload_key(finished), "RetriesExhausted") == "duplicate"
    assert recovery.end_abandoned(INPUT, event.key, "RetriesExhausted") == "in_progress"
    rig.clock.advance(31)
    assert recovery.end_abandoned(INPUT, event.key, "RetriesExhausted") == "failed"
    assert [m.id for m in rig.notifier.published] == [finished, live]


def test_an_outcome_whose_publish_failed_is_sent_by_the_failure_queue(rig: Rig) -> None:
    image_id = rig.new_image()
    event = rig.upload(image_id, b"photo")
    for _ in range(3):  # every attempt's publish fails
        rig.notifier.fail_next("publish")
        with pytest.raises(InjectedFault):
            rig.deliver(event)
    assert rig.record(image_id).status == Status.DONE and rig.notifier.published == []
    assert rig.recovery.end_abandoned(INPUT, event.key, "RetriesExhausted") == "notified"
    assert len(rig.notifier.published) == 1 and rig.record(image_id).notified


def test_the_sweeper_ends_work_stuck_past_its_lease_once(rig: Rig) -> None:
    image_id = rig.new_image()
    event = rig.upload(image_id, b"photo")
    record = rig.record(image_id)
    rig.records.save(record.claimed("h" * 32, event.etag, 5, rig.clock().timestamp() + 60, rig.clock()))
    rig.clock.advance(60 + rig.settings.stuck_after_seconds - 1)
    assert rig.recovery.sweep(Deadline(60))["failed"] == 0
    rig.clock.advance(2)
    assert rig.recovery.sweep(Deadline(60))["failed"] == 1
    assert rig.recovery.sweep(Deadline(60))["failed"] == 0
    assert rig.record(image_id).error.code == "processing_error" and len(rig.notifier.published) == 1


def test_the_sweeper_redrives_a_missing_event_once_then_gives_up(rig: Rig) -> None:
    uploaded, unused = rig.new_image(), rig.new_image()
    rig.upload(uploaded, b"photo")  # S3 took the upload; its event never came
    rig.clock.advance(rig.settings.redrive_after_seconds + 1)
    assert rig.recovery.sweep(Deadline(60))["redriven"] == 1
    assert rig.store.redriven == [(INPUT, rig.settings.upload_key(uploaded))]
    assert rig.recovery.sweep(Deadline(60))["redriven"] == 0
    rig.clock.advance(rig.settings.stuck_after_seconds + 1)
    assert rig.recovery.sweep(Deadline(60))["failed"] == 1
    assert rig.record(uploaded).error.message == "No S3 event arrived for the upload."
    assert rig.record(unused).status == Status.PENDING  # never uploaded: left to expire


def test_the_sweeper_ends_a_multipart_slot_nobody_completed_once_its_urls_are_long_expired(rig: Rig) -> None:
    started, completed, unused = rig.new_image(multipart=True), rig.new_image(multipart=True), rig.new_image()
    key = rig.settings.upload_key(started)
    rig.uploads.put_part(key, rig.record(started).upload_id or "", 1, b"part")
    rig.upload(completed, b"photo")  # completed: S3 holds the object, its event is the pipeline's
    expired = rig.settings.upload_url_ttl + rig.settings.redrive_after_seconds
    rig.clock.advance(expired + 1)  # the slot's URLs expired, but a client may still complete
    assert rig.recovery.sweep(Deadline(60))["abandoned"] == 0
    rig.clock.advance(rig.settings.stuck_after_seconds)
    assert rig.recovery.sweep(Deadline(60))["abandoned"] == 1
    assert rig.recovery.sweep(Deadline(60))["abandoned"] == 0
    ended = rig.record(started)
    assert ended.status == Status.FAILED and ended.error is not None and ended.error.code == "upload_abandoned"
    assert rig.uploads.calls["abort"] == 1 and len(rig.notifier.messages_for(started)) == 1
    with pytest.raises(NoSuchUpload):
        rig.uploads.parts(key, ended.upload_id or "")
    assert rig.record(unused).status == Status.PENDING  # a presigned POST's slot just expires
    assert (rig.record(completed).error or Failure("", "")).code != "upload_abandoned"  # redriven instead


def test_a_redriven_event_completes_the_upload(rig: Rig) -> None:
    image_id = rig.new_image()
    event = rig.upload(image_id, b"photo")
    rig.store.on_redrive = lambda bucket, key: rig.deliver(event)
    rig.clock.advance(rig.settings.redrive_after_seconds + 1)
    rig.recovery.sweep(Deadline(60))
    assert rig.record(image_id).status == Status.DONE and len(rig.notifier.published) == 1


# -- DELETE racing the pipeline ------------------------------------------------------------------


def delete(rig: Rig, image_id: str, owner: str = "alice") -> None:
    delete_image(image_id, Viewer(owner), rig.settings, rig.ports, sleep=lambda _: None)


def test_a_delete_during_processing_leaves_no_output_and_no_message(rig: Rig) -> None:
    image_id = rig.new_image()

    def render_then_deleted(data: bytes, variants: Sequence[VariantSpec], settings: ImagingSettings) -> Rendering:
        delete(rig, image_id)
        return fake_render(data, variants, settings)

    rig.render = render_then_deleted
    assert rig.deliver(rig.upload(image_id, b"photo")) == "superseded"
    assert rig.outputs() == [] and rig.store.keys(INPUT) == [] and rig.notifier.published == []
    with pytest.raises(NotFound):
        get_record(image_id, Viewer("alice"), rig.records)


def test_a_delete_waits_for_an_outcome_being_published(rig: Rig) -> None:
    image_id = rig.new_image()
    event = rig.upload(image_id, b"photo")
    order: list[str] = []
    publish = rig.notifier.publish

    def publish_then_note(record: ImageRecord) -> str:
        order.append("published")
        return publish(record)

    rig.notifier.publish = publish_then_note  # type: ignore[method-assign]
    rig.notifier.fail_next("publish")
    with pytest.raises(InjectedFault):
        rig.deliver(event)  # done, but its publish failed: the lease was given back
    record = rig.record(image_id)
    rig.records.save(record.leased(rig.clock().timestamp() + 30, rig.clock()))  # a retry is publishing now
    with pytest.raises(Busy):
        timer = FakeTimer()
        delete_image(image_id, Viewer("alice"), rig.settings, rig.ports, timer.sleep, timer, patience=0.3)
    rig.clock.advance(31)
    delete(rig, image_id)
    assert rig.deliver(event) == "ignored" and "published" not in order[1:]


def test_a_late_upload_to_a_deleted_slot_is_removed(rig: Rig) -> None:
    image_id = rig.new_image()
    delete(rig, image_id)
    assert rig.deliver(rig.upload(image_id, b"photo")) == "ignored"
    assert rig.store.keys(INPUT) == [] and rig.outputs() == [] and rig.notifier.published == []


def test_a_delete_s3_refuses_is_a_503_that_a_retry_finishes(rig: Rig) -> None:
    image_id = rig.new_image()
    rig.deliver(rig.upload(image_id, b"photo"))
    stubborn = next(iter(rig.record(image_id).outputs.values())).key
    rig.store.keep.add(stubborn)
    with pytest.raises(StorageError):
        delete(rig, image_id)
    assert rig.record(image_id).is_deleted  # the tombstone stays for the retry
    rig.store.keep.clear()
    with pytest.raises(NotFound):  # already deleted; what was left is removed all the same
        delete(rig, image_id)
    assert rig.outputs() == [] and rig.store.keys(INPUT) == []


def test_another_owners_image_is_not_found_and_not_deleted(rig: Rig) -> None:
    image_id = rig.new_image("alice")
    for action in (lambda: get_record(image_id, Viewer("bob"), rig.records), lambda: delete(rig, image_id, "bob")):
        with pytest.raises(NotFound):
            action()
    assert get_record(image_id, Viewer("root", is_admin=True), rig.records).id == image_id


def test_a_retry_of_the_same_invocation_takes_over_the_lease_its_killed_attempt_left(rig: Rig) -> None:
    """Lambda retries an event (same request id) only after the attempt ended: its lease is dead,
    whereas a different invocation (a duplicate S3 delivery) must still wait for it."""
    image_id = rig.new_image()
    event = rig.upload(image_id, b"photo")
    record = rig.record(image_id)
    lease_until = rig.clock().timestamp() + 60
    rig.records.save(record.claimed("k" * 32, event.etag, event.size, lease_until, rig.clock(), "request-1"))
    with pytest.raises(ClaimHeld):
        rig.processor.process(event, Deadline(60), "request-2")
    assert rig.processor.process(event, Deadline(60), "request-1") == "done"
    assert rig.record(image_id).attempts == 2 and len(rig.notifier.published) == 1


def test_the_failure_queue_ends_an_image_its_own_killed_attempts_left_leased(rig: Rig) -> None:
    image_id = rig.new_image()
    event = rig.upload(image_id, b"photo")
    record = rig.record(image_id)
    lease_until = rig.clock().timestamp() + 60
    rig.records.save(record.claimed("k" * 32, event.etag, event.size, lease_until, rig.clock(), "request-1"))
    assert rig.recovery.end_abandoned(INPUT, event.key, "RetriesExhausted", "request-2") == "in_progress"
    assert rig.recovery.end_abandoned(INPUT, event.key, "RetriesExhausted", "request-1") == "failed"
    assert len(rig.notifier.published) == 1
