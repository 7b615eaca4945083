"""Who may call the API and from which browser origins, as the stage's AccessSettings say.

Decided at import, not per request: Chalice writes authorizers, API-key requirements and the
OPTIONS routes into API Gateway when it deploys or packages the app, with the stage's environment set.

API_AUTH: none (local stack only) | jwt (any OIDC issuer, our authorizer) | cognito | api_key | iam.
CORS_ALLOW_ORIGINS: a comma-separated list of browser origins (no CORS at all when unset).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalice import Chalice, CognitoUserPoolAuthorizer, IAMAuthorizer, Response
from chalice.app import Authorizer, Request

from chalicelib.auth.principal import AdminRule, Principal, principal_from_request
from chalicelib.settings import AccessSettings

JWT_AUTHORIZER_TTL_SECONDS = 300  # API Gateway caches a token's verdict this long (expiry is re-checked per request)
ALLOW_HEADERS = "Authorization,Content-Type,X-Amz-Date,X-Amz-Security-Token,X-Api-Key"
EXPOSE_HEADERS = "Location,Retry-After"  # not CORS-safelisted: a browser reads them only if exposed
PREFLIGHT_MAX_AGE_SECONDS = 600


@dataclass(frozen=True)
class CorsPolicy:
    """Several allowed origins: the response echoes the request's Origin when it is one of them.

    Access-Control-Allow-Origin holds one origin, and Chalice's CORSConfig (a static header written
    into API Gateway) only one value, so imgpress answers preflights itself and adds the headers
    to every response (chalice issue #2122; its docs suggest this for several origins).
    """

    origins: tuple[str, ...]

    def allow_origin(self, origin: str | None) -> str | None:
        if "*" in self.origins:
            return "*"
        return origin if origin in self.origins else None

    def response_headers(self, origin: str | None) -> dict[str, str]:
        allowed = self.allow_origin(origin)
        headers = {"Vary": "Origin"}
        if allowed:
            headers.update({"Access-Control-Allow-Origin": allowed, "Access-Control-Expose-Headers": EXPOSE_HEADERS})
        return headers

    def preflight_headers(self, origin: str | None, methods: list[str]) -> dict[str, str]:
        headers = self.response_headers(origin)
        if "Access-Control-Allow-Origin" in headers:
            headers.update(
                {
                    "Access-Control-Allow-Methods": ",".join(sorted(methods)),
                    "Access-Control-Allow-Headers": ALLOW_HEADERS,
                    "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_SECONDS),
                }
            )
        return headers


@dataclass(frozen=True)
class RouteAccess:
    mode: str
    authorizer: Authorizer | None
    api_key_required: bool
    cors: CorsPolicy | None
    admin: AdminRule = field(default_factory=AdminRule)

    def route_options(self, public: bool = False) -> dict[str, Any]:
        """Keyword arguments for `app.route`. Public routes (the page, the health probe) skip auth.

        CORS is never Chalice's here (see CorsPolicy): `install_cors` and `add_preflight` do it.
        """
        if public:
            return {}
        return {"authorizer": self.authorizer, "api_key_required": self.api_key_required}

    def with_authorizer(self, authorizer: Authorizer) -> RouteAccess:
        return dataclasses.replace(self, authorizer=authorizer)

    def principal(self, context: Mapping[str, Any] | None) -> Principal:
        """The caller of a protected route; raises Unauthorized (401) for a refused or missing token."""
        return principal_from_request(context, self.mode, self.admin)

    def install_cors(self, app: Chalice) -> None:
        """Every response (errors included) gets the CORS headers for an allowed Origin."""
        policy = self.cors
        if policy is None:
            return

        def cors_headers(request: Request, get_response: Callable[[Request], Response]) -> Response:
            response = get_response(request)
            for name, value in policy.response_headers(request.headers.get("origin")).items():
                response.headers.setdefault(name, value)
            return response

        app.register_middleware(cors_headers, "http")

    def add_preflight(self, app: Chalice, path: str) -> None:
        """An OPTIONS route for `path` (once), answered by the app: no auth, as browsers send none."""
        policy = self.cors
        if policy is None or "OPTIONS" in app.routes.get(path, {}):
            return

        def preflight(**_params: str) -> Response:
            assert app.current_request is not None
            origin = app.current_request.headers.get("origin")
            headers: dict[str, str | list[str]] = {**policy.preflight_headers(origin, list(app.routes[path]))}
            return Response(body="", status_code=204, headers=headers)

        app.route(path, methods=["OPTIONS"])(preflight)


def route_access(access: AccessSettings) -> RouteAccess:
    """How the routes are guarded on a stage with these settings (read and checked by settings.py)."""
    cors = CorsPolicy(access.origins) if access.origins else None
    return RouteAccess(access.mode, _authorizer(access), access.mode == "api_key", cors, access.admin)


def _authorizer(access: AccessSettings) -> Authorizer | None:
    """The jwt authorizer is registered by app.py (Lambda needs it as a module attribute there)."""
    if access.mode == "iam":
        return IAMAuthorizer()
    if access.mode == "cognito":
        return CognitoUserPoolAuthorizer("imgpress-users", provider_arns=[access.cognito_pool_arn])
    return None
