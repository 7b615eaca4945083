"""The WSGI shapes the AWS stand-in's layers share (the ledger, S3's rules, /_metrics, /_idle)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def json_answer(start_response: StartResponse, status: str, body: object) -> list[bytes]:
    """`body` as a JSON answer with its length (the stand-in's own endpoints: /_ledger, /_metrics, /_idle)."""
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
