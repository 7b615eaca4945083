"""JPEG: markers and segments up to the first EOI, scans included, in one pass.

Pillow parses everything before the first scan in Python, then libjpeg parses it all again. Costs
that are not linear in the bytes: each scan is a pass over the coefficient buffer of its components
(a 287 KB file of 5,000 scans took 20 s); Exif segments are concatenated one at a time (2 MB of
small ones took 11 s); and every segment, fill byte or Photoshop resource has a Python cost.
Entropy-coded data is skipped with a regular expression, which runs in C.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from chalicelib.imaging.structure.guards import Tally
from chalicelib.imaging.structure.icc import check_icc
from chalicelib.imaging.structure.tiff import check_exif, check_tiff

_FF = re.compile(rb"\xff")
_NOT_FF = re.compile(rb"[^\xff]")
# After a scan header: the next marker that is not stuffing (FF00), a restart (FFD0-D7) or fill.
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")

_EOI, _SOS, _DQT, _DHT, _COM = 0xD9, 0xDA, 0xDB, 0xC4, 0xFE
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC9, 0xCA, 0xCB}  # the frame types libjpeg decodes
_ARITHMETIC = {0xC9, 0xCA, 0xCB}  # its arithmetic-coded frames
_COEFFICIENT_BYTES = 128
_TABLES = {0xCC, 0xDC, 0xDD}  # DAC, DNL, DRI
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM and restart markers: no length
_WITH_LENGTH = {*_SOF, *_TABLES, _SOS, _DQT, _DHT, _COM}  # and APP0-APP15
_PHOTOSHOP = b"Photoshop 3.0\x00"
_ICC = b"ICC_PROFILE\x00"
_MPF = b"MPF\x00"


@dataclass
class _Frame:
    blocks: dict[int, int]  # component id -> 8x8 blocks it has


@dataclass
class _Walk:
    data: bytes
    tally: Tally
    frame: _Frame | None = None
    arithmetic: bool = False
    exif: list[tuple[int, int]] = field(default_factory=list)
    icc: list[tuple[int, int]] = field(default_factory=list)
    mpf: tuple[int, int] | None = None


def walk_jpeg(data: bytes, tally: Tally) -> None:
    walk = _Walk(data, tally)
    try:
        _walk_segments(walk)
    finally:  # what the decoder holds, however far the walk got
        if walk.frame is not None and tally.survey.metrics.get("jpeg.scans", 0) > 1:
            # More than one scan: libjpeg keeps every coefficient (64 x 2 bytes a block) at full size.
            tally.survey.decoder_bytes = _COEFFICIENT_BYTES * sum(walk.frame.blocks.values())
        tally.survey.whole_input = walk.arithmetic
    _check_metadata(walk)


def _walk_segments(walk: _Walk) -> None:
    data, tally, end, pos = walk.data, walk.tally, len(walk.data), 2
    while pos < end:
        tally.step()
        marker_at = _find_marker(data, pos, tally)
        if marker_at is None or marker_at + 4 > end:
            return  # truncated: the decoder reports it
        marker = data[marker_at + 1]
        if marker == 0x00:  # a stray FF00: Pillow skips it, libjpeg calls it extraneous data
            tally.add("jpeg.padding_bytes", 2)
            pos = marker_at + 2
            continue
        if marker == _EOI:
            if tally.survey.metrics.get("jpeg.scans", 0) == 0:
                raise tally.refuse("ends before its first scan.")
            return  # later frames of an MPO and trailing data are never decoded
        if marker in _STANDALONE:
            tally.add("jpeg.tables")
            pos = marker_at + 2
            continue
        if not (0xE0 <= marker <= 0xEF or marker in _WITH_LENGTH):
            # SOI again, hierarchical frames, JPG, JPGn, DHP, EXP or reserved markers: libjpeg stops.
            raise tally.refuse(f"has marker FF{marker:02X}, which libjpeg does not decode.")
        (length,) = struct.unpack_from(">H", data, marker_at + 2)
        start, stop = marker_at + 4, marker_at + 2 + length
        if length < 2:
            raise tally.refuse(f"has a segment of impossible length {length}.")
        if stop > end:
            return
        pos = _segment(walk, marker, start, stop)


def _find_marker(data: bytes, pos: int, tally: Tally) -> int | None:
    """Offset of the FF that introduces the next marker, counting junk and fill bytes before it.

    Each search stops where the padding guard would be passed, so a file of padding costs no more
    than the guard allows."""
    if data[pos] != 0xFF:
        horizon = pos + tally.remaining("jpeg.padding_bytes") + 1
        found = _FF.search(data, pos, horizon)
        tally.add("jpeg.padding_bytes", (found.start() if found else min(horizon, len(data))) - pos)
        if found is None:
            return None
        pos = found.start()
    horizon = pos + tally.remaining("jpeg.padding_bytes") + 2
    code = _NOT_FF.search(data, pos + 1, horizon)
    tally.add("jpeg.padding_bytes", (code.start() if code else min(horizon, len(data))) - pos - 1)
    return None if code is None else code.start() - 1


def _segment(walk: _Walk, marker: int, start: int, stop: int) -> int:
    """Check one segment; return where the next marker is looked for."""
    tally = walk.tally
    if 0xE0 <= marker <= 0xEF or marker == _COM:
        _metadata_segment(walk, marker, start, stop)
    elif marker in _SOF:
        _frame_header(walk, marker, start, stop)
    elif marker == _SOS:
        return _scan(walk, start, stop)
    elif marker == _DQT:
        tally.add("jpeg.tables", _quantization_tables(walk.data, start, stop, tally))
    elif marker == _DHT:
        tally.add("jpeg.tables", _huffman_tables(walk.data, start, stop, tally))
    else:  # DAC, DNL, DRI
        tally.add("jpeg.tables")
    return stop


def _metadata_segment(walk: _Walk, marker: int, start: int, stop: int) -> None:
    data, tally = walk.data, walk.tally
    tally.add("jpeg.metadata_segments")
    tally.add("jpeg.metadata_bytes", stop - start)
    if marker == 0xE1 and data.startswith(b"Exif\x00\x00", start, stop):
        tally.add("jpeg.exif_segments")
        walk.exif.append((start, stop))
    elif marker == 0xE2 and data.startswith(_ICC, start, stop):
        tally.add("icc.bytes", max(0, stop - start - len(_ICC) - 2))
        if walk.frame is None:  # Pillow assembles the profile from the chunks before the frame header
            walk.icc.append((start, stop))
    elif marker == 0xE2 and data.startswith(_MPF, start, stop):
        walk.mpf = (start + len(_MPF), stop)  # Pillow keeps the last one
    elif marker == 0xED and data.startswith(_PHOTOSHOP, start, stop):
        _photoshop_resources(data, start + len(_PHOTOSHOP), stop, tally)


def _photoshop_resources(data: bytes, pos: int, stop: int, tally: Tally) -> None:
    """Walk the 8BIM resources the way Pillow's APP13 handler does, counting them."""
    while data.startswith(b"8BIM", pos, stop) and pos + 7 <= stop:
        tally.step()
        tally.add("jpeg.photoshop_resources")
        pos += 6
        pos += 1 + data[pos]  # Pascal-string name
        pos += pos & 1
        if pos + 4 > stop:
            return
        (size,) = struct.unpack_from(">I", data, pos)
        pos += 4 + size
        pos += pos & 1


def _frame_header(walk: _Walk, marker: int, start: int, stop: int) -> None:
    data, tally = walk.data, walk.tally
    if walk.frame is not None:
        raise tally.refuse("has two frame headers (SOF).")
    if stop - start < 6:
        raise tally.refuse("has a truncated frame header.")
    height, width, count = struct.unpack_from(">HHB", data, start + 1)
    if stop - start != 6 + 3 * count or not 1 <= count <= 4:
        raise tally.refuse(f"frame header declares {count} components in {stop - start} bytes.")
    sampling = [(data[at], data[at + 1] >> 4, data[at + 1] & 15) for at in range(start + 6, stop, 3)]
    if any(not (1 <= h <= 4 and 1 <= v <= 4) for _c, h, v in sampling):
        raise tally.refuse("has impossible sampling factors.")
    walk.arithmetic = marker in _ARITHMETIC
    h_max, v_max = max(h for _c, h, _v in sampling), max(v for _c, _h, v in sampling)
    mcu_columns, mcu_rows = -(-width // (8 * h_max)), -(-height // (8 * v_max))
    walk.frame = _Frame({c: mcu_columns * h * mcu_rows * v for c, h, v in sampling})


def _scan(walk: _Walk, start: int, stop: int) -> int:
    data, tally, frame = walk.data, walk.tally, walk.frame
    if frame is None:
        raise tally.refuse("has a scan before its frame header.")
    count = data[start]
    if stop - start != 4 + 2 * count or not 1 <= count <= 4:
        raise tally.refuse(f"scan header declares {count} components in {stop - start} bytes.")
    components = [data[at] for at in range(start + 1, start + 1 + 2 * count, 2)]
    if any(c not in frame.blocks for c in components):
        raise tally.refuse("has a scan of a component its frame does not have.")
    tally.add("jpeg.scans")
    tally.add("jpeg.scan_blocks", sum(frame.blocks[c] for c in components))
    following = _NEXT_MARKER.search(data, stop)
    return len(data) if following is None else following.start()


def _quantization_tables(data: bytes, pos: int, stop: int, tally: Tally) -> int:
    tables = 0
    while pos < stop:
        precision, index = data[pos] >> 4, data[pos] & 15
        if precision > 1 or index > 3:
            raise tally.refuse("has an invalid quantization table.")
        pos += 1 + 64 * (precision + 1)
        tables += 1
    if pos != stop:
        raise tally.refuse("has a quantization table segment of the wrong length.")
    return tables


def _huffman_tables(data: bytes, pos: int, stop: int, tally: Tally) -> int:
    tables = 0
    while pos < stop:
        kind, index = data[pos] >> 4, data[pos] & 15
        if pos + 17 > stop or kind > 1 or index > 3:
            raise tally.refuse("has an invalid Huffman table.")
        symbols = sum(data[pos + 1 : pos + 17])
        if symbols > 256:
            raise tally.refuse("has an invalid Huffman table.")
        pos += 17 + symbols
        tables += 1
    if pos != stop:
        raise tally.refuse("has a Huffman table segment of the wrong length.")
    return tables


def _check_metadata(walk: _Walk) -> None:
    """EXIF as Pillow assembles it (the first segment, then the rest without their headers), the ICC
    profile (chunks in sequence order, when their count is right) and MPF."""
    data, tally = walk.data, walk.tally
    if walk.exif:
        first_start, first_stop = walk.exif[0]
        if len(walk.exif) == 1:
            check_exif(data, first_start, first_stop, tally)
        else:
            joined = data[first_start:first_stop] + b"".join(data[a + 6 : b] for a, b in walk.exif[1:])
            check_exif(joined, 0, len(joined), tally)
    if walk.mpf is not None:
        check_tiff(data, walk.mpf[0], walk.mpf[1], tally)
    chunks = sorted(data[start:stop] for start, stop in walk.icc)
    if chunks and len(chunks[0]) > 13 and chunks[0][13] == len(chunks):
        profile = b"".join(chunk[14:] for chunk in chunks)
        check_icc(profile, 0, len(profile), tally)
