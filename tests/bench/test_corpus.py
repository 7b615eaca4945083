"""Sorting corpus files into the benchmark's classes."""

from __future__ import annotations

from pathlib import Path

from bench.corpus import classify, load
from tests import images


def test_classes_come_from_the_name_and_progressive_jpegs_have_their_own() -> None:
    assert classify("jpeg_large__kleiber_20mp_photo.jpg", progressive=False) == "jpeg_large"
    assert classify("jpeg_large__sunset_12mp_photo.jpg", progressive=True) == "jpeg_progressive"
    assert classify("jpeg_mid__bridge_11mp_photo.jpg", progressive=True) == "jpeg_progressive"
    assert classify("derived_orient6__picos_8mp.jpg", progressive=False) == "jpeg_rotated"
    assert classify("png_gray__skimage_camera.png", progressive=False) == "png_other"


def test_formats_imgpress_refuses_are_left_out(tmp_path: Path) -> None:
    (tmp_path / "tiff__fax_1bit.tif").write_bytes(b"II*\x00not really")
    (tmp_path / "derived_heic__sunset.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    (tmp_path / "jpeg_mid__photo.jpg").write_bytes(images.jpeg(320, 200, progressive=True))
    (tmp_path / "png_alpha__disc.png").write_bytes(images.rgba_png())
    loaded = load(tmp_path)
    assert [(i.name, i.image_class) for i in loaded] == [
        ("jpeg_mid__photo.jpg", "jpeg_progressive"),
        ("png_alpha__disc.png", "png_alpha"),
    ]
    assert loaded[0].width == 320 and loaded[0].progressive
