"""Variant specifications: what to produce from each upload, parsed from JSON config.

Pure data and validation, no Pillow: settings are parsed at cold start before any image work.
Every error names the offending field, e.g. `PROFILES.profiles.web800.variants[0].quality`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.errors import ConfigError

ASSETS = Path(__file__).resolve().parent.parent / "assets"  # watermark images shipped with the code
OUTPUT_FORMATS = ("jpeg", "webp", "avif", "png", "same")
ANIMATED_FORMATS = ("webp", "avif", "same")  # what can move; jpeg and png variants of an animation are stills
DEFAULT_QUALITY = {"jpeg": 82, "webp": 80, "avif": 60, "png": 100}
FITS = ("contain", "cover")
CROPS = ("centre", "entropy")
POSITIONS = ("top-left", "top", "top-right", "left", "centre", "right", "bottom-left", "bottom", "bottom-right")
_VARIANT_KEYS = {
    "name",
    "max",
    "width",
    "height",
    "scale",
    "format",
    "quality",
    "progressive",
    "effort",
    "fit",
    "crop",
    "watermark",
    "strip",
    "keep_icc",
    "lossless",
    "background",
    "never_larger",
    "target_ssim",
    "animate",
    "poster_frame",
    "max_frames",
}
_WATERMARK_KEYS = {"text", "image", "position", "margin", "opacity", "scale", "min_size"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")

DEFAULT_VARIANTS_JSON = json.dumps(
    [
        {"name": "web", "max": 2048, "format": "webp", "quality": 80},
        {"name": "thumb", "max": 320, "format": "webp", "quality": 75, "animate": False},
    ]
)


@dataclass(frozen=True)
class WatermarkSpec:
    """Text, or a PNG shipped in chalicelib/assets/, drawn over outputs at least `min_size` px long."""

    text: str | None = None
    image: str | None = None
    position: str = "bottom-right"
    margin: float = 0.02  # of the output's shorter side
    opacity: float = 0.5
    scale: float = 0.2  # watermark width as a fraction of the output width
    min_size: int = 300


@dataclass(frozen=True)
class VariantSpec:
    """One output. Exactly one of a bounding box (max_width/max_height) or a scale percentage.

    Images are never enlarged. `fit="cover"` fills the whole width x height box and crops the
    overflow (centre, or the most detailed region with `crop="entropy"`).
    `effort` trades encode time for bytes (WebP method 0-6, AVIF speed 10 - effort, PNG level effort + 2).
    """

    name: str
    format: str
    max_width: int | None = None
    max_height: int | None = None
    scale_percent: float | None = None
    quality: int | None = None
    progressive: bool = False
    effort: int = 4
    fit: str = "contain"
    crop: str = "centre"
    watermark: WatermarkSpec | None = None
    strip: bool = True
    keep_icc: bool = False
    lossless: bool = False
    background: tuple[int, int, int] = (255, 255, 255)
    never_larger: bool = False
    target_ssim: float | None = None  # instead of a fixed quality: search (<= 3 encodes) for this SSIM
    animate: bool = True  # an animated upload moves in this variant (webp, avif, same), within the limits
    poster_frame: int = 0  # the frame a still of an animated upload shows (the last, if it has fewer)
    max_frames: int | None = None  # this variant's own frame limit (None: the stage's MAX_ANIMATION_FRAMES)

    def resize_size(self, width: int, height: int) -> tuple[int, int]:
        """Size to resample an upright width x height source to, before any crop."""
        if self.scale_percent is not None:
            factor = self.scale_percent / 100.0
        elif self.fit == "cover":
            factor = min(max((self.max_width or width) / width, (self.max_height or height) / height), 1.0)
        else:
            factor = min((self.max_width or width) / width, (self.max_height or height) / height, 1.0)
        return max(1, round(width * factor)), max(1, round(height * factor))

    def target_size(self, width: int, height: int) -> tuple[int, int]:
        """Final output size for an upright width x height source."""
        resized = self.resize_size(width, height)
        if self.fit != "cover":
            return resized
        return min(resized[0], self.max_width or resized[0]), min(resized[1], self.max_height or resized[1])

    @property
    def moves(self) -> bool:
        """Whether an animated upload may stay animated in this variant (limits permitting)."""
        return self.animate and self.format in ANIMATED_FORMATS

    def quality_for(self, output_format: str) -> int:
        return self.quality if self.quality is not None else DEFAULT_QUALITY[output_format]


def _number(raw: dict[str, Any], key: str, where: str, low: float, high: float, integer: bool = True) -> Any:
    value = raw.get(key)
    if value is None:
        return None
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{where}.{key}: must be {kind} from {low} to {high}, got {value!r}")
    return value


def _bool(raw: dict[str, Any], key: str, where: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.{key}: must be true or false, got {value!r}")
    return value


def _choice(raw: dict[str, Any], key: str, where: str, choices: tuple[str, ...], default: str) -> str:
    value = raw.get(key, default)
    if value not in choices:
        raise ConfigError(f"{where}.{key}: must be one of {list(choices)}, got {value!r}")
    return str(value)


def _unknown(raw: dict[str, Any], known: set[str], where: str) -> None:
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")


def parse_watermark(raw: Any, where: str) -> WatermarkSpec:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be an object")
    _unknown(raw, _WATERMARK_KEYS, where)
    text, image = raw.get("text"), raw.get("image")
    if (text is None) == (image is None):
        raise ConfigError(f"{where}: give exactly one of text or image")
    if text is not None and (not isinstance(text, str) or not text.strip() or len(text) > 200):
        raise ConfigError(f"{where}.text: must be a non-empty string of at most 200 characters")
    if image is not None and (not isinstance(image, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+\.png", image)):
        raise ConfigError(f"{where}.image: must be the file name of a PNG in chalicelib/assets/, got {image!r}")
    if image is not None and not (ASSETS / image).is_file():
        raise ConfigError(f"{where}.image: {image!r} is not in chalicelib/assets/")
    defaults = WatermarkSpec()
    margin = _number(raw, "margin", where, 0, 0.5, integer=False)
    opacity = _number(raw, "opacity", where, 0.05, 1, integer=False)
    scale = _number(raw, "scale", where, 0.01, 1, integer=False)
    min_size = _number(raw, "min_size", where, 0, 20000)
    return WatermarkSpec(
        text=text,
        image=image,
        position=_choice(raw, "position", where, POSITIONS, defaults.position),
        margin=defaults.margin if margin is None else float(margin),
        opacity=defaults.opacity if opacity is None else float(opacity),
        scale=defaults.scale if scale is None else float(scale),
        min_size=defaults.min_size if min_size is None else min_size,
    )


def parse_variant(raw: Any, where: str) -> VariantSpec:
    """Validate one variant object; errors name the offending field."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be an object")
    _unknown(raw, _VARIANT_KEYS, where)
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{where}.name: must be 1-64 letters, digits, - or _, got {name!r}")
    fmt = _choice(raw, "format", where, OUTPUT_FORMATS, "webp")
    size = _number(raw, "max", where, 1, 20000)
    width = _number(raw, "width", where, 1, 20000) or size
    height = _number(raw, "height", where, 1, 20000) or size
    scale = _number(raw, "scale", where, 0.1, 100, integer=False)
    if scale is not None and (width or height):
        raise ConfigError(f"{where}: give either a box (max/width/height) or scale, not both")
    if scale is None and not (width or height):
        raise ConfigError(f"{where}: needs a box (max, width or height) or a scale")
    fit = _choice(raw, "fit", where, FITS, "contain")
    if fit == "cover" and not (width and height):
        raise ConfigError(f"{where}.fit: cover needs both width and height (or max)")
    lossless = _bool(raw, "lossless", where, False)
    if lossless and fmt not in ("webp", "png", "same"):
        raise ConfigError(f"{where}.lossless: only for webp or png, not {fmt}")
    background = raw.get("background", "#ffffff")
    if not isinstance(background, str) or not _COLOUR.match(background):
        raise ConfigError(f'{where}.background: must be a colour like "#ffffff", got {background!r}')
    effort = _number(raw, "effort", where, 0, 6)
    target_ssim = _number(raw, "target_ssim", where, 0.5, 0.999, integer=False)
    if target_ssim is not None and (raw.get("quality") is not None or lossless or fmt in ("png", "same")):
        raise ConfigError(f"{where}.target_ssim: replaces quality, for jpeg, webp or avif only (not lossless)")
    animate = _bool(raw, "animate", where, fmt in ANIMATED_FORMATS)
    if animate and fmt not in ANIMATED_FORMATS:
        raise ConfigError(f"{where}.animate: {fmt} cannot move; animations are webp, avif or same")
    return VariantSpec(
        name=name,
        format=fmt,
        max_width=width,
        max_height=height,
        scale_percent=float(scale) if scale is not None else None,
        quality=_number(raw, "quality", where, 1, 100),
        progressive=_bool(raw, "progressive", where, False),
        effort=4 if effort is None else effort,
        fit=fit,
        crop=_choice(raw, "crop", where, CROPS, "centre"),
        watermark=parse_watermark(raw["watermark"], f"{where}.watermark") if raw.get("watermark") is not None else None,
        strip=_bool(raw, "strip", where, True),
        keep_icc=_bool(raw, "keep_icc", where, False),
        lossless=lossless,
        background=tuple(int(background[i : i + 2], 16) for i in (1, 3, 5)),  # type: ignore[arg-type]
        never_larger=_bool(raw, "never_larger", where, False),
        target_ssim=float(target_ssim) if target_ssim is not None else None,
        animate=animate,
        poster_frame=_number(raw, "poster_frame", where, 0, 100_000) or 0,
        max_frames=_number(raw, "max_frames", where, 1, 100_000),
    )


def parse_variant_list(raw: Any, where: str) -> tuple[VariantSpec, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}: must be a non-empty list of variant objects")
    specs = tuple(parse_variant(item, f"{where}[{i}]") for i, item in enumerate(raw))
    names = [spec.name for spec in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{where}: duplicate variant name(s) {duplicates}")
    return specs


def parse_variants(text: str, where: str = "VARIANTS") -> tuple[VariantSpec, ...]:
    """Parse a JSON list of variants; fails fast with the field at fault."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not valid JSON ({exc})") from exc
    return parse_variant_list(raw, where)
