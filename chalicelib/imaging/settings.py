"""What the image core needs to know: profiles and limits. No AWS names here.

Built by chalicelib/settings.py from the Lambda's environment variables (`imaging_settings`), so
`imgpress compress` and the benchmarks render exactly what a deployed stage with them would.
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.formats import allowed_decoders
from chalicelib.imaging.limits import MIB, DecodeLimits
from chalicelib.imaging.profiles import ProfileSet
from chalicelib.imaging.specs import VariantSpec


@dataclass(frozen=True)
class ImagingSettings:
    profiles: ProfileSet
    allowed_content_types: tuple[str, ...]
    max_upload_bytes: int
    max_pixels: int
    max_side: int
    max_animation_pixels: int  # frames x width x height, for every animated format
    max_animation_frames: int  # more, and an animation's variants are stills
    max_animation_work: int  # frames x output pixels of the moving variants, at most
    blurhash_components: tuple[int, int]
    encode_threads: int  # > 1: variants are encoded in parallel (decision 0020)
    render_memory_mb: int  # what one render may allocate (RENDER_MEMORY_MB; docs: sizing)

    @property
    def variants(self) -> tuple[VariantSpec, ...]:
        """The default profile's variants."""
        return self.profiles.profiles[self.profiles.default].variants

    @property
    def allowed_decoders(self) -> tuple[str, ...]:
        return allowed_decoders(self.allowed_content_types)

    def decode_limits(self) -> DecodeLimits:
        return DecodeLimits(
            self.allowed_decoders,
            self.max_pixels,
            self.max_side,
            self.max_animation_pixels,
            self.render_memory_mb * MIB,
            self.max_animation_frames,
            self.max_animation_work,
        )
