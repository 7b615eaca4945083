"""API_AUTH=jwt settings: which OIDC issuer to trust, for which audiences, and who is an admin.

Pure and cheap (no PyJWT): access.py validates these at cold start, so a bad value fails the
deployment's first request with the variable's name instead of every request with a 401.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from chalicelib.auth.principal import AdminRule
from chalicelib.errors import ConfigError

# Asymmetric only: `none` and HS* are refused whatever a token's header says. HS* would let anyone
# holding the issuer's *public* key sign tokens (the classic key-confusion attack).
ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
DISCOVERY_PATH = "/.well-known/openid-configuration"


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    audiences: tuple[str, ...]
    jwks_url: str | None = None  # None: discovered from the issuer's openid-configuration
    algorithms: tuple[str, ...] = ALLOWED_ALGORITHMS
    admin: AdminRule = field(default_factory=AdminRule)
    leeway_seconds: int = 30  # clock skew tolerated on exp, nbf and iat
    http_timeout_seconds: float = 3.0  # discovery and JWKS fetches
    keys_max_age_seconds: int = 600  # a warm Lambda re-reads the JWKS this often (revoked keys drop out)
    refetch_interval_seconds: int = 60  # at most one JWKS refetch per interval for unknown `kid`s

    @property
    def discovery_url(self) -> str:
        return self.issuer.rstrip("/") + DISCOVERY_PATH

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OidcSettings:
        issuer = _url(env, "OIDC_ISSUER", required=True)
        assert issuer is not None
        audiences = tuple(a.strip() for a in env.get("OIDC_AUDIENCE", "").split(",") if a.strip())
        if not audiences:
            raise ConfigError(
                "OIDC_AUDIENCE: API_AUTH=jwt needs the audience (or Cognito app client id) tokens are for"
            )
        algorithms = tuple(a.strip() for a in env.get("OIDC_ALGORITHMS", "").split(",") if a.strip())
        refused = [a for a in algorithms if a not in ALLOWED_ALGORITHMS]
        if refused:
            raise ConfigError(f"OIDC_ALGORITHMS: {refused} not allowed; choose from {', '.join(ALLOWED_ALGORITHMS)}")
        admin = AdminRule(
            group=env.get("ADMIN_GROUP", "").strip(),
            scope=env.get("ADMIN_SCOPE", "").strip(),
            groups_claim=env.get("OIDC_GROUPS_CLAIM", "").strip() or "groups",
        )
        return cls(
            issuer=issuer,
            audiences=audiences,
            jwks_url=_url(env, "OIDC_JWKS_URL", required=False),
            algorithms=algorithms or ALLOWED_ALGORITHMS,
            admin=admin,
            leeway_seconds=_seconds(env, "OIDC_LEEWAY_SECONDS", 30, 300),
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_fetchable(url: str, name: str) -> str:
    """https only, except plain http to this machine (the local stack's issuer)."""
    parts = urlsplit(url)
    if not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"{name}: must be an absolute URL without query or fragment, got {url!r}")
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname)):
        return url
    raise ConfigError(f"{name}: must start with https:// (http:// only on 127.0.0.1 or localhost), got {url!r}")


def _url(env: Mapping[str, str], name: str, required: bool) -> str | None:
    value = env.get(name, "").strip()
    if not value:
        if required:
            raise ConfigError(f"{name}: API_AUTH=jwt needs it (e.g. https://YOUR_TENANT.auth0.com/)")
        return None
    return check_fetchable(value, name)


def _seconds(env: Mapping[str, str], name: str, default: int, maximum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) > maximum:
        raise ConfigError(f"{name}: must be a whole number of seconds from 0 to {maximum}, got {raw!r}")
    return int(raw)
