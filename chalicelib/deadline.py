"""How long one attempt may run, and a way to stop rendering when that time is up.

Lambda kills a function at its timeout without running `finally` blocks, so an attempt that
overruns would leave its image `processing`. Each attempt instead takes its deadline from the
Lambda context (remaining time, less a margin for the last writes) and renders under a timer:
at the deadline the work is interrupted with `DeadlineExceeded` and the image ends `failed`
with `processing_timeout` while there is still time to record it and notify.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol


class DeadlineExceeded(BaseException):
    """The attempt ran out of time. A BaseException, like KeyboardInterrupt, so that the broad
    `except Exception` guards around decoders (which turn surprises into `processing_error`)
    cannot swallow it."""


class LambdaContext(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


class Deadline:
    """A point in time (monotonic clock) by which an attempt must have stopped working."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._at = clock() + seconds

    @classmethod
    def for_attempt(cls, context: LambdaContext | None, margin_seconds: float, fallback_seconds: float) -> Deadline:
        """From the Lambda context when there is one (tests and scripts have none: the fallback)."""
        if context is None or not hasattr(context, "get_remaining_time_in_millis"):
            return cls(fallback_seconds)
        return cls(context.get_remaining_time_in_millis() / 1000 - margin_seconds)

    def remaining(self) -> float:
        return self._at - self._clock()

    def check(self) -> None:
        """Between steps: stop here if the time is up."""
        if self.remaining() <= 0:
            raise DeadlineExceeded

    @contextmanager
    def enforced(self) -> Iterator[None]:
        """Interrupt the block at the deadline, even inside a long decode or encode.

        A SIGALRM timer raises DeadlineExceeded in the main thread (where Lambda runs handlers)
        as soon as the interpreter regains control, which Pillow gives back between chunks of
        work. Elsewhere (a handler run on another thread) only the checks between steps apply.
        """
        self.check()
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def interrupt(_signum: int, _frame: Any) -> None:
            raise DeadlineExceeded

        previous = signal.signal(signal.SIGALRM, interrupt)
        signal.setitimer(signal.ITIMER_REAL, max(self.remaining(), 0.001))
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
