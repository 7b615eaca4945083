"""Verify OIDC-issued JWTs (API_AUTH=jwt) and answer as the Chalice authorizer.

Imported only by the authorizer function (PyJWT and cryptography cost tens of milliseconds to load).
Keys come from the issuer's JWKS through PyJWT's PyJWKClient: cached per warm Lambda, refetched
at most once per `refetch_interval_seconds` for an unknown `kid` (key rotation) and every
`keys_max_age_seconds` anyway, with a bounded timeout and no redirects.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from collections.abc import Mapping
from typing import Any

import jwt
from chalice.app import AuthResponse

from chalicelib.auth import principal
from chalicelib.auth.oidc import OidcSettings, check_fetchable
from chalicelib.errors import ConfigError, Unauthorized

log = logging.getLogger("imgpress.auth")
MAX_DOCUMENT_BYTES = 1024 * 1024


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def fetch_json(url: str, timeout: float) -> dict[str, Any]:
    """GET a small JSON object; no redirects (a redirect could lead the fetch off the configured host)."""
    opener = urllib.request.build_opener(_NoRedirects())
    with opener.open(urllib.request.Request(url, headers={"Accept": "application/json"}), timeout=timeout) as reply:
        document = json.loads(reply.read(MAX_DOCUMENT_BYTES + 1)[:MAX_DOCUMENT_BYTES])
    if not isinstance(document, dict):
        raise ValueError(f"{url} did not return a JSON object")
    return document


class TokenVerifier:
    """One issuer's tokens: signature (allow-listed asymmetric algorithms), iss, aud/client_id, exp, nbf."""

    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._keys: jwt.PyJWKClient | None = None

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or Unauthorized with the reason (never a 500: the caller maps it to 401)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise Unauthorized("the bearer token is not a JWT", "invalid_token") from error
        algorithm = header.get("alg")
        if algorithm not in self.settings.algorithms:
            raise Unauthorized(f"tokens signed with {algorithm!r} are not accepted", "invalid_token")
        if not isinstance(header.get("kid"), str):
            raise Unauthorized("the token names no signing key (kid)", "invalid_token")
        key = self._signing_key(header["kid"])
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=list(self.settings.algorithms),
                issuer=self.settings.issuer,
                leeway=self.settings.leeway_seconds,
                options={
                    "require": ["exp", "iss", "sub"],
                    "verify_aud": False,  # checked below: Cognito access tokens carry client_id instead
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.ExpiredSignatureError as error:
            raise Unauthorized("the token has expired", "token_expired") from error
        except jwt.InvalidIssuerError as error:
            raise Unauthorized(f"the token was not issued by {self.settings.issuer}", "invalid_token") from error
        except jwt.PyJWTError as error:
            raise Unauthorized(f"the token does not verify ({error})", "invalid_token") from error
        self._check_audience(claims)
        principal.identity_claim(claims, "sub")
        return claims

    def _check_audience(self, claims: Mapping[str, Any]) -> None:
        """`aud` must name one of OIDC_AUDIENCE; a token without `aud` (Cognito access token) must carry
        one of them as `client_id`."""
        wanted = set(self.settings.audiences)
        if "aud" in claims:
            audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
            if wanted & {str(a) for a in audiences}:
                return
        elif str(claims.get("client_id", "")) in wanted:
            return
        raise Unauthorized("the token is meant for another audience", "invalid_token")

    def _signing_key(self, kid: str) -> jwt.PyJWK:
        try:
            return self._key_client().get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as error:
            log.error("fetching the issuer's signing keys failed: %s", error)
            raise Unauthorized("the issuer's signing keys could not be fetched", "keys_unavailable") from error
        except (jwt.PyJWKClientError, jwt.PyJWKSetError, jwt.PyJWKError) as error:
            raise Unauthorized(f"the token's signing key is not the issuer's ({error})", "invalid_token") from error

    def _key_client(self) -> jwt.PyJWKClient:
        with self._lock:
            if self._keys is None:
                settings = self.settings
                self._keys = jwt.PyJWKClient(
                    settings.jwks_url or self._discover_jwks_url(),
                    lifespan=settings.keys_max_age_seconds,
                    timeout=settings.http_timeout_seconds,
                    cooldown_duration=settings.refetch_interval_seconds,
                )
            return self._keys

    def _discover_jwks_url(self) -> str:
        """`jwks_uri` of the issuer's openid-configuration, which must name the very issuer configured."""
        try:
            document = fetch_json(self.settings.discovery_url, self.settings.http_timeout_seconds)
        except (OSError, ValueError) as error:
            log.error("OIDC discovery at %s failed: %s", self.settings.discovery_url, error)
            raise Unauthorized("the issuer's signing keys could not be fetched", "keys_unavailable") from error
        if document.get("issuer") != self.settings.issuer:
            log.error(
                "OIDC_ISSUER is %r but %s names %r: set OIDC_ISSUER to exactly that",
                self.settings.issuer,
                self.settings.discovery_url,
                document.get("issuer"),
            )
            raise Unauthorized("the issuer's discovery document names another issuer", "keys_unavailable")
        try:
            return check_fetchable(str(document.get("jwks_uri", "")), "jwks_uri")
        except ConfigError as error:
            log.error("%s: %s", self.settings.discovery_url, error)
            raise Unauthorized("the issuer publishes no usable jwks_uri", "keys_unavailable") from error

    def principal(self, claims: Mapping[str, Any]) -> principal.Principal:
        return principal.Principal(
            principal.token_owner(claims["iss"], str(claims["sub"])), self.settings.admin.matches(claims), "jwt"
        )


def bearer_token(header: str) -> str:
    """The token of `Authorization: Bearer <token>` (a bare token is accepted too, as Cognito's authorizer does)."""
    scheme, _, rest = header.strip().partition(" ")
    token = rest.strip() if scheme.lower() == "bearer" else header.strip()
    if not token or " " in token:
        raise Unauthorized("send the token as `Authorization: Bearer <token>`", "missing_token")
    return token


def authorizer_response(verifier: TokenVerifier, header: str) -> AuthResponse:
    """Always an Allow with the verdict in the context; the route layer turns a rejection into our 401 JSON.

    So API Gateway and `chalice local` behave the same (a Deny becomes their own 403 body), and the
    401 carries a specific code (token_expired, invalid_token...). See docs/security.md.
    """
    try:
        claims = verifier.verify(bearer_token(header))
    except Unauthorized as error:
        context = {principal.CONTEXT_REJECTED: error.code, principal.CONTEXT_REASON: error.message}
        return AuthResponse(routes=["*"], principal_id="rejected", context=context)
    caller = verifier.principal(claims)
    context = {
        principal.CONTEXT_OWNER: caller.owner,
        principal.CONTEXT_ADMIN: "true" if caller.is_admin else "false",
        principal.CONTEXT_EXPIRES: str(int(claims["exp"]) + verifier.settings.leeway_seconds),
    }
    return AuthResponse(routes=["*"], principal_id=caller.owner, context=context)


_verifier: TokenVerifier | None = None


def authorize(header: str, settings: OidcSettings) -> AuthResponse:
    """The authorizer's work; the verifier (and so its key cache) lives as long as the warm Lambda."""
    global _verifier
    if _verifier is None:
        _verifier = TokenVerifier(settings)
    return authorizer_response(_verifier, header)
