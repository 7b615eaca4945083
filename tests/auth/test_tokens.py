"""The JWT verifier against keys made here and a JWKS served over real HTTP: every way a token must fail."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.auth.principal import AdminRule, issuer_tag, principal_from_request
from chalicelib.auth.tokens import TokenVerifier, authorizer_response, bearer_token
from chalicelib.errors import Unauthorized
from chalicelib.settings import oidc_settings
from tests.auth.issuers import (
    AUDIENCE,
    FakeIssuer,
    SigningKey,
    ec_key,
    fake_issuer,
    hs256_with_public_key,
    rsa_key,
    unsigned_token,
)

KEY = rsa_key()


@pytest.fixture
def issuer() -> Iterator[FakeIssuer]:
    with fake_issuer(KEY, ec_key()) as served:
        yield served


def verifier_for(issuer: FakeIssuer, **overrides: Any) -> TokenVerifier:
    env = {"API_AUTH": "jwt", "OIDC_ISSUER": issuer.url, "OIDC_AUDIENCE": f"{AUDIENCE},second-client"}
    settings = dataclasses.replace(oidc_settings(env), http_timeout_seconds=1.0)
    return TokenVerifier(dataclasses.replace(settings, **overrides))


def rejection(verifier: TokenVerifier, token: str) -> tuple[str, str]:
    with pytest.raises(Unauthorized) as raised:
        verifier.verify(token)
    assert raised.value.http_status == 401
    return raised.value.code, raised.value.message


def test_a_good_rs256_token_verifies_after_discovery(issuer: FakeIssuer) -> None:
    verifier = verifier_for(issuer)
    claims = verifier.verify(KEY.sign(issuer.claims()))
    assert claims["sub"] == "alice"
    assert issuer.fetches == ["/.well-known/openid-configuration", "/jwks"]


def test_es256_and_a_configured_jwks_url_without_discovery(issuer: FakeIssuer) -> None:
    verifier = verifier_for(issuer, jwks_url=f"{issuer.url}/jwks")
    assert verifier.verify(issuer.keys[1].sign(issuer.claims()))["sub"] == "alice"
    assert issuer.fetches == ["/jwks"]


def test_keys_are_cached_across_tokens(issuer: FakeIssuer) -> None:
    verifier = verifier_for(issuer)
    for subject in ("alice", "bob", "carol"):
        verifier.verify(KEY.sign(issuer.claims(sub=subject)))
    assert issuer.fetches.count("/jwks") == 1


@pytest.mark.parametrize(
    "claims, code",
    [
        ({"exp": int(time.time()) - 120}, "token_expired"),
        ({"nbf": int(time.time()) + 600}, "invalid_token"),
        ({"aud": "someone-else"}, "invalid_token"),
        ({"iss": "https://evil.example.com"}, "invalid_token"),
        ({"sub": None}, "invalid_token"),
        ({"sub": ""}, "invalid_token"),
        ({"sub": "  "}, "invalid_token"),
    ],
    ids=["expired", "nbf-in-future", "other-audience", "other-issuer", "no-sub", "empty-sub", "blank-sub"],
)
def test_bad_claims_are_refused(issuer: FakeIssuer, claims: dict[str, Any], code: str) -> None:
    token_claims = {k: v for k, v in issuer.claims(**claims).items() if v is not None}
    assert rejection(verifier_for(issuer), KEY.sign(token_claims))[0] == code


def test_clock_skew_within_the_leeway_is_tolerated(issuer: FakeIssuer) -> None:
    verifier = verifier_for(issuer, leeway_seconds=30)
    assert verifier.verify(KEY.sign(issuer.claims(exp=int(time.time()) - 10)))
    assert rejection(verifier, KEY.sign(issuer.claims(exp=int(time.time()) - 60)))[0] == "token_expired"


def test_a_token_signed_by_another_key_under_a_known_kid_is_refused(issuer: FakeIssuer) -> None:
    forger = SigningKey(rsa_key().private, KEY.kid, "RS256")
    code, message = rejection(verifier_for(issuer), forger.sign(issuer.claims()))
    assert code == "invalid_token" and "Signature verification failed" in message


@pytest.mark.parametrize(
    "forge",
    [lambda claims: unsigned_token(claims, KEY.kid), lambda claims: hs256_with_public_key(claims, KEY)],
    ids=["alg-none", "hs256-keyed-with-the-public-key"],
)
def test_unsigned_and_symmetric_tokens_are_refused_before_any_key_lookup(issuer: FakeIssuer, forge: Any) -> None:
    code, message = rejection(verifier_for(issuer), forge(issuer.claims()))
    assert code == "invalid_token" and "not accepted" in message
    assert issuer.fetches == []


def test_a_key_used_with_another_algorithm_than_its_own_is_refused(issuer: FakeIssuer) -> None:
    """The JWK says RS256; a token claiming PS256 with the same key must not verify."""
    ps256 = SigningKey(KEY.private, KEY.kid, "PS256")
    assert rejection(verifier_for(issuer), ps256.sign(issuer.claims()))[0] == "invalid_token"


def test_several_audiences_and_cognito_access_tokens_matched_by_client_id(issuer: FakeIssuer) -> None:
    verifier = verifier_for(issuer)
    assert verifier.verify(KEY.sign(issuer.claims(aud=["other", "second-client"])))
    access = {k: v for k, v in issuer.claims(client_id=AUDIENCE, token_use="access").items() if k != "aud"}
    assert verifier.verify(KEY.sign(access))["client_id"] == AUDIENCE
    access["client_id"] = "another-app"
    assert rejection(verifier, KEY.sign(access))[0] == "invalid_token"
    del access["client_id"]
    assert rejection(verifier, KEY.sign(access))[0] == "invalid_token"


def test_unknown_kid_refetches_at_most_once_per_interval_then_finds_the_rotated_key(issuer: FakeIssuer) -> None:
    verifier = verifier_for(issuer, refetch_interval_seconds=60)
    verifier.verify(KEY.sign(issuer.claims()))
    rotated = rsa_key("rsa-2")
    issuer.keys = [rotated]
    for _ in range(3):  # within the interval: refused without hammering the issuer
        assert rejection(verifier, rotated.sign(issuer.claims()))[0] == "invalid_token"
    assert issuer.fetches.count("/jwks") == 1
    eager = verifier_for(issuer, jwks_url=f"{issuer.url}/jwks", refetch_interval_seconds=0)
    issuer.keys = [KEY]
    eager.verify(KEY.sign(issuer.claims()))
    issuer.keys = [KEY, rotated]
    assert eager.verify(rotated.sign(issuer.claims()))["sub"] == "alice"


@pytest.mark.parametrize("fault", ["http-500", "timeout", "discovery-names-another-issuer"])
def test_a_failing_issuer_gives_401_keys_unavailable_never_an_error(issuer: FakeIssuer, fault: str) -> None:
    if fault == "http-500":
        issuer.failing = True
    elif fault == "timeout":
        issuer.delay = 2.0
    else:
        issuer.discovery_issuer = "https://elsewhere.example.com"
    verifier = verifier_for(issuer, http_timeout_seconds=0.3)
    # The slow issuer does answer, after 2 s, with the right keys: a refusal proves the timeout ended
    # the wait (no wall-clock bound, which a loaded machine could break).
    assert rejection(verifier, KEY.sign(issuer.claims()))[0] == "keys_unavailable"
    issuer.failing, issuer.delay, issuer.discovery_issuer = False, 0.0, None
    assert verifier.verify(KEY.sign(issuer.claims()))  # and recovers once the issuer does


def test_not_a_jwt_and_no_kid_are_refused(issuer: FakeIssuer) -> None:
    verifier = verifier_for(issuer)
    assert rejection(verifier, "abc.def.ghi")[0] == "invalid_token"
    no_kid = SigningKey(KEY.private, "", "RS256").sign(issuer.claims())
    assert rejection(verifier, no_kid)[0] == "invalid_token"


@pytest.mark.parametrize(
    "header, token",
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("abc", "abc")],
)
def test_bearer_header(header: str, token: str) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer a b", "Basic dXNlcjpwdw== extra"])
def test_bearer_header_refused(header: str) -> None:
    with pytest.raises(Unauthorized) as raised:
        bearer_token(header)
    assert raised.value.code == "missing_token"


def test_the_authorizer_allows_with_the_principal_or_the_verdict_and_routes_read_it(issuer: FakeIssuer) -> None:
    """What the route layer sees for a good and a refused token, as API Gateway would pass the context."""
    verifier = verifier_for(issuer, admin=AdminRule(group="admin"))
    good = authorizer_response(verifier, "Bearer " + KEY.sign(issuer.claims(groups=["admin"])))
    caller = principal_from_request({"authorizer": {**good.context, "principalId": good.principal_id}}, "jwt")
    assert caller.owner == f"{issuer_tag(issuer.url)}:alice" == good.principal_id
    assert caller.is_admin and caller.kind == "jwt"
    assert good.routes == ["*"]
    refused = authorizer_response(verifier, "Bearer " + KEY.sign(issuer.claims(exp=int(time.time()) - 600)))
    assert refused.routes == ["*"]  # an Allow: the 401 is ours, with our body, locally and on AWS
    with pytest.raises(Unauthorized) as raised:
        principal_from_request({"authorizer": refused.context}, "jwt")
    assert raised.value.code == "token_expired"


def test_a_cached_verdict_is_not_honoured_past_the_token_expiry(issuer: FakeIssuer) -> None:
    """API Gateway caches the authorizer's Allow per token for ttl_seconds; expiry is re-checked per request."""
    verifier = verifier_for(issuer, leeway_seconds=0)
    exp = int(time.time()) + 60
    context = authorizer_response(verifier, KEY.sign(issuer.claims(exp=exp))).context
    assert principal_from_request({"authorizer": context}, "jwt", now=exp - 1).owner.endswith(":alice")
    with pytest.raises(Unauthorized, match="expired"):
        principal_from_request({"authorizer": context}, "jwt", now=exp + 1)
