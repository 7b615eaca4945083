"""Minimal ICC v2 profiles built from first principles, to prove outputs go through a file's profile.

A profile that deliberately disagrees with Pillow's profile-less conversion (swapped primaries,
swapped inks) makes the test unambiguous: right colours can only come from honouring the profile.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

D50 = (0.9642, 1.0, 0.8249)


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz_tag(xyz: tuple[float, float, float]) -> bytes:
    return b"XYZ \x00\x00\x00\x00" + b"".join(_s15(v) for v in xyz)


def _desc_tag(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\x00"
    return (
        b"desc\x00\x00\x00\x00"
        + struct.pack(">I", len(ascii_text))
        + ascii_text
        + struct.pack(">II", 0, 0)
        + struct.pack(">HB", 0, 0)
        + b"\x00" * 67
    )


def _text_tag(text: str) -> bytes:
    return b"text\x00\x00\x00\x00" + text.encode("ascii") + b"\x00"


def _curve_tag(gamma: float) -> bytes:
    return b"curv\x00\x00\x00\x00" + struct.pack(">IH", 1, round(gamma * 256))


def _assemble(device_class: bytes, colour_space: bytes, pcs: bytes, tags: dict[bytes, bytes]) -> bytes:
    table, body = b"", b""
    offset = 128 + 4 + 12 * len(tags)
    for signature, data in tags.items():
        data += b"\x00" * (-len(data) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (
        struct.pack(">I", size)
        + b"lcms"
        + struct.pack(">I", 0x02100000)
        + device_class
        + colour_space
        + pcs
        + struct.pack(">6H", 2026, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"APPL"
        + b"\x00" * 4
        + b"\x00" * 8
        + b"\x00" * 8
        + struct.pack(">I", 0)
        + b"".join(_s15(v) for v in D50)
        + b"\x00" * 4
        + b"\x00" * 16
        + b"\x00" * 28
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


# sRGB primaries adapted to D50, as in the sRGB ICC profile.
SRGB_RED = (0.4361, 0.2225, 0.0139)
SRGB_GREEN = (0.3851, 0.7169, 0.0971)
SRGB_BLUE = (0.1431, 0.0606, 0.7141)


def rgb_profile(
    red: tuple[float, float, float], green: tuple[float, float, float], blue: tuple[float, float, float], name: str
) -> bytes:
    """A matrix/TRC RGB display profile with the given D50 primaries and gamma 2.2."""
    tags = {
        b"desc": _desc_tag(name),
        b"cprt": _text_tag("No copyright, test data"),
        b"wtpt": _xyz_tag(D50),
        b"rXYZ": _xyz_tag(red),
        b"gXYZ": _xyz_tag(green),
        b"bXYZ": _xyz_tag(blue),
        b"rTRC": _curve_tag(2.2),
        b"gTRC": _curve_tag(2.2),
        b"bTRC": _curve_tag(2.2),
    }
    return _assemble(b"mntr", b"RGB ", b"XYZ ", tags)


def srgb_to_lab(rgb: tuple[float, float, float]) -> tuple[float, float, float]:
    """sRGB (0-1) to CIELAB under D50 (Bradford-adapted sRGB matrix)."""
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    x = sum(p[0] * c for p, c in zip((SRGB_RED, SRGB_GREEN, SRGB_BLUE), linear))
    y = sum(p[1] * c for p, c in zip((SRGB_RED, SRGB_GREEN, SRGB_BLUE), linear))
    z = sum(p[2] * c for p, c in zip((SRGB_RED, SRGB_GREEN, SRGB_BLUE), linear))

    def f(t: float) -> float:
        return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29

    fx, fy, fz = f(x / D50[0]), f(y / D50[1]), f(z / D50[2])
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def cmyk_profile(
    to_srgb: Callable[[float, float, float, float], tuple[float, float, float]], name: str, grid: int = 9
) -> bytes:
    """A CMYK printer profile whose A2B0 lookup table sends ink amounts (0-1) to the sRGB colour `to_srgb` gives."""
    identity_matrix = b"".join(_s15(1.0 if i % 4 == 0 else 0.0) for i in range(9))
    ramp = bytes(range(256))
    clut = bytearray()
    steps = [i / (grid - 1) for i in range(grid)]
    for c in steps:
        for m in steps:
            for y in steps:
                for k in steps:
                    lightness, a, b = srgb_to_lab(to_srgb(c, m, y, k))
                    clut += bytes(
                        [
                            max(0, min(255, round(lightness * 255 / 100))),
                            max(0, min(255, round(a + 128))),
                            max(0, min(255, round(b + 128))),
                        ]
                    )
    lut = b"mft1\x00\x00\x00\x00" + bytes([4, 3, grid, 0]) + identity_matrix + ramp * 4 + bytes(clut) + ramp * 3
    tags = {
        b"desc": _desc_tag(name),
        b"cprt": _text_tag("No copyright, test data"),
        b"wtpt": _xyz_tag(D50),
        b"A2B0": lut,
    }
    return _assemble(b"prtr", b"CMYK", b"Lab ", tags)
