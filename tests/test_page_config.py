"""GET /page-config: what the upload page needs to sign in to a stage, from PageSettings (the settings module)."""

from __future__ import annotations

import pytest
from chalice.test import Client

from chalicelib import services
from chalicelib.errors import ConfigError
from chalicelib.settings import page_settings
from infra import stages
from tests.openapi import document

POOL_ARN = "arn:aws:cognito-idp:eu-west-1:123456789012:userpool/eu-west-1_AbCdE"


def test_a_stage_without_auth_asks_the_page_for_nothing() -> None:
    assert page_settings({}).to_dict() == {
        "auth": {"mode": "none", "issuer": None, "client_id": None, "scopes": None, "audience": None, "token": None},
        "allowed_apis": [],
    }


def test_jwt_stage_names_its_issuer_and_the_pages_public_client_and_sends_access_tokens() -> None:
    env = {
        "API_AUTH": "jwt",
        "OIDC_ISSUER": "https://tenant.eu.auth0.com/",
        "OIDC_CLIENT_ID": "pageclient",
        "OIDC_SCOPES": "openid, profile",
        "OIDC_AUTHORIZE_AUDIENCE": "https://images.example.com",
    }
    assert page_settings(env).to_dict()["auth"] == {
        "mode": "jwt",
        "issuer": "https://tenant.eu.auth0.com/",
        "client_id": "pageclient",
        "scopes": "openid profile",
        "audience": "https://images.example.com",
        "token": "access_token",
    }


def test_cognito_stage_signs_in_with_its_user_pool_and_sends_id_tokens() -> None:
    """API Gateway's Cognito authorizer (no scopes) accepts ID tokens only; the pool is the issuer."""
    auth = page_settings({"API_AUTH": "cognito", "COGNITO_USER_POOL_ARN": POOL_ARN, "OIDC_CLIENT_ID": "c1"})
    assert auth.to_dict()["auth"]["issuer"] == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdE"
    assert auth.to_dict()["auth"]["token"] == "id_token"


@pytest.mark.parametrize(
    ("stage", "issuer", "token"),
    [
        (
            "dev",
            "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_EXAMPLE",
            "access_token",
        ),  # jwt, the stack's pool
        ("prod", "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_EXAMPLE", "id_token"),  # cognito
    ],
)
def test_deployed_stages_sign_in_with_the_stacks_pool_and_client(stage: str, issuer: str, token: str) -> None:
    """What `python -m infra resources` records (stack outputs -> .chalice/config.json) is all the page needs."""
    env = stages.stage_environment(stages.load_config(stages.PROJECT), stage)
    auth = page_settings(env).to_dict()["auth"]
    assert (auth["issuer"], auth["client_id"], auth["token"]) == (issuer, "EXAMPLEappclientid", token)


@pytest.mark.parametrize("mode", ["api_key", "iam"])
def test_modes_without_sign_in_publish_no_issuer_even_if_one_is_set(mode: str) -> None:
    env = {"API_AUTH": mode, "OIDC_ISSUER": "https://issuer.example.com", "OIDC_CLIENT_ID": "c"}
    auth = page_settings(env).to_dict()["auth"]
    assert auth["mode"] == mode and auth["issuer"] is None and auth["client_id"] is None and auth["token"] is None


def test_allowed_apis_are_exact_origins() -> None:
    env = {"PAGE_ALLOWED_APIS": "https://a.example.com, http://127.0.0.1:9000,https://a.example.com"}
    assert page_settings(env).allowed_apis == ("https://a.example.com", "http://127.0.0.1:9000")


@pytest.mark.parametrize(
    "value", ["https://a.example.com/api", "*", "a.example.com", "https://A.example.com", "ftp://a.example.com"]
)
def test_anything_but_an_origin_in_allowed_apis_fails_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^PAGE_ALLOWED_APIS: "):
        page_settings({"PAGE_ALLOWED_APIS": value})


def test_scopes_without_openid_fail_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^OIDC_SCOPES: "):
        page_settings({"OIDC_SCOPES": "profile email"})


def test_the_route_is_public_cacheable_and_documented(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGE_ALLOWED_APIS", "https://images.example.com")
    services.reset()
    response = client.http.get("/page-config")  # no credential: the page asks before anyone signs in
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=300"
    assert response.json_body == {
        "auth": {"mode": "none", "issuer": None, "client_id": None, "scopes": None, "audience": None, "token": None},
        "allowed_apis": ["https://images.example.com"],
    }
    assert document()["paths"]["/page-config"]["get"]["security"] == []


def test_the_sign_in_library_is_served_from_the_stage(client: Client) -> None:
    response = client.http.get("/vendor/oidc-client-ts.min.js")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert response.body.decode().startswith('"use strict";var oidc=')
    assert b"sourceMappingURL" not in response.body  # the map is not shipped: browsers would ask for it
