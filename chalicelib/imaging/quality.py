"""Quality targeting: pick the encoder quality that reaches a target SSIM in at most three encodes.

SSIM here is the mean over non-overlapping 8x8 blocks of luma (Wang et al.'s formula with the
usual constants), computed with Pillow's C routines only (ImageMath products and `reduce`), so
it costs tens of milliseconds at 2048 px and needs no numpy in the Lambda.
"""
from __future__ import annotations

import io
import math
from typing import Callable

from PIL import Image, ImageMath

BLOCK = 8
_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
MAX_ENCODES = 3
_FIRST_GUESS = 80
_SLOPE = -0.025  # d ln(1 - SSIM) / d quality, a middle value over the corpus; refined after one encode


def block_ssim(reference: Image.Image, candidate: Image.Image) -> float:
    """Mean SSIM of two same-size images over 8x8 blocks of their luma."""
    x = reference.convert("L").convert("F")
    y = candidate.convert("L").convert("F")

    def mean(image: Image.Image) -> Image.Image:
        return image.reduce(BLOCK)

    def product(a: Image.Image, b: Image.Image) -> Image.Image:
        return ImageMath.lambda_eval(lambda v: v["a"] * v["b"], a=a, b=b)

    mx, my = mean(x), mean(y)
    sxx, syy, sxy = mean(product(x, x)), mean(product(y, y)), mean(product(x, y))
    ssim_map = ImageMath.lambda_eval(
        lambda v: ((v["mx"] * v["my"] * 2 + _C1) * ((v["sxy"] - v["mx"] * v["my"]) * 2 + _C2))
        / ((v["mx"] * v["mx"] + v["my"] * v["my"] + _C1)
           * (v["sxx"] - v["mx"] * v["mx"] + v["syy"] - v["my"] * v["my"] + _C2)),
        mx=mx, my=my, sxx=sxx, syy=syy, sxy=sxy,
    )
    values = ssim_map.get_flattened_data()  # ImageStat bins F images into 256 buckets: average exactly
    return float(sum(values) / len(values))


def ssim_against(reference: Image.Image) -> Callable[[bytes], float]:
    """SSIM of encoded bytes against the pixels they were encoded from."""
    def measure(data: bytes) -> float:
        with Image.open(io.BytesIO(data)) as decoded:
            return block_ssim(reference, decoded)

    return measure


def encode_for_ssim(target: float, encode: Callable[[int], bytes],
                    measure: Callable[[bytes], float]) -> tuple[bytes, int, float]:
    """(encoded, quality, ssim) of the encode closest to `target` (on a tie: the one above it).

    Quality -> 1 - SSIM is close to exponential, so each step solves for the target on a line in
    (quality, ln(1 - SSIM)): the first from a typical slope, the next through the two points seen.
    """
    tried: list[tuple[int, float, bytes]] = []
    quality = _FIRST_GUESS
    while len(tried) < MAX_ENCODES and quality not in [q for q, _, _ in tried]:
        data = encode(quality)
        score = measure(data)
        tried.append((quality, score, data))
        if abs(score - target) <= 0.002:
            break
        quality = _next_quality(tried, target)
    best = min(tried, key=lambda t: (abs(t[1] - target), t[1] < target, t[0]))
    return best[2], best[0], best[1]


def _next_quality(tried: list[tuple[int, float, bytes]], target: float) -> int:
    """Solve for the target on the line through the two most useful points (a bracket if there is one)."""
    def log_loss(score: float) -> float:
        return math.log(max(1e-6, 1 - score))

    below = [t for t in tried if t[1] < target]
    above = [t for t in tried if t[1] >= target]
    if below and above:
        pair = [max(below, key=lambda t: t[1]), min(above, key=lambda t: t[1])]
    else:
        pair = tried[-2:]
    slope = _SLOPE
    if len(pair) == 2 and pair[0][0] != pair[1][0]:
        measured = (log_loss(pair[1][1]) - log_loss(pair[0][1])) / (pair[1][0] - pair[0][0])
        slope = measured if measured < -1e-4 else _SLOPE
    q, score, _ = pair[-1]
    guess = max(1, min(100, round(q + (log_loss(target) - log_loss(score)) / slope)))
    if below and above:  # stay strictly inside the bracket
        low, high = sorted((pair[0][0], pair[1][0]))
        guess = min(max(guess, low + 1), high - 1) if high - low > 1 else guess
    seen = {t[0] for t in tried}
    while guess in seen and guess < 100:
        guess += 1
    return guess
