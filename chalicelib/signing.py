"""Signed transform links: an HMAC-SHA256 over (key id, image id, expiry) with a stage secret.

Pure (no AWS import): the secrets come in as a `SigningKeys`, read by settings.py from
TRANSFORM_KEYS locally or by services.py from the stage's Secrets Manager secret (its current and
previous versions) once per container. The first key signs; every key verifies, so a secret is
rotated by putting the new one first and dropping the old one once the links it signed have
expired (docs: security, signed transform links).

Width and format are not signed: a link is a template the client fills in, and what it may ask
for is bounded by the stage's ladder and caps (transforms.py), not by the signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from chalicelib.errors import ConfigError, Forbidden

_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
MIN_SECRET_BYTES = 32  # HMAC-SHA256 gains nothing from more; less is guessable
_SIGNATURE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # 32 bytes, base64url without padding
_EXPIRY = re.compile(r"^[0-9]{1,12}$")


@dataclass(frozen=True)
class SignedLink:
    """The query a transform link carries: when it expires (epoch s), which key signed it, the MAC."""

    expires: int
    key_id: str
    signature: str

    def query(self) -> str:
        return f"exp={self.expires}&kid={self.key_id}&sig={self.signature}"


@dataclass(frozen=True)
class SigningKeys:
    """Key id -> secret, in order: the first signs, all verify (the previous one during a rotation)."""

    secrets: tuple[tuple[str, bytes], ...]

    @classmethod
    def parse(cls, raw: str, where: str) -> SigningKeys:
        """`kid:secret,kid:secret` (secrets of at least 32 characters); a bad one fails naming `where`."""
        keys: list[tuple[str, bytes]] = []
        for item in (part.strip() for part in raw.split(",")):
            if not item:
                continue
            key_id, _, secret = item.partition(":")
            if not _KEY_ID.match(key_id) or len(secret) < MIN_SECRET_BYTES:
                raise ConfigError(
                    f"{where}: each key is `id:secret`, the id 1-32 of A-Z a-z 0-9 _ -, the secret at least"
                    f" {MIN_SECRET_BYTES} characters (got an item starting {item[:8]!r})"
                )
            if key_id in dict(keys):
                raise ConfigError(f"{where}: key id {key_id!r} is given twice")
            keys.append((key_id, secret.encode()))
        if not keys:
            raise ConfigError(f"{where}: no keys")
        return cls(tuple(keys))

    @property
    def current(self) -> str:
        return self.secrets[0][0]

    def sign(self, image_id: str, expires: int) -> SignedLink:
        key_id, secret = self.secrets[0]
        return SignedLink(expires, key_id, _mac(secret, key_id, image_id, expires))

    def verify(self, image_id: str, params: Mapping[str, str] | None, now: float) -> None:
        """Forbidden(invalid_signature) unless `params` hold a link this stage signed for `image_id`
        with a key it still has; Forbidden(link_expired) for one past its expiry."""
        params = params or {}
        expires, key_id, signature = params.get("exp", ""), params.get("kid", ""), params.get("sig", "")
        secret = dict(self.secrets).get(key_id)
        if not (_EXPIRY.match(expires) and _SIGNATURE.match(signature)) or secret is None:
            raise Forbidden("This transform link is not one this API signed.", "invalid_signature")
        if not hmac.compare_digest(_mac(secret, key_id, image_id, int(expires)), signature):
            raise Forbidden("This transform link is not one this API signed.", "invalid_signature")
        if int(expires) <= now:
            raise Forbidden("This transform link has expired: get a fresh one from GET /images/{id}.", "link_expired")


def _mac(secret: bytes, key_id: str, image_id: str, expires: int) -> str:
    message = f"imgpress-transform\n{key_id}\n{image_id}\n{expires}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def link_expiry(now: float, ttl_seconds: int, granularity: int = 3600) -> int:
    """`now + ttl`, rounded up to a whole `granularity`: every GET within that hour hands out the same
    link, so pages and caches that embed it stay stable."""
    return math.ceil((now + ttl_seconds) / granularity) * granularity
