"""The target_ssim benchmark: which cases it measures, and that replaying a curve is a live search."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from bench import quality_targeting
from bench.quality_targeting import Curve, fitted, jobs, measure_curve, replay, report
from chalicelib.imaging.quality import encode_for_ssim, ssim_against
from chalicelib.imaging.render import encode
from chalicelib.imaging.specs import VariantSpec
from tests import images

pytestmark = pytest.mark.slow


def test_a_size_that_would_repeat_a_smaller_ones_pixels_is_left_out(tmp_path: Path) -> None:
    for name, width in (("large.png", 3000), ("mid.png", 1500), ("small.png", 200)):
        Image.new("RGB", (width, 100)).save(tmp_path / name)
    Image.new("RGB", (64, 64)).save(tmp_path / "scan.tif")  # the pipeline refuses TIFF
    sizes = {(path.name, size) for path, size, _fmt in jobs(tmp_path)}
    assert sizes == {
        ("large.png", 2048),
        ("large.png", 1024),
        ("large.png", 320),
        ("mid.png", 2048),
        ("mid.png", 1024),
        ("mid.png", 320),
        ("small.png", 320),
    }


def test_replaying_a_measured_curve_is_what_a_live_search_does(tmp_path: Path) -> None:
    (tmp_path / "photo.jpg").write_bytes(images.jpeg(300, 200))
    curve = measure_curve((tmp_path / "photo.jpg", 320, "jpeg"))
    pixels = fitted(tmp_path / "photo.jpg", 320)
    spec = VariantSpec("t", "jpeg")
    for target in (0.9, 0.95, 0.99):
        live: list[int] = []

        def encode_at(q: int) -> bytes:
            live.append(q)
            return encode(pixels, "jpeg", replace(spec, quality=q))

        _data, _quality, ssim = encode_for_ssim(target, encode_at, ssim_against(pixels), "jpeg")
        replayed = replay(curve, target)
        assert (replayed.qualities, replayed.ssim) == (tuple(live), ssim)


def test_report_separates_reachable_targets_and_the_held_out_half() -> None:
    rising = tuple(0.8 + 0.002 * q for q in range(1, 101))  # 0.802 .. 1.0
    curves = [Curve(name, 320, "webp", rising, (0.001,) * 100) for name in ("photo.png", "logo.png")]
    assert {c.calibration for c in curves} == {True, False}
    lines: list[str] = []
    report(Path("corpus"), curves, lines.append)
    text = "\n".join(lines)
    searches = len(curves) * len(quality_targeting.TARGETS)
    assert f"| all {searches} |" in text and "| calibration half |" in text and "| held-out half |" in text
    assert "| webp 320 |" in text and "Reachable targets missed:" in text
