"""The pure image core on real, generated files: sizes, orientation, colour, alpha, metadata."""

from __future__ import annotations

import math

import pytest
from PIL import Image, ImageChops, ImageCms, ImageStat

from chalicelib.errors import ImageRejected
from chalicelib.imaging.limits import DecodeLimits
from chalicelib.imaging.render import render_variants
from chalicelib.imaging.specs import DEFAULT_VARIANTS_JSON, parse_variants
from tests import icc, images

LIMITS = DecodeLimits(("JPEG", "PNG", "WEBP", "GIF"))
LOSSLESS = parse_variants('[{"name": "full", "max": 4000, "format": "png"}]')


def render_one(data: bytes, variant: str) -> tuple[Image.Image, bytes]:
    rendering = render_variants(data, parse_variants(f"[{variant}]"), LIMITS)
    out = rendering.variants[0].data
    return images.decode(out), out


def red(pixel: tuple[int, ...]) -> bool:
    return pixel[0] > 200 and pixel[2] < 60


def test_default_variants_fit_the_box_and_keep_aspect() -> None:
    rendering = render_variants(images.jpeg(3000, 2000), parse_variants(DEFAULT_VARIANTS_JSON), LIMITS)
    sizes = {v.name: (v.width, v.height, v.format) for v in rendering.variants}
    assert sizes == {"web": (2048, 1365, "webp"), "thumb": (320, 213, "webp")}
    for variant in rendering.variants:
        decoded = images.decode(variant.data)
        assert decoded.format == "WEBP" and decoded.size == (variant.width, variant.height)
    assert rendering.source.width == 3000 and rendering.source.format == "JPEG"


def test_never_upscales() -> None:
    out, _ = render_one(images.jpeg(300, 200), '{"name": "web", "max": 2048, "format": "jpeg"}')
    assert out.size == (300, 200)


@pytest.mark.parametrize(
    "variant, expected",
    [
        ('{"name": "thumb200", "max": 200, "format": "jpeg"}', (200, 133)),
        ('{"name": "lowres", "scale": 30, "format": "jpeg", "quality": 40, "progressive": true}', (360, 240)),
        ('{"name": "web800", "max": 800, "format": "webp", "quality": 80}', (800, 533)),
    ],
)
def test_seed_recipes_are_expressible(variant: str, expected: tuple[int, int]) -> None:
    out, data = render_one(images.jpeg(1200, 800), variant)
    assert out.size == expected
    if "progressive" in variant:
        assert out.info.get("progressive") == 1
        _, sharper = render_one(images.jpeg(1200, 800), variant.replace('"quality": 40', '"quality": 90'))
        assert len(data) < len(sharper)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_comes_out_upright(orientation: int) -> None:
    out, _ = render_one(images.oriented_jpeg(orientation), '{"name": "o", "max": 1000, "format": "png"}')
    assert out.size == (400, 200)
    assert red(out.getpixel((10, 10)))
    assert not red(out.getpixel((390, 10))) and not red(out.getpixel((10, 190)))


@pytest.mark.parametrize("value", [0, 9, 65535])
def test_invalid_orientation_values_are_treated_as_upright(value: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = value
    data = images.encode(images.marked(), "JPEG", quality=95, exif=exif.tobytes())
    out, _ = render_one(data, '{"name": "o", "max": 500, "format": "png"}')
    assert out.size == (400, 200) and red(out.getpixel((10, 10)))


def test_corrupt_exif_does_not_fail_the_image() -> None:
    clean = images.encode(images.marked(), "JPEG", quality=95)
    garbage = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff" + b"\xde\xad" * 40
    app1 = b"\xff\xe1" + (len(garbage) + 2).to_bytes(2, "big") + garbage
    out, _ = render_one(clean[:2] + app1 + clean[2:], '{"name": "o", "max": 500, "format": "png"}')
    assert out.size == (400, 200) and red(out.getpixel((10, 10)))


def test_metadata_is_stripped() -> None:
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    exif.get_ifd(0x8825)[2] = (52.0, 21.0, 0.0)
    data = images.encode(
        images.photo(600, 400),
        "JPEG",
        exif=exif.tobytes(),
        comment=b"secret comment",
        icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes(),
    )
    for fmt in ("jpeg", "webp", "png", "avif"):
        out, raw = render_one(data, f'{{"name": "x", "max": 300, "format": "{fmt}"}}')
        assert not out.getexif(), fmt
        assert "icc_profile" not in out.info and "comment" not in out.info, fmt
        assert b"CameraMaker" not in raw and b"secret comment" not in raw


def test_transparency_flattens_to_white_for_jpeg_and_survives_in_webp_and_png() -> None:
    jpeg_out, _ = render_one(images.rgba_png(), '{"name": "j", "max": 300, "format": "jpeg"}')
    assert jpeg_out.mode == "RGB" and min(jpeg_out.getpixel((2, 2))) > 245
    assert max(jpeg_out.getpixel((150, 100))) < 20
    for fmt in ("webp", "png"):
        out, _ = render_one(images.rgba_png(), f'{{"name": "a", "max": 300, "format": "{fmt}"}}')
        assert out.mode == "RGBA" and out.getpixel((2, 2))[3] == 0 and out.getpixel((150, 100))[3] == 255


def test_palette_with_trns_flattens_to_white() -> None:
    out, _ = render_one(images.palette_trns_png(), '{"name": "j", "max": 200, "format": "jpeg"}')
    assert min(out.getpixel((5, 5))) > 245
    assert red(out.getpixel((100, 100)))


def test_sixteen_bit_grey_keeps_its_ramp() -> None:
    out, _ = render_one(images.gray16_png(), '{"name": "g", "max": 1000, "format": "png"}')
    row = [out.getpixel((x, 8)) for x in (0, 128, 256, 384, 511)]
    assert row[0] < 5 and 55 < row[1] < 75 and 120 < row[2] < 135 and 185 < row[3] < 200 and row[4] > 250


def test_cmyk_jpeg_comes_out_in_rgb_with_its_colour() -> None:
    out, _ = render_one(images.cmyk_jpeg(), '{"name": "c", "max": 300, "format": "jpeg"}')
    assert out.mode == "RGB"
    r, g, b = out.getpixel((150, 100))
    assert r > 170 and g < 70 and b < 70


def test_still_gifs_and_mpo_phone_photos_are_accepted() -> None:
    gif_out, _ = render_one(images.gif(frames=1), '{"name": "g", "max": 100, "format": "same"}')
    assert gif_out.format == "PNG" and gif_out.size == (100, 67)
    rendering = render_variants(images.mpo(), parse_variants('[{"name": "m", "max": 400, "format": "same"}]'), LIMITS)
    assert rendering.source.format == "JPEG" and rendering.variants[0].format == "jpeg"
    assert (rendering.variants[0].width, rendering.variants[0].height) == (400, 300)


def test_webp_input_and_avif_output() -> None:
    out, _ = render_one(images.webp(), '{"name": "a", "max": 400, "format": "avif", "quality": 50}')
    assert out.format == "AVIF" and out.size == (400, 300)


def test_small_variants_are_resampled_smoothly_not_nearest() -> None:
    """A 1-px checkerboard averages to mid grey; nearest-neighbour would give black or white."""
    board = Image.new("L", (800, 800))
    board.putdata([255 * ((x + y) % 2) for y in range(800) for x in range(800)])
    out, _ = render_one(images.encode(board, "PNG"), '{"name": "t", "max": 100, "format": "png"}')
    assert 100 < out.getpixel((50, 50)) < 155


def test_chained_variant_matches_one_lanczos_resize_from_full_size() -> None:
    """A thumbnail derived from the rendered master must look like one resampled from the original:
    fine texture (here noise) must not alias through a box pre-reduce."""
    source = Image.effect_noise((1280, 800), 80).convert("RGB")
    specs = parse_variants(
        '[{"name": "web", "max": 640, "format": "png"}, {"name": "thumb", "max": 100, "format": "png"}]'
    )
    data = images.encode(source, "PNG", compress_level=1)
    thumb = images.decode(render_variants(data, specs, LIMITS).variants[1].data)
    reference = source.resize(thumb.size, Image.Resampling.LANCZOS)
    mean_error = sum(ImageStat.Stat(ImageChops.difference(thumb.convert("RGB"), reference)).mean) / 3
    assert mean_error < 0.3  # chained with plain LANCZOS: ~0.12; with a box pre-reduce: ~0.6


def fine_stripes_jpeg(progressive: bool) -> bytes:
    """Vertical stripes 10 px apart, 3000 px wide: close to Nyquist once resized to 1024 px."""
    row = Image.new("L", (3000, 1))
    row.putdata([round(127.5 + 100 * math.sin(2 * math.pi * x / 10)) for x in range(3000)])
    stripes = row.resize((3000, 600), Image.Resampling.NEAREST).convert("RGB")
    return images.encode(stripes, "JPEG", quality=95, progressive=progressive)


def stripes_against_reference(data: bytes) -> tuple[float, float]:
    """(contrast kept, mean error) of the 1024 px render against one LANCZOS resize of the full decode."""
    out, _ = render_one(data, '{"name": "web", "max": 1024, "format": "png"}')
    reference = images.decode(data).resize(out.size, Image.Resampling.LANCZOS)
    interior = (20, 20, out.width - 20, out.height - 20)

    def contrast(image: Image.Image) -> float:
        return ImageStat.Stat(image.convert("L").crop(interior)).stddev[0]

    error = sum(ImageStat.Stat(ImageChops.difference(out.convert("RGB"), reference)).mean) / 3
    return contrast(out) / contrast(reference), error


def test_progressive_jpeg_keeps_fine_detail_after_dct_scaling() -> None:
    """The DCT-scaled decode must keep nearly the contrast the full decode's LANCZOS keeps."""
    kept, _ = stripes_against_reference(fine_stripes_jpeg(progressive=True))
    assert kept >= 0.93  # LANCZOS after the draft: ~0.95; bicubic: ~0.85


def test_baseline_jpeg_fast_path_stays_close_to_the_reference() -> None:
    """Baseline JPEGs trade a little near-Nyquist contrast for time (Hamming after the draft), but
    neither blur like bilinear nor alias like box or nearest-neighbour."""
    kept, error = stripes_against_reference(fine_stripes_jpeg(progressive=False))
    assert kept >= 0.75  # Hamming ~0.81, bicubic ~0.86; bilinear ~0.72
    assert error < 13.5  # Hamming ~12.5, bicubic ~9.1; box ~13.7, bilinear ~17.8, nearest ~19.7


@pytest.mark.parametrize(
    "data, code",
    [
        (b"", "empty"),
        (b"\x13\x37" * 500, "not_an_image"),
        (images.png_header(100_000, 100_000), "too_many_pixels"),
        (images.png_header(10_000, 10_000), "too_many_pixels"),
        (images.png_header(12_001, 10), "dimensions_too_large"),
        (images.jpeg(800, 600)[:4000], "truncated"),
        (images.encode(images.photo(50, 50), "TIFF"), "unsupported_format"),
        (images.encode(images.photo(50, 50), "BMP"), "unsupported_format"),
        (
            b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "unsupported_format",
        ),
    ],
    ids=["empty", "random", "100k-square-header", "100mp", "too-wide", "truncated-jpeg", "tiff", "bmp", "svg"],
)
def test_bad_input_is_rejected_with_a_reason(data: bytes, code: str) -> None:
    with pytest.raises(ImageRejected) as raised:
        render_variants(data, parse_variants(DEFAULT_VARIANTS_JSON), LIMITS)
    assert raised.value.code == code


def test_jpeg_with_html_appended_is_processed_without_the_payload() -> None:
    data = images.jpeg(400, 300) + b"<html><script>alert('x')</script></html>"
    rendering = render_variants(data, parse_variants(DEFAULT_VARIANTS_JSON), LIMITS)
    assert all(b"<script>" not in v.data for v in rendering.variants)


def test_disallowed_but_known_format_is_rejected_even_if_pillow_could_read_it() -> None:
    with pytest.raises(ImageRejected) as raised:
        render_variants(images.webp(), parse_variants(DEFAULT_VARIANTS_JSON), DecodeLimits(("JPEG", "PNG")))
    assert raised.value.code == "unsupported_format"


def test_output_sizes_shrink_a_photo() -> None:
    data = images.jpeg(2400, 1600)
    rendering = render_variants(data, parse_variants(DEFAULT_VARIANTS_JSON), LIMITS)
    assert all(len(v.data) < len(data) / 4 for v in rendering.variants)


def test_embedded_rgb_profile_is_honoured() -> None:
    """With red and green primaries swapped in the profile, stored (255, 0, 0) is really green."""
    swapped = icc.rgb_profile(icc.SRGB_GREEN, icc.SRGB_RED, icc.SRGB_BLUE, "swapped red and green")
    data = images.encode(Image.new("RGB", (64, 64), (255, 0, 0)), "PNG", icc_profile=swapped)
    out, _ = render_one(data, '{"name": "p", "max": 32, "format": "png"}')
    r, g, b = out.getpixel((5, 5))
    assert g > 240 and r < 15 and b < 15
    assert "icc_profile" not in out.info


def test_cmyk_jpeg_is_converted_through_its_own_profile() -> None:
    """The profile says cyan ink prints red; Pillow's profile-less conversion would say cyan."""
    profile = icc.cmyk_profile(lambda c, m, y, k: (1 - k, (1 - c) * (1 - k), (1 - c) * (1 - k)), "cyan prints red")
    data = images.encode(Image.new("CMYK", (64, 64), (255, 0, 0, 0)), "JPEG", quality=95, icc_profile=profile)
    for fmt in ("jpeg", "webp"):
        out, _ = render_one(data, f'{{"name": "c", "max": 32, "format": "{fmt}"}}')
        r, g, b = out.convert("RGB").getpixel((5, 5))
        assert r > 230 and g < 30 and b < 30, fmt


def test_grey_with_alpha_keeps_alpha_or_flattens_to_white() -> None:
    la = Image.new("LA", (100, 100), (0, 0))
    la.paste((40, 255), (25, 25, 75, 75))
    data = images.encode(la, "PNG")
    png_out, _ = render_one(data, '{"name": "p", "max": 100, "format": "png"}')
    assert png_out.mode == "LA" and png_out.getpixel((2, 2))[1] == 0 and png_out.getpixel((50, 50)) == (40, 255)
    jpeg_out, _ = render_one(data, '{"name": "j", "max": 100, "format": "jpeg"}')
    assert min(jpeg_out.convert("RGB").getpixel((2, 2))) > 245 and max(jpeg_out.convert("RGB").getpixel((50, 50))) < 60


def test_large_palette_gif_is_resampled_in_rgb() -> None:
    """A 1-px black/white checkerboard GIF must average to grey, not alias to black or white."""
    board = Image.new("P", (1200, 900))
    board.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    board.putdata([(x + y) % 2 for y in range(900) for x in range(1200)])
    out, _ = render_one(images.encode(board, "GIF"), '{"name": "t", "max": 120, "format": "webp", "quality": 100}')
    assert all(100 < v < 155 for v in out.convert("RGB").getpixel((60, 45)))


def test_variants_keeping_the_profile_and_converted_ones_come_from_the_same_upload() -> None:
    """One conversion serves every sRGB variant and the placeholders; keep_icc variants stay untouched."""
    swapped = icc.rgb_profile(icc.SRGB_GREEN, icc.SRGB_RED, icc.SRGB_BLUE, "swapped red and green")
    data = images.encode(Image.new("RGB", (640, 480), (255, 0, 0)), "PNG", icc_profile=swapped)
    specs = parse_variants(
        '[{"name": "big", "max": 400, "format": "png"},'
        ' {"name": "kept", "max": 300, "format": "png", "keep_icc": true},'
        ' {"name": "small", "max": 100, "format": "png"}]'
    )
    for _ in range(2):  # the second rendering reuses the transform built by the first
        rendering = render_variants(data, specs, LIMITS, blurhash_components=(4, 3))
        by_name = {v.name: images.decode(v.data) for v in rendering.variants}
        for name in ("big", "small"):
            r, g, b = by_name[name].getpixel((5, 5))
            assert g > 240 and r < 15 and b < 15, name
            assert "icc_profile" not in by_name[name].info
        assert by_name["kept"].getpixel((5, 5)) == (255, 0, 0) and by_name["kept"].info["icc_profile"] == swapped
        assert rendering.placeholders is not None and rendering.placeholders["dominant_color"].startswith("#00f")


def test_an_alpha_band_that_is_opaque_everywhere_is_not_carried_into_outputs() -> None:
    data = images.encode(images.photo(300, 200).convert("RGBA"), "PNG")
    for fmt in ("webp", "png"):
        out, _ = render_one(data, f'{{"name": "o", "max": 150, "format": "{fmt}"}}')
        assert out.mode == "RGB", fmt


PARALLEL_CASES = [
    ("jpeg, default profile", images.jpeg(2400, 1600), DEFAULT_VARIANTS_JSON),
    ("png with alpha, two of one size", images.png(900, 600), '[{"name": "a", "max": 600, "format": "webp"},'
     ' {"name": "b", "max": 600, "format": "png"}, {"name": "c", "max": 600, "format": "jpeg"}]'),
    ("cropped and watermarked", images.jpeg(1600, 1200), '[{"name": "sq", "width": 300, "height": 300, "fit": "cover",'
     ' "crop": "entropy", "format": "webp"}, {"name": "wm", "max": 800, "format": "jpeg",'
     ' "watermark": {"image": "watermark.png", "position": "bottom-right", "opacity": 0.6, "scale": 0.25}}]'),
]  # fmt: skip


@pytest.mark.parametrize("name, data, variants", PARALLEL_CASES, ids=[case[0] for case in PARALLEL_CASES])
def test_parallel_encodes_give_the_same_bytes(name: str, data: bytes, variants: str) -> None:
    specs = parse_variants(variants)
    serial = render_variants(data, specs, LIMITS, (4, 3))
    for threads in (2, 4):
        parallel = render_variants(data, specs, LIMITS, (4, 3), encode_threads=threads)
        assert parallel == serial, name


def test_a_parallel_encode_that_fails_fails_the_render_like_a_serial_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.imaging import render

    def broken(*_: object) -> bytes:
        raise OSError("encoder exploded")

    monkeypatch.setattr(render, "encode", broken)
    for threads in (1, 2):
        with pytest.raises(ImageRejected) as rejected:
            render_variants(
                images.jpeg(800, 600), parse_variants(DEFAULT_VARIANTS_JSON), LIMITS, encode_threads=threads
            )
        assert rejected.value.code == "processing_error"
