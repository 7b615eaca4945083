"""The upload page served at GET /: one HTML file (no build step), plus the vendored
oidc-client-ts bundle it loads only on a stage that signs users in (API_AUTH jwt or cognito).

Read on the first request, not at import: API cold starts do not pay for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

STATIC = Path(__file__).resolve().parent / "static"
CONTENT_TYPE = "text/html; charset=utf-8"
# API_AUTH mode -> the token the upload page sends in `Authorization`: our own authorizer
# (jwt) reads access tokens (a Cognito one carries the app client as `client_id`); API Gateway's
# Cognito authorizer without scopes accepts only ID tokens.
PAGE_TOKEN_OF_MODE = {"jwt": "access_token", "cognito": "id_token"}


@dataclass(frozen=True)
class PageSettings:
    """What the upload page needs to call this stage (GET /page-config): how to sign in, and which
    other APIs a `?api=` link may point it at. Nothing in it is secret: a public client has no secret."""

    auth_mode: str = "none"
    issuer: str | None = None  # OIDC issuer the page signs in with (jwt, cognito)
    client_id: str | None = None  # the page's public OIDC client (authorization code + PKCE)
    scopes: str = "openid"
    audience: str | None = None  # sent as `audience=` on /authorize when the issuer needs it (Auth0)
    allowed_apis: tuple[str, ...] = ()  # origins of other APIs the page may be pointed at with ?api=

    def to_dict(self) -> dict[str, Any]:
        oidc = self.auth_mode in PAGE_TOKEN_OF_MODE
        return {
            "auth": {
                "mode": self.auth_mode,
                "issuer": self.issuer if oidc else None,
                "client_id": self.client_id if oidc else None,
                "scopes": self.scopes if oidc else None,
                "audience": self.audience if oidc else None,
                "token": PAGE_TOKEN_OF_MODE.get(self.auth_mode),
            },
            "allowed_apis": list(self.allowed_apis),
        }


@lru_cache(maxsize=1)
def upload_page() -> str:
    return (STATIC / "index.html").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def sign_in_script() -> str:
    """oidc-client-ts (tools/vendor_oidc_client.sh): authorization code + PKCE in the browser."""
    return (STATIC / "vendor" / "oidc-client-ts.min.js").read_text(encoding="utf-8")
