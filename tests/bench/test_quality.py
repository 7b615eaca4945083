"""SSIM and the upright reference the benchmark judges every engine by."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

from bench.quality import Reference, ssim
from tests import images


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_ssim_is_one_for_identical_planes_and_lower_for_blur() -> None:
    photo = images.photo(300, 200)
    plane = np.asarray(photo.convert("L"), dtype=np.float64)
    blurred = np.asarray(photo.filter(ImageFilter.GaussianBlur(2)).convert("L"), dtype=np.float64)
    assert ssim(plane, plane) == 1.0
    assert 0 < ssim(plane, blurred) < 0.95


def test_ssim_works_below_the_window_size() -> None:
    tiny = np.arange(30, dtype=np.float64).reshape(5, 6)
    assert ssim(tiny, tiny) == 1.0


def test_reference_is_upright_and_scores_an_upright_output_highest() -> None:
    upright = images.photo(300, 200)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned a quarter, shown upright by a viewer
    stored = images.encode(upright.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=95, exif=exif.tobytes())
    reference = Reference.from_bytes(stored)
    assert reference.size == (300, 200)
    assert reference.ssim(png_bytes(upright.resize((150, 100)))) > 0.9
    assert reference.ssim(png_bytes(upright.transpose(Image.Transpose.ROTATE_180).resize((150, 100)))) < 0.5


def test_dropped_alpha_is_penalised() -> None:
    reference = Reference.from_bytes(images.rgba_png())
    kept = Image.open(io.BytesIO(images.rgba_png()))
    dropped = kept.convert("RGB")  # what the naive recipe does: transparent black shows as black
    assert reference.ssim(png_bytes(kept)) > 0.99
    assert reference.ssim(png_bytes(dropped)) < 0.9
