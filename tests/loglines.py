"""imgpress's log lines, captured for a test: the "imgpress" logger as app.py configures it
(chalicelib/logs.py), written into memory instead of stdout, and put back afterwards."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from chalicelib import logs


@contextmanager
def captured(level: str) -> Iterator[io.StringIO]:
    logger = logging.getLogger("imgpress")
    handlers, propagate, saved_level = logger.handlers[:], logger.propagate, logger.level
    sink = io.StringIO()
    logger.handlers[:] = [logging.StreamHandler(sink)]
    logger.propagate = False
    logs.configure(logger, level)
    try:
        yield sink
    finally:
        logger.handlers[:], logger.propagate = handlers, propagate
        logger.setLevel(saved_level)
        logs.begin(logs.OUTSIDE.function, None)


def parsed(sink: io.StringIO) -> list[dict[str, Any]]:
    """Every line written so far, each one JSON object."""
    return [json.loads(line) for line in sink.getvalue().splitlines()]
