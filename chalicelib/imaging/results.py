"""What rendering produces: plain data, no Pillow, so the pipeline and its tests can use it
without loading an image library."""

from __future__ import annotations

from dataclasses import dataclass

REENCODED, ORIGINAL_STRIPPED = "reencoded", "original_stripped"


@dataclass(frozen=True)
class SourceInfo:
    """What the upload turned out to be. Width/height are as displayed (after EXIF orientation)."""

    format: str
    width: int
    height: int
    bytes: int
    orientation: int


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


@dataclass(frozen=True)
class Rendering:
    source: SourceInfo
    variants: tuple[RenderedVariant, ...]
    placeholders: dict[str, str] | None = None  # ThumbHash, BlurHash, dominant colour, LQIP
