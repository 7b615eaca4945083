"""SSM Parameter Store: the stage's transform-link keys, a SecureString read once per container."""

from __future__ import annotations

from typing import Any

from chalicelib.signing import SigningKeys


def read_signing_keys(ssm: Any, parameter: str) -> SigningKeys:
    """The parameter's value is TRANSFORM_KEYS' format (`id:secret,...`, the first signs)."""
    value = ssm.get_parameter(Name=parameter, WithDecryption=True)["Parameter"]["Value"]
    return SigningKeys.parse(str(value), f"TRANSFORM_KEYS_PARAMETER ({parameter})")
