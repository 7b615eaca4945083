"""Quality targeting: the SSIM it measures, and a search that hits the target in at most three encodes."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import replace

import pytest
from PIL import Image, ImageFilter

from chalicelib.imaging import quality
from chalicelib.imaging.quality import MAX_ENCODES, block_ssim, encode_for_ssim, ssim_against
from chalicelib.imaging.render import encode
from chalicelib.imaging.specs import VariantSpec
from tests import images


class CurveEncoder:
    """An encoder whose SSIM at each quality is given by a curve; it records the qualities asked for."""

    def __init__(self, curve: Callable[[int], float]) -> None:
        self.curve = curve
        self.qualities: list[int] = []

    def encode(self, q: int) -> bytes:
        self.qualities.append(q)
        return bytes([q])

    def measure(self, data: bytes) -> float:
        return self.curve(data[0])

    def search(self, target: float, output_format: str = "webp") -> tuple[int, float]:
        data, chosen, ssim = encode_for_ssim(target, self.encode, self.measure, output_format)
        assert data == bytes([chosen]) and ssim == self.curve(chosen)
        return chosen, ssim


def test_block_ssim_is_one_for_identical_images_and_falls_with_damage() -> None:
    photo = images.photo(400, 300)
    assert block_ssim(photo, photo) == pytest.approx(1.0, abs=1e-6)
    worse = images.decode(images.encode(photo, "JPEG", quality=10))
    better = images.decode(images.encode(photo, "JPEG", quality=90))
    assert block_ssim(photo, worse) < block_ssim(photo, better) < 1.0


@pytest.mark.parametrize("output_format", ["jpeg", "webp", "avif"])
def test_hits_most_targets_on_photos_within_three_real_encodes(output_format: str) -> None:
    """Real encodes of photo-like images; the corpus-wide hit rate is bench/QUALITY_TARGETING.md's job."""
    spec = VariantSpec("t", output_format)
    errors = []
    for grain, mix in ((1.5, 0.4), (2.0, 0.5)):
        pixels = steady_photo(240, 160, grain, mix)
        measure = ssim_against(pixels)
        for target in (0.93, 0.95, 0.97, 0.98):
            qualities: list[int] = []

            def encode_at(q: int) -> bytes:
                qualities.append(q)
                return encode(pixels, output_format, replace(spec, quality=q))

            data, chosen, ssim = encode_for_ssim(target, encode_at, measure, output_format)
            assert len(qualities) <= MAX_ENCODES and chosen in qualities
            assert measure(data) == ssim  # the SSIM reported is that of the bytes returned
            errors.append(abs(ssim - target))
    assert sum(e <= 0.005 for e in errors) >= 0.75 * len(errors) and max(errors) <= 0.01, errors


@pytest.mark.parametrize("output_format", sorted(quality.TYPICAL_LOSS))
def test_hits_every_reachable_target_on_curves_shaped_like_the_typical_one(output_format: str) -> None:
    """Images differ from the typical curve by a shift and a stretch of ln(1 - SSIM): the search fits both."""
    knots = quality.TYPICAL_LOSS[output_format]
    rng = random.Random(7)
    for _ in range(40):
        shift, stretch = rng.uniform(-1, 1), rng.uniform(0.6, 1.6)

        def ssim_at(q: int) -> float:
            loss = _interpolate(quality.KNOT_QUALITIES, knots, q)
            return 1 - math.exp(knots[0] + shift + stretch * (loss - knots[0]))

        for target in (0.9, 0.93, 0.95, 0.97, 0.98, 0.99):
            if min(abs(ssim_at(q) - target) for q in range(1, 101)) > 0.005:
                continue  # the integer grid cannot reach it
            encoder = CurveEncoder(ssim_at)
            _chosen, ssim = encoder.search(target, output_format)
            assert len(encoder.qualities) <= MAX_ENCODES and abs(ssim - target) <= 0.005, (shift, stretch, target)


def test_stops_as_soon_as_an_encode_is_close_enough() -> None:
    encoder = CurveEncoder(lambda q: 0.95 + quality.STOP_WITHIN / 2)
    encoder.search(0.95)
    assert len(encoder.qualities) == 1


def test_returns_the_closest_encode_and_on_a_tie_the_one_above() -> None:
    encoder = CurveEncoder(in_order_asked(0.954, 0.946, 0.946))  # above by 0.004, then below by as much
    assert encoder.search(0.95) == (encoder.qualities[0], 0.954)

    encoder = CurveEncoder(in_order_asked(0.946, 0.954, 0.957))
    assert encoder.search(0.95) == (encoder.qualities[1], 0.954)


def test_an_unreachable_target_gets_the_nearest_end_of_the_scale() -> None:
    low_ceiling = CurveEncoder(lambda q: 0.6 + 0.003 * q)
    chosen, _ssim = low_ceiling.search(0.99)
    assert chosen == 100 and len(low_ceiling.qualities) <= MAX_ENCODES

    high_floor = CurveEncoder(lambda q: 0.96 + 0.0003 * q)
    chosen, _ssim = high_floor.search(0.9)
    assert chosen == 1 and len(high_floor.qualities) <= MAX_ENCODES


@pytest.mark.parametrize("seed", range(200))
def test_any_curve_at_all_costs_at_most_three_distinct_encodes(seed: int) -> None:
    """Flat, stepped, falling or noisy curves: the search neither repeats an encode nor runs on."""
    rng = random.Random(seed)
    values = [rng.uniform(0.5, 1.0) for _ in range(100)]
    shape = rng.choice([values, sorted(values), sorted(values, reverse=True), [values[0]] * 100])
    encoder = CurveEncoder(lambda q: shape[q - 1])
    target = rng.uniform(0.5, 0.999)
    _chosen, ssim = encoder.search(target, rng.choice(sorted(quality.TYPICAL_LOSS)))
    tried = encoder.qualities
    assert 1 <= len(tried) <= MAX_ENCODES and len(set(tried)) == len(tried)
    assert all(1 <= q <= 100 for q in tried)
    assert abs(ssim - target) == min(abs(shape[q - 1] - target) for q in tried)


def steady_photo(width: int, height: int, grain: float, mix: float) -> Image.Image:
    """Gradients, a fractal and blurred noise, like a photo; unlike images.photo, the same in every run
    (Pillow's effect_noise follows the C library's rand(), so it depends on the tests run before)."""
    fractal = Image.effect_mandelbrot((width, height), (-2.2, -1.2, 0.8, 1.2), 64)
    noise = Image.frombytes("L", (width, height), random.Random(1).randbytes(width * height))
    noise = noise.filter(ImageFilter.GaussianBlur(grain)).point(lambda v: max(0, min(255, 128 + (v - 128) * 4)))
    gradient = Image.linear_gradient("L").resize((width, height))
    return Image.merge("RGB", (gradient, Image.blend(fractal, noise, mix), Image.blend(gradient, noise, mix)))


def in_order_asked(*values: float) -> Callable[[int], float]:
    """A curve that gives each new quality asked for the next of these values."""
    seen: dict[int, float] = {}

    def ssim_at(q: int) -> float:
        if q not in seen:
            seen[q] = values[len(seen)]
        return seen[q]

    return ssim_at


def _interpolate(xs: tuple[int, ...], ys: tuple[float, ...], x: int) -> float:
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    raise ValueError(x)
