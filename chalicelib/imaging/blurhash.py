"""BlurHash encoder: Wolt's published algorithm (github.com/woltapp/blurhash), in pure Python.

The same strings as Wolt's C and Swift encoders (tested against the C one), but each DCT term is
computed separably (row sums first) from a 256-entry sRGB-to-linear table: about 0.4 ms for a
32 px image at 4x3. The pure-Python `blurhash` package computes a cosine per pixel per term and
takes about eight times as long (bench/PLACEHOLDERS.md); the C one (`blurhash-python`) has no
pure wheel.
"""

from __future__ import annotations

import math
from functools import lru_cache
from operator import mul

BASE83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"
MAX_COMPONENTS = 9  # the size flag holds 1..9 per axis


def rgb_to_blurhash(width: int, height: int, rgb: bytes, components: tuple[int, int] = (4, 3)) -> str:
    """Encode sRGB pixels (3 bytes each, row by row) with `components` = (x, y) basis functions."""
    nx, ny = components
    if not (1 <= nx <= MAX_COMPONENTS and 1 <= ny <= MAX_COMPONENTS):
        raise ValueError(f"BlurHash components must be 1..{MAX_COMPONENTS} per axis, got {nx}x{ny}")
    if width < 1 or height < 1 or len(rgb) != width * height * 3:
        raise ValueError(f"expected {width}x{height} RGB pixels, got {len(rgb)} bytes")
    columns = _cosines(width, nx)
    rows = _cosines(height, ny)
    factors: list[list[float]] = []
    for offset in range(3):
        linear = [_SRGB_TO_LINEAR[value] for value in rgb[offset::3]]
        # Row sums first: sum_y cos_y * (sum_x value * cos_x) is the 2-D term, with w*h*nx products.
        row_sums = [
            [sum(map(mul, linear[y * width : (y + 1) * width], column)) for y in range(height)] for column in columns
        ]
        factors.append(
            [
                (1.0 if i == 0 and j == 0 else 2.0) * sum(map(mul, row_sums[i], rows[j])) / (width * height)
                for j in range(ny)
                for i in range(nx)
            ]
        )
    terms = list(zip(*factors))  # one (r, g, b) per component, x varying fastest
    dc, ac = terms[0], terms[1:]
    largest = max((abs(value) for term in ac for value in term), default=0.0)
    quantised_max = max(0, min(82, math.floor(largest * 166 - 0.5)))
    ac_scale = (quantised_max + 1) / 166
    parts = [
        _base83(nx - 1 + (ny - 1) * 9, 1),
        _base83(quantised_max, 1),
        _base83(_linear_to_srgb(dc[0]) << 16 | _linear_to_srgb(dc[1]) << 8 | _linear_to_srgb(dc[2]), 4),
    ]
    for r, g, b in ac:
        quantised = _quantise_ac(r, ac_scale) * 19 * 19 + _quantise_ac(g, ac_scale) * 19 + _quantise_ac(b, ac_scale)
        parts.append(_base83(quantised, 2))
    return "".join(parts)


def _srgb_to_linear(value: int) -> float:
    v = value / 255
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


_SRGB_TO_LINEAR = tuple(_srgb_to_linear(value) for value in range(256))


def _linear_to_srgb(value: float) -> int:
    v = max(0.0, min(1.0, value))
    if v <= 0.0031308:
        return int(v * 12.92 * 255 + 0.5)
    return int((1.055 * v ** (1 / 2.4) - 0.055) * 255 + 0.5)


def _quantise_ac(value: float, scale: float) -> int:
    """Square-root companding into 0..18, as the reference does, so small terms keep precision."""
    ratio = value / scale
    return max(0, min(18, math.floor(math.copysign(abs(ratio) ** 0.5, ratio) * 9 + 9.5)))


def _base83(value: int, length: int) -> str:
    return "".join(BASE83[value // 83 ** (length - i) % 83] for i in range(1, length + 1))


@lru_cache(maxsize=64)
def _cosines(size: int, count: int) -> tuple[tuple[float, ...], ...]:
    """cos(pi * k * i / size) for k < count: BlurHash samples at pixel corners, not centres."""
    return tuple(tuple(math.cos(math.pi * k * i / size) for i in range(size)) for k in range(count))
