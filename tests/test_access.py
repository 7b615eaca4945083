"""Per-stage API access: authorizer, API-key requirement, the route layer's 401, several CORS origins, no open Lambda."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from chalice import Chalice, CognitoUserPoolAuthorizer, IAMAuthorizer
from chalice.test import Client

from chalicelib.access import CorsPolicy, RouteAccess, route_access
from chalicelib.errors import ConfigError
from chalicelib.settings import PUBLIC_API_CONSENT, PUBLIC_API_OPT_IN, access_settings, parse_origins

POOL = "arn:aws:cognito-idp:eu-west-1:123456789012:userpool/eu-west-1_AbCdEfGhI"
JWT = {"API_AUTH": "jwt", "OIDC_ISSUER": "https://tenant.eu.auth0.com/", "OIDC_AUDIENCE": "imgpress"}
ROOT = Path(__file__).resolve().parent.parent
APP = "https://app.example.com"
# Routes without auth: the upload page (its sign-in settings and library), the health probe, the API
# description and its reference page, and on-demand variants (the signed link is the credential).
TRANSFORM_ROUTE = "GET /processed/{image_id}/od/{revision}/{name}"
PUBLIC_ROUTES = {
    TRANSFORM_ROUTE,
    "GET /",
    "GET /health",
    "GET /openapi.json",
    "GET /docs",
    "GET /docs/redoc.standalone.js",
    "GET /page-config",
    "GET /upload-limits",
    "GET /vendor/oidc-client-ts.min.js",
}
ADMIN_APP = "https://admin.example.com"


def guarded(env: dict[str, str]) -> RouteAccess:
    """The routes' guard on a stage with `env`, read the way app.py reads it."""
    return route_access(access_settings(env))


def test_no_auth_and_no_cors_by_default() -> None:
    access = guarded({})
    assert access.mode == "none" and access.cors is None
    assert access.route_options() == {"authorizer": None, "api_key_required": False}


def test_iam() -> None:
    assert isinstance(guarded({"API_AUTH": "iam"}).route_options()["authorizer"], IAMAuthorizer)


def test_cognito_trusts_the_configured_pool() -> None:
    access = guarded({"API_AUTH": "cognito", "COGNITO_USER_POOL_ARN": POOL, "ADMIN_GROUP": "admin"})
    authorizer = access.route_options()["authorizer"]
    assert isinstance(authorizer, CognitoUserPoolAuthorizer)
    assert authorizer.to_swagger()["x-amazon-apigateway-authorizer"]["providerARNs"] == [POOL]
    assert access.admin.group == "admin" and access.admin.groups_claim == "cognito:groups"


def test_jwt_settings_are_checked_at_cold_start() -> None:
    access = guarded({**JWT, "ADMIN_GROUP": "admin", "OIDC_GROUPS_CLAIM": "roles"})
    assert access.mode == "jwt" and access.authorizer is None  # app.py registers and attaches the authorizer
    assert access.admin.group == "admin" and access.admin.groups_claim == "roles"
    with pytest.raises(ConfigError, match="OIDC_AUDIENCE"):
        guarded({**JWT, "OIDC_AUDIENCE": ""})


def test_api_key() -> None:
    options = guarded({"API_AUTH": "api_key"}).route_options()
    assert options["api_key_required"] is True and options["authorizer"] is None


def test_public_routes_skip_auth() -> None:
    assert guarded({"API_AUTH": "iam"}).route_options(public=True) == {}


@pytest.mark.parametrize(
    "env, field",
    [
        ({"API_AUTH": "basic"}, "API_AUTH"),
        ({"API_AUTH": "cognito"}, "COGNITO_USER_POOL_ARN"),
        ({"API_AUTH": "cognito", "COGNITO_USER_POOL_ARN": "us-east-1_x"}, "COGNITO_USER_POOL_ARN"),
        ({"API_AUTH": "jwt"}, "OIDC_ISSUER"),
        ({"CORS_ALLOW_ORIGIN": APP}, "CORS_ALLOW_ORIGINS"),
        ({"CORS_ALLOW_ORIGINS": "https://app.example.com/"}, "CORS_ALLOW_ORIGINS"),
        ({"CORS_ALLOW_ORIGINS": "*,https://app.example.com"}, "CORS_ALLOW_ORIGINS"),
        ({"CORS_ALLOW_ORIGINS": "app.example.com"}, "CORS_ALLOW_ORIGINS"),
        ({"CORS_ALLOW_ORIGINS": "https://App.example.com"}, "CORS_ALLOW_ORIGINS"),
    ],
)
def test_bad_settings_fail_naming_the_variable(env: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        guarded(env)


# --- no open API on Lambda ----------------------------------------------------------------------


def test_api_auth_none_is_refused_on_lambda_without_the_opt_in() -> None:
    on_lambda = {"AWS_LAMBDA_FUNCTION_NAME": "imgpress-dev"}
    for env in (on_lambda, {**on_lambda, "API_AUTH": "none"}, {**on_lambda, PUBLIC_API_OPT_IN: "true"}):
        with pytest.raises(ConfigError, match=f"API_AUTH.*{PUBLIC_API_OPT_IN}={PUBLIC_API_CONSENT}"):
            guarded(env)
    assert guarded({**on_lambda, PUBLIC_API_OPT_IN: PUBLIC_API_CONSENT}).mode == "none"
    assert guarded({}).mode == "none"  # the local stack: not on Lambda
    assert guarded({**on_lambda, **JWT}).mode == "jwt"


def test_a_deployed_app_with_api_auth_none_fails_its_cold_start() -> None:
    env = {"PATH": "/usr/bin:/bin", "AWS_LAMBDA_FUNCTION_NAME": "imgpress-dev", "API_AUTH": "none"}
    result = subprocess.run([sys.executable, "-c", "import app"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode != 0 and f"{PUBLIC_API_OPT_IN}={PUBLIC_API_CONSENT}" in result.stderr


# --- CORS: several origins ----------------------------------------------------------------------


def test_origins_are_parsed_as_browsers_send_them() -> None:
    assert parse_origins(f" {APP}, http://127.0.0.1:5173,{APP} ", "CORS_ALLOW_ORIGINS", allow_any=True) == (
        APP,
        "http://127.0.0.1:5173",
    )
    assert parse_origins("", "X", allow_any=True) == () and parse_origins("*", "X", allow_any=True) == ("*",)


def test_the_policy_echoes_only_a_listed_origin() -> None:
    policy = CorsPolicy((APP, ADMIN_APP))
    assert policy.response_headers(ADMIN_APP)["Access-Control-Allow-Origin"] == ADMIN_APP
    assert policy.response_headers("https://evil.example.com") == {"Vary": "Origin"}
    assert policy.response_headers(None) == {"Vary": "Origin"}
    assert CorsPolicy(("*",)).response_headers("https://any.example.com")["Access-Control-Allow-Origin"] == "*"


@pytest.fixture
def cors_app() -> Chalice:
    """A two-route app wired the way app.py wires routes."""
    app = Chalice("cors-probe")
    access = guarded({"CORS_ALLOW_ORIGINS": f"{APP},{ADMIN_APP}"})
    access.install_cors(app)
    for method in ("GET", "DELETE"):
        app.route("/things/{thing_id}", methods=[method])(lambda thing_id: {"id": thing_id})
        access.add_preflight(app, "/things/{thing_id}")
    return app


def test_preflight_and_responses_echo_each_listed_origin(cors_app: Chalice) -> None:
    with Client(cors_app) as client:
        for origin in (APP, ADMIN_APP):
            preflight = client.http.request("OPTIONS", "/things/1", headers={"Origin": origin})
            assert preflight.status_code == 204
            assert preflight.headers["Access-Control-Allow-Origin"] == origin
            assert preflight.headers["Access-Control-Allow-Methods"] == "DELETE,GET,OPTIONS"
            assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
            response = client.http.get("/things/1", headers={"Origin": origin})
            assert response.headers["Access-Control-Allow-Origin"] == origin
            assert response.headers["Vary"] == "Origin"
        stranger = client.http.request("OPTIONS", "/things/1", headers={"Origin": "https://evil.example.com"})
        assert "Access-Control-Allow-Origin" not in stranger.headers
        assert "Access-Control-Allow-Origin" not in client.http.get("/things/1").headers


def _probe(env: dict[str, str], code: str) -> str:
    """What the probe printed last (the app's own log lines, JSON too, come before it)."""
    full = {"PATH": "/usr/bin:/bin", **env}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=full, capture_output=True, text=True, check=True
    ).stdout.splitlines()[-1]


def test_the_app_wires_the_stage_auth_into_every_route_but_health_and_the_page() -> None:
    """In a fresh interpreter: routes are registered at import, from the environment."""
    probe = (
        "import json, app\n"
        "print(json.dumps({f'{m} {p}': [type(e.authorizer).__name__, e.api_key_required, e.cors]"
        " for p, methods in app.app.routes.items() for m, e in methods.items()}))"
    )
    routes = json.loads(_probe({"API_AUTH": "iam", "CORS_ALLOW_ORIGINS": APP}, probe))
    for public in PUBLIC_ROUTES:  # the pages are public; their API calls are not
        assert routes.pop(public) == ["NoneType", None, None], public
    preflights = {key: routes.pop(key) for key in list(routes) if key.startswith("OPTIONS ")}
    paths = {key.split(" ", 1)[1] for key in routes} | {public.split(" ", 1)[1] for public in PUBLIC_ROUTES}
    assert {key.split(" ", 1)[1] for key in preflights} == paths  # every path has its preflight
    assert all(value == ["NoneType", None, None] for value in preflights.values())
    assert routes and all(value == ["IAMAuthorizer", False, None] for value in routes.values()), routes


def test_jwt_stages_register_the_authorizer_function_and_others_do_not() -> None:
    probe = (
        "import json, app\n"
        "print(json.dumps([[a.name, a.handler_string, a.ttl_seconds] for a in app.app.builtin_auth_handlers]"
        " + sorted({type(e.authorizer).__name__ for ms in app.app.routes.values() for e in ms.values()})))"
    )
    assert json.loads(_probe(JWT, probe)) == [
        ["jwt_authorizer", "app.jwt_authorizer", 300],
        "ChaliceAuthorizer",
        "NoneType",
    ]
    assert json.loads(_probe({"API_AUTH": "cognito", "COGNITO_USER_POOL_ARN": POOL}, probe)) == [
        "CognitoUserPoolAuthorizer",
        "NoneType",
    ]


def test_every_protected_route_answers_a_refused_token_with_our_401() -> None:
    """The authorizer lets every request through with its verdict; each protected route must refuse it."""
    probe = (
        "import json, re, app\n"
        "from chalice.test import Client\n"
        "out = {}\n"
        "with Client(app.app) as c:\n"
        "    for path, methods in app.app.routes.items():\n"
        "        for m in methods:\n"
        "            url = re.sub(r'\\{[a-z_]+\\}', lambda m: '1' if m.group() == '{part_number}' else 'a' * 32, path)\n"
        "            headers = {'Content-Type': 'application/json', 'Authorization': 'Bearer not-a-jwt'}\n"
        "            r = c.http.request(m, url, body=b'{}', headers=headers)\n"
        "            out[f'{m} {path}'] = [r.status_code, json.loads(r.body) if r.body[:1] == b'{' else None]\n"
        "print(json.dumps(out))"
    )
    results = json.loads(_probe({**JWT, "CORS_ALLOW_ORIGINS": APP}, probe))
    public = PUBLIC_ROUTES | {key for key in results if key.startswith("OPTIONS ")}
    expected = {"POST /uploads", "GET /images", "GET /images/{image_id}", "DELETE /images/{image_id}"}
    expected |= {"POST /images/{image_id}/reprocess", "POST /backfills", "POST /s3/multipart", "GET /s3/params"}
    assert expected | PUBLIC_ROUTES <= set(results)
    for key, (status, body) in results.items():
        if key == TRANSFORM_ROUTE:  # reached without a token; no keys on this stage, so no variants
            assert (status, body["error"]["code"]) == (404, "not_found"), (key, status, body)
        elif key in public:
            assert status in (200, 204), (key, status, body)
        else:
            assert status == 401, (key, status, body)
            assert body == {"error": {"code": "invalid_token", "message": "the bearer token is not a JWT"}}
