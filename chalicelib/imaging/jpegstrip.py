"""Remove metadata from a JPEG without touching its compressed image data.

Used when re-encoding would not make a JPEG smaller: the output is then the original's own
scan data, byte for byte, minus EXIF/XMP/IPTC/comments and any MPO second frame. The ICC
profile (APP2) and Adobe colour marker (APP14) are kept because they define the colours;
the EXIF orientation, when not upright, is kept as a one-tag EXIF so viewers still rotate it.
"""

from __future__ import annotations

import struct

_SOI, _EOI, _SOS = b"\xff\xd8", 0xD9, 0xDA
_KEEP_APP = {0xE0: b"JFIF", 0xE2: b"ICC_PROFILE", 0xEE: b"Adobe"}  # marker -> required identifier


def _orientation_exif(orientation: int) -> bytes:
    """A minimal big-endian TIFF EXIF block holding only the Orientation tag."""
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1)
    tiff += struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def strip_jpeg_metadata(data: bytes, orientation: int = 1) -> bytes:
    """Return `data` with metadata segments removed. Raises ValueError if it is not a sane JPEG."""
    if not data.startswith(_SOI):
        raise ValueError("not a JPEG")
    out = bytearray(_SOI)
    if orientation != 1:
        out += _orientation_exif(orientation)
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError(f"expected a marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        segment = data[pos : pos + 2 + length]
        if len(segment) < 2 + length:
            raise ValueError("segment runs past the end of the file")
        if marker == _SOS:
            end = _end_of_scan_data(data, pos + 2 + length)
            return bytes(out + data[pos:end])
        identifier = _KEEP_APP.get(marker)
        is_app_or_comment = 0xE0 <= marker <= 0xEF or marker == 0xFE
        if not is_app_or_comment or (identifier is not None and segment[4:].startswith(identifier)):
            out += segment
        pos += 2 + length
    raise ValueError("no image data found")


def _end_of_scan_data(data: bytes, start: int) -> int:
    """Offset just past the EOI that ends the first image (later frames of an MPO are dropped)."""
    pos = start
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(data):
            raise ValueError("image data is not terminated")
        following = data[pos + 1]
        if following == _EOI:
            return pos + 2
        # Stuffed 0x00, restart markers and further scans (progressive) are part of the image.
        pos += 2 if following in (0x00, 0xFF) or 0xD0 <= following <= 0xD7 else 1
