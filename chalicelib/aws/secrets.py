"""Secrets Manager: the stage's transform-link keys, read once per container.

The secret (created by the resources stack with a generated value) holds one signing secret per
version. Its AWSCURRENT version signs; AWSCURRENT and AWSPREVIOUS both verify, so a rotation
(`aws secretsmanager rotate-secret` or `put-secret-value`) moves links over without breaking the
ones handed out before it (docs: security, signed transform links). A version's id names its key.
"""

from __future__ import annotations

from typing import Any

from chalicelib.signing import SigningKeys

STAGES = ("AWSCURRENT", "AWSPREVIOUS")


def read_signing_keys(secretsmanager: Any, secret_id: str) -> SigningKeys:
    from botocore.exceptions import ClientError

    keys: list[str] = []
    for stage in STAGES:
        try:
            version = secretsmanager.get_secret_value(SecretId=secret_id, VersionStage=stage)
        except ClientError as error:
            if stage == "AWSPREVIOUS" and error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                break  # never rotated: one key
            raise
        key_id = str(version["VersionId"]).replace("-", "")[:32]
        keys.append(f"{key_id}:{version['SecretString']}")
    return SigningKeys.parse(",".join(keys), f"TRANSFORM_KEYS_SECRET ({secret_id})")
