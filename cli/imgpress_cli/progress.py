"""Upload progress bars on stderr, so stdout stays clean for tables and JSON.

On a terminal the bar is redrawn in place; in logs and pipes (CI) only the finished bar is
printed, once, instead of hundreds of carriage returns.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from imgpress_cli.output import human_bytes

_REDRAW_SECONDS = 0.1


class ProgressBar:
    def __init__(self, label: str, size: int, stream: TextIO | None = None, width: int = 28) -> None:
        """`size` is the file's, shown as is; progress counts the whole request body (fields included)."""
        self._label = label if len(label) <= 24 else label[:23] + "…"
        self._size = size
        self._stream = stream or sys.stderr
        self._width = width
        self._live = self._stream.isatty()
        self._drawn_at = 0.0
        self._done = 0
        self._total = 0

    def update(self, done: int, total: int) -> None:
        self._done, self._total = done, total
        now = time.monotonic()
        if self._live and (now - self._drawn_at >= _REDRAW_SECONDS or done >= total):
            self._drawn_at = now
            self._stream.write("\r" + self._line())
            self._stream.flush()

    def finish(self, note: str) -> None:
        self._stream.write(("\r" if self._live else "") + self._line() + f"  {note}\n")
        self._stream.flush()

    def _line(self) -> str:
        fraction = self._done / self._total if self._total else 0.0
        filled = round(fraction * self._width)
        bar = "#" * filled + "-" * (self._width - filled)
        return f"{self._label:<24} [{bar}] {fraction:>4.0%} of {human_bytes(self._size)}"
