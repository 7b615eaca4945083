"""End to end over real HTTP with auth on: `python -m devstack` with API_AUTH=jwt and its local OIDC issuer.

Every refused token must end as a 401 with the API's usual `{"error": {code, message}}` body,
whether the local gateway (no token) or the route layer (a token that does not verify) refused it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from devstack.issuer import load_or_create_key, mint, public_jwk
from devstack.stack import free_port
from tests.auth.issuers import SigningKey, hs256_with_public_key, unsigned_token
from tests.live_stack import running_stack

pytestmark = pytest.mark.e2e

ORIGIN = "http://127.0.0.1:5173"


@dataclass
class AuthStack:
    api: str
    issuer: str
    audience: str
    key: rsa.RSAPrivateKey

    def token(self, user: str = "alice", ttl: int = 600, **claims: Any) -> str:
        iss, aud = claims.pop("iss", self.issuer), claims.pop("aud", self.audience)
        return mint(self.key, iss, aud, user, claims.pop("groups", ()), ttl, claims)

    def claims(self) -> dict[str, Any]:
        now = int(time.time())
        return {"iss": self.issuer, "aud": self.audience, "sub": "mallory", "iat": now, "exp": now + 600}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthStack]:
    state: Path = tmp_path_factory.mktemp("issuer")
    settings = {
        "API_AUTH": "jwt",
        "DEVSTACK_ISSUER_DIR": str(state),
        "ISSUER_PORT": str(free_port()),
        "CORS_ALLOW_ORIGINS": ORIGIN,
    }
    with running_stack(settings) as live:
        issuer = json.loads((state / "issuer.json").read_text())
        yield AuthStack(live.api, issuer["issuer"], issuer["audience"], load_or_create_key(state))


def upload(stack: AuthStack, token: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    body = {"filename": "photo.jpg", "content_type": "image/jpeg", "size": 1000}
    return requests.post(f"{stack.api}/uploads", json=body, headers={**headers, "Origin": ORIGIN}, timeout=10)


def assert_401(response: requests.Response, code: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    assert response.headers.get("Access-Control-Allow-Origin") == ORIGIN  # a browser can read why


def test_health_and_the_page_need_no_token(stack: AuthStack) -> None:
    assert requests.get(f"{stack.api}/health", timeout=10).status_code == 200
    assert requests.get(f"{stack.api}/", timeout=10).status_code == 200


def test_a_good_token_uploads_and_lists(stack: AuthStack) -> None:
    created = upload(stack, stack.token())
    assert created.status_code == 201, created.text
    assert created.headers["Access-Control-Allow-Origin"] == ORIGIN
    listed = requests.get(f"{stack.api}/images", headers={"Authorization": f"Bearer {stack.token()}"}, timeout=10)
    assert listed.status_code == 200 and created.json()["id"] in [item["id"] for item in listed.json()["items"]]


def test_no_token_is_the_gateway_401_in_our_shape(stack: AuthStack) -> None:
    assert_401(upload(stack, None), "unauthorized")


def test_refused_tokens_are_401_json(stack: AuthStack) -> None:
    other_key = SigningKey(
        rsa.generate_private_key(public_exponent=65537, key_size=2048), public_jwk(stack.key)["kid"], "RS256"
    )
    issuer_key = SigningKey(stack.key, public_jwk(stack.key)["kid"], "RS256")
    cases = {
        "expired": (stack.token(ttl=-300), "token_expired"),
        "wrongly signed": (other_key.sign(stack.claims()), "invalid_token"),
        "other audience": (stack.token(aud="another-app"), "invalid_token"),
        "other issuer": (stack.token(iss="http://127.0.0.1:1"), "invalid_token"),
        "alg none": (unsigned_token(stack.claims(), issuer_key.kid), "invalid_token"),
        "hs256 keyed with the public key": (hs256_with_public_key(stack.claims(), issuer_key), "invalid_token"),
        "not a jwt": ("not-a-jwt", "invalid_token"),
    }
    for name, (token, code) in cases.items():
        response = upload(stack, token)
        assert response.status_code == 401, name
        assert_401(response, code)


def test_preflight_from_the_listed_origin_needs_no_token(stack: AuthStack) -> None:
    preflight = requests.options(
        f"{stack.api}/uploads",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
        timeout=10,
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
