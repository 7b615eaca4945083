"""The three ways of producing the same variants that the benchmark compares.

Each engine turns source bytes plus variant specs into encoded outputs. Engines import their
libraries in `prepare()`, so a worker can take its memory baseline after the imports.
"""

from __future__ import annotations

import importlib
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from chalicelib.imaging.compose import WHITE, flatten
from chalicelib.imaging.specs import VariantSpec
from chalicelib.settings import imaging_settings


@dataclass(frozen=True)
class Output:
    name: str
    format: str
    width: int
    height: int
    data: bytes


class Engine(Protocol):
    name: str

    def prepare(self) -> None: ...

    def run(self, data: bytes, specs: Sequence[VariantSpec]) -> list[Output]: ...


class Imgpress:
    """imgpress's own core, called as the Lambda's `_render_with_pillow` calls it, for the same
    outputs every engine produces: the variants. The placeholders the Lambda adds are timed by
    `ImgpressWithPlaceholders`, so they are reported but not charged to the like-for-like comparison."""

    name = "imgpress"
    placeholders = False

    def prepare(self) -> None:
        from chalicelib.imaging.render import render_variants

        settings = imaging_settings({})  # the Lambda's defaults
        self._render = render_variants
        self._limits = settings.decode_limits()
        self._blurhash = settings.blurhash_components if self.placeholders else None

    def run(self, data: bytes, specs: Sequence[VariantSpec]) -> list[Output]:
        rendering = self._render(data, specs, self._limits, self._blurhash)
        return [Output(v.name, v.format, v.width, v.height, v.data) for v in rendering.variants]


class ImgpressWithPlaceholders(Imgpress):
    """The Lambda's whole job: the variants plus ThumbHash, BlurHash (4x3), dominant colour and LQIP."""

    name = "imgpress+placeholders"
    placeholders = True


class Naive:
    """The seed recipe: full decode, convert to RGB, LANCZOS from full size per variant, save.

    It knows nothing of EXIF orientation, colour profiles or alpha, as the seed scripts did not.
    """

    name = "naive"

    def prepare(self) -> None:
        from PIL import Image

        Image.init()
        Image.MAX_IMAGE_PIXELS = None

    def run(self, data: bytes, specs: Sequence[VariantSpec]) -> list[Output]:
        from PIL import Image

        return _lanczos_from_full_size(Image.open(io.BytesIO(data)).convert("RGB"), specs)


class NaiveCorrect:
    """The seed recipe with its three mistakes fixed and nothing else: EXIF orientation applied, the
    embedded ICC profile converted to sRGB and transparency kept (all at full size, as the SSIM
    reference does), then LANCZOS from full size per variant. It produces the same picture as
    imgpress for every source, so it is the fair time baseline where the seed recipe's output is wrong."""

    name = "naive-correct"

    def prepare(self) -> None:
        from bench.quality import upright_reference

        self._upright = upright_reference

    def run(self, data: bytes, specs: Sequence[VariantSpec]) -> list[Output]:
        return _lanczos_from_full_size(self._upright(data), specs)


def _lanczos_from_full_size(image: Any, specs: Sequence[VariantSpec]) -> list[Output]:
    """The seed recipe's loop: each variant resized with LANCZOS from the full-size image and saved
    at its quality (a JPEG of a transparent image over white)."""
    from PIL import Image

    outputs = []
    for spec in specs:
        size = spec.target_size(*image.size)
        resized = image.resize(size, Image.Resampling.LANCZOS)
        params: dict[str, Any] = {"quality": spec.quality_for(spec.format)}
        if spec.format == "jpeg":
            params["progressive"] = spec.progressive
            if resized.mode == "RGBA":
                resized = flatten(resized, WHITE)
        buffer = io.BytesIO()
        resized.save(buffer, format=spec.format.upper(), **params)
        outputs.append(Output(spec.name, spec.format, *size, buffer.getvalue()))
    return outputs


class Vips:
    """libvips through pyvips on one thread, the way its docs recommend: `thumbnail_buffer`
    (shrink-on-load, autorotate, embedded ICC profile to sRGB) for the largest variant, each
    smaller one from the previous result once that is at least twice its size (as imgpress does),
    then the format's saver with the same quality/effort and no metadata."""

    name = "pyvips"

    def prepare(self) -> None:
        os.environ["VIPS_CONCURRENCY"] = "1"  # read when libvips starts, i.e. at import
        import pyvips

        pyvips.cache_set_max(0)  # repeated runs on one buffer must not be served from the cache
        pyvips.cache_set_max_mem(0)
        self._vips = pyvips

    def run(self, data: bytes, specs: Sequence[VariantSpec]) -> list[Output]:
        header = self._vips.Image.new_from_buffer(data, "")
        upright = self._upright_size(header)
        # Like imgpress: convert an embedded profile to sRGB; leave untagged images alone.
        colour = {"output_profile": "srgb"} if header.get_typeof("icc-profile-data") else {}
        targets = {spec.name: spec.target_size(*upright) for spec in specs}
        outputs = {}
        previous = None
        for spec in sorted(specs, key=lambda s: -targets[s.name][0] * targets[s.name][1]):
            width, height = targets[spec.name]
            if previous is not None and previous.width >= 2 * width:
                image = previous.thumbnail_image(width, height=height, size="down")
            else:
                image = self._vips.Image.thumbnail_buffer(data, width, height=height, size="down", **colour)
            if len(specs) > 1:
                image = image.copy_memory()  # render once for the saver and the next variant; else stream
            outputs[spec.name] = Output(spec.name, spec.format, image.width, image.height, self._save(image, spec))
            previous = image
        return [outputs[spec.name] for spec in specs]

    @staticmethod
    def _upright_size(header: Any) -> tuple[int, int]:
        orientation = header.get("orientation") if header.get_typeof("orientation") else 1
        return (header.height, header.width) if orientation in (5, 6, 7, 8) else (header.width, header.height)

    def _save(self, image: Any, spec: VariantSpec) -> bytes:
        quality = spec.quality_for(spec.format)
        if spec.format == "webp":
            return bytes(image.webpsave_buffer(Q=quality, effort=spec.effort, keep="none"))
        if spec.format == "png":
            return bytes(image.pngsave_buffer(compression=min(9, spec.effort + 2), keep="none"))
        if spec.format == "jpeg":
            if image.hasalpha():
                image = image.flatten(background=[255, 255, 255])
            return bytes(
                image.jpegsave_buffer(Q=quality, optimize_coding=True, interlace=spec.progressive, keep="none")
            )
        raise ValueError(f"the benchmark does not run {spec.format!r} through pyvips")


ENGINES: dict[str, Callable[[], Engine]] = {
    "imgpress": Imgpress,
    "imgpress+placeholders": ImgpressWithPlaceholders,
    "naive": Naive,
    "naive-correct": NaiveCorrect,
    "pyvips": Vips,
}


def vips_available() -> bool:
    """pyvips is a bench-only extra (bench/requirements.txt); the harness skips it when missing."""
    try:
        importlib.import_module("pyvips")
    except (ImportError, OSError):
        return False
    return True
