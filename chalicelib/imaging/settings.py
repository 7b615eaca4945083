"""What the image core needs to know: profiles and limits. No AWS names here.

Read from the same environment variables as the Lambda, so `imgpress compress` and the
benchmarks render exactly what a deployed stage with those variables would.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.errors import ConfigError
from chalicelib.formats import DECODERS_BY_CONTENT_TYPE, DEFAULT_CONTENT_TYPES, allowed_decoders
from chalicelib.imaging.profiles import ProfileSet, load_profiles
from chalicelib.imaging.specs import VariantSpec, parse_variants

if TYPE_CHECKING:
    from chalicelib.imaging.decode import DecodeLimits

MIB = 1024 * 1024
# Lambda allocates CPU in proportion to memory: one full vCPU at 1769 MB, two from 3538 MB.
MB_PER_VCPU = 1769
# A render may use the function's memory less what the handler holds besides (the runtime, the app
# and its clients, the upload's bytes); outside Lambda, as on the stage's 1769 MB upload handler.
HANDLER_RESERVE_MB = 256
RENDER_MEMORY_MB = MB_PER_VCPU - HANDLER_RESERVE_MB


@dataclass(frozen=True)
class ImagingSettings:
    profiles: ProfileSet
    allowed_content_types: tuple[str, ...]
    max_upload_bytes: int = 25 * MIB
    max_pixels: int = 50_000_000
    max_side: int = 12_000
    max_animation_pixels: int = 100_000_000
    blurhash_components: tuple[int, int] = (4, 3)
    encode_threads: int = 1  # > 1: variants are encoded in parallel (decision 0020)
    render_memory_mb: int = RENDER_MEMORY_MB  # what one render may allocate (docs: sizing)

    @property
    def variants(self) -> tuple[VariantSpec, ...]:
        """The default profile's variants."""
        return self.profiles.profiles[self.profiles.default].variants

    @property
    def allowed_decoders(self) -> tuple[str, ...]:
        return allowed_decoders(self.allowed_content_types)

    def decode_limits(self) -> DecodeLimits:
        from chalicelib.imaging.decode import DecodeLimits  # Pillow: only when rendering

        return DecodeLimits(
            self.allowed_decoders,
            self.max_pixels,
            self.max_side,
            self.max_animation_pixels,
            self.render_memory_mb * MIB,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ImagingSettings:
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
        return cls(
            profiles=profiles,
            allowed_content_types=content_types,
            max_upload_bytes=env_int(env, "MAX_UPLOAD_BYTES", 25 * MIB, 1),
            max_pixels=env_int(env, "MAX_PIXELS", 50_000_000, 1),
            max_side=env_int(env, "MAX_SIDE", 12_000, 1),
            max_animation_pixels=env_int(env, "MAX_ANIMATION_PIXELS", 100_000_000, 1),
            blurhash_components=_components(env.get("BLURHASH_COMPONENTS", "4x3")),
            encode_threads=encode_threads(env),
            render_memory_mb=env_int(env, "RENDER_MEMORY_MB", max(_function_mb(env) - HANDLER_RESERVE_MB, 0), 64),
        )


def env_int(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
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


def encode_threads(env: Mapping[str, str]) -> int:
    """ENCODE_THREADS if set; on Lambda, the whole vCPUs its memory size buys (1769 MB each, as many
    as the machine shows); elsewhere 1, so local tools and the benchmarks render as they always did."""
    if env.get("ENCODE_THREADS"):
        return env_int(env, "ENCODE_THREADS", 1, 1)
    return max(1, min(_function_mb(env) // MB_PER_VCPU, os.cpu_count() or 1))


def _function_mb(env: Mapping[str, str]) -> int:
    """The Lambda function's memory size; elsewhere, one vCPU's worth (the upload handler's size)."""
    memory = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
    return int(memory) if memory.isdigit() else MB_PER_VCPU


def _components(raw: str) -> tuple[int, int]:
    """BLURHASH_COMPONENTS like "4x3": 1-9 components across and down."""
    parts = raw.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and 1 <= int(p) <= 9 for p in parts):
        raise ConfigError(f"BLURHASH_COMPONENTS: must look like 4x3, each from 1 to 9, got {raw!r}")
    return int(parts[0]), int(parts[1])
