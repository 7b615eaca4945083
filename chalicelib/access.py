"""Who may call the API and from which browser origin, chosen per stage by environment variables.

Decided at import, not per request: Chalice writes authorizers, API-key requirements and CORS
into API Gateway when it deploys or packages the app, with the stage's environment set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalice import CognitoUserPoolAuthorizer, CORSConfig, IAMAuthorizer
from chalice.app import Authorizer

from chalicelib.errors import ConfigError

API_AUTH_MODES = ("none", "iam", "api_key", "cognito")


@dataclass(frozen=True)
class RouteAccess:
    authorizer: Authorizer | None
    api_key_required: bool
    cors: CORSConfig | None

    def route_options(self, public: bool = False) -> dict[str, Any]:
        """Keyword arguments for `app.route`. Public routes (the health probe) keep CORS, skip auth."""
        options: dict[str, Any] = {"cors": self.cors}
        if not public:
            options.update(authorizer=self.authorizer, api_key_required=self.api_key_required)
        return options


def route_access(env: Mapping[str, str]) -> RouteAccess:
    """API_AUTH (none | iam | api_key | cognito, with COGNITO_USER_POOL_ARN) and CORS_ALLOW_ORIGIN."""
    mode = env.get("API_AUTH", "none").strip() or "none"
    if mode not in API_AUTH_MODES:
        raise ConfigError(f"API_AUTH: must be one of {', '.join(API_AUTH_MODES)}, got {mode!r}")
    origin = env.get("CORS_ALLOW_ORIGIN", "").strip()
    cors = CORSConfig(allow_origin=origin) if origin else None
    return RouteAccess(_authorizer(mode, env), mode == "api_key", cors)


def _authorizer(mode: str, env: Mapping[str, str]) -> Authorizer | None:
    if mode == "iam":
        return IAMAuthorizer()
    if mode == "cognito":
        pool_arn = env.get("COGNITO_USER_POOL_ARN", "").strip()
        if not pool_arn.startswith("arn:aws:cognito-idp:"):
            raise ConfigError(f"COGNITO_USER_POOL_ARN: API_AUTH=cognito needs a user pool ARN, got {pool_arn!r}")
        return CognitoUserPoolAuthorizer("imgpress-users", provider_arns=[pool_arn])
    return None
