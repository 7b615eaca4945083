"""Cost guards by structure: walk an upload's container once, before any decoder sees it.

Decoders are not linear in every container: a few hundred kilobytes of progressive scans, small
Exif segments, PNG chunks, GIF comments or AVIF tiles can cost minutes or gigabytes. Each walker
reads only headers (JPEG markers, PNG chunks, GIF blocks, RIFF chunks, ISO-BMFF boxes), with
offsets into the bytes and never a copy of them, and counts what it sees against the guards in
`guards.GUARDS`. The first count past its limit raises ImageRejected with the guard's code, so the
walk itself costs at most a little per structural element, however large or hostile the file.

Pure: no Pillow. Truncated or garbled containers are not the walker's to judge (the decoder reports
them as it always has): it stops where it can read no further and raises nothing but ImageRejected.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable, Mapping

from chalicelib.imaging.structure.bmff import walk_bmff
from chalicelib.imaging.structure.gif import walk_gif
from chalicelib.imaging.structure.guards import GUARDS, Guard, Survey, Tally
from chalicelib.imaging.structure.jpeg import walk_jpeg
from chalicelib.imaging.structure.png import walk_png
from chalicelib.imaging.structure.webp import walk_webp

__all__ = ["GUARDS", "Guard", "Survey", "Tally", "check_structure", "walk"]

_WALKERS: dict[str, Callable[[bytes, Tally], None]] = {
    "JPEG": walk_jpeg,
    "PNG": walk_png,
    "GIF": walk_gif,
    "WEBP": walk_webp,
    "AVIF": walk_bmff,
    "HEIF": walk_bmff,
}


def check_structure(data: bytes, container: str, guards: Mapping[str, Guard] | None = GUARDS) -> Survey:
    """Walk `data` as `container` (a name from formats.sniff_format); raise ImageRejected at the first
    guard passed. With `guards=None` nothing is refused: the survey then measures a file."""
    tally = Tally(container, guards)
    walk(data, container, tally)
    return tally.survey


def walk(data: bytes, container: str, tally: Tally) -> None:
    """The walk itself, reporting to `tally` (whose survey shows how far it got if it raises)."""
    walker = _WALKERS.get(container)
    if walker is not None:
        # A header cut short stops the walk: the decoder reports it, as it did before any walker.
        with contextlib.suppress(IndexError, struct.error):
            walker(data, tally)
