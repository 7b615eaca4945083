"""`imgpress backfill`: have the API queue a profile change for many images, then watch the queue drain.

Only the enqueueing is driven from here, one page per `POST /backfills`; the API checks who may
reprocess what and records each request, and the stage's `reprocess_images` function does the
work. Stopping (Ctrl-C) loses nothing: a re-run with the printed `--backfill` id skips what that
backfill finished, sends again what it queued, and asks again for what failed.
"""

from __future__ import annotations

import sys
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from imgpress_cli.api import ImgpressApi


@dataclass(frozen=True)
class BackfillOptions:
    profile: str
    status: str = "done"
    since: str | None = None
    owner: str | None = None
    backfill: str | None = None
    page_size: int = 100
    dry_run: bool = False


@dataclass
class EnqueueTotals:
    backfill: str | None = None
    pages: int = 0
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, page: dict[str, Any]) -> None:
        self.backfill = page.get("backfill")
        self.pages += 1
        for name in ("selected", "queued", "requeued", "unsent"):
            self.counts[name] += int(page.get(name, 0))
        self.counts.update({f"skipped {k}": int(v) for k, v in page.get("skipped", {}).items()})

    def summary(self) -> str:
        parts = [f"{name} {count}" for name, count in self.counts.items() if count]
        return f"{self.pages} page(s): " + (", ".join(parts) or "nothing selected")


def enqueue(api: ImgpressApi, options: BackfillOptions, stream: TextIO = sys.stderr) -> EnqueueTotals:
    """Every page of the selection, queued (or, with dry_run, only counted)."""
    totals = EnqueueTotals(backfill=options.backfill)
    backfill_id = options.backfill  # a dry run keeps no id: each of its pages mints a throwaway one
    cursor: str | None = None
    while True:
        body: dict[str, Any] = {
            "profile": options.profile,
            "status": options.status,
            "limit": options.page_size,
            "dry_run": options.dry_run,
        }
        optional = {"since": options.since, "owner": options.owner, "backfill": backfill_id, "cursor": cursor}
        body.update({name: value for name, value in optional.items() if value is not None})
        page = api.enqueue_backfill_page(body)
        if options.dry_run:
            page = {**page, "backfill": options.backfill}
        else:
            backfill_id = str(page["backfill"])
        totals.add(page)
        stream.write(f"\rbackfill {totals.backfill or '(dry run)'}: {totals.summary()}")
        stream.flush()
        cursor = page.get("next_cursor")
        if not cursor:
            stream.write("\n")
            return totals


@dataclass
class Progress:
    """Rate and ETA from the outcomes counted over the last minute of polls."""

    window_seconds: float = 60.0
    _samples: deque[tuple[float, int]] = field(default_factory=deque)

    def update(self, now: float, finished: int) -> float | None:
        self._samples.append((now, finished))
        while len(self._samples) > 2 and now - self._samples[0][0] > self.window_seconds:
            self._samples.popleft()
        (t0, f0), (t1, f1) = self._samples[0], self._samples[-1]
        return (f1 - f0) / (t1 - t0) if t1 > t0 else None


def describe(state: dict[str, Any], rate: float | None) -> str:
    finished = state["done"] + state["failed"]
    left = max(state["queued"] - finished, 0)
    queue = state["queue"]
    eta = f"{left / rate:.0f} s" if rate and left else ("-" if left else "0 s")
    speed = f"{rate:.1f}/s" if rate is not None else "-"
    return (
        f"queued {state['queued']}  done {state['done']}  failed {state['failed']}  left {left}  "
        f"rate {speed}  ETA {eta}  (queue: {queue['waiting']} waiting, {queue['in_flight']} in flight, "
        f"{queue['dead_letters']} dead letters)"
    )


def watch(
    api: ImgpressApi,
    backfill_id: str,
    interval: float = 2.0,
    timeout: float | None = None,
    stream: TextIO = sys.stderr,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll the backfill's progress until every queued request ended, or the queue has been empty
    twice in a row (counters are advisory: a consumer killed after its write counts nothing)."""
    progress = Progress()
    started = clock()
    empty_polls = 0
    live = stream.isatty()
    while True:
        state = api.backfill(backfill_id)
        rate = progress.update(clock(), state["done"] + state["failed"])
        line = describe(state, rate)
        stream.write(f"\r{line}" if live else f"{line}\n")
        stream.flush()
        queue = state["queue"]
        empty_polls = empty_polls + 1 if queue["waiting"] + queue["in_flight"] == 0 else 0
        if state["done"] + state["failed"] >= state["queued"] or empty_polls >= 2:
            if live:
                stream.write("\n")
            return state
        if timeout is not None and clock() - started > timeout:
            raise TimeoutError(f"backfill {backfill_id} still running after {timeout:g} s: {line}")
        sleep(interval)
