"""Reading imgpress's SSIM off its rate-distortion curve at the naive output's byte count."""

from __future__ import annotations

import pytest

from bench.targets import equal_bytes_ssim

CURVE = [(1000, 0.95), (2000, 0.97), (4000, 0.98)]


def test_interpolates_in_log_bytes_between_measured_qualities() -> None:
    assert equal_bytes_ssim(CURVE, 2000) == pytest.approx(0.97)
    assert equal_bytes_ssim(CURVE, 2828) == pytest.approx(0.975, abs=1e-4)  # geometric midpoint
    assert equal_bytes_ssim(list(reversed(CURVE)), 1414) == pytest.approx(0.96, abs=1e-4)


def test_extends_the_nearest_segment_past_either_end() -> None:
    assert equal_bytes_ssim(CURVE, 500) == pytest.approx(0.93)
    assert equal_bytes_ssim(CURVE, 8000) == pytest.approx(0.99)


def test_degenerate_curves() -> None:
    assert equal_bytes_ssim([(1000, 0.9)], 5000) == 0.9
    assert equal_bytes_ssim([(1000, 0.9), (1000, 0.92)], 1000) == 0.92
