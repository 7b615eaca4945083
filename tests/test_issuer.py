"""The local OIDC issuer (devstack/issuer.py): discovery, JWKS, authorization code + PKCE, and `make token`."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from chalicelib.auth.principal import AdminRule
from chalicelib.auth.tokens import TokenVerifier
from chalicelib.settings import oidc_settings
from devstack.issuer import AUDIENCE, LocalIssuer, b64url
from tests.live_stack import ROOT

pytestmark = pytest.mark.integration

REDIRECT = "http://127.0.0.1:8000/callback"
VERIFIER = "v" * 20 + "-the-code-verifier-of-this-test-" + "x" * 10


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[LocalIssuer]:
    started = LocalIssuer(state_dir=tmp_path).start()
    yield started
    started.stop()


def verifier_of(issuer: LocalIssuer) -> TokenVerifier:
    """The app's own verifier, configured as `python -m devstack` configures the app."""
    return TokenVerifier(oidc_settings({"API_AUTH": "jwt", **issuer.app_env()}))


def authorize(issuer: LocalIssuer, **overrides: str) -> requests.Response:
    params = {
        "response_type": "code",
        "client_id": AUDIENCE,
        "redirect_uri": REDIRECT,
        "state": "s-1",
        "code_challenge": b64url(hashlib.sha256(VERIFIER.encode()).digest()),
        "code_challenge_method": "S256",
        **overrides,
    }
    return requests.post(
        f"{issuer.url}/authorize", data={**params, "username": "alice", "admin": "1"}, allow_redirects=False, timeout=5
    )


def exchange(issuer: LocalIssuer, code: str, verifier: str = VERIFIER) -> requests.Response:
    form = {"grant_type": "authorization_code", "code": code, "client_id": AUDIENCE, "redirect_uri": REDIRECT}
    return requests.post(f"{issuer.url}/token", data={**form, "code_verifier": verifier}, timeout=5)


def test_discovery_and_keys_are_what_the_app_verifies_against(issuer: LocalIssuer) -> None:
    document = requests.get(f"{issuer.url}/.well-known/openid-configuration", timeout=5).json()
    assert document["issuer"] == issuer.url and document["code_challenge_methods_supported"] == ["S256"]
    (key,) = requests.get(document["jwks_uri"], timeout=5).json()["keys"]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and "d" not in key
    claims = verifier_of(issuer).verify(issuer.mint("alice", ["admin"]))
    assert claims["sub"] == "alice" and claims["aud"] == AUDIENCE


def test_sign_in_with_pkce_gives_tokens_the_app_accepts(issuer: LocalIssuer) -> None:
    page = requests.get(f"{issuer.url}/authorize", params={**_query(), "code_challenge": "c"}, timeout=5)
    assert page.status_code == 200 and "<form" in page.text and 'value="s-1"' in page.text
    signed_in = authorize(issuer)
    assert signed_in.status_code == 302
    location = urlsplit(signed_in.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    answer = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert answer["state"] == "s-1"
    tokens = exchange(issuer, answer["code"]).json()
    assert tokens["token_type"] == "Bearer"
    verifier = verifier_of(issuer)
    claims = verifier.verify(tokens["access_token"])
    assert claims["sub"] == "alice" and "admin" in claims["groups"]
    assert verifier.settings.admin == AdminRule(group="admin", groups_claim="groups")
    assert verifier.principal(claims).is_admin
    assert verifier.verify(tokens["id_token"])["sub"] == "alice"


def test_a_code_needs_its_verifier_and_works_once(issuer: LocalIssuer) -> None:
    code = parse_qs(urlsplit(authorize(issuer).headers["Location"]).query)["code"][0]
    wrong = exchange(issuer, code, "w" * 50)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    code = parse_qs(urlsplit(authorize(issuer).headers["Location"]).query)["code"][0]
    assert exchange(issuer, code).status_code == 200
    assert exchange(issuer, code).json()["error"] == "invalid_grant"  # used


@pytest.mark.parametrize(
    "overrides, problem",
    [
        ({"redirect_uri": "https://evil.example.com/cb"}, "redirect_uri"),
        ({"code_challenge_method": "plain"}, "PKCE"),
        ({"client_id": "someone-else"}, "client_id"),
        ({"response_type": "token"}, "response_type"),
    ],
)
def test_bad_authorization_requests_are_refused_not_redirected(
    issuer: LocalIssuer, overrides: dict[str, str], problem: str
) -> None:
    refused = authorize(issuer, **overrides)
    assert refused.status_code == 400 and problem in refused.text and "Location" not in refused.headers


def test_loopback_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loopback"):
        LocalIssuer(host="0.0.0.0", state_dir=tmp_path)


def test_the_key_survives_a_restart_and_make_token_mints_for_the_running_issuer(tmp_path: Path) -> None:
    first = LocalIssuer(state_dir=tmp_path).start()
    first.stop()
    assert (tmp_path / "signing-key.pem").stat().st_mode & 0o077 == 0
    again = LocalIssuer(port=first.port, state_dir=tmp_path).start()
    try:
        env = {**os.environ, "DEVSTACK_ISSUER_DIR": str(tmp_path)}
        command = [sys.executable, "-m", "devstack.token", "bob", "--admin", "--groups", "editors", "--ttl", "120"]
        token = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout.strip()
        claims = verifier_of(again).verify(token)
        assert claims["sub"] == "bob" and claims["groups"] == ["editors", "admin"]
        assert 100 < claims["exp"] - claims["iat"] <= 120
    finally:
        again.stop()


def test_make_token_without_a_running_issuer_says_what_to_do(tmp_path: Path) -> None:
    env = {**os.environ, "DEVSTACK_ISSUER_DIR": str(tmp_path / "none")}
    result = subprocess.run(
        [sys.executable, "-m", "devstack.token", "alice"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0 and "API_AUTH=jwt make run" in result.stderr


def _query() -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": AUDIENCE,
        "redirect_uri": REDIRECT,
        "state": "s-1",
        "code_challenge_method": "S256",
    }
