"""TIFF directories inside other containers: EXIF (every format) and the MPF index of phone JPEGs.

Pillow reads every value an entry points to, copying it, and unpacks them all for MPF and for the
EXIF sub-directories: 2,700 entries pointing at one 32 KB blob make 86 MB from a 64 KB segment.
The walk adds up what Pillow would read, directory by directory, without reading any of it.
"""

from __future__ import annotations

import struct

from chalicelib.imaging.structure.guards import Tally

_HEADERS = {b"II*\x00": "<", b"II\x00*": "<", b"MM\x00*": ">", b"MM*\x00": ">"}
_EXIF_PREFIX = b"Exif\x00\x00"
# TIFF field type -> bytes per value: the types Pillow loads (others it skips).
_UNIT = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8}
_SUB_DIRECTORIES = {0x8769, 0x8825, 0xA005}  # Exif, GPS, Interoperability
_ENTRY = 12


def check_exif(data: bytes, start: int, end: int, tally: Tally) -> None:
    """An EXIF payload as Pillow's `Exif.load` takes it: optional "Exif\\0\\0" prefixes, then TIFF."""
    prefixes = 0
    while data.startswith(_EXIF_PREFIX, start, end):
        start += len(_EXIF_PREFIX)
        prefixes += 1
        if prefixes > 2:  # Pillow strips them one copy at a time: quadratic in their number
            raise tally.refuse("EXIF starts with repeated Exif headers.")
    check_tiff(data, start, end, tally)


def check_tiff(data: bytes, start: int, end: int, tally: Tally) -> None:
    """Count the entries and value bytes of the directories Pillow may load: IFD0, IFD1, Exif, GPS
    and Interop. Offsets are relative to `start`; nothing outside [start, end) is read."""
    endian = _HEADERS.get(data[start : start + 4])
    if endian is None or end - start < 8:
        return
    (first,) = struct.unpack_from(endian + "I", data, start + 4)
    pending, seen = [(first, True)], set()
    while pending:
        offset, follow_next = pending.pop()
        table = start + offset
        if offset in seen or table + 2 > end:
            continue
        seen.add(offset)
        tally.step()
        (declared,) = struct.unpack_from(endian + "H", data, table)
        count = min(declared, (end - table - 2) // _ENTRY)  # Pillow stops where the data ends
        tally.add("exif.entries", count)
        for entry in range(table + 2, table + 2 + count * _ENTRY, _ENTRY):
            tally.step()
            pending.extend(_read_entry(data, entry, start, end, endian, tally))
        after = table + 2 + count * _ENTRY
        if follow_next and count == declared and after + 4 <= end:
            (following,) = struct.unpack_from(endian + "I", data, after)
            if following:  # Pillow reads IFD1 only when the pointer is not 0 (sub-directories: always)
                pending.append((following, False))


def _read_entry(data: bytes, entry: int, start: int, end: int, endian: str, tally: Tally) -> list[tuple[int, bool]]:
    tag, kind, count = struct.unpack_from(endian + "HHI", data, entry)
    unit = _UNIT.get(kind)
    if unit is None:
        return []
    size = count * unit
    if size > 4:
        (offset,) = struct.unpack_from(endian + "I", data, entry + 8)
        tally.add("exif.value_bytes", max(0, min(size, end - start - offset)))
        return []
    if tag in _SUB_DIRECTORIES and count == 1 and kind in (3, 4, 13):
        (pointer,) = struct.unpack_from(endian + ("H" if kind == 3 else "I"), data, entry + 8)
        return [(pointer, False)]
    return []
