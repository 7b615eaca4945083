"""API_AUTH=jwt settings: read from the environment, each bad value named."""

from __future__ import annotations

import pytest

from chalicelib.auth.oidc import ALLOWED_ALGORITHMS
from chalicelib.errors import ConfigError
from chalicelib.settings import oidc_settings

BASE = {"OIDC_ISSUER": "https://tenant.eu.auth0.com/", "OIDC_AUDIENCE": "https://api.images.example.com"}


def test_defaults_and_discovery_url() -> None:
    settings = oidc_settings(BASE)
    assert settings.discovery_url == "https://tenant.eu.auth0.com/.well-known/openid-configuration"
    assert settings.audiences == ("https://api.images.example.com",)
    assert settings.jwks_url is None and settings.algorithms == ALLOWED_ALGORITHMS
    assert not any(a.startswith("HS") or a == "none" for a in ALLOWED_ALGORITHMS)


def test_every_setting() -> None:
    settings = oidc_settings(
        {
            **BASE,
            "OIDC_AUDIENCE": "client-a, client-b",
            "OIDC_JWKS_URL": "https://tenant.eu.auth0.com/.well-known/jwks.json",
            "OIDC_ALGORITHMS": "RS256,ES256",
            "OIDC_GROUPS_CLAIM": "https://images.example.com/roles",
            "ADMIN_GROUP": "admin",
            "ADMIN_SCOPE": "images:admin",
            "OIDC_LEEWAY_SECONDS": "5",
        }
    )
    assert settings.audiences == ("client-a", "client-b") and settings.algorithms == ("RS256", "ES256")
    assert settings.admin.groups_claim == "https://images.example.com/roles" and settings.leeway_seconds == 5
    assert settings.admin.matches({"https://images.example.com/roles": ["admin"]})


def test_a_local_issuer_may_be_plain_http_on_loopback_only() -> None:
    assert oidc_settings({**BASE, "OIDC_ISSUER": "http://127.0.0.1:8001"}).issuer == "http://127.0.0.1:8001"
    with pytest.raises(ConfigError, match="OIDC_ISSUER"):
        oidc_settings({**BASE, "OIDC_ISSUER": "http://issuer.example.com"})


@pytest.mark.parametrize(
    "change, name",
    [
        ({"OIDC_ISSUER": ""}, "OIDC_ISSUER"),
        ({"OIDC_AUDIENCE": " , "}, "OIDC_AUDIENCE"),
        ({"OIDC_JWKS_URL": "file:///etc/passwd"}, "OIDC_JWKS_URL"),
        ({"OIDC_ALGORITHMS": "RS256,HS256"}, "OIDC_ALGORITHMS"),
        ({"OIDC_ALGORITHMS": "none"}, "OIDC_ALGORITHMS"),
        ({"OIDC_LEEWAY_SECONDS": "-1"}, "OIDC_LEEWAY_SECONDS"),
    ],
)
def test_bad_values_name_the_variable(change: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        oidc_settings({**BASE, **change})
