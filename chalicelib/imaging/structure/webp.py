"""WebP (RIFF): chunks, frames (ANMF) and the canvas they are drawn on.

libwebp's demuxer is C and linear, and it checks each frame's bitstream against its header. What it
does not refuse: a canvas far larger than its frames, which the animation decoder allocates and
clears in full before the first frame (a 96-byte file with a 50 MP canvas: 2.8 s, 845 MB).
"""

from __future__ import annotations

import struct

from chalicelib.imaging.structure.guards import CANVAS_FLOOR, RGBA_BYTES, Tally
from chalicelib.imaging.structure.icc import check_icc
from chalicelib.imaging.structure.tiff import check_exif

_HEADER = 12  # "RIFF", size, "WEBP"
_FRAME_HEADER = 16  # ANMF: x, y, width - 1, height - 1 (24 bits each), duration (24), flags (8)
_IMAGE = {b"VP8 ", b"VP8L", b"ALPH", b"ANIM", b"VP8X"}
_DECODER_CANVASES = 3


def walk_webp(data: bytes, tally: Tally) -> None:
    (riff_size,) = struct.unpack_from("<I", data, 4)
    walk = _Walk(data, tally, min(len(data), 8 + riff_size))  # libwebp reads no further than that
    walk.chunks(_HEADER, walk.end, top_level=True)
    tally.survey.steps += walk.count
    tally.add("webp.frames", walk.frames)
    tally.add("webp.chunks", walk.count)
    tally.add("webp.metadata_bytes", walk.metadata)
    tally.survey.frames = max(walk.frames, 1)
    if walk.frames and walk.canvas > CANVAS_FLOOR:
        tally.peak("webp.canvas_ratio", walk.canvas // max(walk.covered, 1))
    # Pillow decodes every WebP with libwebp's animation decoder: two RGBA canvases of its own, and a
    # copy of the frame as a Python bytes object.
    tally.survey.decoder_bytes = _DECODER_CANVASES * RGBA_BYTES * walk.canvas


class _Walk:
    """Counts kept locally (the loop is the hot path) and reported once; the chunk count stops the
    walk as soon as it passes its guard."""

    def __init__(self, data: bytes, tally: Tally, end: int) -> None:
        self.data, self.tally, self.end = data, tally, end
        self.allowed, self.frames_allowed = tally.remaining("webp.chunks"), tally.remaining("webp.frames")
        self.count = self.frames = self.canvas = self.covered = self.metadata = 0

    def chunks(self, pos: int, end: int, top_level: bool) -> None:
        data = self.data
        while pos + 8 <= end and self.count <= self.allowed and self.frames <= self.frames_allowed:
            kind, size = struct.unpack_from("<4sI", data, pos)
            start, stop = pos + 8, min(pos + 8 + size, end)
            self.count += 1
            if kind == b"ANMF" and top_level and stop - start >= _FRAME_HEADER:
                self.frames += 1
                self.covered += (1 + _u24(data, start + 6)) * (1 + _u24(data, start + 9))
                self.chunks(start + _FRAME_HEADER, stop, top_level=False)
            elif kind == b"VP8X" and stop - start >= 10:
                self.canvas = (1 + _u24(data, start + 4)) * (1 + _u24(data, start + 7))
            elif top_level and not self.canvas and stop - start >= 10:  # a still image: its own size
                self.canvas = _bitstream_pixels(data, kind, start)
            elif kind not in _IMAGE:
                self.metadata += stop - start
                if kind == b"ICCP":
                    self.tally.add("icc.bytes", stop - start)
                    check_icc(data, start, stop, self.tally)
                elif kind == b"EXIF":
                    check_exif(data, start, stop, self.tally)
            pos = start + size + (size & 1)


def _bitstream_pixels(data: bytes, kind: bytes, start: int) -> int:
    if kind == b"VP8 ":  # after the frame tag and start code: 14-bit width and height (VP8, RFC 6386)
        width, height = struct.unpack_from("<HH", data, start + 6)
        return (width & 0x3FFF) * (height & 0x3FFF)
    if kind == b"VP8L":  # after the signature: 14-bit width - 1 and height - 1
        (bits,) = struct.unpack_from("<I", data, start + 1)
        return (1 + (bits & 0x3FFF)) * (1 + (bits >> 14 & 0x3FFF))
    return 0


def _u24(data: bytes, pos: int) -> int:
    return int.from_bytes(data[pos : pos + 3], "little")
