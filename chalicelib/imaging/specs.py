"""Variant specifications: what to produce from each upload, parsed from JSON config."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from chalicelib.errors import ConfigError

OUTPUT_FORMATS = ("jpeg", "webp", "avif", "png", "same")
DEFAULT_QUALITY = {"jpeg": 82, "webp": 80, "avif": 60, "png": 100}
_KNOWN_KEYS = {"name", "max", "width", "height", "scale", "format", "quality", "progressive", "effort"}

DEFAULT_VARIANTS_JSON = json.dumps(
    [
        {"name": "web", "max": 2048, "format": "webp", "quality": 80},
        {"name": "thumb", "max": 320, "format": "webp", "quality": 75},
    ]
)


@dataclass(frozen=True)
class VariantSpec:
    """One output. Exactly one of a bounding box (max_width/max_height) or a scale percentage.

    Images are never enlarged: a box larger than the source keeps the source size.
    `effort` trades encode time for bytes (WebP method 0-6, AVIF speed is 10 - effort).
    """

    name: str
    format: str
    max_width: int | None = None
    max_height: int | None = None
    scale_percent: float | None = None
    quality: int | None = None
    progressive: bool = False
    effort: int = 4

    def target_size(self, width: int, height: int) -> tuple[int, int]:
        """Output size for a (correctly oriented) source of width x height."""
        if self.scale_percent is not None:
            factor = self.scale_percent / 100.0
        else:
            box_w = self.max_width or width
            box_h = self.max_height or height
            factor = min(box_w / width, box_h / height, 1.0)
        return max(1, round(width * factor)), max(1, round(height * factor))

    def quality_for(self, output_format: str) -> int:
        return self.quality if self.quality is not None else DEFAULT_QUALITY[output_format]


def _int_field(raw: dict[str, Any], key: str, where: str, low: int, high: int) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{where}.{key}: must be an integer from {low} to {high}, got {value!r}")
    return value


def parse_variant(raw: Any, where: str) -> VariantSpec:
    """Validate one variant object; errors name the offending field."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be an object")
    unknown = set(raw) - _KNOWN_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}")
    name = raw.get("name")
    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"{where}.name: must be a non-empty string of letters, digits, - or _")
    fmt = raw.get("format", "webp")
    if fmt not in OUTPUT_FORMATS:
        raise ConfigError(f"{where}.format: must be one of {list(OUTPUT_FORMATS)}, got {fmt!r}")
    size = _int_field(raw, "max", where, 1, 20000)
    width = _int_field(raw, "width", where, 1, 20000) or size
    height = _int_field(raw, "height", where, 1, 20000) or size
    scale = raw.get("scale")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 100):
        raise ConfigError(f"{where}.scale: must be a percentage in (0, 100], got {scale!r}")
    if scale is not None and (width or height):
        raise ConfigError(f"{where}: give either a box (max/width/height) or scale, not both")
    if scale is None and not (width or height):
        raise ConfigError(f"{where}: needs a box (max, width or height) or a scale")
    progressive = raw.get("progressive", False)
    if not isinstance(progressive, bool):
        raise ConfigError(f"{where}.progressive: must be true or false")
    effort = _int_field(raw, "effort", where, 0, 6)
    return VariantSpec(
        name=name,
        format=fmt,
        max_width=width,
        max_height=height,
        scale_percent=float(scale) if scale is not None else None,
        quality=_int_field(raw, "quality", where, 1, 100),
        progressive=progressive,
        effort=4 if effort is None else effort,
    )


def parse_variants(text: str, where: str = "VARIANTS") -> tuple[VariantSpec, ...]:
    """Parse the VARIANTS JSON list; fails fast with the field at fault."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not valid JSON ({exc})") from exc
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}: must be a non-empty JSON list of variant objects")
    specs = tuple(parse_variant(item, f"{where}[{i}]") for i, item in enumerate(raw))
    names = [spec.name for spec in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{where}: duplicate variant name(s) {duplicates}")
    return specs
