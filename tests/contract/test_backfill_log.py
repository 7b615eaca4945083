"""The BackfillLog contract: DynamoBackfillLog (moto, the images table) and the fake."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.ports import BackfillProgress


def test_a_backfill_is_started_once_and_counted(backfill_log: Any) -> None:
    started = BackfillProgress("bf-1", "alice", "avatar")
    assert backfill_log.start(started) and not backfill_log.start(BackfillProgress("bf-1", "bob", "default"))
    backfill_log.count("bf-1", "queued", 5)
    backfill_log.count("bf-1", "done")
    backfill_log.count("bf-1", "done")
    backfill_log.count("bf-1", "failed")
    assert backfill_log.get("bf-1") == BackfillProgress("bf-1", "alice", "avatar", queued=5, done=2, failed=1)
    assert backfill_log.get("bf-2") is None


def test_only_known_counters_of_known_backfills_are_counted(backfill_log: Any) -> None:
    backfill_log.start(BackfillProgress("bf-1", "alice", "avatar"))
    with pytest.raises(ValueError):
        backfill_log.count("bf-1", "owner")
    with pytest.raises(Exception):  # noqa: B017 - DynamoDB's failed condition, or the fake's KeyError
        backfill_log.count("bf-unknown", "done")
    assert backfill_log.get("bf-unknown") is None
