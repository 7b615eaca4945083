"""One immutable settings object, read from environment variables once per cold start.

Every stage sets these in .chalice/config.json; nothing here names a real bucket.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from chalicelib.errors import ConfigError
from chalicelib.formats import DECODERS_BY_CONTENT_TYPE, DEFAULT_CONTENT_TYPES, allowed_decoders
from chalicelib.imaging.profiles import ProfileSet, load_profiles
from chalicelib.imaging.specs import VariantSpec, parse_variants

if TYPE_CHECKING:
    from chalicelib.imaging.decode import DecodeLimits

MIB = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    input_bucket: str
    output_bucket: str
    table_name: str
    topic_arn: str
    profiles: ProfileSet
    allowed_content_types: tuple[str, ...]
    max_upload_bytes: int = 25 * MIB
    max_pixels: int = 50_000_000
    max_side: int = 12_000
    max_animation_pixels: int = 100_000_000
    upload_prefix: str = "uploads/"
    output_prefix: str = "processed/"
    upload_url_ttl: int = 900
    download_url_ttl: int = 3600
    processing_lease_seconds: int = 90
    output_cache_control: str = "public, max-age=31536000, immutable"
    output_sse: str = "AES256"
    kms_key_id: str | None = None
    output_base_url: str | None = None
    dedupe: bool = False
    blurhash_components: tuple[int, int] = (4, 3)

    @property
    def variants(self) -> tuple[VariantSpec, ...]:
        """The default profile's variants."""
        return self.profiles.profiles[self.profiles.default].variants

    def decode_limits(self) -> DecodeLimits:
        from chalicelib.imaging.decode import DecodeLimits  # Pillow: only when rendering

        return DecodeLimits(self.allowed_decoders, self.max_pixels, self.max_side, self.max_animation_pixels)

    @property
    def allowed_decoders(self) -> tuple[str, ...]:
        return allowed_decoders(self.allowed_content_types)

    def upload_key(self, image_id: str) -> str:
        """The only key a client may upload to. Filenames never reach S3 keys."""
        return f"{self.upload_prefix}{image_id}"

    def output_key(self, image_id: str, variant: str, extension: str) -> str:
        return f"{self.output_prefix}{image_id}/{variant}.{extension}"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build and validate; a bad value fails the cold start with the variable's name."""
        content_types = tuple(
            t.strip().lower()
            for t in env.get("ALLOWED_CONTENT_TYPES", ",".join(DEFAULT_CONTENT_TYPES)).split(",")
            if t.strip()
        )
        unknown = [t for t in content_types if t not in DECODERS_BY_CONTENT_TYPE]
        if unknown or not content_types:
            raise ConfigError(
                f"ALLOWED_CONTENT_TYPES: unknown type(s) {unknown}; known: {sorted(DECODERS_BY_CONTENT_TYPE)}"
            )
        profiles = load_profiles(env.get("PROFILES"), env.get("DEFAULT_PROFILE") or None)
        if env.get("VARIANTS"):
            profiles = profiles.with_default_variants(parse_variants(env["VARIANTS"]))
        sse = env.get("OUTPUT_SSE", "AES256")
        if sse not in ("AES256", "aws:kms"):
            raise ConfigError(f"OUTPUT_SSE: must be AES256 or aws:kms, got {sse!r}")
        settings = cls(
            input_bucket=_required(env, "INPUT_BUCKET"),
            output_bucket=_required(env, "OUTPUT_BUCKET"),
            table_name=_required(env, "TABLE_NAME"),
            topic_arn=_required(env, "TOPIC_ARN"),
            profiles=profiles,
            allowed_content_types=content_types,
            max_upload_bytes=_int(env, "MAX_UPLOAD_BYTES", 25 * MIB, 1),
            max_pixels=_int(env, "MAX_PIXELS", 50_000_000, 1),
            max_side=_int(env, "MAX_SIDE", 12_000, 1),
            max_animation_pixels=_int(env, "MAX_ANIMATION_PIXELS", 100_000_000, 1),
            upload_prefix=_prefix(env, "UPLOAD_PREFIX", "uploads/"),
            output_prefix=_prefix(env, "OUTPUT_PREFIX", "processed/"),
            upload_url_ttl=_int(env, "UPLOAD_URL_TTL_SECONDS", 900, 60),
            download_url_ttl=_int(env, "DOWNLOAD_URL_TTL_SECONDS", 3600, 60),
            processing_lease_seconds=_int(env, "PROCESSING_LEASE_SECONDS", 90, 5),
            output_cache_control=env.get("OUTPUT_CACHE_CONTROL", "public, max-age=31536000, immutable"),
            output_sse=sse,
            kms_key_id=env.get("KMS_KEY_ID") or None,
            output_base_url=_base_url(env.get("OUTPUT_BASE_URL", "")),
            dedupe=_flag(env, "DEDUPE"),
            blurhash_components=_components(env.get("BLURHASH_COMPONENTS", "4x3")),
        )
        settings.check_single_bucket_layout()
        return settings

    def check_single_bucket_layout(self) -> None:
        """One bucket for uploads and outputs is fine only if outputs can never look like uploads."""
        if self.input_bucket != self.output_bucket:
            return
        if self.output_prefix.startswith(self.upload_prefix) or self.upload_prefix.startswith(self.output_prefix):
            raise ConfigError(
                f"OUTPUT_PREFIX: with one bucket, {self.output_prefix!r} and UPLOAD_PREFIX {self.upload_prefix!r}"
                " must not contain each other, or outputs would trigger processing again"
            )


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name}: required environment variable is not set")
    return value


def _int(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}: must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigError(f"{name}: must be at least {minimum}, got {value}")
    return value


def _base_url(value: str) -> str | None:
    """OUTPUT_BASE_URL: stable public links (e.g. a CloudFront domain) instead of presigned GETs."""
    value = value.strip()
    if not value:
        return None
    if not value.startswith(("https://", "http://")):
        raise ConfigError(f"OUTPUT_BASE_URL: must start with https:// (or http:// locally), got {value!r}")
    return value.rstrip("/")


def _components(raw: str) -> tuple[int, int]:
    """BLURHASH_COMPONENTS like "4x3": 1-9 components across and down."""
    parts = raw.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and 1 <= int(p) <= 9 for p in parts):
        raise ConfigError(f"BLURHASH_COMPONENTS: must look like 4x3, each from 1 to 9, got {raw!r}")
    return int(parts[0]), int(parts[1])


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name}: must be true or false, got {raw!r}")


def _prefix(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, default)
    if not value.endswith("/") or value.startswith("/"):
        raise ConfigError(f"{name}: must be a key prefix ending in '/', got {value!r}")
    return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once (a warm Lambda reuses them)."""
    return Settings.from_env(os.environ)
