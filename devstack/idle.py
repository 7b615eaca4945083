"""The local stack's "idle" barrier: `GET /_idle?timeout=N` on the AWS stand-in's port.

It answers once nothing is left to happen on its own: no S3 event or SQS message waiting in a queue
a function reads (received but not yet deleted counts), no asynchronous event queued or due for a
retry, no invocation running. Tests that must show that nothing else happens (no second message, no
late write) wait on it instead of sleeping for a guessed while (docs: local-stack).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from urllib.parse import parse_qs

from devstack.wsgi import Environ, StartResponse, WsgiApp, json_answer

IDLE_PATH = "/_idle"
DEFAULT_TIMEOUT_SECONDS = 30.0
MAX_TIMEOUT_SECONDS = 600.0
POLL_SECONDS = 0.05
Busy = Callable[[], list[str]]  # what is still going on, one line each; empty when idle


def wait_until_idle(busy: Busy, timeout: float, clock: Callable[[], float] = time.monotonic) -> list[str]:
    """Polls `busy` until it is empty twice in a row (POLL_SECONDS apart); returns what was still
    going on when `timeout` ran out, or [] once idle."""
    give_up_at = clock() + timeout
    quiet = 0
    while True:
        going_on = busy()
        quiet = 0 if going_on else quiet + 1
        if quiet >= 2:
            return []
        if clock() >= give_up_at:
            return going_on or ["settling"]
        time.sleep(POLL_SECONDS)


class IdleEndpoint:
    """WSGI: answers `GET /_idle?timeout=N` (200 once idle, 408 with what is busy), passes the rest to `app`."""

    def __init__(self, app: WsgiApp, busy: Busy) -> None:
        self.app = app
        self.busy = busy

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != IDLE_PATH:
            return self.app(environ, start_response)
        query = parse_qs(environ.get("QUERY_STRING", ""))
        try:
            timeout = float(query.get("timeout", [DEFAULT_TIMEOUT_SECONDS])[0])
        except ValueError:
            return json_answer(start_response, "400 Bad Request", {"error": "timeout must be a number of seconds"})
        if not 0 <= timeout <= MAX_TIMEOUT_SECONDS:
            return json_answer(
                start_response, "400 Bad Request", {"error": f"timeout must be 0..{MAX_TIMEOUT_SECONDS:g}"}
            )
        started = time.monotonic()
        going_on = wait_until_idle(self.busy, timeout)
        waited = round(time.monotonic() - started, 3)
        if going_on:
            return json_answer(
                start_response, "408 Request Timeout", {"idle": False, "waited": waited, "busy": going_on}
            )
        return json_answer(start_response, "200 OK", {"idle": True, "waited": waited})
