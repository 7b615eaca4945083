"""API_AUTH=jwt settings: which OIDC issuer to trust, for which audiences, and who is an admin.

Pure and cheap (no PyJWT): settings.py reads them and checks them at cold start, so a bad value fails
the deployment's first request with the variable's name instead of every request with a 401.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
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
    jwks_url: str | None  # None: discovered from the issuer's openid-configuration
    algorithms: tuple[str, ...]
    admin: AdminRule
    leeway_seconds: int  # clock skew tolerated on exp, nbf and iat
    http_timeout_seconds: float = 3.0  # discovery and JWKS fetches
    keys_max_age_seconds: int = 600  # a warm Lambda re-reads the JWKS this often (revoked keys drop out)
    refetch_interval_seconds: int = 60  # at most one JWKS refetch per interval for unknown `kid`s

    @property
    def discovery_url(self) -> str:
        return self.issuer.rstrip("/") + DISCOVERY_PATH


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
