"""principal_from_request for every API_AUTH mode, with request contexts as API Gateway (or chalice local) sends them."""

from __future__ import annotations

import time
from typing import Any

import pytest

from chalicelib.auth.principal import (
    AdminRule,
    Principal,
    claim_values,
    issuer_tag,
    principal_from_request,
    token_owner,
)
from chalicelib.errors import Unauthorized

POOL_ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEfGhI"
ADMINS = AdminRule(group="admin", scope="imgpress/admin", groups_claim="cognito:groups")


def test_none_is_the_single_local_owner() -> None:
    assert principal_from_request({}, "none") == Principal("anonymous", False, "anonymous")
    assert principal_from_request(None, "none").owner == "anonymous"


def test_jwt_reads_what_the_authorizer_put_in_the_context() -> None:
    context = {
        "authorizer": {"owner": "3f2a9c1b0d4e:alice", "is_admin": "true", "expires_at": str(int(time.time()) + 60)}
    }
    assert principal_from_request(context, "jwt") == Principal("3f2a9c1b0d4e:alice", True, "jwt")


@pytest.mark.parametrize(
    "authorizer, code",
    [
        ({}, "missing_token"),
        ({"rejected": "invalid_token", "reason": "the token is meant for another audience"}, "invalid_token"),
        ({"owner": "x:alice", "is_admin": "false", "expires_at": "1"}, "token_expired"),
    ],
)
def test_jwt_refusals(authorizer: dict[str, str], code: str) -> None:
    with pytest.raises(Unauthorized) as raised:
        principal_from_request({"authorizer": authorizer}, "jwt")
    assert raised.value.code == code and raised.value.http_status == 401


@pytest.mark.parametrize(
    "groups, admin",
    [
        ("admin", True),
        ("editors,admin", True),
        ("[editors, admin]", True),
        (["admin"], True),
        ("editors", False),
        (None, False),
    ],
)
def test_cognito_claims_and_groups_however_api_gateway_spells_them(groups: Any, admin: bool) -> None:
    claims = {"iss": POOL_ISSUER, "sub": "1234-abcd", "token_use": "id", "cognito:groups": groups}
    caller = principal_from_request({"authorizer": {"claims": claims}}, "cognito", ADMINS)
    assert caller == Principal(f"{issuer_tag(POOL_ISSUER)}:1234-abcd", admin, "cognito")


def test_a_cognito_user_is_the_same_owner_whichever_authorizer_checked_the_token() -> None:
    """Moving a stage from API_AUTH=cognito to jwt against the same pool keeps everyone's images theirs."""
    cognito = principal_from_request({"authorizer": {"claims": {"iss": POOL_ISSUER, "sub": "u-1"}}}, "cognito")
    assert cognito.owner == token_owner(POOL_ISSUER, "u-1") == token_owner(POOL_ISSUER + "/", "u-1")


@pytest.mark.parametrize(
    "claims, code",
    [
        ({}, "missing_token"),
        ({"iss": POOL_ISSUER, "sub": ""}, "invalid_token"),
        ({"iss": POOL_ISSUER, "sub": " "}, "invalid_token"),
        ({"iss": "", "sub": "u-1"}, "invalid_token"),
        ({"iss": POOL_ISSUER}, "invalid_token"),
    ],
)
def test_a_cognito_token_without_a_subject_or_issuer_is_a_401(claims: dict[str, str], code: str) -> None:
    with pytest.raises(Unauthorized) as raised:
        principal_from_request({"authorizer": {"claims": claims}}, "cognito")
    assert raised.value.code == code and raised.value.http_status == 401


def test_admin_by_scope_from_an_access_token() -> None:
    claims = {"iss": POOL_ISSUER, "sub": "u-1", "scope": "openid imgpress/admin"}
    assert principal_from_request({"authorizer": {"claims": claims}}, "cognito", ADMINS).is_admin
    assert AdminRule(scope="imgpress/admin").matches({"scp": ["imgpress/admin"]})
    assert not AdminRule().matches({"groups": ["admin"], "scope": "admin"})  # nothing configured: nobody


def test_two_issuers_same_sub_are_two_owners() -> None:
    assert token_owner("https://a.example.com/", "alice") != token_owner("https://b.example.com/", "alice")
    assert len(issuer_tag("https://a.example.com/")) == 12


def test_api_key_and_iam_identities() -> None:
    api_key = {"identity": {"apiKeyId": "k1x2y3", "sourceIp": "192.0.2.1"}}
    assert principal_from_request(api_key, "api_key") == Principal("apikey:k1x2y3", False, "api_key")
    iam = {"identity": {"userArn": "arn:aws:iam::123456789012:user/ci", "caller": "AIDAEXAMPLE"}}
    assert principal_from_request(iam, "iam") == Principal("iam:arn:aws:iam::123456789012:user/ci", False, "iam")
    assert (
        principal_from_request({"identity": {"caller": "AROAEXAMPLE:session"}}, "iam").owner
        == "iam:AROAEXAMPLE:session"
    )


@pytest.mark.parametrize("mode", ["cognito", "api_key", "iam"])
def test_modes_without_their_identity_are_refused(mode: str) -> None:
    with pytest.raises(Unauthorized):
        principal_from_request({"identity": {"sourceIp": "192.0.2.1"}, "authorizer": {}}, mode)


def test_claim_values() -> None:
    assert claim_values("openid  profile") == {"openid", "profile"}
    assert claim_values(["a", "b"]) == {"a", "b"}
    assert claim_values(7) == set()
