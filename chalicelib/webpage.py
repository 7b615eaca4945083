"""The upload page served at GET /: one self-contained HTML file (no build step, no other assets).

Read on the first request, not at import: API cold starts do not pay for it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"
CONTENT_TYPE = "text/html; charset=utf-8"


@lru_cache(maxsize=1)
def upload_page() -> str:
    return (STATIC / "index.html").read_text(encoding="utf-8")
