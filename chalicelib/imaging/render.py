"""Render configured variants from one uploaded image.

Decode once, as small as the largest variant allows (JPEG DCT scaling via `draft`), rotate and
convert that reduced master to sRGB once, then resample each variant from the next larger one when
that is at least twice its size, and crop, watermark and encode it on its own copy. Resampling is
LANCZOS, except Hamming for the mild (< 2x) reduction left after a baseline JPEG's draft. Why, with
the measurements: decision 0001 and docs/performance.md ("What the numbers changed").

With `encode_threads` > 1 each variant's crop, watermark and encode runs on a thread pool while the
next variant is resized (Pillow releases the GIL in resampling and in its encoders): same bytes,
less wall time on a Lambda with two or more vCPUs (decision 0020).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

from PIL import Image

from chalicelib.errors import ImageRejected
from chalicelib.formats import ANIMATED_SAME_FORMAT, ENCODERS, KEPT_ANIMATIONS, SAME_FORMAT
from chalicelib.imaging import animation
from chalicelib.imaging.colour import to_srgb
from chalicelib.imaging.compose import apply_watermark, crop_box, crop_to, flatten
from chalicelib.imaging.decode import ANIMATED_DECODERS, load_guarded, open_counted, out_of_memory
from chalicelib.imaging.jpegstrip import strip_jpeg_metadata
from chalicelib.imaging.limits import DecodeLimits
from chalicelib.imaging.placeholders import compute_placeholders
from chalicelib.imaging.quality import encode_for_ssim, ssim_against
from chalicelib.imaging.results import (
    LARGER,
    MOVING,
    ORIGINAL_STRIPPED,
    REENCODED,
    RenderedVariant,
    Rendering,
    SourceInfo,
)
from chalicelib.imaging.specs import VariantSpec

log = logging.getLogger("imgpress.imaging")  # JSON lines, like every imgpress logger (chalicelib/logs.py)

_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_SIDES = {5, 6, 7, 8}
# The master from a full-size decode: a box pre-reduce first only once the reduction is >= 6x
# (sources far larger than the variant), where a LANCZOS pass over every source pixel costs most.
_REDUCING_GAP = 3.0
# After a baseline JPEG's draft the reduction left is under 2x: there Hamming (see the docstring).
_MILD_REDUCTION = 2.0
_CHAIN_FACTOR = 2  # derive a variant from a rendered one only when that is >= 2x its size


@dataclass(frozen=True)
class _Source:
    """What every variant needs to know about the decoded upload."""

    data: bytes
    format: str
    orientation: int
    upright: tuple[int, int]
    icc_profile: bytes | None
    exif: bytes | None


def render_variants(
    data: bytes,
    specs: Sequence[VariantSpec],
    limits: DecodeLimits,
    blurhash_components: tuple[int, int] | None = None,
    encode_threads: int = 1,
) -> Rendering:
    """Decode `data` once and encode every variant in `specs`. Raises ImageRejected on bad input.

    With `blurhash_components`, placeholders are computed too, from the smallest variant. With
    `encode_threads` > 1 (and more than one variant) variants are encoded in parallel, byte for byte
    as they would be one after the other.
    """
    image, frames = open_counted(data, limits)
    pool = ThreadPoolExecutor(encode_threads, "encode") if encode_threads > 1 and len(specs) > 1 else None
    try:
        if frames > 1 and image.format in ANIMATED_DECODERS:
            return _render_animated(image, data, frames, specs, limits, blurhash_components)
        return _render(image, data, specs, blurhash_components, pool)
    except ImageRejected:
        raise
    except MemoryError as exc:
        raise out_of_memory() from exc
    except Exception as exc:  # A user file must never crash the handler; keep the cause in logs.
        log.exception("unexpected error while rendering")
        raise ImageRejected(f"The image could not be processed ({type(exc).__name__}).", "processing_error") from exc
    finally:
        if pool is not None:  # on a deadline, encodes still running finish on their own; nobody waits
            pool.shutdown(wait=False, cancel_futures=True)


def _render(
    image: Image.Image,
    data: bytes,
    specs: Sequence[VariantSpec],
    blurhash_components: tuple[int, int] | None,
    pool: ThreadPoolExecutor | None = None,
) -> Rendering:
    source_format = "JPEG" if image.format == "MPO" else str(image.format)
    is_jpeg = source_format == "JPEG"
    if not is_jpeg:
        load_guarded(image)  # PNG's getexif() would otherwise decode, swallowing decoder errors
    orientation = read_orientation(image)  # JPEG: from the APP1 header, nothing decoded yet
    stored = image.size
    upright = (stored[1], stored[0]) if orientation in _SWAPS_SIDES else stored
    resize_sizes = {spec.name: spec.resize_size(*upright) for spec in specs}
    largest = max(resize_sizes.values(), key=lambda size: size[0] * size[1])
    largest_stored = (largest[1], largest[0]) if orientation in _SWAPS_SIDES else largest
    if is_jpeg:
        image.draft(image.mode, largest_stored)  # DCT-domain downscale: 1/2, 1/4 or 1/8
        load_guarded(image)
    baseline_drafted = is_jpeg and image.size != stored and not image.info.get("progressive")
    working, icc_profile = _without_opaque_alpha(normalize_mode(image)), image.info.get("icc_profile")
    if working.mode == "CMYK":  # no output is CMYK: resample in sRGB, as a viewer would see it
        working, icc_profile = to_srgb(working, icc_profile), None
    source = _Source(
        data,
        source_format,
        orientation,
        upright,
        icc_profile,
        _upright_exif(image) if any(not s.strip for s in specs) else None,
    )
    master = _resize(working, largest_stored, fast=baseline_drafted)
    if master is not image:
        image.close()  # the full decode is no longer needed: encoding peaks without it
    keeps_icc = {spec.name: spec.keep_icc and source.icc_profile is not None for spec in specs}
    masters = _masters(_upright(master, orientation), source.icc_profile, keeps_icc)
    del master  # one master is enough when no variant keeps the profile
    rendered: dict[str, RenderedVariant | Future[RenderedVariant]] = {}
    smallest: dict[bool, Image.Image] = {}
    for spec, resized in _resized(masters, specs, resize_sizes, keeps_icc):
        if pool is None:
            rendered[spec.name] = _render_variant(resized, spec, source, keeps_icc[spec.name])
        else:
            # Its own Image object over the same pixels: saving sets attributes on the object
            # (encoderinfo, info), and two variants of one size would otherwise share it.
            rendered[spec.name] = pool.submit(
                _render_variant, resized._new(resized.im), spec, source, keeps_icc[spec.name]
            )
        smallest[keeps_icc[spec.name]] = resized
    source_info = SourceInfo(source_format, upright[0], upright[1], len(data), orientation)
    placeholders = None
    if blurhash_components is not None:  # from the smallest sRGB variant, before crop and watermark
        placeholders = compute_placeholders(_smallest_srgb(smallest, source.icc_profile), blurhash_components).to_dict()
    variants = {name: r.result() if isinstance(r, Future) else r for name, r in rendered.items()}
    return Rendering(source_info, tuple(variants[spec.name] for spec in specs), placeholders)


def _upright(image: Image.Image, orientation: int) -> Image.Image:
    return image.transpose(_TRANSPOSE[orientation]) if orientation in _TRANSPOSE else image


def _masters(master: Image.Image, icc_profile: bytes | None, keeps_icc: dict[str, bool]) -> dict[bool, Image.Image]:
    """The upright master as the variants need it: converted to sRGB once, at the largest size (each
    colour transform applied is ~25 ms per megapixel), and as it is for variants that keep the profile."""
    masters: dict[bool, Image.Image] = {}
    if any(keeps_icc.values()):
        masters[True] = master
    if not all(keeps_icc.values()):
        masters[False] = to_srgb(master, icc_profile)
    return masters


def _resized(
    masters: dict[bool, Image.Image],
    specs: Sequence[VariantSpec],
    sizes: dict[str, tuple[int, int]],
    keeps_icc: dict[str, bool],
) -> Iterator[tuple[VariantSpec, Image.Image]]:
    """Each variant's pixels, largest first, resampled from the next larger one when that is at least
    twice its size, else from the master."""
    previous = dict(masters)
    for spec in sorted(specs, key=lambda s: -sizes[s.name][0] * sizes[s.name][1]):
        size, keep_icc = sizes[spec.name], keeps_icc[spec.name]
        larger = previous[keep_icc]
        chained_from = larger if larger.width >= _CHAIN_FACTOR * size[0] else masters[keep_icc]
        previous[keep_icc] = _resize(chained_from, size, reducing_gap=None)
        yield spec, previous[keep_icc]


def _smallest_srgb(smallest: dict[bool, Image.Image], icc_profile: bytes | None) -> Image.Image:
    """What the placeholders come from: the smallest sRGB variant, before crop and watermark."""
    return smallest[False] if False in smallest else to_srgb(smallest[True], icc_profile)


def _render_animated(
    image: Image.Image,
    data: bytes,
    frames: int,
    specs: Sequence[VariantSpec],
    limits: DecodeLimits,
    blurhash_components: tuple[int, int] | None,
) -> Rendering:
    """Every frame decoded once, in order, and handed to each moving variant's encoder as it comes
    (imaging/animation.py); the stills are encoded from their poster frame as it passes. What moves is
    decided from the frame count first (animation.plan), so an animation over a limit decodes only as
    far as its poster frames."""
    source_format = str(image.format)
    load_guarded(image)
    orientation = read_orientation(image)
    stored = image.size
    upright = (stored[1], stored[0]) if orientation in _SWAPS_SIDES else stored
    sizes = {spec.name: spec.resize_size(*upright) for spec in specs}
    largest = max(sizes.values(), key=lambda size: size[0] * size[1])
    largest_stored = (largest[1], largest[0]) if orientation in _SWAPS_SIDES else largest
    icc_profile = image.info.get("icc_profile")
    source = _Source(
        data, source_format, orientation, upright, icc_profile,
        _upright_exif(image) if any(not s.strip for s in specs) else None,
    )  # fmt: skip
    keeps_icc = {spec.name: spec.keep_icc and icc_profile is not None for spec in specs}
    outcomes = animation.plan(specs, upright, frames, limits)
    posters = {spec.name: min(spec.poster_frame, frames - 1) for spec in specs}
    loop = animation.plays(source_format, image.info)
    moving: dict[str, _MovingVariant] = {}
    stills: dict[str, RenderedVariant] = {}
    poster_pixels: dict[str, Image.Image] = {}  # each moving variant's, in case it comes out too large
    placeholders = None
    last = frames - 1 if MOVING in outcomes.values() else max(posters.values())
    decoded, duration = 0, 0.0
    for index, frame_duration in enumerate(animation.frames_of(image, last + 1)):
        decoded, duration = index + 1, duration + frame_duration
        wanted = [s for s in specs if outcomes[s.name] == MOVING or posters[s.name] == index]
        working = _without_opaque_alpha(normalize_mode(image))
        masters = _masters(_upright(_resize(working, largest_stored), orientation), icc_profile, keeps_icc)
        smallest: dict[bool, Image.Image] = {}
        for spec, resized in _resized(masters, wanted, sizes, keeps_icc):
            smallest[keeps_icc[spec.name]] = resized
            if outcomes[spec.name] == MOVING:
                if spec.name not in moving:
                    moving[spec.name] = _MovingVariant(resized, spec, source, keeps_icc[spec.name], loop)
                moving[spec.name].add(resized, frame_duration)
                if posters[spec.name] == index:
                    poster_pixels[spec.name] = resized.copy()
            else:
                still = _render_variant(resized, spec, source, keeps_icc[spec.name])
                stills[spec.name] = replace(still, animation=outcomes[spec.name])
        if blurhash_components is not None and index == min(posters.values()) and smallest:
            placeholders = compute_placeholders(_smallest_srgb(smallest, icc_profile), blurhash_components).to_dict()
    rendered = dict(stills)
    for name, variant in moving.items():
        rendered[name] = variant.finish(poster_pixels.get(name))
        outcomes[name] = str(rendered[name].animation)
    every_frame = decoded == frames
    source_info = SourceInfo(
        source_format, upright[0], upright[1], len(data), orientation, decoded if every_frame else frames,
        round(duration) if every_frame else None, loop,
    )  # fmt: skip
    return Rendering(
        source_info, tuple(rendered[spec.name] for spec in specs), placeholders, animation.summary(outcomes)
    )


class _MovingVariant:
    """One moving variant of an animation: its crop and its encoding (lossy or lossless, the quality)
    chosen on the first frame, every frame cropped and watermarked alike and streamed to its encoder."""

    def __init__(self, first: Image.Image, spec: VariantSpec, source: _Source, keep_icc: bool, loop: int) -> None:
        self.spec, self.source, self.keep_icc = spec, source, keep_icc
        self.format = ANIMATED_SAME_FORMAT[source.format] if spec.format == "same" else spec.format
        cover = spec.fit == "cover"
        self.box = crop_box(first, spec.target_size(*source.upright), spec.crop) if cover else None
        pixels = self._finished(first)
        self.size = pixels.size
        self.quality, self.ssim = spec.quality_for(self.format), None
        if spec.target_ssim is not None:  # searched on the first frame, used for every frame
            _encoded, self.quality, self.ssim = encode_for_ssim(
                spec.target_ssim,
                lambda q: encode(pixels, self.format, replace(spec, quality=q)),
                ssim_against(pixels),
                self.format,
            )
        icc, exif = source.icc_profile if keep_icc else None, None if spec.strip else source.exif
        self.encoder: animation.AnimationEncoder
        if self.format == "webp":
            self.encoder = animation.WebPAnimation(
                pixels.size, loop, self._lossless(pixels), self.quality, spec.effort, icc, exif
            )
        else:
            self.encoder = animation.AvifAnimation(pixels.size, self.quality, 10 - spec.effort, icc, exif)
        self.frames = 0

    def _lossless(self, pixels: Image.Image) -> bool:
        """Lossless when asked, or when the first frame is smaller so (cartoons, pixel art, palette
        animations: a GIF's kind) than lossy at the quality: it is exact as well (bench/ANIMATION.md).
        The trial runs at effort 0: a third of the time of effort 4, with the same choice on every
        animation of the benchmark and the fixtures."""
        if self.spec.lossless or self.spec.target_ssim is not None:
            return self.spec.lossless
        trial = replace(self.spec, effort=0)
        lossy = encode(pixels, "webp", trial)
        return len(encode(pixels, "webp", replace(trial, lossless=True))) < len(lossy)

    def _finished(self, resized: Image.Image) -> Image.Image:
        pixels = resized if self.box is None else resized.crop(self.box)
        return pixels if self.spec.watermark is None else apply_watermark(pixels, self.spec.watermark)

    def add(self, resized: Image.Image, duration: float) -> None:
        self.encoder.add(self._finished(resized), duration)
        self.frames += 1

    def finish(self, poster: Image.Image | None) -> RenderedVariant:
        """The animation; if it is larger than the upload, the upload's own GIF, APNG or WebP (metadata
        removed) where that shows the same picture, else a still of the poster frame."""
        encoded, method = self.encoder.finish(), REENCODED
        output_format, content_type, extension = self.format, *ENCODERS[self.format][1:]
        if len(encoded) > len(self.source.data) and self._may_keep_original():
            encoded, method = animation.without_metadata(self.source.data, self.source.format), ORIGINAL_STRIPPED
            output_format, content_type, extension = KEPT_ANIMATIONS[self.source.format]
        if len(encoded) > len(self.source.data) and poster is not None:
            still = _render_variant(poster, self.spec, self.source, self.keep_icc)
            return replace(still, animation=LARGER)
        ssim = None if self.ssim is None else round(self.ssim, 4)
        return RenderedVariant(
            self.spec.name, output_format, content_type, extension, *self.size, encoded, method,
            self.quality if self.ssim is not None else None, ssim, self.frames, MOVING,
        )  # fmt: skip

    def _may_keep_original(self) -> bool:
        """The upload shows the very picture this variant does: its size, upright, no watermark."""
        source, spec = self.source, self.spec
        return (
            source.format in KEPT_ANIMATIONS
            and self.size == source.upright
            and source.orientation == 1
            and spec.watermark is None
            and (spec.keep_icc or source.icc_profile is None)
        )


def _render_variant(resized: Image.Image, spec: VariantSpec, source: _Source, keep_icc: bool) -> RenderedVariant:
    """Crop, watermark and encode pixels already resized (and in sRGB unless `keep_icc`)."""
    pixels = resized
    if spec.fit == "cover":
        pixels = crop_to(pixels, spec.target_size(*source.upright), spec.crop)
    if spec.watermark is not None:
        pixels = apply_watermark(pixels, spec.watermark)
    output_format = SAME_FORMAT.get(source.format, "png") if spec.format == "same" else spec.format
    _encoder, content_type, extension = ENCODERS[output_format]
    icc, exif = source.icc_profile if keep_icc else None, None if spec.strip else source.exif
    chosen_quality: int | None = None
    ssim: float | None = None
    if spec.target_ssim is not None:
        encoded, chosen_quality, ssim = encode_for_ssim(
            spec.target_ssim,
            lambda q: encode(pixels, output_format, replace(spec, quality=q), icc, exif),
            ssim_against(pixels),
            output_format,
        )
    else:
        encoded = encode(pixels, output_format, spec, icc, exif)
    method = REENCODED
    if _may_keep_original(spec, output_format, source, pixels) and len(encoded) >= len(source.data):
        try:
            encoded, method = strip_jpeg_metadata(source.data, source.orientation), ORIGINAL_STRIPPED
        except ValueError:
            log.info("kept the re-encoded JPEG: the original's segments could not be parsed")
    return RenderedVariant(
        spec.name,
        output_format,
        content_type,
        extension,
        *pixels.size,
        encoded,
        method,
        chosen_quality,
        None if ssim is None else round(ssim, 4),
    )


def _may_keep_original(spec: VariantSpec, output_format: str, source: _Source, pixels: Image.Image) -> bool:
    """never_larger can fall back to the original's JPEG data only when it shows the same picture."""
    return (
        spec.never_larger
        and output_format == "jpeg"
        and source.format == "JPEG"
        and pixels.size == source.upright
        and spec.watermark is None
    )


def read_orientation(image: Image.Image) -> int:
    """EXIF orientation 1-8; anything missing, invalid or unreadable counts as 1 (upright)."""
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # Corrupt EXIF is common in the wild and must not fail the upload.
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _upright_exif(image: Image.Image) -> bytes | None:
    """The source EXIF for `strip: false` variants, with orientation reset since pixels are upright."""
    try:
        exif = image.getexif()
        if not exif:
            return None
        exif[_ORIENTATION_TAG] = 1
        return exif.tobytes()
    except Exception:
        return None


def normalize_mode(image: Image.Image) -> Image.Image:
    """Bring any decoded mode to L, LA, RGB, RGBA or CMYK without losing tone or transparency."""
    mode = image.mode
    if mode in ("L", "LA", "RGB", "RGBA", "CMYK"):
        return image
    if mode in ("P", "PA"):
        return image.convert("RGBA" if image.has_transparency_data else "RGB")
    if mode.startswith("I;16") or mode == "I":
        # 16-bit greyscale: scale to 8 bits. A plain convert("L") clips everything above 255 to white.
        return image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    if mode == "1":
        return image.convert("L")
    if mode in ("La", "RGBa"):
        return image.convert(mode[:-1] + "A")
    return image.convert("RGBA" if image.has_transparency_data else "RGB")


def _resize(
    image: Image.Image, size: tuple[int, int], fast: bool = False, reducing_gap: float | None = _REDUCING_GAP
) -> Image.Image:
    """LANCZOS, like the reference; `fast` allows Hamming for a mild reduction (module docstring)."""
    if image.size == size:
        return image
    if fast and image.width < _MILD_REDUCTION * size[0] and image.height < _MILD_REDUCTION * size[1]:
        return image.resize(size, Image.Resampling.HAMMING)
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=reducing_gap)


def _without_opaque_alpha(image: Image.Image) -> Image.Image:
    """Screenshots and exports often carry an alpha band that is opaque everywhere: dropping it
    once makes every resize and encode after it work on 3 bands instead of 4."""
    if image.mode in ("RGBA", "LA") and not _has_visible_alpha(image):
        return image.convert(image.mode[:-1])
    return image


def _has_visible_alpha(image: Image.Image) -> bool:
    if image.mode not in ("RGBA", "LA"):
        return False
    low = image.getchannel("A").getextrema()[0]  # single band: (min, max)
    return isinstance(low, int) and low < 255


def encode(
    image: Image.Image,
    output_format: str,
    spec: VariantSpec,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
) -> bytes:
    """Encode with exactly the metadata asked for: by default none (no EXIF, GPS, comments, ICC)."""
    alpha = _has_visible_alpha(image)
    params: dict[str, object] = {"quality": spec.quality_for(output_format)}
    if output_format == "jpeg":
        image = (
            flatten(image, spec.background) if alpha else _as_mode(image, "L" if image.mode in ("L", "LA") else "RGB")
        )
        params.update(optimize=True, progressive=spec.progressive)
    elif output_format == "png":
        image = _as_mode(image, _png_mode(image.mode, alpha))
        params = {"compress_level": min(9, spec.effort + 2)}
    else:
        image = _as_mode(image, "RGBA" if alpha else "RGB")
        if output_format == "webp":
            params.update(method=spec.effort, lossless=spec.lossless)
        else:
            params["speed"] = 10 - spec.effort
    if icc_profile:
        params["icc_profile"] = icc_profile
    if exif:
        params["exif"] = exif
    buffer = io.BytesIO()
    # Pillow would copy text chunks, comments and ICC from .info on save: hide them for the save
    # (the image may be shared with other variants, so put them back after).
    saved_info, image.info = image.info, {}
    try:
        image.save(buffer, format=ENCODERS[output_format][0], **params)
    finally:
        image.info = saved_info
    return buffer.getvalue()


def _as_mode(image: Image.Image, mode: str) -> Image.Image:
    """convert() copies even when nothing changes; at 2048 px that copy is 8 MiB of peak memory."""
    return image if image.mode == mode else image.convert(mode)


def _png_mode(mode: str, alpha: bool) -> str:
    if mode in ("L", "LA"):
        return "LA" if alpha else "L"
    return "RGBA" if alpha else "RGB"
