"""Placeholders from the smallest rendered variant: what each field holds, that it decodes, and its cost."""

from __future__ import annotations

import base64
import os
import re
import statistics

import blurhash as blurhash_reference
import pytest
import thumbhash as thumbhash_reference
from blurhash.blurhash import base83_decode
from PIL import Image, ImageDraw

from chalicelib.imaging.limits import DecodeLimits
from chalicelib.imaging.placeholders import (
    LQIP_MAX_CHARS,
    Placeholders,
    compute_placeholders,
    dominant_color,
    lqip_data_uri,
    working_copy,
)
from chalicelib.imaging.render import render_variants
from chalicelib.imaging.specs import DEFAULT_VARIANTS_JSON, parse_variants
from tests import images
from tests.imaging import placeholder_vectors

LIMITS = DecodeLimits(("JPEG", "PNG", "WEBP", "GIF"))
LQIP_PREFIX = "data:image/webp;base64,"


def smallest_variant(data: bytes) -> Image.Image:
    """What the pipeline hands over: the default `thumb` (320 px WebP), decoded."""
    rendering = render_variants(data, parse_variants(DEFAULT_VARIANTS_JSON), LIMITS)
    thumb = min(rendering.variants, key=lambda variant: variant.width * variant.height)
    return images.decode(thumb.data)


def lqip_image(uri: str) -> Image.Image:
    assert uri.startswith(LQIP_PREFIX)
    image = images.decode(base64.b64decode(uri[len(LQIP_PREFIX) :], validate=True))
    assert image.format == "WEBP"
    return image


def rgb(color: str) -> tuple[int, int, int]:
    assert re.fullmatch(r"#[0-9a-f]{6}", color), color
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def mostly_red() -> Image.Image:
    """70 % red, 30 % blue: the mean is purple, the dominant colour is red."""
    image = Image.new("RGB", (320, 200), (220, 20, 30))
    ImageDraw.Draw(image).rectangle((224, 0, 319, 199), fill=(20, 40, 230))
    noise = Image.effect_noise(image.size, 12).convert("RGB")
    return Image.blend(image, noise, 0.08)


def test_every_field_for_a_rendered_photo() -> None:
    thumb = smallest_variant(images.jpeg(1200, 800))
    assert thumb.size == (320, 213)
    result = compute_placeholders(thumb)
    assert len(base64.b64decode(result.thumbhash, validate=True)) in range(5, 26)
    assert len(result.blurhash) == 4 + 2 * 4 * 3 and blurhash_reference.components(result.blurhash) == (4, 3)
    rgb(result.dominant_color)
    lqip = lqip_image(result.lqip)
    assert lqip.size == (32, 21) and len(result.lqip) <= LQIP_MAX_CHARS
    assert result.to_dict() == {
        "thumbhash": result.thumbhash,
        "blurhash": result.blurhash,
        "dominant_color": result.dominant_color,
        "lqip": result.lqip,
    }


def test_hashes_are_the_reference_encoders_on_the_32px_working_copy() -> None:
    thumb = smallest_variant(images.jpeg(1200, 800))
    small = working_copy(thumb)
    result = compute_placeholders(thumb)
    rgba = small.convert("RGBA")
    expected_thumbhash = thumbhash_reference.rgba_to_thumb_hash(small.width, small.height, list(rgba.tobytes()))
    assert base64.b64decode(result.thumbhash) == bytes(expected_thumbhash)
    assert result.blurhash == blurhash_reference.encode(placeholder_vectors.pixel_rows(small), 4, 3)


def test_both_hashes_decode_back_to_the_images_colour() -> None:
    """ThumbHash averages sRGB values; BlurHash averages light (linear RGB). Each must decode to its mean."""
    thumb = smallest_variant(images.jpeg(1200, 800)).convert("RGB")
    result = compute_placeholders(thumb)
    srgb_mean = [statistics.fmean(band.tobytes()) / 255 for band in thumb.split()]
    *average, alpha = thumbhash_reference.thumb_hash_to_average_rgba(list(base64.b64decode(result.thumbhash)))
    assert average == pytest.approx(srgb_mean, abs=0.03) and alpha == 1
    light_mean = [statistics.fmean(map(blurhash_reference.srgb_to_linear, band.tobytes())) for band in thumb.split()]
    decoded = blurhash_reference.decode(result.blurhash, 128, 85, linear=True)
    for band in range(3):
        assert statistics.fmean(pixel[band] for row in decoded for pixel in row) == pytest.approx(
            light_mean[band], abs=0.03
        )


def test_blurhash_components_are_configurable() -> None:
    thumb = smallest_variant(images.jpeg(1200, 800))
    assert blurhash_reference.components(compute_placeholders(thumb, (9, 9)).blurhash) == (9, 9)
    assert len(compute_placeholders(thumb, (1, 1)).blurhash) == 6
    with pytest.raises(ValueError, match=r"1\.\.9"):
        compute_placeholders(thumb, (10, 3))


def test_dominant_colour_of_a_mostly_red_image_is_red_not_the_purple_mean() -> None:
    image = mostly_red()
    red, green, blue = rgb(compute_placeholders(image).dominant_color)
    assert red > 180 and green < 70 and blue < 80
    mean = [statistics.fmean(band.tobytes()) for band in image.split()]
    assert mean[2] > 80  # the mean would have been purple


def test_dominant_colour_of_a_rendered_red_poster() -> None:
    thumb = smallest_variant(images.encode(mostly_red(), "JPEG", quality=85))
    red, green, blue = rgb(compute_placeholders(thumb).dominant_color)
    assert red > 180 and green < 70 and blue < 80


def test_dominant_colour_ignores_what_is_see_through() -> None:
    image = Image.new("RGBA", (100, 100), (0, 255, 0, 0))  # a lot of invisible green
    ImageDraw.Draw(image).ellipse((30, 30, 70, 70), fill=(20, 40, 230, 255))
    _red, green, blue = rgb(dominant_color(working_copy(image)))
    assert blue > 180 and green < 90


def test_lqip_is_a_tiny_webp_of_the_right_shape() -> None:
    for size in [(320, 213), (213, 320), (320, 40), (20, 12)]:
        image = images.photo(*size)
        lqip = lqip_image(compute_placeholders(image).lqip)
        assert max(lqip.size) == min(32, max(size))
        assert abs(lqip.width / lqip.height - size[0] / size[1]) < 0.25 * size[0] / size[1]
        assert lqip.mode == "RGB"


def test_lqip_keeps_alpha() -> None:
    thumb = smallest_variant(images.rgba_png(300, 200))
    assert thumb.mode == "RGBA"
    lqip = lqip_image(compute_placeholders(thumb).lqip)
    assert lqip.mode == "RGBA" and lqip.size == (32, 21)
    alpha = lqip.getchannel("A").tobytes()
    assert alpha[0] < 40 and alpha[10 * 32 + 16] > 215  # transparent corner, opaque disc


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_lqip_of_pure_noise_still_fits(mode: str) -> None:
    """Noise is the worst case for any encoder; the data URI shrinks until it fits."""
    noise = Image.frombytes(mode, (32, 32), os.urandom(32 * 32 * len(mode)))
    uri = lqip_data_uri(noise)
    assert len(uri) <= LQIP_MAX_CHARS and max(lqip_image(uri).size) <= 32


@pytest.mark.parametrize(
    "image, see_through",
    [
        (Image.new("L", (320, 200), 90), False),
        (Image.new("LA", (320, 200), (90, 128)), True),
        (Image.new("P", (200, 200), 3), False),
        (Image.new("RGBA", (50, 50), (10, 20, 30, 255)), False),  # an alpha channel, all opaque
        (Image.new("RGBA", (50, 50), (10, 20, 30, 0)), True),  # nothing visible at all
        (Image.new("RGB", (1, 1), (255, 255, 255)), False),
        (Image.new("RGB", (1, 320), (0, 0, 0)), False),
    ],
    ids=["grey", "grey+alpha", "palette", "opaque-rgba", "invisible", "1x1", "1x320"],
)
def test_any_mode_and_shape(image: Image.Image, see_through: bool) -> None:
    result = compute_placeholders(image)
    assert isinstance(result, Placeholders)
    header = base64.b64decode(result.thumbhash, validate=True)
    assert header[2] >> 7 == see_through  # ThumbHash's alpha flag
    rgb(result.dominant_color)
    assert lqip_image(result.lqip).mode == ("RGBA" if see_through else "RGB")


def test_flat_colours_come_back_exactly() -> None:
    result = compute_placeholders(Image.new("RGB", (320, 200), (200, 30, 30)))
    assert result.dominant_color == "#c81e1e"
    assert base83_decode(result.blurhash[2:6]) == 0xC81E1E  # BlurHash's DC term, an sRGB colour
    average = thumbhash_reference.thumb_hash_to_average_rgba(list(base64.b64decode(result.thumbhash)))
    assert [round(255 * value) for value in average] == pytest.approx([200, 30, 30, 255], abs=4)
    centre = lqip_image(result.lqip).crop((16, 10, 17, 11)).tobytes()
    assert all(abs(a - b) <= 6 for a, b in zip(centre, (200, 30, 30)))
