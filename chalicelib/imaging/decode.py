"""Open untrusted bytes safely: sniff, restrict decoders, walk the container's structure, check size
and the memory the render will need before any pixel is decoded."""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from chalicelib.errors import ImageRejected
from chalicelib.formats import sniff_format
from chalicelib.imaging.limits import MIB, DecodeLimits
from chalicelib.imaging.structure import Survey, check_structure
from chalicelib.imaging.structure.guards import RGBA_BYTES

# Pillow warns between 1x and 2x MAX_IMAGE_PIXELS; check_dimensions rejects those files itself.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
# Besides what the decoder holds, a render holds the decoded image and at most two more of its size at
# once (a copy on its way to Pillow or a converted one, the colour-managed master), each up to RGBA's
# 4 bytes a pixel; and the encoders' working memory, the interpreter's growth. Measured against the
# peaks of the worst legal file of each format: bench/HOSTILE.md.
_RENDER_IMAGES = 3
_ENCODING_BYTES = 128 * MIB


def open_guarded(data: bytes, limits: DecodeLimits) -> Image.Image:
    """Return a lazily-decoded image whose structure and header passed every limit.

    The container is walked (imaging/structure/) before Pillow parses a byte of it: some of Pillow's
    parsers cost far more than the bytes they read. Nothing but headers has been read when this
    returns: callers may still `draft()`.
    """
    if not data:
        raise ImageRejected("The uploaded file is empty.", "empty")
    sniffed = sniff_format(data[:1024])
    if sniffed is None:
        raise ImageRejected("The file is not an image.", "not_an_image")
    if sniffed not in limits.allowed_decoders:
        raise ImageRejected(f"{sniffed} images are not accepted.", "unsupported_format")
    survey = check_structure(data, sniffed)
    if sniffed == "HEIF":
        _register_heif()
    # Pillow's own bomb guard as a second line; our check below is the first.
    Image.MAX_IMAGE_PIXELS = limits.max_pixels
    try:
        image = Image.open(io.BytesIO(data), formats=list(limits.allowed_decoders))
    except Image.DecompressionBombError as exc:
        raise ImageRejected(str(exc), "too_many_pixels") from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected(f"The {sniffed} header could not be read.", "corrupt") from exc
    except Exception as exc:  # Pillow plugins raise many types on hostile headers.
        raise _decode_failure(exc) from exc
    check_dimensions(image.size, limits)
    check_frames(image, survey.frames, limits)
    check_memory(survey, image.size, limits)
    if survey.whole_input:  # arithmetic decoding cannot suspend: hand libjpeg the whole file at once
        image.decodermaxblock = max(image.decodermaxblock, len(data))
    return image


def prepare_decoders(allowed: tuple[str, ...]) -> None:
    """Import every decoder plugin now, so that processes forked later (isolation.py) start with them
    instead of importing them again for each image."""
    Image.init()
    if "HEIF" in allowed:
        _register_heif()


def _register_heif() -> None:
    """Teach Pillow HEIF/HEIC via pi-heif, once, only when a HEIF upload actually arrives."""
    import pi_heif

    if "HEIF" not in Image.OPEN:
        pi_heif.register_heif_opener()


def check_dimensions(size: tuple[int, int], limits: DecodeLimits) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageRejected(f"Invalid image dimensions {width}x{height}.", "corrupt")
    if width * height > limits.max_pixels:
        raise ImageRejected(
            f"Image has {width * height:,} pixels; at most {limits.max_pixels:,} are accepted.",
            "too_many_pixels",
        )
    if max(width, height) > limits.max_side:
        raise ImageRejected(
            f"Image is {width}x{height}; the longest side may be at most {limits.max_side} px.",
            "dimensions_too_large",
        )


def check_frames(image: Image.Image, counted: int, limits: DecodeLimits) -> None:
    """Reject animations whose frames add up to too many pixels, from headers alone.

    Only the first frame is ever decoded, but a file of hundreds of large frames is an attack,
    not a photo. The structure walk `counted` GIF and APNG frames (Pillow would parse every block
    in Python to count them); WebP, AVIF, HEIF and TIFF report their count from C parsers.
    """
    if image.format not in ("GIF", "PNG", "WEBP", "AVIF", "HEIF", "TIFF"):
        return
    frame_pixels = image.size[0] * image.size[1]
    try:
        if image.format in ("GIF", "PNG"):
            frames = counted
        else:
            frames = int(getattr(image, "n_frames", 1))
            image.seek(0)
    except Exception as exc:
        raise _decode_failure(exc) from exc
    total = frames * frame_pixels
    if total > limits.max_animation_pixels:
        raise ImageRejected(
            f"Animation has {frames} frames of {image.size[0]}x{image.size[1]} ({total:,} pixels in all);"
            f" at most {limits.max_animation_pixels:,} are accepted.",
            "too_many_frames",
        )


def memory_needed(survey: Survey, size: tuple[int, int]) -> int:
    """What a render will allocate, from the structure: what the decoder holds (the walk's count) and
    the render's images of the size Pillow reports."""
    width, height = size
    return survey.decoder_bytes + _RENDER_IMAGES * RGBA_BYTES * width * height + _ENCODING_BYTES


def check_memory(survey: Survey, size: tuple[int, int], limits: DecodeLimits) -> None:
    """Refuse an image whose render would need more memory than a render may use."""
    needed = memory_needed(survey, size)
    if needed > limits.max_render_bytes:
        raise ImageRejected(
            f"Rendering this image needs about {needed // MIB:,} MiB; a render may use"
            f" {limits.max_render_bytes // MIB:,} MiB (RENDER_MEMORY_MB).",
            "too_much_memory",
        )


def out_of_memory() -> ImageRejected:
    """What a render that runs out of its memory ends with, wherever it ran out."""
    return ImageRejected("The image needs more memory than a render may use.", "too_much_memory")


def _decode_failure(exc: BaseException) -> ImageRejected:
    """Classify a decoder exception into a stable reason code."""
    if isinstance(exc, MemoryError):
        return out_of_memory()
    text = str(exc).lower()
    if "truncated" in text or isinstance(exc, EOFError):
        return ImageRejected("The image data is truncated.", "truncated")
    if "decompressed data too large" in text or "too much memory" in text:
        return ImageRejected("The image contains a decompression bomb.", "decompression_bomb")
    return ImageRejected(f"The image data is corrupt ({type(exc).__name__}).", "corrupt")


def load_guarded(image: Image.Image) -> None:
    """Decode the pixels, turning decoder errors into reason codes."""
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise ImageRejected(str(exc), "too_many_pixels") from exc
    except Exception as exc:
        raise _decode_failure(exc) from exc
