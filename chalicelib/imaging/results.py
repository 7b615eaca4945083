"""What rendering produces: plain data, no Pillow, so the pipeline and its tests can use it
without loading an image library."""

from __future__ import annotations

from dataclasses import dataclass

REENCODED, ORIGINAL_STRIPPED = "reencoded", "original_stripped"
# What a variant of an animated upload became (its output's `animation`; imaging/animation.py decides):
MOVING = "animated"  # an animation, every frame
POSTER = "poster"  # a still of its poster frame, as the variant asks (jpeg, png or "animate": false)
TRUNCATED = "truncated"  # a still: the animation is over the frame or work limit
LARGER = "larger_than_source"  # a still: the animation came out larger than the upload


@dataclass(frozen=True)
class SourceInfo:
    """What the upload turned out to be. Width/height are as displayed (after EXIF orientation)."""

    format: str
    width: int
    height: int
    bytes: int
    orientation: int
    frames: int = 1  # more: an animation
    duration_ms: int | None = None  # one play of an animation, when every frame was decoded
    loop: int | None = None  # how many times an animation plays, 0 for ever


@dataclass(frozen=True)
class RenderedVariant:
    name: str
    format: str
    content_type: str
    extension: str
    width: int
    height: int
    data: bytes
    method: str = REENCODED  # or ORIGINAL_STRIPPED: the source's own JPEG data, metadata removed
    quality: int | None = None  # the quality chosen by a target_ssim search, and the SSIM it reached
    ssim: float | None = None
    frames: int = 1
    animation: str | None = None  # of an animated upload: what this variant became (imaging/animation.py)


@dataclass(frozen=True)
class Rendering:
    source: SourceInfo
    variants: tuple[RenderedVariant, ...]
    placeholders: dict[str, str] | None = None  # ThumbHash, BlurHash, dominant colour, LQIP
    animation: str | None = None  # of an animated upload: animated, truncated or still (animation.summary)
