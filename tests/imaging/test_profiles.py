"""The shipped profiles reproduce the pipelines imgpress replaces; variant options do what they say."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageChops, ImageStat

from chalicelib.imaging.jpegstrip import strip_jpeg_metadata
from chalicelib.imaging.limits import DecodeLimits
from chalicelib.imaging.profiles import SHIPPED_PROFILES, parse_profiles
from chalicelib.imaging.render import ORIGINAL_STRIPPED, REENCODED, Rendering, render_variants
from chalicelib.imaging.specs import parse_variants
from tests import icc, images

LIMITS = DecodeLimits(("JPEG", "PNG", "WEBP", "GIF", "AVIF", "HEIF"))
PROFILES = parse_profiles(SHIPPED_PROFILES.read_text())


def run_profile(name: str, data: bytes) -> Rendering:
    profile = PROFILES.get(name)
    assert profile is not None
    return render_variants(data, profile.variants, LIMITS)


def only(rendering: Rendering) -> tuple[Image.Image, bytes, str]:
    [variant] = rendering.variants
    return images.decode(variant.data), variant.data, variant.method


def photo_with_metadata(quality: int, orientation: int = 1, optimized: bool = False) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    exif[0x0112] = orientation
    exif.get_ifd(0x8825)[2] = (52.0, 21.0, 0.0)
    return images.encode(
        images.photo(1200, 800),
        "JPEG",
        quality=quality,
        exif=exif.tobytes(),
        comment=b"secret",
        optimize=optimized,
        progressive=optimized,
    )


def test_compress_recompresses_at_original_size_and_saves_bytes() -> None:
    original = photo_with_metadata(quality=95)
    out, data, method = only(run_profile("compress", original))
    assert out.format == "JPEG" and out.size == (1200, 800) and method == REENCODED
    assert len(data) < len(original) and out.info.get("progressive") == 1
    assert not out.getexif() and b"CameraMaker" not in data and b"secret" not in data


def test_compress_never_grows_a_file_it_cannot_shrink() -> None:
    """An optimised quality-70 JPEG would grow at quality 78: keep its own data, minus metadata."""
    original = photo_with_metadata(quality=70, optimized=True)
    out, data, method = only(run_profile("compress", original))
    assert method == ORIGINAL_STRIPPED and len(data) <= len(original)
    assert b"CameraMaker" not in data and b"secret" not in data and not out.getexif()
    assert ImageChops.difference(out.convert("RGB"), images.decode(original).convert("RGB")).getbbox() is None


def test_compress_fallback_keeps_only_the_orientation_of_a_rotated_photo() -> None:
    original = photo_with_metadata(quality=70, orientation=6, optimized=True)
    rendering = run_profile("compress", original)
    out, _data, method = only(rendering)
    assert method == ORIGINAL_STRIPPED and dict(out.getexif()) == {0x0112: 6}
    assert (rendering.variants[0].width, rendering.variants[0].height) == (800, 1200)  # as displayed


def test_stripping_keeps_the_scan_data_and_drops_an_mpo_second_frame() -> None:
    first = images.photo(800, 600)
    original = images.encode(
        first, "MPO", quality=60, save_all=True, append_images=[images.photo(400, 300)], comment=b"secret"
    )
    stripped = strip_jpeg_metadata(original)
    out = images.decode(stripped)
    assert (
        out.format == "JPEG" and len(stripped) < len(original) and b"secret" not in stripped and b"MPF" not in stripped
    )
    assert ImageChops.difference(out, images.decode(original).convert("RGB")).getbbox() is None
    with pytest.raises(ValueError):
        strip_jpeg_metadata(b"\xff\xd8\xff\xe1\x00\x10" + b"\x00" * 4)


def test_thumbnail200() -> None:
    out, _, _ = only(run_profile("thumbnail200", images.jpeg(3000, 2000)))
    assert out.format == "JPEG" and out.size == (200, 133)


@pytest.mark.parametrize(
    "builder, fmt",
    [(lambda: images.jpeg(3000, 2000), "JPEG"), (lambda: images.png(1200, 800), "PNG"), (images.webp, "WEBP")],
)
def test_resize_keeps_the_format(builder: object, fmt: str) -> None:
    out, _, _ = only(run_profile("resize", builder()))  # type: ignore[operator]
    assert out.format == fmt and max(out.size) == min(1024, max(images.decode(builder()).size))  # type: ignore[operator]


@pytest.mark.parametrize(
    "builder", [lambda: images.jpeg(2000, 1000), images.rgba_png, images.gif, images.webp, images.cmyk_jpeg]
)
def test_lowres_jpeg_from_any_input(builder: object) -> None:
    source = builder()  # type: ignore[operator]
    width, height = images.decode(source).size
    out, _data, _ = only(run_profile("lowres-jpeg", source))
    assert out.format == "JPEG" and out.mode in ("RGB", "L") and out.info.get("progressive") == 1
    assert out.size == (round(width * 0.3), round(height * 0.3))
    reference = Image.open(io.BytesIO(images.encode(Image.new("RGB", (8, 8)), "JPEG", quality=40)))
    assert out.quantization[0] == reference.quantization[0]  # quality 40 tables
    assert "icc_profile" not in out.info and not out.getexif()


def test_web800_is_watermarked_in_the_corner_only() -> None:
    source = images.jpeg(1600, 1000)
    marked, _, _ = only(run_profile("web800", source))
    plain = images.decode(
        render_variants(source, parse_variants('[{"name": "p", "max": 800, "format": "webp", "quality": 80}]'), LIMITS)
        .variants[0]
        .data
    )
    assert marked.format == "WEBP" and marked.size == (800, 500)
    diff = ImageChops.difference(marked.convert("RGB"), plain.convert("RGB")).convert("L")
    corner = ImageStat.Stat(diff.crop((560, 400, 800, 500))).mean[0]
    elsewhere = ImageStat.Stat(diff.crop((0, 0, 400, 250))).mean[0]
    assert corner > 10 * max(elsewhere, 0.5)


def render(data: bytes, variant: str) -> tuple[Image.Image, bytes]:
    rendering = render_variants(data, parse_variants(f"[{variant}]"), LIMITS)
    return images.decode(rendering.variants[0].data), rendering.variants[0].data


def test_cover_fills_the_box_exactly_and_entropy_finds_the_detail() -> None:
    canvas = Image.new("RGB", (1200, 400), (128, 128, 128))
    canvas.paste(images.photo(300, 400), (900, 0))  # all the detail sits at the right edge
    data = images.encode(canvas, "PNG")
    centre, _ = render(data, '{"name": "a", "width": 200, "height": 200, "fit": "cover", "format": "png"}')
    busy, _ = render(
        data, '{"name": "a", "width": 200, "height": 200, "fit": "cover", "crop": "entropy", "format": "png"}'
    )
    assert centre.size == busy.size == (200, 200)
    assert ImageStat.Stat(centre.convert("L")).stddev[0] < 1
    assert ImageStat.Stat(busy.crop((120, 0, 200, 200)).convert("L")).stddev[0] > 20


def test_text_watermark_and_its_minimum_size() -> None:
    source = images.encode(Image.new("RGB", (1000, 600), (0, 0, 128)), "PNG")
    spec = '{"name": "w", "max": %d, "format": "png", "watermark": {"text": "(c) imgpress", "opacity": 1, "min_size": 400}}'
    big, _ = render(source, spec % 1000)
    small, _ = render(source, spec % 300)
    assert ImageStat.Stat(big.crop((600, 450, 1000, 600)).convert("L")).extrema[0][1] > 200  # white text
    assert ImageStat.Stat(small.convert("L")).extrema[0][1] < 40  # untouched


def test_strip_false_keeps_exif_upright_and_keep_icc_keeps_the_profile() -> None:
    wide = icc.rgb_profile(icc.SRGB_GREEN, icc.SRGB_RED, icc.SRGB_BLUE, "wide test space")
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    exif[0x0112] = 6
    data = images.encode(
        Image.new("RGB", (300, 200), (255, 0, 0)), "JPEG", quality=95, exif=exif.tobytes(), icc_profile=wide
    )
    kept, _ = render(data, '{"name": "k", "max": 1000, "format": "jpeg", "strip": false, "keep_icc": true}')
    assert kept.size == (200, 300) and kept.getexif()[0x010F] == "CameraMaker" and kept.getexif()[0x0112] == 1
    assert kept.info["icc_profile"] == wide and kept.getpixel((10, 10))[0] > 230  # pixels left in their space
    default, _ = render(data, '{"name": "d", "max": 1000, "format": "jpeg"}')
    assert not default.getexif() and "icc_profile" not in default.info and default.getpixel((10, 10))[1] > 230


def test_lossless_webp_and_custom_background() -> None:
    source = images.photo(200, 100)
    out, _ = render(images.encode(source, "PNG"), '{"name": "l", "max": 500, "format": "webp", "lossless": true}')
    assert ImageChops.difference(out.convert("RGB"), source).getbbox() is None
    red_bg, _ = render(images.rgba_png(), '{"name": "b", "max": 300, "format": "jpeg", "background": "#ff0000"}')
    r, g, b = red_bg.getpixel((2, 2))
    assert r > 240 and g < 15 and b < 15


@pytest.mark.integration  # the shared corpus of real files
def test_real_heic_and_avif_phone_uploads() -> None:
    for name, fmt in (("derived_heic__sunset_12mp.heic", "HEIF"), ("derived_avif__sunset_12mp.avif", "AVIF")):
        rendering = run_profile("default", images.corpus_file(name))
        assert rendering.source.format == fmt and (rendering.source.width, rendering.source.height) == (4272, 2848)
        web = images.decode(rendering.variants[0].data)
        assert web.size == (2048, 1365) and ImageStat.Stat(web).stddev[0] > 10
        same = render_variants(
            images.corpus_file(name), parse_variants('[{"name": "s", "max": 300, "format": "same"}]'), LIMITS
        )
        assert same.variants[0].format == ("jpeg" if fmt == "HEIF" else "avif")


def test_tiff_and_bmp_are_opt_in() -> None:
    tiff = images.encode(images.photo(300, 200), "TIFF")
    opted_in = DecodeLimits(("JPEG", "TIFF", "BMP"))
    assert render_variants(tiff, parse_variants('[{"name": "t", "max": 100}]'), opted_in).source.format == "TIFF"
    bmp = images.encode(images.photo(300, 200), "BMP")
    assert render_variants(bmp, parse_variants('[{"name": "t", "max": 100}]'), opted_in).source.format == "BMP"


@pytest.mark.parametrize("fmt", ["webp", "jpeg"])
def test_target_ssim_picks_a_quality_in_at_most_three_encodes(fmt: str) -> None:
    from chalicelib.imaging.quality import block_ssim

    data = images.jpeg(1200, 800)
    rendering = render_variants(
        data, parse_variants(f'[{{"name": "t", "max": 800, "format": "{fmt}", "target_ssim": 0.95}}]'), LIMITS
    )
    [variant] = rendering.variants
    assert variant.quality is not None and 1 <= variant.quality <= 100
    reference = render_variants(data, parse_variants('[{"name": "r", "max": 800, "format": "png"}]'), LIMITS)
    measured = block_ssim(images.decode(reference.variants[0].data), images.decode(variant.data))
    assert abs(measured - variant.ssim) < 1e-3  # the SSIM reported is the SSIM of the bytes stored
