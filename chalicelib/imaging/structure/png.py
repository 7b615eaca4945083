"""PNG and APNG: chunks, counted and sized, up to IEND.

Pillow handles every chunk in Python (~2.5 us each: 25 MB of empty chunks is ~5 s), keeps every
private chunk, and inflates every iCCP chunk up to 1 MiB (5,000 small iCCP chunks took 10 s). Text
chunks named "Raw profile type exif" become EXIF when no eXIf chunk exists, so both are checked.
A palette image must have its palette (PLTE) before its image data: Pillow decodes one without, then
fails an assertion wherever the palette is read.
"""

from __future__ import annotations

import re
import struct
import zlib

from chalicelib.imaging.structure.guards import Tally
from chalicelib.imaging.structure.icc import check_icc
from chalicelib.imaging.structure.tiff import check_exif

_CHUNK_TYPE = re.compile(rb"\w{4}")  # Pillow's test for a chunk type
_IMAGE_DATA = {b"IDAT", b"fdAT"}
_IMAGE = {b"IHDR", b"PLTE", b"acTL"}
_PALETTE_COLOUR = 3  # IHDR colour type of palette images
_TEXT = {b"tEXt", b"zTXt", b"iTXt"}
_RAW_EXIF_KEY = b"Raw profile type exif\x00"
_TEXT_CHUNK_MAX = 1024 * 1024  # Pillow's MAX_TEXT_CHUNK: it refuses text that inflates further


def walk_png(data: bytes, tally: Tally) -> None:
    end, pos, chunks, allowed = len(data), 8, 0, tally.remaining("png.chunks")
    raw_exif: tuple[bytes, int, int] | None = None
    icc: tuple[int, int] | None = None
    palette_missing = False
    while pos + 12 <= end and chunks <= allowed:
        length, kind = struct.unpack_from(">I4s", data, pos)
        start, stop = pos + 8, pos + 8 + length
        if stop + 4 > end or not _CHUNK_TYPE.fullmatch(kind):
            break  # truncated or not a chunk: Pillow stops or fails here too
        chunks += 1
        pos = stop + 4
        if kind in _IMAGE_DATA or kind in _IMAGE:  # the common case, kept to a dictionary lookup
            if kind == b"IHDR":
                palette_missing = length >= 13 and data[start + 9] == _PALETTE_COLOUR
            elif kind == b"PLTE":
                palette_missing = False
            elif palette_missing and kind in _IMAGE_DATA:
                raise tally.refuse("is a palette image without a palette (no PLTE chunk before its image data).")
            continue
        if kind == b"IEND":
            break
        if kind == b"fcTL":
            tally.add("png.frames")
            continue
        if kind == b"iCCP":
            icc = (start, stop)
        raw_exif = _ancillary(data, kind, start, stop, tally) or raw_exif
    tally.survey.steps += chunks
    tally.add("png.chunks", chunks)
    tally.survey.frames = max(tally.survey.metrics.get("png.frames", 0), 1)
    if raw_exif is not None:  # Pillow uses the last one, as it does the last iCCP
        _check_raw_exif(data, *raw_exif, tally)
    if icc is not None:
        _check_compressed_icc(data, *icc, tally)


def _ancillary(data: bytes, kind: bytes, start: int, stop: int, tally: Tally) -> tuple[bytes, int, int] | None:
    """Count one metadata chunk; return where its value is if it is a "Raw profile type exif" text."""
    tally.add("png.ancillary_chunks")
    tally.add("png.metadata_bytes", stop - start)
    if kind in _TEXT:
        tally.add("png.text_chunks")
        if data.startswith(_RAW_EXIF_KEY, start, stop):
            return kind, start + len(_RAW_EXIF_KEY), stop
    elif kind == b"iCCP":
        tally.add("png.iccp_chunks")
    elif kind == b"eXIf":
        check_exif(data, start, stop, tally)
    return None


def _check_compressed_icc(data: bytes, start: int, stop: int, tally: Tally) -> None:
    """iCCP: a name, a compression method, then the profile deflated (Pillow inflates up to 1 MiB)."""
    name_end = data.find(b"\x00", start, min(stop, start + 80))
    if name_end < 0:
        return
    profile = _inflate(data[name_end + 2 : stop])
    if profile is not None:
        check_icc(profile, 0, len(profile), tally)


def _check_raw_exif(data: bytes, kind: bytes, start: int, stop: int, tally: Tally) -> None:
    """ImageMagick's hex-encoded EXIF, decoded the way Pillow's getexif() does."""
    text = _text_value(data, kind, start, stop)
    if text is None:
        return
    try:
        exif = bytes.fromhex(b"".join(text.split(b"\n")[3:]).decode("latin-1"))
    except ValueError:
        return  # Pillow fails the same way and ignores the EXIF
    check_exif(exif, 0, len(exif), tally)


def _text_value(data: bytes, kind: bytes, start: int, stop: int) -> bytes | None:
    """The value of a text chunk whose key has been read, inflated as Pillow would (or None)."""
    if kind == b"tEXt":
        return data[start:stop]
    if kind == b"zTXt":
        compressed = data[start + 1 : stop]
    else:  # iTXt: compression flag and method, then language and translated key
        if stop - start < 2:
            return None
        flag, parts = data[start], data[start + 2 : stop].split(b"\x00", 2)
        if len(parts) < 3:
            return None
        if not flag:
            return parts[2]
        compressed = parts[2]
    return _inflate(compressed)


def _inflate(compressed: bytes) -> bytes | None:
    """What Pillow's _safe_zlib_decompress returns, or None where it raises."""
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(compressed, _TEXT_CHUNK_MAX)
    except zlib.error:
        return None
    return None if inflater.unconsumed_tail else text
