"""ICC profiles: the tags LittleCMS turns into a pipeline, counted before any transform is built.

colour.py builds a transform to sRGB for every RGB or CMYK image with a profile. LittleCMS then
evaluates the profile's pipeline on a grid of some 36,000 colours, so its cost is the number of
stages times that grid, not the profile's size: a `multiProcessElementsType` tag (what a D2Bx tag
holds, and what LittleCMS prefers to A2Bx) can list one stored element thousands of times. 1,000
such stages (an 8.5 KB profile) took 2.2 s; a 64 KB profile, about 17 s. Other tag types have a
fixed number of stages (a large CLUT costs its bytes: 8 MB, 0.1 s), and so do segmented curves,
which LittleCMS samples into tables (4,000 segments: 23 ms).
"""

from __future__ import annotations

import struct

from chalicelib.imaging.structure.guards import Tally

_HEADER = 128
_TAG_TABLE_MAX = 100  # LittleCMS refuses profiles with more tags


def check_icc(data: bytes, start: int, end: int, tally: Tally) -> None:
    """Count the processing elements of every multiProcessElements tag, each stored tag once."""
    if end - start < _HEADER + 4:
        return
    (count,) = struct.unpack_from(">I", data, start + _HEADER)
    if count > _TAG_TABLE_MAX:
        return
    seen = set()
    for entry in range(start + _HEADER + 4, min(end, start + _HEADER + 4 + 12 * count) - 11, 12):
        tally.step()
        offset, size = struct.unpack_from(">II", data, entry + 4)
        tag, tag_end = start + offset, min(end, start + offset + size)
        if tag in seen or tag_end - tag < 16 or data[tag : tag + 4] != b"mpet":
            continue
        seen.add(tag)
        tally.add("icc.elements", struct.unpack_from(">I", data, tag + 12)[0])
