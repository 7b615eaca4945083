"""`imgpress backfill`'s paging and progress against a fake API: ids, cursors, dry runs, when to stop."""

from __future__ import annotations

import io
from typing import Any

import pytest

from imgpress_cli.backfill import BackfillOptions, describe, enqueue, watch

pytestmark = pytest.mark.unit


class FakeApi:
    def __init__(self, pages: int = 3, states: list[dict[str, Any]] | None = None) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.pages = pages
        self.states = states or []

    def enqueue_backfill_page(self, body: dict[str, Any]) -> dict[str, Any]:
        self.bodies.append(body)
        n = len(self.bodies)
        minted = body.get("backfill") or f"bf-{n}"
        return {
            "backfill": minted,
            "selected": 2,
            "queued": 2,
            "skipped": {"already_done": 1},
            "next_cursor": f"c{n}" if n < self.pages else None,
        }

    def backfill(self, backfill_id: str) -> dict[str, Any]:
        return self.states.pop(0)


def state(queued: int, done: int, failed: int = 0, waiting: int = 0, in_flight: int = 0) -> dict[str, Any]:
    queue = {"waiting": waiting, "in_flight": in_flight, "dead_letters": 0}
    return {"id": "bf-1", "queued": queued, "done": done, "failed": failed, "queue": queue}


def test_every_page_after_the_first_names_the_backfill_and_the_cursor() -> None:
    api = FakeApi(pages=3)
    totals = enqueue(api, BackfillOptions("avatar", since="2026-11-01"), io.StringIO())  # type: ignore[arg-type]
    assert [(b.get("backfill"), b.get("cursor")) for b in api.bodies] == [(None, None), ("bf-1", "c1"), ("bf-1", "c2")]
    assert all(b["since"] == "2026-11-01" and b["profile"] == "avatar" for b in api.bodies)
    assert totals.backfill == "bf-1" and totals.counts["queued"] == 6 and totals.counts["skipped already_done"] == 3


def test_a_dry_run_never_names_a_backfill_it_did_not_get() -> None:
    api = FakeApi(pages=2)
    totals = enqueue(api, BackfillOptions("avatar", dry_run=True), io.StringIO())  # type: ignore[arg-type]
    assert [b.get("backfill") for b in api.bodies] == [None, None] and totals.backfill is None


def test_watching_stops_when_every_request_ended_or_the_queue_stayed_empty() -> None:
    api = FakeApi(states=[state(10, 2, waiting=8), state(10, 9, 1)])
    out = io.StringIO()
    final = watch(api, "bf-1", stream=out, sleep=lambda _: None)  # type: ignore[arg-type]
    assert final["done"] == 9 and out.getvalue().count("queued 10") == 2
    undercounted = FakeApi(states=[state(10, 8), state(10, 8), state(10, 8)])  # a killed consumer counted nothing
    assert watch(undercounted, "bf-1", stream=io.StringIO(), sleep=lambda _: None)["done"] == 8  # type: ignore[arg-type]
    assert len(undercounted.states) == 1


def test_the_progress_line_has_rate_and_eta() -> None:
    line = describe(state(100, 40, 2, waiting=50, in_flight=8), rate=4.0)
    assert "left 58" in line and "rate 4.0/s" in line and "ETA 14 s" in line and "50 waiting" in line
