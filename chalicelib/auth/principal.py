"""The caller of a request as one typed `Principal`, whatever the stage's API_AUTH.

Pure: no boto3, no PyJWT. It reads what API Gateway (or `chalice local`) put into
`app.current_request.context`, so routes can use the principal as the image owner.

Owner format (stable, and never shared by two identity sources):
- jwt and cognito: `<issuer tag>:<sub>`, the tag being the first 12 hex digits of the SHA-256 of the
  issuer URL (trailing `/` dropped). Two issuers' `sub`s cannot collide, and a Cognito pool gives the
  same owner whether API Gateway's Cognito authorizer or our JWT authorizer checked the token.
- api_key: `apikey:<API Gateway key id>`; iam: `iam:<caller ARN>`; none: `anonymous`.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from chalicelib.errors import Unauthorized

PrincipalKind = Literal["jwt", "cognito", "api_key", "iam", "anonymous"]
ANONYMOUS_OWNER = "anonymous"


@dataclass(frozen=True)
class Principal:
    owner: str
    is_admin: bool
    kind: PrincipalKind


@dataclass(frozen=True)
class AdminRule:
    """ADMIN_GROUP matched against the groups claim, or ADMIN_SCOPE against `scope`/`scp`; either makes an admin."""

    group: str = ""
    scope: str = ""
    groups_claim: str = "groups"

    def matches(self, claims: Mapping[str, Any]) -> bool:
        if self.group and self.group in claim_values(claims.get(self.groups_claim)):
            return True
        granted = claim_values(claims.get("scope")) | claim_values(claims.get("scp"))
        return bool(self.scope) and self.scope in granted


def claim_values(value: Any) -> set[str]:
    """A list claim however it arrives: a JSON list, "a b" (scope), "a,b" or "[a, b]" (API Gateway's claims)."""
    if isinstance(value, list | tuple):
        return {str(item) for item in value}
    if isinstance(value, str):
        return {part for part in re.split(r"[\s,]+", value.strip().strip("[]")) if part}
    return set()


def issuer_tag(issuer: str) -> str:
    return hashlib.sha256(issuer.rstrip("/").encode()).hexdigest()[:12]


def token_owner(issuer: str, subject: str) -> str:
    return f"{issuer_tag(issuer)}:{subject}"


def identity_claim(claims: Mapping[str, Any], name: str) -> str:
    """`sub` or `iss` as a non-blank string: an empty subject names nobody, and every token that
    carries one would share a single owner. Else Unauthorized (a 401)."""
    value = claims.get(name)
    if not isinstance(value, str) or not value.strip():
        raise Unauthorized(f"the token's `{name}` claim is missing or empty", "invalid_token")
    return value


# What the JWT authorizer puts into the request context (API Gateway passes only flat strings).
CONTEXT_OWNER, CONTEXT_ADMIN, CONTEXT_EXPIRES = "owner", "is_admin", "expires_at"
CONTEXT_REJECTED, CONTEXT_REASON = "rejected", "reason"


def principal_from_request(
    context: Mapping[str, Any] | None, mode: str, admin: AdminRule | None = None, now: float | None = None
) -> Principal:
    """The caller, from the request context of a stage whose API_AUTH is `mode`. Raises Unauthorized.

    `admin` recognises admins among Cognito users (the JWT authorizer has decided `is_admin` already).
    """
    context = context or {}
    authorizer: Mapping[str, Any] = context.get("authorizer") or {}
    identity: Mapping[str, Any] = context.get("identity") or {}
    if mode == "none":
        return Principal(ANONYMOUS_OWNER, False, "anonymous")
    if mode == "jwt":
        return _jwt_principal(authorizer, time.time() if now is None else now)
    if mode == "cognito":
        claims: Mapping[str, Any] = authorizer.get("claims") or {}
        if not claims:
            raise Unauthorized("the request carries no verified Cognito claims", "missing_token")
        owner = token_owner(identity_claim(claims, "iss"), identity_claim(claims, "sub"))
        return Principal(owner, (admin or AdminRule()).matches(claims), "cognito")
    if mode == "api_key":
        if not identity.get("apiKeyId"):
            raise Unauthorized("the request carries no API key identity", "missing_token")
        return Principal(f"apikey:{identity['apiKeyId']}", False, "api_key")
    if mode == "iam":
        caller = identity.get("userArn") or identity.get("caller")
        if not caller:
            raise Unauthorized("the request carries no IAM caller", "missing_token")
        return Principal(f"iam:{caller}", False, "iam")
    raise ValueError(f"unknown API_AUTH mode {mode!r}")


def _jwt_principal(authorizer: Mapping[str, Any], now: float) -> Principal:
    """The JWT authorizer never denies at the gateway: a refused token arrives here as `rejected` (see docs/security.md)."""
    if authorizer.get(CONTEXT_REJECTED):
        raise Unauthorized(str(authorizer.get(CONTEXT_REASON) or "invalid token"), str(authorizer[CONTEXT_REJECTED]))
    owner = authorizer.get(CONTEXT_OWNER)
    if not owner:
        raise Unauthorized("no bearer token was verified for this request", "missing_token")
    # API Gateway caches the authorizer's answer per token (ttl_seconds): expiry is re-checked on every request.
    if float(authorizer.get(CONTEXT_EXPIRES) or 0) <= now:
        raise Unauthorized("the token has expired", "token_expired")
    return Principal(str(owner), str(authorizer.get(CONTEXT_ADMIN)).lower() == "true", "jwt")
