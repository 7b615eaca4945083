"""Animated uploads: how often one plays, which variants may move within the limits, its frames one at
a time, and encoders that take them one at a time.

Memory stays bounded because nothing holds all the frames: each is decoded in turn (Pillow composites
GIF, APNG and WebP frames onto the canvas as it seeks, so disposal and blending are the decoder's),
resized for every moving variant and handed to that variant's encoder, which keeps its own canvases
and the bytes encoded so far. Pillow's `save_all` wants the frames as images (`append_images`, all in
memory at once); libwebp's animation encoder (`WebPAnimEncoder`) and libavif's take one frame at a
time, and Pillow's own WebP and AVIF plugins drive them that way through `_webp` and `_avif`.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from PIL import Image, _avif, _webp

from chalicelib.imaging.decode import load_guarded, seek_guarded
from chalicelib.imaging.limits import DecodeLimits
from chalicelib.imaging.results import MOVING, POSTER, TRUNCATED
from chalicelib.imaging.specs import VariantSpec
from chalicelib.imaging.structure.gif import colour_table_size

# libwebp forces no keyframe when the distance allowed between them exceeds any animation's length.
# Browsers play frames in order; keyframes every 3 to 5 frames (gif2webp's default) only help seeking,
# for 20-45 % more bytes and time (bench/ANIMATION.md).
_NO_KEYFRAMES = 2**31 - 1
STILL = "still"  # the record's `animation` when no variant moves, none for a limit
_TRANSPARENT = 0  # libwebp's canvas background (ARGB): where no frame has drawn yet
_OPAQUE_ALPHA = 100  # alpha plane quality, Pillow's default


def plays(source_format: str, info: Mapping[Any, Any]) -> int:
    """How many times the upload plays, 0 for ever. APNG and WebP store exactly that; a GIF stores
    how often it repeats (its NETSCAPE extension), and plays once without one."""
    loop = info.get("loop")
    if source_format == "GIF":
        return 1 if loop is None else 0 if loop == 0 else int(loop) + 1
    return 0 if loop is None else int(loop)


def plan(specs: Sequence[VariantSpec], upright: tuple[int, int], frames: int, limits: DecodeLimits) -> dict[str, str]:
    """What each variant of an animation of `frames` frames becomes: it moves if it can (its format and
    `animate`), within its frame limit, and while the frames x output pixels of all moving variants stay
    within the work limit, counted from the smallest variant up; it is a still otherwise.

    Decided from the frame count before a pixel is decoded, so a long animation costs what a still does.
    """
    outcome: dict[str, str] = {}
    work = 0
    for spec in sorted(specs, key=lambda s: _pixels(s.target_size(*upright))):
        cost = frames * _pixels(spec.target_size(*upright))
        if not spec.moves:
            outcome[spec.name] = POSTER
        elif frames > (spec.max_frames or limits.max_animation_frames) or work + cost > limits.max_animation_work:
            outcome[spec.name] = TRUNCATED
        else:
            outcome[spec.name] = MOVING
            work += cost
    return outcome


def _pixels(size: tuple[int, int]) -> int:
    return size[0] * size[1]


def summary(outcomes: Mapping[str, str]) -> str:
    """The record's `animation`: truncated if a limit stilled any variant, else animated if any moves,
    else still (every variant a poster, by choice or because moving came out larger than the upload)."""
    if TRUNCATED in outcomes.values():
        return TRUNCATED
    return MOVING if MOVING in outcomes.values() else STILL


def frames_of(image: Image.Image, count: int) -> Iterator[float]:
    """Seek `image` through its first `count` frames, decoding each (its duration in ms is yielded
    with `image` standing on it). Stops early where the file has fewer frames than counted.

    An APNG's default image may be no frame of its animation (a still for viewers without APNG, which
    browsers do not show): Pillow makes it frame 0, and the animation starts after it."""
    skipped = 1 if image.info.get("default_image") else 0
    for index in range(skipped, skipped + count):
        if not seek_guarded(image, index):
            return
        load_guarded(image)
        yield float(image.info.get("duration") or 0)


class AnimationEncoder(Protocol):
    def add(self, frame: Image.Image, duration: float) -> None: ...

    def finish(self) -> bytes: ...


class WebPAnimation:
    """An animated WebP, a frame at a time, as Pillow's WebP plugin drives libwebp (without forced
    keyframes: see _NO_KEYFRAMES). libwebp finds what changed between frames, and how to blend and
    dispose each sub-frame, itself: it is given whole frames."""

    def __init__(
        self,
        size: tuple[int, int],
        loop: int,
        lossless: bool,
        quality: int,
        method: int,
        icc_profile: bytes | None = None,
        exif: bytes | None = None,
    ) -> None:
        self._encoder = _webp.WebPAnimEncoder(
            size, _TRANSPARENT, loop, False, _NO_KEYFRAMES - 1, _NO_KEYFRAMES, False, False
        )
        self._settings = (lossless, quality, _OPAQUE_ALPHA, method)
        self._metadata = (icc_profile or b"", exif or b"", b"")
        self._timestamp = 0.0

    def add(self, frame: Image.Image, duration: float) -> None:
        if frame.mode not in ("RGB", "RGBA"):
            frame = frame.convert("RGBA" if "A" in frame.mode else "RGB")
        self._encoder.add(frame.getim(), round(self._timestamp), *self._settings)
        self._timestamp += duration

    def finish(self) -> bytes:
        lossless, quality, alpha_quality, _method = self._settings
        self._encoder.add(None, round(self._timestamp), lossless, quality, alpha_quality, 0)
        return bytes(self._encoder.assemble(*self._metadata))


class AvifAnimation:
    """An AVIF image sequence, a frame at a time, as Pillow's AVIF plugin drives libavif. It loops for
    ever: Pillow's encoder cannot write a play count."""

    def __init__(
        self,
        size: tuple[int, int],
        quality: int,
        speed: int,
        icc_profile: bytes | None = None,
        exif: bytes | None = None,
    ) -> None:
        threads = len(os.sched_getaffinity(0))
        self._encoder = _avif.AvifEncoder(
            size, "4:2:0", quality, speed, threads, "auto", "full", 0, 0, False, True,
            icc_profile or b"", exif or b"", 1, b"", None,
        )  # fmt: skip

    def add(self, frame: Image.Image, duration: float) -> None:
        mode = "RGBA" if "A" in frame.mode else "RGB"
        if frame.mode != mode:
            frame = frame.convert(mode)
        self._encoder.add(frame.tobytes("raw", mode), round(duration), frame.size, mode, False)

    def finish(self) -> bytes:
        return bytes(self._encoder.finish())


def without_metadata(data: bytes, source_format: str) -> bytes:
    """The upload's own GIF, APNG or WebP without what describes it (EXIF, XMP, comments, text): kept
    as an output when re-encoding would only grow it. Colour profiles and timing stay."""
    return {"GIF": _gif_without_metadata, "PNG": _png_without_metadata, "WEBP": _webp_without_metadata}[source_format](
        data
    )


_GIF_SCREEN, _GIF_IMAGE, _GIF_EXTENSION, _GIF_TRAILER = 13, 0x2C, 0x21, 0x3B
_GIF_KEPT_EXTENSIONS = {0xF9, 0x01}  # graphic control (timing, disposal, transparency), plain text
_GIF_LOOPS = (b"NETSCAPE2.0", b"ANIMEXTS1.0")  # application extensions that hold the repeat count


def _gif_without_metadata(data: bytes) -> bytes:
    pos = _GIF_SCREEN + colour_table_size(data[10])
    kept = [data[:pos]]
    while pos < len(data) and data[pos] != _GIF_TRAILER:
        start = pos
        if data[pos] == _GIF_IMAGE:
            pos = _after_sub_blocks(data, pos + 11 + colour_table_size(data[pos + 9]))
            kept.append(data[start:pos])
        elif data[pos] == _GIF_EXTENSION:
            label, pos = data[pos + 1], _after_sub_blocks(data, pos + 2)
            if label in _GIF_KEPT_EXTENSIONS or data[start + 3 : start + 14] in _GIF_LOOPS:
                kept.append(data[start:pos])
        else:
            pos += 1  # junk between blocks, which decoders skip
    return b"".join(kept) + bytes((_GIF_TRAILER,))


def _after_sub_blocks(data: bytes, pos: int) -> int:
    while pos < len(data) and data[pos]:
        pos += data[pos] + 1
    return pos + 1


_PNG_SIGNATURE = 8
# What shows the picture: the image and animation chunks, and those that decide its colours.
_PNG_KEPT = {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND", b"acTL", b"fcTL", b"fdAT", b"gAMA", b"cHRM", b"sRGB", b"iCCP"}


def _png_without_metadata(data: bytes) -> bytes:
    kept, pos = [data[:_PNG_SIGNATURE]], _PNG_SIGNATURE
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        end = pos + 12 + length
        if data[pos + 4 : pos + 8] in _PNG_KEPT:
            kept.append(data[pos:end])
        pos = end
    return b"".join(kept)


_RIFF_HEADER = 12  # "RIFF", size, "WEBP"
_VP8X_EXIF, _VP8X_XMP = 0x08, 0x04
_WEBP_METADATA = {b"EXIF": _VP8X_EXIF, b"XMP ": _VP8X_XMP}


def _webp_without_metadata(data: bytes) -> bytes:
    """Its own chunks but EXIF and XMP, the VP8X header saying so."""
    chunks, flags_cleared, pos = [], 0, _RIFF_HEADER
    while pos + 8 <= len(data):
        kind, size = struct.unpack_from("<4sI", data, pos)
        end = min(len(data), pos + 8 + size + (size & 1))
        if kind in _WEBP_METADATA:
            flags_cleared |= _WEBP_METADATA[kind]
        else:
            chunks.append(bytearray(data[pos:end]))
        pos = end
    for chunk in chunks:
        if chunk[:4] == b"VP8X" and len(chunk) > 8:
            chunk[8] &= ~flags_cleared & 0xFF
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body
