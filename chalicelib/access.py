"""Who may call the API and from which browser origins, chosen per stage by environment variables.

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

from chalicelib import settings
from chalicelib.auth.oidc import OidcSettings
from chalicelib.auth.principal import AdminRule, Principal, principal_from_request
from chalicelib.errors import ConfigError

API_AUTH_MODES = ("none", "jwt", "cognito", "api_key", "iam")
# The one way to run a deployed stage without auth: this variable, with exactly this value, in the
# stage's environment_variables (infra refuses to deploy such a stage without it, too).
PUBLIC_API_OPT_IN = "IMGPRESS_ALLOW_PUBLIC_API"
PUBLIC_API_CONSENT = "i-understand-anyone-can-upload"
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


def route_access(env: Mapping[str, str]) -> RouteAccess:
    """API_AUTH and its settings, CORS_ALLOW_ORIGINS; a bad value fails the cold start naming the variable."""
    mode = env.get("API_AUTH", "none").strip() or "none"
    if mode not in API_AUTH_MODES:
        raise ConfigError(f"API_AUTH: must be one of {', '.join(API_AUTH_MODES)}, got {mode!r}")
    if mode == "none" and env.get("AWS_LAMBDA_FUNCTION_NAME") and not public_api_allowed(env):
        raise ConfigError(
            f"API_AUTH: none on Lambda would let anyone upload; choose jwt, cognito, api_key or iam, "
            f"or set {PUBLIC_API_OPT_IN}={PUBLIC_API_CONSENT} in the stage's environment"
        )
    if "CORS_ALLOW_ORIGIN" in env:
        raise ConfigError("CORS_ALLOW_ORIGIN: renamed to CORS_ALLOW_ORIGINS (a comma-separated list of origins)")
    origins = parse_origins(env.get("CORS_ALLOW_ORIGINS", ""))
    admin = AdminRule(env.get("ADMIN_GROUP", "").strip(), env.get("ADMIN_SCOPE", "").strip(), "cognito:groups")
    if mode == "jwt":
        admin = OidcSettings.from_env(env).admin  # validated now: a bad issuer fails the cold start
    return RouteAccess(mode, _authorizer(mode, env), mode == "api_key", CorsPolicy(origins) if origins else None, admin)


def public_api_allowed(env: Mapping[str, str]) -> bool:
    return env.get(PUBLIC_API_OPT_IN, "").strip() == PUBLIC_API_CONSENT


def parse_origins(raw: str) -> tuple[str, ...]:
    """CORS_ALLOW_ORIGINS: a list of origins, or `*` alone."""
    return settings.parse_origins(raw, "CORS_ALLOW_ORIGINS", allow_any=True)


def _authorizer(mode: str, env: Mapping[str, str]) -> Authorizer | None:
    """The jwt authorizer is registered by app.py (Lambda needs it as a module attribute there)."""
    if mode == "iam":
        return IAMAuthorizer()
    if mode == "cognito":
        pool_arn = env.get("COGNITO_USER_POOL_ARN", "").strip()
        if not pool_arn.startswith("arn:aws:cognito-idp:"):
            raise ConfigError(f"COGNITO_USER_POOL_ARN: API_AUTH=cognito needs a user pool ARN, got {pool_arn!r}")
        return CognitoUserPoolAuthorizer("imgpress-users", provider_arns=[pool_arn])
    return None
