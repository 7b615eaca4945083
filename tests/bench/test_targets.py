"""bench/targets.py: imgpress's SSIM read off its rate-distortion curve at the naive output's byte
count, and which images each class is judged on."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.corpus import CorpusImage
from bench.run import Measurement
from bench.targets import class_verdicts, equal_bytes_ssim, per_class

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


def measured(name: str, image_class: str, engine: str, cpu: float, ssim: float, size: int, alpha: bool) -> Measurement:
    outputs = [{"name": "web", "bytes": size, "ssim": ssim, "misoriented": False}]
    image = CorpusImage(Path(name), image_class, 100, 100, False)
    return Measurement(image, engine, "default", cpu, cpu, 1.0, 10.0, outputs, source_alpha=alpha)


def test_naive_is_judged_only_where_its_picture_is_right_and_time_also_against_naive_made_correct() -> None:
    matrix = [
        measured("a.jpg", "jpeg_large", "imgpress", 0.10, 0.98, 900, alpha=False),
        measured("a.jpg", "jpeg_large", "naive", 0.30, 0.97, 1000, alpha=False),
        measured("a.jpg", "jpeg_large", "naive-correct", 0.40, 0.99, 1000, alpha=False),
        measured("d.png", "png_alpha", "imgpress", 0.20, 0.99, 500, alpha=True),
        measured("d.png", "png_alpha", "naive", 0.10, 0.50, 400, alpha=True),  # dropped the alpha
        measured("d.png", "png_alpha", "naive-correct", 0.25, 0.99, 500, alpha=True),
    ]
    checks = {check.image_class: check for check in per_class(matrix, [])}
    photo, disc = checks["jpeg_large"], checks["png_alpha"]
    assert (photo.compared, photo.excluded, disc.compared, disc.excluded) == (1, 0, 0, 1)
    assert photo.strict is True and disc.strict is None
    assert photo.time_ratio == pytest.approx(1 / 3) and disc.time_ratio is None
    assert disc.time_ratio_all == pytest.approx(2.0) and disc.time_ratio_correct == pytest.approx(0.8)
    verdicts = {verdict.target: verdict.met for verdict in class_verdicts(list(checks.values()))}
    assert verdicts["JPEG, large, baseline: SSIM >= naive at <= naive bytes"] is True
    assert verdicts["PNG with alpha: time <= naive"] is None
    assert verdicts["PNG with alpha: time <= naive made correct"] is True
