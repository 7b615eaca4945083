"""GIF: blocks and their sub-blocks, counted, up to the trailer; frames and the area they cover.

Pillow reads sub-blocks one at a time in Python and builds comments by repeated concatenation
(3 MB of comment took 7 s; the same in 1-byte sub-blocks did not finish in 2 minutes). It decodes
the first frame onto the whole logical screen (grown to hold that frame), however small the
frames are.
"""

from __future__ import annotations

import re
import struct

from chalicelib.imaging.structure.guards import CANVAS_FLOOR, Tally

_IMAGE, _EXTENSION, _TRAILER = 0x2C, 0x21, 0x3B
_COMMENT, _GRAPHIC_CONTROL = 0xFE, 0xF9
_BLOCK_START = re.compile(rb"[\x21\x2c\x3b]")  # Pillow skips any other byte between blocks
_SCREEN = 13  # "GIF89a", width, height, flags, background, aspect


def walk_gif(data: bytes, tally: Tally) -> None:
    end = len(data)
    if end < _SCREEN:
        return
    width, height, flags = struct.unpack_from("<HHB", data, 6)
    pos, frames, blocks, covered = _SCREEN + colour_table_size(flags), 0, 0, 0
    frames_allowed, blocks_allowed = tally.remaining("gif.frames"), tally.remaining("gif.blocks")
    while pos < end and frames <= frames_allowed and blocks <= blocks_allowed:
        introducer = data[pos]
        if introducer == _IMAGE:
            if pos + 10 > end:
                break
            left, top, w, h, flags = struct.unpack_from("<HHHHB", data, pos + 1)
            if not frames:  # Pillow grows the canvas to hold the first frame
                width, height = max(width, left + w), max(height, top + h)
            frames += 1
            covered += max(0, min(w, width - left)) * max(0, min(h, height - top))
            pos = _sub_blocks(data, pos + 11 + colour_table_size(flags), tally)  # + LZW minimum code size
        elif introducer == _EXTENSION:
            label = data[pos + 1] if pos + 1 < end else 0
            blocks += 1
            pos = _sub_blocks(data, pos + 2, tally, metadata=label != _GRAPHIC_CONTROL, comment=label == _COMMENT)
        elif introducer == _TRAILER:
            break
        else:  # stopping the search where the padding guard would be passed
            horizon = min(end, pos + tally.remaining("gif.padding_bytes") + 1)
            found = _BLOCK_START.search(data, pos, horizon)
            following = horizon if found is None else found.start()
            tally.add("gif.padding_bytes", following - pos)
            pos = following
    tally.survey.steps += frames + blocks
    tally.add("gif.frames", frames)
    tally.add("gif.blocks", blocks)
    tally.survey.frames = max(frames, 1)
    canvas = width * height
    if canvas > CANVAS_FLOOR:
        tally.peak("gif.canvas_ratio", canvas // max(covered, 1))


def colour_table_size(flags: int) -> int:
    """Bytes of the colour table a screen descriptor's or image descriptor's flags announce."""
    return 3 << ((flags & 7) + 1) if flags & 0x80 else 0


def _sub_blocks(data: bytes, pos: int, tally: Tally, metadata: bool = False, comment: bool = False) -> int:
    """Skip a chain of sub-blocks; return the position after its terminator. Counted locally and
    reported once per chain, stopping as soon as a guard (count or bytes) would be passed."""
    end, allowed = len(data), tally.remaining("gif.sub_blocks")
    payload_allowed = tally.remaining("gif.metadata_bytes") if metadata else end
    if comment:
        payload_allowed = min(payload_allowed, tally.remaining("gif.comment_bytes"))
    blocks = payload = 0
    while pos < end and blocks <= allowed and payload <= payload_allowed:
        size = data[pos]
        pos += size + 1
        if size == 0:
            break
        blocks += 1
        payload += size
    tally.survey.steps += blocks
    tally.add("gif.sub_blocks", blocks)
    if comment:
        tally.add("gif.comments")
        tally.add("gif.comment_bytes", payload)
    if metadata:
        tally.add("gif.metadata_bytes", payload)
    return pos
