"""Schemathesis hooks for tests/test_schemathesis_e2e.py (loaded through SCHEMATHESIS_HOOKS).

A generated `?wait=N` on a pending image holds the request N seconds (up to 25): valid, and
answered exactly as documented, but a few hundred of them would take the run past what CI can
give it. Valid waits are sent as `wait=1`; invalid ones (26, -1, "x"…) go out as generated.
"""

from __future__ import annotations

from typing import Any

import schemathesis

FUZZ_WAIT_SECONDS = 1


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    wait = (case.query or {}).get("wait")
    if case.operation.label == "GET /images/{image_id}" and isinstance(wait, int) and 1 < wait <= 25:
        case.query["wait"] = FUZZ_WAIT_SECONDS
