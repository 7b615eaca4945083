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
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

from PIL import Image

from chalicelib.errors import ImageRejected
from chalicelib.formats import ENCODERS, SAME_FORMAT
from chalicelib.imaging.colour import to_srgb
from chalicelib.imaging.compose import apply_watermark, crop_to, flatten
from chalicelib.imaging.decode import load_guarded, open_guarded, out_of_memory
from chalicelib.imaging.jpegstrip import strip_jpeg_metadata
from chalicelib.imaging.limits import DecodeLimits
from chalicelib.imaging.placeholders import compute_placeholders
from chalicelib.imaging.quality import encode_for_ssim, ssim_against
from chalicelib.imaging.results import ORIGINAL_STRIPPED, REENCODED, RenderedVariant, Rendering, SourceInfo
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
    image = open_guarded(data, limits)
    pool = ThreadPoolExecutor(encode_threads, "encode") if encode_threads > 1 and len(specs) > 1 else None
    try:
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
    if orientation in _TRANSPOSE:
        master = master.transpose(_TRANSPOSE[orientation])

    # Convert to sRGB once, at the largest size, and derive the smaller variants from that: each
    # colour transform applied is ~25 ms per megapixel. Variants that keep the ICC profile chain
    # from the unconverted master instead.
    keeps_icc = {spec.name: spec.keep_icc and source.icc_profile is not None for spec in specs}
    masters: dict[bool, Image.Image] = {}
    if any(keeps_icc.values()):
        masters[True] = master
    if not all(keeps_icc.values()):
        masters[False] = to_srgb(master, source.icc_profile)
    del master  # one master is enough when no variant keeps the profile
    rendered: dict[str, RenderedVariant | Future[RenderedVariant]] = {}
    previous = dict(masters)
    for spec in sorted(specs, key=lambda s: -resize_sizes[s.name][0] * resize_sizes[s.name][1]):
        size, keep_icc = resize_sizes[spec.name], keeps_icc[spec.name]
        larger = previous[keep_icc]
        chained_from = larger if larger.width >= _CHAIN_FACTOR * size[0] else masters[keep_icc]
        resized = _resize(chained_from, size, reducing_gap=None)
        if pool is None:
            rendered[spec.name] = _render_variant(resized, spec, source, keep_icc)
        else:
            # Its own Image object over the same pixels: saving sets attributes on the object
            # (encoderinfo, info), and two variants of one size would otherwise share it.
            rendered[spec.name] = pool.submit(_render_variant, resized._new(resized.im), spec, source, keep_icc)
        previous[keep_icc] = resized
    source_info = SourceInfo(source_format, upright[0], upright[1], len(data), orientation)
    placeholders = None
    if blurhash_components is not None:  # from the smallest sRGB variant, before crop and watermark
        smallest = previous[False] if False in previous else to_srgb(previous[True], source.icc_profile)
        placeholders = compute_placeholders(smallest, blurhash_components).to_dict()
    variants = {name: r.result() if isinstance(r, Future) else r for name, r in rendered.items()}
    return Rendering(source_info, tuple(variants[spec.name] for spec in specs), placeholders)


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
