"""Reprocessing and backfills on in-memory fakes: the request, the consumer's state machine, its races
with uploads, DELETE and the sweeper, partial batch failures, and a backfill's idempotency.

The same through the local stack over real HTTP, 500 images: tests/test_backfill_e2e.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from chalicelib.deadline import Deadline
from chalicelib.domain import ReprocessStatus, Status
from chalicelib.errors import Conflict, Gone, ImageRejected, NotFound
from chalicelib.imaging.results import Rendering
from chalicelib.imaging.settings import ImagingSettings
from chalicelib.imaging.specs import VariantSpec
from chalicelib.ports import ReprocessMessage
from chalicelib.reprocess import (
    backfill_progress,
    consume_batch,
    enqueue_backfill_page,
    parse_backfill_page,
    request_reprocess,
)
from chalicelib.settings import Settings
from chalicelib.views import message_type
from tests.conftest import ENV
from tests.fakes import FakePorts, InjectedFault, InMemoryBackfillLog, InMemoryReprocessQueue
from tests.test_pipeline import INPUT, Rig, Viewer, delete, fake_render

ALICE, BOB, ADMIN = Viewer("alice"), Viewer("bob"), Viewer("root", is_admin=True)


@dataclass
class QueueRecord:
    """An SQS record as the consumer gets it (chalice's SQSRecord: `body` and `to_dict()`)."""

    body: str
    message_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"messageId": self.message_id, "body": self.body}


@dataclass
class ReprocessRig(Rig):
    queue: InMemoryReprocessQueue = field(default_factory=InMemoryReprocessQueue)
    backfills: InMemoryBackfillLog = field(default_factory=InMemoryBackfillLog)

    @property
    def ports(self) -> FakePorts:
        return FakePorts(
            records=self.records,
            store=self.store,
            reprocess_queue=self.queue,
            backfills=self.backfills,
            clock=self.clock,
        )

    def done_image(self, owner: str = "alice", data: bytes = b"photo bytes") -> str:
        image_id = self.new_image(owner)
        assert self.deliver(self.upload(image_id, data)) == "done"
        return image_id

    def ask(self, image_id: str, profile: str | None = None, viewer: Viewer = ALICE) -> None:
        body = json.dumps({"profile": profile}) if profile else None
        request_reprocess(image_id, body, viewer, self.settings, self.ports)

    def consume(self, messages: Sequence[ReprocessMessage] | None = None) -> dict[str, Any]:
        """One invocation of the consumer with `messages` (default: everything queued)."""
        taken = list(messages) if messages is not None else self.queue.drain()
        batch = [QueueRecord(m.to_body(), f"msg-{m.request_id}") for m in taken]
        return consume_batch(batch, self.processor, self.settings, None, self.backfills)

    def backfill(self, viewer: Viewer = ADMIN, **fields: Any) -> dict[str, Any]:
        page = parse_backfill_page(json.dumps({"profile": "avatar", **fields}), viewer, self.settings)
        return enqueue_backfill_page(page, viewer, self.ports)

    def messages(self, image_id: str) -> list[str]:
        return [message_type(r) for r in self.notifier.messages_for(image_id)]


@pytest.fixture
def rig() -> ReprocessRig:
    return ReprocessRig(Settings.from_env(ENV))


def test_a_done_image_is_rendered_again_with_another_profile_and_announced_once(rig: ReprocessRig) -> None:
    image_id = rig.done_image()
    before = rig.record(image_id)
    old_keys = sorted(o.key for o in before.outputs.values())
    rig.ask(image_id, "avatar")
    waiting = rig.record(image_id)
    assert waiting.status == Status.DONE and waiting.outputs == before.outputs and waiting.profile == "default"
    assert waiting.reprocess is not None and waiting.reprocess.status == ReprocessStatus.QUEUED
    seen: list[list[str]] = []

    def render_and_look(data: bytes, variants: Sequence[VariantSpec], settings: ImagingSettings) -> Rendering:
        during = rig.record(image_id)  # what a GET shows meanwhile: done, the old outputs, all present
        assert during.status == Status.DONE and during.reprocess.status == ReprocessStatus.PROCESSING
        seen.append(sorted(o.key for o in during.outputs.values()))
        assert all((ENV["OUTPUT_BUCKET"], k) in rig.store.objects for k in seen[-1])
        return fake_render(data, variants, settings)

    rig.render = render_and_look
    assert rig.consume() == {"batchItemFailures": []}
    assert seen == [old_keys]
    after = rig.record(image_id)
    assert after.status == Status.DONE and after.profile == "avatar" and after.generation == 1
    assert set(after.outputs) == {"avatar", "avatar-small"} and after.reprocess is None and after.notified
    assert rig.outputs() == sorted(o.key for o in after.outputs.values())  # the old revision is gone
    assert rig.messages(image_id) == ["image.done", "image.done"]
    assert rig.notifier.published[-1].generation == 1


def test_an_expired_original_is_original_gone_and_nothing_changes(rig: ReprocessRig) -> None:
    image_id = rig.done_image()
    before = rig.record(image_id)
    rig.store.objects.pop((INPUT, before.input_key))  # the retention rule expired it
    with pytest.raises(Gone) as refused:
        rig.ask(image_id, "avatar")
    assert refused.value.code == "original_gone" and refused.value.http_status == 410
    assert rig.record(image_id) == before and rig.queue.messages == []


def test_only_final_images_of_the_caller_are_reprocessed(rig: ReprocessRig) -> None:
    pending = rig.new_image()
    with pytest.raises(Conflict) as busy:
        rig.ask(pending, "avatar")
    assert busy.value.code == "not_final" and busy.value.http_status == 409
    image_id = rig.done_image("alice")
    with pytest.raises(NotFound):
        rig.ask(image_id, "avatar", viewer=BOB)
    rig.ask(image_id, "avatar", viewer=ADMIN)
    assert [m.image_id for m in rig.queue.messages] == [image_id]


def test_asking_again_for_the_same_profile_resends_the_open_request(rig: ReprocessRig) -> None:
    image_id = rig.done_image()
    rig.ask(image_id, "avatar")
    rig.ask(image_id, "avatar")
    first, second = rig.queue.drain()
    assert first == second  # one request; its message sent twice, in case the first was lost
    assert rig.consume([first, second]) == {"batchItemFailures": []}
    assert rig.messages(image_id) == ["image.done", "image.done"] and rig.record(image_id).generation == 1


def test_a_failed_reprocess_keeps_the_previous_outputs_and_says_so_once(rig: ReprocessRig) -> None:
    image_id = rig.done_image()
    before = rig.record(image_id)

    def reject(data: bytes, variants: Sequence[VariantSpec], settings: ImagingSettings) -> Rendering:
        raise ImageRejected("The image has too many pixels for this profile.", "too_many_pixels")

    rig.ask(image_id, "avatar")
    rig.render = reject
    message = rig.queue.messages[0]
    assert rig.consume() == {"batchItemFailures": []}
    after = rig.record(image_id)
    assert after.status == Status.DONE and after.outputs == before.outputs and after.profile == "default"
    assert after.reprocess.status == ReprocessStatus.FAILED and after.reprocess.error.code == "too_many_pixels"
    assert rig.outputs() == sorted(o.key for o in before.outputs.values())
    assert rig.messages(image_id) == ["image.done", "image.reprocess_failed"]
    assert rig.consume([message]) == {"batchItemFailures": []}  # a redelivery: nothing more
    assert len(rig.notifier.messages_for(image_id)) == 2


def test_a_transient_fault_retries_that_message_alone(rig: ReprocessRig) -> None:
    """Partial batch failure: the middle image's write fails; its neighbours finish and are not retried."""
    ids = [rig.done_image(data=f"photo {n}".encode()) for n in range(3)]
    for image_id in ids:
        rig.ask(image_id, "avatar")
    batch = rig.queue.drain()
    rig.store.fail_next("put_output", skip=2)  # the second image's first output
    result = rig.consume(batch)
    assert result == {"batchItemFailures": [{"itemIdentifier": f"msg-{batch[1].request_id}"}]}
    assert [rig.record(i).generation for i in ids] == [1, 0, 1]
    assert rig.record(ids[1]).lease_until == 0.0  # released: the retry may claim at once
    assert rig.consume([batch[1]]) == {"batchItemFailures": []}
    assert [rig.record(i).generation for i in ids] == [1, 1, 1]
    assert all(rig.messages(i) == ["image.done", "image.done"] for i in ids)


def test_the_last_claim_ends_a_request_that_keeps_failing(rig: ReprocessRig) -> None:
    image_id = rig.done_image()
    before = rig.record(image_id)
    rig.ask(image_id, "avatar")
    message = rig.queue.drain()[0]
    for _ in range(rig.settings.reprocess_max_attempts - 1):
        rig.store.fail_next("put_output")
        assert rig.consume([message])["batchItemFailures"]
    rig.store.fail_next("put_output")
    assert rig.consume([message]) == {"batchItemFailures": []}
    after = rig.record(image_id)
    assert after.reprocess.error.code == "processing_error" and after.reprocess.attempts == 3
    assert after.outputs == before.outputs and rig.outputs() == sorted(o.key for o in before.outputs.values())
    assert rig.messages(image_id) == ["image.done", "image.reprocess_failed"]


def test_a_message_for_a_replaced_request_is_dropped(rig: ReprocessRig) -> None:
    image_id = rig.done_image()
    rig.ask(image_id, "avatar")
    rig.ask(image_id, "thumbnail200")  # a newer wish replaces the queued one
    older, newer = rig.queue.drain()
    assert rig.processor.reprocess(older, Deadline(60), "m1") == "stale"
    assert rig.processor.reprocess(newer, Deadline(60), "m2") == "done"
    assert rig.record(image_id).profile == "thumbnail200"
    assert rig.processor.reprocess(newer, Deadline(60), "m2") == "duplicate"


def test_a_second_delivery_waits_for_the_live_claim(rig: ReprocessRig) -> None:
    image_id = rig.done_image()
    rig.ask(image_id, "avatar")
    message = rig.queue.drain()[0]
    outcomes: list[Any] = []

    def render_with_a_duplicate(data: bytes, variants: Sequence[VariantSpec], settings: ImagingSettings) -> Rendering:
        outcomes.append(rig.consume([message]))  # SQS delivered the same message to another consumer
        return fake_render(data, variants, settings)

    rig.render = render_with_a_duplicate
    # The duplicate shares the message id, so it would take over; another message naming it waits.
    assert rig.processor.reprocess(message, Deadline(60), "first-holder") == "done"
    assert outcomes == [{"batchItemFailures": [{"itemIdentifier": f"msg-{message.request_id}"}]}]
    assert rig.messages(image_id) == ["image.done", "image.done"]


def test_a_new_upload_during_a_reprocess_wins_and_takes_the_requested_profile(rig: ReprocessRig) -> None:
    image_id = rig.done_image(data=b"first upload")
    rig.ask(image_id, "avatar")
    newer: list[str] = []

    def render_while_reuploaded(data: bytes, variants: Sequence[VariantSpec], settings: ImagingSettings) -> Rendering:
        if data == b"first upload" and not newer:
            rig.render = fake_render
            newer.append(rig.deliver(rig.upload(image_id, b"second upload")))
        return fake_render(data, variants, settings)

    rig.render = render_while_reuploaded
    assert rig.consume() == {"batchItemFailures": []}
    final = rig.record(image_id)
    assert newer == ["done"] and final.reprocess is None and final.profile == "avatar"
    assert all(
        rig.store.objects[(ENV["OUTPUT_BUCKET"], o.key)].data.endswith(b"second upload") for o in final.outputs.values()
    )
    assert rig.outputs() == sorted(o.key for o in final.outputs.values())
    assert rig.messages(image_id) == ["image.done", "image.done"]  # the upload's; the reprocess's none


def test_a_delete_during_a_reprocess_leaves_nothing_and_announces_nothing(rig: ReprocessRig) -> None:
    image_id = rig.done_image()
    rig.ask(image_id, "avatar")

    def render_then_deleted(data: bytes, variants: Sequence[VariantSpec], settings: ImagingSettings) -> Rendering:
        delete(rig, image_id)
        return fake_render(data, variants, settings)

    rig.render = render_then_deleted
    assert rig.consume() == {"batchItemFailures": []}
    assert rig.outputs() == [] and rig.store.keys(INPUT) == [] and len(rig.notifier.published) == 1
    assert rig.record(image_id).is_deleted and rig.record(image_id).reprocess is None


def test_the_sweeper_ends_a_reprocess_whose_consumer_vanished(rig: ReprocessRig) -> None:
    image_id = rig.done_image()
    before = rig.record(image_id)
    rig.ask(image_id, "avatar")
    record = rig.record(image_id)
    rig.records.save(record.reprocess_claimed("k" * 32, rig.clock().timestamp() + 60, rig.clock(), "gone-msg"))
    rig.clock.advance(60 + rig.settings.stuck_after_seconds + 1)
    assert rig.recovery.sweep(Deadline(60))["failed"] == 1
    after = rig.record(image_id)
    assert after.status == Status.DONE and after.outputs == before.outputs
    assert after.reprocess.status == ReprocessStatus.FAILED and after.reprocess.error.code == "processing_error"
    assert rig.messages(image_id) == ["image.done", "image.reprocess_failed"]
    assert rig.recovery.sweep(Deadline(60))["failed"] == 0


def test_a_failed_image_reprocessed_successfully_becomes_done(rig: ReprocessRig) -> None:
    image_id = rig.new_image()
    assert rig.deliver(rig.upload(image_id, b"BAD then fixed")) == "failed"
    rig.render = lambda data, variants, settings: fake_render(b"ok" + data, variants, settings)
    rig.ask(image_id, "default")
    assert rig.consume() == {"batchItemFailures": []}
    assert rig.record(image_id).status == Status.DONE and rig.messages(image_id) == ["image.failed", "image.done"]


# -- backfills ------------------------------------------------------------------------------------


def test_a_backfill_queues_each_visible_final_image_once_and_a_rerun_skips_finished_ones(rig: ReprocessRig) -> None:
    alices = [rig.done_image("alice", f"a{n}".encode()) for n in range(5)]
    bobs = rig.done_image("bob", b"b")
    rig.new_image("alice")  # pending: not done, not selected
    page = rig.backfill(ALICE, limit=3)
    assert page["selected"] == 3 and page["queued"] == 3 and page["next_cursor"]
    rest = rig.backfill(ALICE, limit=3, backfill=page["backfill"], cursor=page["next_cursor"])
    assert rest["queued"] == 2 and rest["next_cursor"] is None
    assert {m.image_id for m in rig.queue.messages} == set(alices)  # bob's is not alice's to backfill
    first = rig.queue.drain()
    assert rig.consume(first[:3]) == {"batchItemFailures": []}  # stopped half-way; two messages lost
    rerun = rig.backfill(ALICE, backfill=page["backfill"])
    assert rerun["skipped"] == {"already_done": 3} and rerun["requeued"] == 2 and rerun["queued"] == 0
    rig.consume()
    progress = backfill_progress(page["backfill"], ALICE, rig.ports)
    assert progress["queued"] == 5 and progress["done"] == 5 and progress["failed"] == 0
    assert all(rig.record(i).profile == "avatar" and rig.record(i).generation == 1 for i in alices)
    assert rig.record(bobs).generation == 0
    with pytest.raises(NotFound):
        backfill_progress(page["backfill"], BOB, rig.ports)
    assert all(rig.messages(i) == ["image.done", "image.done"] for i in alices)


def test_an_admin_backfill_covers_every_owner_and_a_dry_run_changes_nothing(rig: ReprocessRig) -> None:
    ids = [rig.done_image(owner, owner.encode()) for owner in ("alice", "bob", "carol")]
    versions = [rig.record(i).version for i in ids]
    dry = rig.backfill(ADMIN, dry_run=True)
    assert dry["selected"] == 3 and dry["queued"] == 3 and dry["dry_run"]
    assert [rig.record(i).version for i in ids] == versions and rig.queue.messages == []
    real = rig.backfill(ADMIN)
    assert real["queued"] == 3 and len(rig.queue.messages) == 3


def test_a_backfill_skips_gone_originals_and_images_older_than_since(rig: ReprocessRig) -> None:
    old = rig.done_image(data=b"old")
    rig.clock.advance(86400 * 2)
    gone, fresh = rig.done_image(data=b"gone"), rig.done_image(data=b"fresh")
    rig.store.objects.pop((INPUT, rig.record(gone).input_key))
    since = rig.record(gone).created_at[:10]
    page = rig.backfill(ALICE, since=since)
    assert page["selected"] == 2 and page["queued"] == 1 and page["skipped"] == {"original_gone": 1}
    assert page["next_cursor"] is None and [m.image_id for m in rig.queue.messages] == [fresh]
    assert rig.record(old).reprocess is None


def test_a_backfill_retries_what_failed_and_counts_both_outcomes(rig: ReprocessRig) -> None:
    good, bad = rig.done_image(data=b"good"), rig.done_image(data=b"bad one")
    page = rig.backfill(ALICE)

    def fail_bad(data: bytes, variants: Sequence[VariantSpec], settings: ImagingSettings) -> Rendering:
        if data == b"bad one":
            raise ImageRejected("nope", "corrupt")
        return fake_render(data, variants, settings)

    rig.render = fail_bad
    rig.consume()
    progress = backfill_progress(page["backfill"], ALICE, rig.ports)
    assert (progress["done"], progress["failed"]) == (1, 1)
    rig.render = fake_render
    rerun = rig.backfill(ALICE, backfill=page["backfill"])
    assert rerun["queued"] == 1 and rerun["skipped"] == {"already_done": 1}
    rig.consume()
    assert rig.record(bad).generation == 1 and rig.record(good).generation == 1


def test_unsent_messages_leave_their_requests_for_a_rerun(rig: ReprocessRig) -> None:
    image_id = rig.done_image()
    rig.queue.refuse.add(image_id)
    page = rig.backfill(ALICE)
    assert page["queued"] == 0 and page["unsent"] == 1
    rig.queue.refuse.clear()
    rerun = rig.backfill(ALICE, backfill=page["backfill"])
    assert rerun["requeued"] == 1
    rig.consume()
    assert rig.record(image_id).generation == 1


def test_backfill_requests_are_checked(rig: ReprocessRig) -> None:
    from chalicelib.errors import BadRequest, Forbidden

    for body in (
        {},
        {"profile": "nope"},
        {"profile": "avatar", "status": "pending"},
        {"profile": "avatar", "since": "x"},
        {"profile": "avatar", "owner": 5},
    ):
        with pytest.raises(BadRequest):
            parse_backfill_page(json.dumps(body), ALICE, rig.settings)
    with pytest.raises(Forbidden):  # another owner's images are for admins to backfill
        parse_backfill_page(json.dumps({"profile": "avatar", "owner": "bob"}), ALICE, rig.settings)
    for absent in ({"owner": None, "since": "", "cursor": ""}, {"owner": ""}):
        page = parse_backfill_page(json.dumps({"profile": "avatar", **absent}), ALICE, rig.settings)
        assert (page.owner, page.since, page.cursor) == (ALICE.owner, None, None)
    with pytest.raises(NotFound):
        rig.backfill(ALICE, backfill="bf-unknown")


def test_a_message_that_is_no_request_is_dropped_not_retried(rig: ReprocessRig) -> None:
    result = consume_batch([QueueRecord("not json", "m1")], rig.processor, rig.settings, None, rig.backfills)
    assert result == {"batchItemFailures": []}


def test_a_fault_counting_progress_does_not_fail_the_message(rig: ReprocessRig) -> None:
    rig.done_image()
    rig.backfill(ALICE)
    rig.backfills.fail_next("count")
    assert rig.consume() == {"batchItemFailures": []}


def test_the_publish_of_a_reprocess_is_retried_by_the_redelivery(rig: ReprocessRig) -> None:
    image_id = rig.done_image()
    rig.ask(image_id, "avatar")
    message = rig.queue.drain()[0]
    rig.notifier.fail_next("publish")
    assert rig.consume([message])["batchItemFailures"]
    assert rig.record(image_id).generation == 1 and not rig.record(image_id).notified
    assert rig.consume([message]) == {"batchItemFailures": []}
    assert rig.messages(image_id) == ["image.done", "image.done"] and rig.record(image_id).notified


def test_a_queue_fault_leaves_the_request_for_asking_again(rig: ReprocessRig) -> None:
    image_id = rig.done_image()
    rig.queue.fail_next("send")
    with pytest.raises(InjectedFault):
        rig.ask(image_id, "avatar")
    assert rig.record(image_id).reprocess.status == ReprocessStatus.QUEUED and rig.queue.messages == []
    rig.ask(image_id, "avatar")  # the same request, sent this time
    assert rig.consume() == {"batchItemFailures": []} and rig.record(image_id).generation == 1


def test_reprocess_messages_follow_the_published_event_schema(rig: ReprocessRig) -> None:
    from jsonschema import Draft202012Validator

    from chalicelib.views import result_message
    from tests.live_stack import ROOT

    schema = json.loads((ROOT / "docs" / "schemas" / "image-event.schema.json").read_text())
    done, refused = rig.done_image(data=b"one"), rig.done_image(data=b"two")
    rig.ask(done, "avatar")
    rig.consume()
    rig.ask(refused, "avatar")
    rig.store.objects.pop((INPUT, rig.record(refused).input_key))  # expired between request and work
    rig.consume()
    messages = [result_message(r) for r in rig.notifier.published]
    assert [m["type"] for m in messages[2:]] == ["image.done", "image.reprocess_failed"]
    assert messages[3]["reprocess"]["error"]["code"] == "original_gone"
    for message in messages:
        assert not list(Draft202012Validator(schema).iter_errors(message)), message


def test_an_outcome_never_announced_is_announced_before_its_reprocess(rig: ReprocessRig) -> None:
    image_id = rig.new_image()
    event = rig.upload(image_id, b"photo")
    rig.notifier.fail_next("publish")
    with pytest.raises(InjectedFault):
        rig.deliver(event)  # done, its publish failed; the lease was given back
    assert not rig.record(image_id).notified
    rig.ask(image_id, "avatar")
    assert rig.consume() == {"batchItemFailures": []}
    assert [(m.generation, m.profile) for m in rig.notifier.messages_for(image_id)] == [(0, "default"), (1, "avatar")]
