"""Open untrusted bytes safely: sniff, restrict decoders, walk the container's structure, check size
and the memory the render will need before any pixel is decoded."""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from chalicelib.errors import ImageRejected
from chalicelib.formats import sniff_format
from chalicelib.imaging.limits import MAX_ANIMATION_WORK, MIB, DecodeLimits
from chalicelib.imaging.structure import Survey, check_structure
from chalicelib.imaging.structure.guards import RGBA_BYTES

# Pillow warns between 1x and 2x MAX_IMAGE_PIXELS; check_dimensions rejects those files itself.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
ANIMATED_DECODERS = ("GIF", "PNG", "WEBP", "AVIF")  # HEIF's several images are a burst, TIFF's pages
# Besides what the decoder holds, a render holds the decoded image and at most two more of its size at
# once (a copy on its way to Pillow or a converted one, the colour-managed master), each up to RGBA's
# 4 bytes a pixel; and the encoders' working memory, the interpreter's growth. Measured against the
# peaks of the worst legal file of each format: bench/HOSTILE.md.
_RENDER_IMAGES = 3
_ENCODING_BYTES = 128 * MIB
# An animation's render holds besides: the decoder's previous frame and the area it disposes of, a
# moving variant's frame on its way to its encoder; each moving variant's encoder its own canvases
# (libwebp: the frame given, the previous one, the candidate sub-frames); and the bytes encoded so
# far, at most what raw RGBA would take (lossy WebP of noise: 0.6 a pixel; lossless of noise went past
# 1, and past the estimate made with 1: bench/ANIMATION.md).
_ANIMATION_IMAGES = 3
_ENCODER_CANVASES = 6
_ENCODED_BYTES_PER_PIXEL = RGBA_BYTES


def open_guarded(data: bytes, limits: DecodeLimits) -> Image.Image:
    """Return a lazily-decoded image whose structure and header passed every limit.

    The container is walked (imaging/structure/) before Pillow parses a byte of it: some of Pillow's
    parsers cost far more than the bytes they read. Nothing but headers has been read when this
    returns: callers may still `draft()`.
    """
    return open_counted(data, limits)[0]


def open_counted(data: bytes, limits: DecodeLimits) -> tuple[Image.Image, int]:
    """open_guarded's image, and its frame count (from the structure walk where Pillow would parse
    the whole file to count them): more than 1 for an animation, or a HEIF or TIFF of several images."""
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
    frames = check_frames(image, survey.frames, limits)
    animated = frames > 1 and image.format in ANIMATED_DECODERS
    check_memory(survey, image.size, limits, frames if animated else 1)
    if survey.whole_input:  # arithmetic decoding cannot suspend: hand libjpeg the whole file at once
        image.decodermaxblock = max(image.decodermaxblock, len(data))
    return image, frames


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


def check_frames(image: Image.Image, counted: int, limits: DecodeLimits) -> int:
    """Reject animations whose frames add up to too many pixels, from headers alone; return the count.

    Every frame of an animation may be decoded, and a file of hundreds of large frames (each a few
    bytes: the decompression-heavy kind) is an attack, not a photo. The structure walk `counted` GIF
    and APNG frames (Pillow would parse every block in Python to count them); WebP, AVIF, HEIF and TIFF
    report their count from C parsers.
    """
    if image.format not in ("GIF", "PNG", "WEBP", "AVIF", "HEIF", "TIFF"):
        return 1
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
    return frames


def memory_needed(
    survey: Survey, size: tuple[int, int], frames: int = 1, max_animation_work: int = MAX_ANIMATION_WORK
) -> int:
    """What a render will allocate, from the structure: what the decoder holds (the walk's count) and
    the render's images of the size Pillow reports; for an animation of `frames` frames, also what its
    moving variants' encoders hold, whose pixels a frame are at most the work limit's share of a frame
    (animation.plan) and, as measured, at most the canvas's."""
    width, height = size
    needed = survey.decoder_bytes + _RENDER_IMAGES * RGBA_BYTES * width * height + _ENCODING_BYTES
    if frames > 1:
        moving = min(max_animation_work // frames, width * height)
        needed += RGBA_BYTES * (_ANIMATION_IMAGES * width * height + _ENCODER_CANVASES * moving)
        needed += _ENCODED_BYTES_PER_PIXEL * min(max_animation_work, frames * width * height)
    return needed


def check_memory(survey: Survey, size: tuple[int, int], limits: DecodeLimits, frames: int = 1) -> None:
    """Refuse an image whose render would need more memory than a render may use."""
    needed = memory_needed(survey, size, frames, limits.max_animation_work)
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


def seek_guarded(image: Image.Image, frame: int) -> bool:
    """Move to `frame` of an animation; False past its last. Decoder errors become reason codes."""
    try:
        image.seek(frame)
    except EOFError:
        return False
    except Exception as exc:  # Pillow's plugins parse each frame's header as they seek to it
        raise _decode_failure(exc) from exc
    return True


def load_guarded(image: Image.Image) -> None:
    """Decode the pixels, turning decoder errors into reason codes."""
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise ImageRejected(str(exc), "too_many_pixels") from exc
    except Exception as exc:
        raise _decode_failure(exc) from exc
