"""Schemathesis hooks for tests/test_schemathesis_e2e.py (loaded through SCHEMATHESIS_HOOKS).

A generated `?wait=N` on a pending image holds the request N seconds (up to 25): valid, and
answered exactly as documented, but a few hundred of them would take the run past what CI can
give it (and past the run's response time limit). Valid waits, numbers or digits, are sent as
`wait=1`; invalid ones (26, -1, "x"…) go out as generated. Valid requests carry no forged cursor.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis import GenerationMode

FUZZ_WAIT_SECONDS = 1


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    _no_forged_cursor_in_valid_requests(case)
    wait = (case.query or {}).get("wait")
    seconds = int(wait) if isinstance(wait, str) and wait.isascii() and wait.isdigit() else wait
    if case.operation.label == "GET /images/{image_id}" and isinstance(seconds, int) and 1 < seconds <= 25:
        case.query["wait"] = FUZZ_WAIT_SECONDS


def _no_forged_cursor_in_valid_requests(case: Any) -> None:
    """A cursor is a value an earlier page handed out (signed for its query): a generated one is
    forged, and refused (400 invalid_cursor), which the document cannot say. Requests meant to be
    valid go without one; requests meant to be invalid keep theirs."""
    meta = case.meta
    if meta is None or meta.generation.mode is not GenerationMode.POSITIVE:
        return
    for container in (case.query, case.body):
        if isinstance(container, dict):
            container.pop("cursor", None)
