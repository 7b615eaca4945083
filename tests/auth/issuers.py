"""Signing keys made in the test, a JWKS/discovery server on loopback whose keys can rotate or fail, tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

AUDIENCE = "imgpress-test"


@dataclass
class SigningKey:
    private: Any
    kid: str
    alg: str

    def jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.alg)
        return {
            **json.loads(algorithm.to_jwk(self.private.public_key())),
            "kid": self.kid,
            "alg": self.alg,
            "use": "sig",
        }

    def public_pem(self) -> bytes:
        return bytes(
            self.private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(claims, self.private, algorithm=self.alg, headers={"kid": self.kid, **header})


def rsa_key(kid: str = "rsa-1", alg: str = "RS256") -> SigningKey:
    return SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=2048), kid, alg)


def ec_key(kid: str = "ec-1") -> SigningKey:
    return SigningKey(ec.generate_private_key(ec.SECP256R1()), kid, "ES256")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(claims: dict[str, Any], kid: str) -> str:
    """`alg: none`, which no library of ours would write."""
    header = b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    return f"{header}.{b64url(json.dumps(claims).encode())}."


def hs256_with_public_key(claims: dict[str, Any], key: SigningKey) -> str:
    """The key-confusion forgery: HMAC-SHA256 keyed with the issuer's public key (PEM), which anyone has."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    payload = b64url(json.dumps(claims).encode())
    signature = hmac.new(key.public_pem(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(signature)}"


@dataclass
class FakeIssuer:
    """Discovery + JWKS over real HTTP. `keys` may be replaced (rotation); `failing` answers 500."""

    url: str = ""
    keys: list[SigningKey] = field(default_factory=list)
    failing: bool = False
    delay: float = 0.0
    discovery_issuer: str | None = None  # what discovery claims as issuer (default: url)
    fetches: list[str] = field(default_factory=list)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        return {"iss": self.url, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 600, **overrides}


@contextmanager
def fake_issuer(*keys: SigningKey) -> Iterator[FakeIssuer]:
    state = FakeIssuer(keys=list(keys))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            state.fetches.append(self.path)
            time.sleep(state.delay)
            if state.failing:
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path == "/.well-known/openid-configuration":
                body: dict[str, Any] = {"issuer": state.discovery_issuer or state.url, "jwks_uri": f"{state.url}/jwks"}
            else:
                body = {"keys": [key.jwk() for key in state.keys]}
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
