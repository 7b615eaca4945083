"""The ReprocessQueue contract: SqsReprocessQueue (moto, the queues of infra/resources.json) and the fake."""

from __future__ import annotations

from typing import Any

from chalicelib.ports import QueueDepth, ReprocessMessage


def test_sent_messages_wait_on_the_queue_and_read_back_whole(reprocess_queue: tuple[Any, Any]) -> None:
    queue, receive = reprocess_queue
    messages = [ReprocessMessage(f"{n:032x}", f"r{n}", "bf-1" if n % 2 else None) for n in range(23)]
    assert queue.send(messages) == []  # more than one SendMessageBatch
    assert queue.depth() == QueueDepth(waiting=23, in_flight=0, dead_letters=0)
    assert sorted(receive(), key=lambda m: m.request_id) == sorted(messages, key=lambda m: m.request_id)
    assert queue.depth().waiting == 0


def test_nothing_to_send_sends_nothing(reprocess_queue: tuple[Any, Any]) -> None:
    queue, receive = reprocess_queue
    assert queue.send([]) == [] and receive() == []


def test_a_body_that_is_not_ours_reads_as_none() -> None:
    for body in ("", "[]", "{}", '{"image_id": 1, "request_id": "r"}', "not json"):
        assert ReprocessMessage.from_body(body) is None
    assert ReprocessMessage.from_body('{"image_id": "i", "request_id": "r"}') == ReprocessMessage("i", "r")
