"""A local OIDC issuer for the local stack with API_AUTH=jwt. Dev tooling: never shipped, loopback only.

Serves, on its own port:
  GET  /.well-known/openid-configuration   discovery (what the app's JWT authorizer reads first)
  GET  /jwks.json                          the public signing key
  GET  /authorize                          authorization code + PKCE (S256): a form that signs in a
  POST /authorize                          named user, no password (dev only), and redirects back
  POST /token                              code exchange, checking code_verifier

The RSA signing key is made once and kept in .devstack/issuer/ (gitignored), with issuer.json
naming the running issuer's URL and audience, so `python -m devstack.token alice` (`make token`)
mints tokens the running stack accepts, from another process.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from chalicelib.auth.oidc import is_loopback

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = Path(os.environ.get("DEVSTACK_ISSUER_DIR") or ROOT / ".devstack" / "issuer")
AUDIENCE = "imgpress-local"  # also the one client_id /authorize accepts
ADMIN_GROUP = "admin"
ALGORITHM = "RS256"
CODE_SECONDS = 60
USERNAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_or_create_key(state_dir: Path) -> rsa.RSAPrivateKey:
    """The issuer's key, made on first use (mode 0600), so tokens outlive a restart of the stack."""
    path = state_dir / "signing-key.pem"
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    state_dir.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    return key


def public_jwk(key: rsa.RSAPrivateKey) -> dict[str, str]:
    """The public key as a JWK whose kid is its RFC 7638 thumbprint."""
    numbers = key.public_key().public_numbers()
    e = b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big"))
    n = b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big"))
    thumbprint = b64url(
        hashlib.sha256(json.dumps({"e": e, "kty": "RSA", "n": n}, separators=(",", ":")).encode()).digest()
    )
    return {"kty": "RSA", "use": "sig", "alg": ALGORITHM, "kid": thumbprint, "n": n, "e": e}


def mint(
    key: rsa.RSAPrivateKey,
    issuer: str,
    audience: str,
    user: str,
    groups: Sequence[str] = (),
    ttl_seconds: int = 3600,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """A signed token for `user` (its `sub`), valid from now for `ttl_seconds` (negative: already expired)."""
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": user,
        "preferred_username": user,
        "groups": list(groups),
        "scope": "openid profile",
        "iat": now,
        "exp": now + ttl_seconds,
        **(extra or {}),
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": public_jwk(key)["kid"]})


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    user: str
    groups: list[str]
    nonce: str | None
    expires_at: float = field(default_factory=lambda: time.monotonic() + CODE_SECONDS)


class LocalIssuer:
    """`start()` serves on http://127.0.0.1:<port> (`url`); `stop()` ends it. Tokens: `mint(user, ...)`."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, state_dir: Path = STATE_DIR, audience: str = AUDIENCE
    ) -> None:
        if not is_loopback(host):
            raise ValueError(f"the local issuer signs in anyone without a password: loopback only, not {host!r}")
        self.host, self.port, self.state_dir, self.audience = host, port, state_dir, audience
        self.key = load_or_create_key(state_dir)
        self._grants: dict[str, _Grant] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def app_env(self) -> dict[str, str]:
        """What the app needs to trust this issuer (API_AUTH=jwt)."""
        return {
            "OIDC_ISSUER": self.url,
            "OIDC_AUDIENCE": self.audience,
            "OIDC_CLIENT_ID": self.audience,  # the upload page signs in as this public client
            "OIDC_GROUPS_CLAIM": "groups",
            "ADMIN_GROUP": ADMIN_GROUP,
        }

    def start(self) -> LocalIssuer:
        issuer = self

        class Handler(_IssuerHandler):
            owner = issuer

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self.port = int(self._server.server_address[1])
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "issuer.json").write_text(json.dumps({"issuer": self.url, "audience": self.audience}) + "\n")
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="oidc-issuer", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def mint(
        self, user: str, groups: Sequence[str] = (), ttl_seconds: int = 3600, extra: Mapping[str, Any] | None = None
    ) -> str:
        return mint(self.key, self.url, self.audience, user, groups, ttl_seconds, extra)

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/jwks.json",
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "scopes_supported": ["openid", "profile"],
        }

    def authorization_error(self, params: Mapping[str, str]) -> str | None:
        """Why an authorization request is refused (shown on the page, never redirected: dev only)."""
        if params.get("response_type") != "code":
            return "response_type must be code"
        if params.get("client_id") != self.audience:
            return f"client_id must be {self.audience}"
        redirect = urlsplit(params.get("redirect_uri", ""))
        if redirect.scheme not in ("http", "https") or not is_loopback(redirect.hostname or ""):
            return "redirect_uri must be a page on 127.0.0.1 or localhost"
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            return "PKCE is required: code_challenge with code_challenge_method=S256"
        return None

    def grant_code(self, params: Mapping[str, str], user: str, groups: list[str]) -> str:
        code = secrets.token_urlsafe(24)
        grant = _Grant(
            params["client_id"], params["redirect_uri"], params["code_challenge"], user, groups, params.get("nonce")
        )
        with self._lock:
            self._grants[code] = grant
        return code

    def exchange(self, form: Mapping[str, str]) -> dict[str, Any]:
        """The token endpoint: a code is good once, within CODE_SECONDS, for its client, redirect and verifier."""
        if form.get("grant_type") != "authorization_code":
            raise _OAuthError("unsupported_grant_type", "only authorization_code")
        with self._lock:
            grant = self._grants.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "")
        if grant is None or grant.expires_at < time.monotonic():
            raise _OAuthError("invalid_grant", "unknown, used or expired code")
        if form.get("client_id") != grant.client_id or form.get("redirect_uri") != grant.redirect_uri:
            raise _OAuthError("invalid_grant", "client_id or redirect_uri differ from the authorization request")
        if not 43 <= len(verifier) <= 128 or b64url(hashlib.sha256(verifier.encode()).digest()) != grant.challenge:
            raise _OAuthError("invalid_grant", "code_verifier does not match code_challenge")
        nonce = {"nonce": grant.nonce} if grant.nonce else {}
        access = self.mint(grant.user, grant.groups)
        return {
            "access_token": access,
            "id_token": self.mint(grant.user, grant.groups, extra=nonce),
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": "openid profile",
        }


class _OAuthError(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error, self.description = error, description


SIGN_IN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>imgpress local sign-in</title></head>
<body><h1>imgpress local sign-in</h1><p>Development issuer: no password, anyone on this machine can sign in as anyone.</p>
<form method="post" action="/authorize">{hidden}
<p><label>User <input name="username" required pattern="[A-Za-z0-9._@-]{{1,64}}" autofocus></label></p>
<p><label>Groups (comma-separated) <input name="groups"></label></p>
<p><label><input type="checkbox" name="admin" value="1"> admin</label></p>
<p><button type="submit">Sign in</button></p></form></body></html>"""


class _IssuerHandler(BaseHTTPRequestHandler):
    owner: LocalIssuer

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: the stack logs its own requests

    def do_OPTIONS(self) -> None:
        self._send(HTTPStatus.NO_CONTENT, b"", "text/plain", {"Access-Control-Allow-Headers": "Content-Type"})

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path == "/.well-known/openid-configuration":
            self._json(HTTPStatus.OK, self.owner.discovery())
        elif path == "/jwks.json":
            self._json(HTTPStatus.OK, {"keys": [public_jwk(self.owner.key)]})
        elif path == "/authorize":
            params = {k: v[0] for k, v in parse_qs(query).items()}
            problem = self.owner.authorization_error(params)
            if problem:
                self._send(HTTPStatus.BAD_REQUEST, html.escape(problem).encode(), "text/plain; charset=utf-8")
                return
            hidden = "".join(
                f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in params.items()
            )
            self._send(HTTPStatus.OK, SIGN_IN_PAGE.format(hidden=hidden).encode(), "text/html; charset=utf-8")
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": "not_found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if self.path == "/authorize":
            self._sign_in(form)
        elif self.path == "/token":
            try:
                self._json(HTTPStatus.OK, self.owner.exchange(form), {"Cache-Control": "no-store"})
            except _OAuthError as error:
                self._json(HTTPStatus.BAD_REQUEST, {"error": error.error, "error_description": error.description})
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": "not_found"})

    def _sign_in(self, form: dict[str, str]) -> None:
        problem = self.owner.authorization_error(form)
        user = form.get("username", "")
        if problem or not USERNAME.match(user):
            self._send(HTTPStatus.BAD_REQUEST, html.escape(problem or "bad user name").encode(), "text/plain")
            return
        groups = [g.strip() for g in form.get("groups", "").split(",") if g.strip()]
        if form.get("admin"):
            groups.append(ADMIN_GROUP)
        code = self.owner.grant_code(form, user, groups)
        answer = {"code": code, **({"state": form["state"]} if "state" in form else {})}
        separator = "&" if "?" in form["redirect_uri"] else "?"
        self.send_response(HTTPStatus.FOUND)
        self.send_header("Location", f"{form['redirect_uri']}{separator}{urlencode(answer)}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _json(self, status: HTTPStatus, body: Any, headers: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), "application/json", headers)

    def _send(
        self, status: HTTPStatus, body: bytes, content_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        origin = self.headers.get("Origin", "")
        if is_loopback(urlsplit(origin).hostname or ""):  # pages of the local stack may call discovery and /token
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Vary", "Origin")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def issuer_for_local_stack(env: Mapping[str, str], api_port: int) -> LocalIssuer | None:
    """Started by `python -m devstack` when API_AUTH=jwt and no OIDC_ISSUER is given: on ISSUER_PORT,
    by default the API's port + 1 (a fixed URL, so minted tokens outlive a restart)."""
    if env.get("API_AUTH") != "jwt" or env.get("OIDC_ISSUER"):
        return None
    return LocalIssuer(port=int(env.get("ISSUER_PORT") or api_port + 1)).start()
