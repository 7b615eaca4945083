"""The Notifier contract: SnsNotifier (moto, read back through an SQS subscription) and the fake."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chalicelib.domain import Failure, ImageRecord, OriginalInfo, Outcome
from chalicelib.views import result_message


def test_a_final_record_is_published_as_its_result_message(notifier: tuple[Any, Any]) -> None:
    publisher, published = notifier
    now = datetime(2026, 11, 29, tzinfo=UTC)
    record = ImageRecord.pending(
        "f" * 32,
        owner="alice",
        profile="default",
        content_type="image/png",
        input_bucket="in",
        input_key="uploads/" + "f" * 32,
        now=now,
    )
    failed = record.claimed("t" * 32, "e", 3, 1.0, now).failed(Failure("corrupt", "bad"), Outcome(OriginalInfo(3)), now)
    assert publisher.publish(failed)
    [message] = published()
    assert message == result_message(failed)
    assert message["type"] == "image.failed" and message["owner"] == "alice"
