"""The upload page served at GET /: one HTML file (no build step), plus the vendored
oidc-client-ts bundle it loads only on a stage that signs users in (API_AUTH jwt or cognito).

Read on the first request, not at import: API cold starts do not pay for them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"
CONTENT_TYPE = "text/html; charset=utf-8"


@lru_cache(maxsize=1)
def upload_page() -> str:
    return (STATIC / "index.html").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def sign_in_script() -> str:
    """oidc-client-ts (tools/vendor_oidc_client.sh): authorization code + PKCE in the browser."""
    return (STATIC / "vendor" / "oidc-client-ts.min.js").read_text(encoding="utf-8")
