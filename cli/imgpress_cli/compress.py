"""`imgpress compress`: the Lambda's processing, run on local files, to preview variant settings.

The same settings parser (VARIANTS, MAX_PIXELS, MAX_SIDE, MAX_UPLOAD_BYTES, ALLOWED_CONTENT_TYPES
from the environment, with the same defaults), the same size check and the same
`render_variants` call the S3 handler makes, so what this writes is byte for byte what a
deployed stage with those settings would store.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.errors import ImageRejected
from chalicelib.imaging.limits import DecodeLimits
from chalicelib.imaging.render import render_variants
from chalicelib.imaging.results import RenderedVariant, Rendering
from chalicelib.imaging.settings import ImagingSettings
from chalicelib.settings import imaging_settings
from chalicelib.views import savings


def local_settings(
    variants_json: str | None, env: Mapping[str, str] | None = None, profile: str | None = None
) -> ImagingSettings:
    """The Lambda's image settings from `env` (default: os.environ); `profile` picks the profile
    whose variants run, `variants_json` replaces them. No AWS resource is involved.

    Raises chalicelib's ConfigError naming the bad variable, profile or variant field.
    """
    merged = dict(os.environ if env is None else env)
    if profile is not None:
        merged["DEFAULT_PROFILE"] = profile
    if variants_json is not None:
        merged["VARIANTS"] = variants_json
    return imaging_settings(merged)


def compress_files(paths: Sequence[Path], out_dir: Path, settings: ImagingSettings) -> Iterator[dict[str, Any]]:
    """Render every file into `out_dir`; yields one result per file, in order, as soon as it is done."""
    out_dir.mkdir(parents=True, exist_ok=True)
    limits = settings.decode_limits()
    used_stems: set[str] = set()
    for path in paths:
        stem = _unique_stem(path.stem, used_stems)
        yield compress_one(path, out_dir, stem, settings, limits)


def compress_one(
    path: Path, out_dir: Path, stem: str, settings: ImagingSettings, limits: DecodeLimits
) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return _failed(path, "unreadable", f"cannot read {path}: {exc.strerror or exc}", None)
    if len(data) > settings.max_upload_bytes:
        message = f"The upload is {len(data)} bytes; at most {settings.max_upload_bytes} are accepted."
        return _failed(path, "too_large", message, len(data))
    try:
        rendering = render_variants(data, settings.variants, limits)
    except ImageRejected as rejected:
        return _failed(path, rejected.code, rejected.message, len(data))
    return _written(path, out_dir, stem, rendering)


@dataclass(frozen=True)
class _Written:
    """A rendered variant as `savings` measures it."""

    variant: RenderedVariant

    @property
    def width(self) -> int:
        return self.variant.width

    @property
    def height(self) -> int:
        return self.variant.height

    @property
    def bytes(self) -> int:
        return len(self.variant.data)


def _written(path: Path, out_dir: Path, stem: str, rendering: Rendering) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    for variant in rendering.variants:
        target = out_dir / f"{stem}.{variant.name}.{variant.extension}"
        target.write_bytes(variant.data)
        outputs[variant.name] = {
            "path": str(target),
            "format": variant.format,
            "content_type": variant.content_type,
            "width": variant.width,
            "height": variant.height,
            "bytes": len(variant.data),
        }
    source = rendering.source
    original = {"format": source.format, "width": source.width, "height": source.height, "bytes": source.bytes}
    return {
        "input": str(path),
        "status": "done",
        "original": original,
        "outputs": outputs,
        "savings": savings(source.bytes, {v.name: _Written(v) for v in rendering.variants}),
        "error": None,
    }


def _failed(path: Path, code: str, message: str, size: int | None) -> dict[str, Any]:
    return {
        "input": str(path),
        "status": "failed",
        "original": {"bytes": size} if size is not None else None,
        "outputs": {},
        "savings": None,
        "error": {"code": code, "message": message},
    }


def _unique_stem(stem: str, used: set[str]) -> str:
    """Two inputs named photo.jpg (from different folders) must not overwrite each other's outputs."""
    candidate, n = stem, 1
    while candidate in used:
        n += 1
        candidate = f"{stem}-{n}"
    used.add(candidate)
    return candidate
