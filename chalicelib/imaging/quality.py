"""Quality targeting: pick the encoder quality that reaches a target SSIM in at most three encodes.

SSIM here is the mean over non-overlapping 8x8 blocks of luma (Wang et al.'s formula with the
usual constants), computed with Pillow's C routines only (ImageMath products and `reduce`), so
it costs tens of milliseconds at 2048 px and needs no numpy in the Lambda.
"""

from __future__ import annotations

import bisect
import io
import math
from collections.abc import Callable

from PIL import Image, ImageMath

BLOCK = 8
_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
MAX_ENCODES = 3
STOP_WITHIN = 0.002  # well inside the ±0.005 aimed for: a further encode would buy little
# ln(1 - SSIM) against quality for a typical image: the median over the calibration half of the
# corpus at 320, 1024 and 2048 px (`python -m bench.quality_targeting --calibrate`). Images differ
# from it mostly by a shift and a stretch in this space, which the search measures as it goes.
KNOT_QUALITIES = (1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
TYPICAL_LOSS: dict[str, tuple[float, ...]] = {
    "jpeg": (-1.48, -2.42, -2.96, -3.24, -3.46, -3.63, -3.84, -4.04, -4.38, -5.07, -7.53),
    "webp": (-2.37, -2.80, -3.06, -3.20, -3.39, -3.53, -3.64, -3.74, -4.01, -4.63, -5.39),
    "avif": (-2.35, -2.59, -2.80, -3.12, -3.44, -3.91, -4.20, -4.54, -4.88, -5.40, -8.53),
}
# The first encode stays off the ends of the scale, where curves differ most from the typical one,
# so the first measurement says something about the middle, where most targets land.
_FIRST_QUALITIES = range(20, 96)
# A fitted stretch outside this range (against the typical curve) comes from a plateau or a step,
# not from the image's overall slope: fall back to shifting the typical curve through one point.
_STRETCH_RANGE = (0.2, 5.0)

Tried = dict[int, tuple[float, bytes]]  # quality -> (SSIM, encoded bytes)


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
        lambda v: (
            ((v["mx"] * v["my"] * 2 + _C1) * ((v["sxy"] - v["mx"] * v["my"]) * 2 + _C2))
            / (
                (v["mx"] * v["mx"] + v["my"] * v["my"] + _C1)
                * (v["sxx"] - v["mx"] * v["mx"] + v["syy"] - v["my"] * v["my"] + _C2)
            )
        ),
        mx=mx,
        my=my,
        sxx=sxx,
        syy=syy,
        sxy=sxy,
    )
    values = ssim_map.get_flattened_data()  # ImageStat bins F images into 256 buckets: average exactly
    return float(sum(values) / len(values))


def ssim_against(reference: Image.Image) -> Callable[[bytes], float]:
    """SSIM of encoded bytes against the pixels they were encoded from."""

    def measure(data: bytes) -> float:
        with Image.open(io.BytesIO(data)) as decoded:
            return block_ssim(reference, decoded)

    return measure


def encode_for_ssim(
    target: float, encode: Callable[[int], bytes], measure: Callable[[bytes], float], output_format: str
) -> tuple[bytes, int, float]:
    """(encoded, quality, ssim) of the encode closest to `target` (on a tie: the one above it).

    Each encode goes where the format's typical curve, fitted to the measurements so far, meets
    the target; once two encodes straddle it, the next stays strictly between them. It stops early
    within STOP_WITHIN of the target, or when the two straddling qualities are neighbours.
    """
    typical = _typical_curve(output_format)
    tried: Tried = {}
    quality: int | None = _solve(typical, _loss(target), _FIRST_QUALITIES, tried)
    while quality is not None:
        data = encode(quality)
        tried[quality] = (measure(data), data)
        if abs(tried[quality][0] - target) <= STOP_WITHIN or len(tried) == MAX_ENCODES:
            break
        quality = _next_quality(tried, target, typical)
    best = min(tried, key=lambda q: (abs(tried[q][0] - target), tried[q][0] < target, q))
    return tried[best][1], best, tried[best][0]


def _loss(ssim: float) -> float:
    """ln(1 - SSIM): close to linear in quality over long stretches, unlike SSIM itself."""
    return math.log(max(1e-4, 1 - ssim))


def _typical_curve(output_format: str) -> Callable[[int], float]:
    """ln(1 - SSIM) of a typical image at each quality 1-100, straight between the knots."""
    knots = TYPICAL_LOSS[output_format]
    losses: dict[int, float] = {}
    for quality in range(1, 101):
        i = min(bisect.bisect_right(KNOT_QUALITIES, quality), len(KNOT_QUALITIES) - 1)
        (q0, l0), (q1, l1) = (KNOT_QUALITIES[i - 1], knots[i - 1]), (KNOT_QUALITIES[i], knots[i])
        losses[quality] = l0 + (l1 - l0) * (quality - q0) / (q1 - q0)
    return losses.__getitem__


def _next_quality(tried: Tried, target: float, typical: Callable[[int], float]) -> int | None:
    """Where the typical curve, shifted through the closest point (stretched through two), meets the target."""
    below = [q for q in tried if tried[q][0] < target]
    above = [q for q in tried if tried[q][0] >= target]
    anchors = sorted(tried, key=lambda q: abs(tried[q][0] - target))[:2]
    candidates = range(1, 101)
    if below and above:
        low = max(below, key=lambda q: tried[q][0])
        high = min(above, key=lambda q: tried[q][0])
        anchors = [low, high]
        if low < high:  # on a monotone stretch the answer lies strictly between them
            candidates = range(low + 1, high)
    fitted = _fit(typical, [(q, _loss(tried[q][0])) for q in anchors])
    return _solve(fitted, _loss(target), candidates, tried)


def _fit(typical: Callable[[int], float], points: list[tuple[int, float]]) -> Callable[[int], float]:
    """The typical curve moved onto the measured points: stretched through two, else shifted through the first."""
    q0, l0 = points[0]
    base = typical(q0)
    if len(points) == 2:
        q1, l1 = points[1]
        run = typical(q1) - base
        stretch = (l1 - l0) / run if run else 0.0
        if _STRETCH_RANGE[0] < stretch < _STRETCH_RANGE[1]:
            return lambda q: l0 + stretch * (typical(q) - base)
    return lambda q: typical(q) + l0 - base


def _solve(curve: Callable[[int], float], goal: float, candidates: range, tried: Tried) -> int | None:
    """The untried quality whose predicted loss is closest to the goal (on a tie, the higher one)."""
    untried = [q for q in candidates if q not in tried]
    return min(untried, key=lambda q: (abs(curve(q) - goal), -q)) if untried else None
