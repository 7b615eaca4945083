"""Per-stage API access: which authorizer, API-key requirement and CORS origin each route gets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from chalice import CognitoUserPoolAuthorizer, IAMAuthorizer

from chalicelib.access import route_access
from chalicelib.errors import ConfigError

POOL = "arn:aws:cognito-idp:eu-west-1:123456789012:userpool/eu-west-1_AbCdEfGhI"
ROOT = Path(__file__).resolve().parent.parent


def test_no_auth_and_no_cors_by_default() -> None:
    access = route_access({})
    assert access.route_options() == {"cors": None, "authorizer": None, "api_key_required": False}


def test_iam() -> None:
    assert isinstance(route_access({"API_AUTH": "iam"}).route_options()["authorizer"], IAMAuthorizer)


def test_cognito_trusts_the_configured_pool() -> None:
    authorizer = route_access({"API_AUTH": "cognito", "COGNITO_USER_POOL_ARN": POOL}).route_options()["authorizer"]
    assert isinstance(authorizer, CognitoUserPoolAuthorizer)
    assert authorizer.to_swagger()["x-amazon-apigateway-authorizer"]["providerARNs"] == [POOL]


def test_api_key_and_cors_origin() -> None:
    access = route_access({"API_AUTH": "api_key", "CORS_ALLOW_ORIGIN": "https://app.example.com"})
    options = access.route_options()
    assert options["api_key_required"] is True and options["authorizer"] is None
    assert options["cors"].allow_origin == "https://app.example.com"


def test_public_routes_keep_cors_but_skip_auth() -> None:
    access = route_access({"API_AUTH": "iam", "CORS_ALLOW_ORIGIN": "*"})
    assert access.route_options(public=True) == {"cors": access.cors}


@pytest.mark.parametrize(
    "env, field",
    [
        ({"API_AUTH": "basic"}, "API_AUTH"),
        ({"API_AUTH": "cognito"}, "COGNITO_USER_POOL_ARN"),
        ({"API_AUTH": "cognito", "COGNITO_USER_POOL_ARN": "us-east-1_x"}, "COGNITO_USER_POOL_ARN"),
    ],
)
def test_bad_settings_fail_naming_the_variable(env: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        route_access(env)


def test_the_app_wires_the_stage_auth_into_every_route_but_health_and_the_page() -> None:
    """In a fresh interpreter: routes are registered at import, from the environment."""
    probe = (
        "import json, app\n"
        "print(json.dumps({f'{m} {p}': [type(e.authorizer).__name__, e.api_key_required, e.cors is not None]"
        " for p, methods in app.app.routes.items() for m, e in methods.items()}))"
    )
    env = {"API_AUTH": "iam", "CORS_ALLOW_ORIGIN": "https://app.example.com", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    routes = json.loads(result.stdout)
    assert routes.pop("GET /health") == ["NoneType", None, True]
    assert routes.pop("GET /") == ["NoneType", None, True]  # the page is public; its API calls are not
    assert routes and all(value == ["IAMAuthorizer", False, True] for value in routes.values()), routes
