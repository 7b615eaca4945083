"""The placeholder benchmark runs on any folder of images, renders like the pipeline, and reports."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from bench import placeholders_bench
from tests import images

pytestmark = pytest.mark.slow


def small_corpus(folder: Path) -> Path:
    (folder / "photo.jpg").write_bytes(images.jpeg(480, 320))
    (folder / "portrait.png").write_bytes(images.png(300, 500))
    (folder / "transparent.png").write_bytes(images.rgba_png())
    Image.new("RGB", (64, 64)).save(folder / "scan.tif")  # the pipeline refuses TIFF
    return folder


def test_measures_every_image_the_pipeline_accepts(tmp_path: Path) -> None:
    lines: list[str] = []
    results = placeholders_bench.run(small_corpus(tmp_path), repeat=3, out=lines.append)
    assert {r.name: r.size for r in results} == {
        "photo.jpg": (320, 213),
        "portrait.png": (192, 320),
        "transparent.png": (300, 200),
    }
    for result in results:
        assert set(result.ms) == set(placeholders_bench.COLUMNS)
        assert 0 < result.ms["best"] <= result.ms["total"] and 0 < result.lqip_chars <= 1024
    report = "\n".join(lines)
    assert "3 images, 1 skipped: scan.tif (unsupported_format)" in report
    assert "compute_placeholders per image (ms): median" in report and "budget 10 ms" in report


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert placeholders_bench.main([str(small_corpus(tmp_path)), "--repeat", "2", "--references"]) == 0
    printed = capsys.readouterr().out
    assert "fastest run per image (ms)" in printed
    assert "pure-Python PyPI encoders on the same opaque 32 px working copies (2 images)" in printed
    assert placeholders_bench.main([str(tmp_path / "nowhere")]) == 2
    assert "make corpus" in capsys.readouterr().err
