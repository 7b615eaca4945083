"""Animated uploads through the image core: every output frame against the frame the source shows
(Pillow composites GIF, APNG and WebP frames as it seeks: disposal and blending), timing, play count,
transparency, the limits that turn an animation into stills, posters, and never larger than the source."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
from PIL import Image, ImageChops, ImageStat

from chalicelib.errors import ConfigError
from chalicelib.imaging import animation
from chalicelib.imaging.limits import DecodeLimits
from chalicelib.imaging.render import render_variants
from chalicelib.imaging.results import LARGER, MOVING, POSTER, TRUNCATED, Rendering
from chalicelib.imaging.specs import DEFAULT_VARIANTS_JSON, parse_variants
from tests import crafted, fuzz, images

LIMITS = DecodeLimits(("JPEG", "PNG", "WEBP", "GIF", "AVIF"))
FULL_SIZE = parse_variants('[{"name": "full", "max": 4000, "format": "webp"}]')
# Disposal and blending, drawn in a few colours: encoded lossless (or kept as uploaded), so exact.
CONFORMANCE = (
    "dispose_bgnd.gif",
    "dispose_none.gif",
    "dispose_prev.gif",
    "transparent_dispose.gif",
    "apng_dispose_op_background_region.png",
    "apng_dispose_op_previous_region.png",
    "apng_dispose_op_none_region.png",
    "apng_blend_op_over.png",
    "apng_blend_op_source_transparent.png",
    "apng_mode_palette_alpha.png",
    "chi.gif",
)


def fixture(name: str) -> bytes:
    return images.fixture(f"animated/{name}")


def shown_frames(data: bytes) -> Iterator[tuple[Image.Image, float]]:
    """Each frame as a browser shows it (RGBA, composited) and its duration, by Pillow's decoders."""
    image = Image.open(io.BytesIO(data))
    first = 1 if image.info.get("default_image") else 0  # an APNG's default image is no frame
    for index in range(first, getattr(image, "n_frames", 1)):
        image.seek(index)
        image.load()
        yield image.convert("RGBA"), float(image.info.get("duration") or 0)


def visible(frame: Image.Image) -> Image.Image:
    """Premultiplied colour: what a transparent pixel's colour was does not show, and is not kept."""
    black = Image.new("RGBA", frame.size, (0, 0, 0, 255))
    return Image.alpha_composite(black, frame).convert("RGB")


def timeline(data: bytes) -> list[tuple[float, Image.Image]]:
    """(when it is shown, in ms, frame): an encoder may merge frames that look alike into one."""
    shown, start = [], 0.0
    for frame, duration in shown_frames(data):
        shown.append((start, frame))
        start += duration
    return shown


def at(shown: list[tuple[float, Image.Image]], moment: float) -> Image.Image:
    """The frame on screen at `moment` (of frames shown for no time at all, the last)."""
    return [frame for start, frame in shown if start <= moment][-1]


def worst_difference(a: Image.Image, b: Image.Image) -> int:
    colour = ImageChops.difference(visible(a), visible(b)).getextrema()
    alpha = ImageChops.difference(a.getchannel("A"), b.getchannel("A")).getextrema()
    return max(high for _low, high in [*colour, alpha])  # type: ignore[misc]


def moving(rendering: Rendering, name: str = "full") -> bytes:
    variant = next(v for v in rendering.variants if v.name == name)
    assert variant.animation == MOVING, variant.animation
    return variant.data


@pytest.mark.parametrize("name", CONFORMANCE)
def test_every_frame_is_the_frame_the_source_shows(name: str) -> None:
    data = fixture(name)
    rendering = render_variants(data, FULL_SIZE, LIMITS)
    source, output = timeline(data), timeline(moving(rendering))
    assert rendering.source.frames == len(source) == rendering.variants[0].frames
    for moment, _frame in source:
        assert worst_difference(at(source, moment), at(output, moment)) <= 2, (name, moment)  # lossless: exact


@pytest.mark.parametrize("name", ["iss634.webp", "apng_blend_op_over_near_transparent.png"])
def test_frames_of_photos_and_gradients_are_close(name: str) -> None:
    data = fixture(name)
    output = timeline(moving(render_variants(data, FULL_SIZE, LIMITS)))
    source = timeline(data)
    for moment, _frame in source:
        difference = ImageChops.difference(visible(at(source, moment)), visible(at(output, moment)))
        assert max(ImageStat.Stat(difference).mean) < 10, moment  # of 255: lossy at the quality asked


@pytest.mark.parametrize("name", ["chi.gif", "dispose_prev.gif", "apng_num_plays_1.png", "iss634.webp", "star.avifs"])
def test_timing_and_play_count_are_kept(name: str) -> None:
    data = fixture(name)
    rendering = render_variants(data, FULL_SIZE, LIMITS)
    durations = [duration for _frame, duration in shown_frames(data)]
    assert sum(duration for _frame, duration in shown_frames(moving(rendering))) == sum(durations)
    assert rendering.source.duration_ms == round(sum(durations))
    # libwebp merges frames that look alike into one shown for as long: no frame starts elsewhere
    assert {start for start, _ in timeline(moving(rendering))} <= {start for start, _ in timeline(data)}
    output = Image.open(io.BytesIO(moving(rendering)))
    assert output.info["loop"] == rendering.source.loop


@pytest.mark.parametrize(
    ("loop", "plays"), [(None, 1), (0, 0), (2, 3)], ids=["no-netscape-extension", "for-ever", "repeats-twice"]
)
def test_a_gifs_repeat_count_becomes_the_number_of_plays(loop: int | None, plays: int) -> None:
    frames = [Image.new("RGB", (16, 16), (80 * i, 0, 0)) for i in range(3)]
    params = {} if loop is None else {"loop": loop}
    data = images.encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, **params)
    rendering = render_variants(data, FULL_SIZE, LIMITS)
    assert rendering.source.loop == plays
    assert Image.open(io.BytesIO(moving(rendering))).info["loop"] == plays


def test_the_default_profile_moves_the_web_variant_and_keeps_the_first_frame_as_thumb() -> None:
    data = fixture("chi.gif")
    rendering = render_variants(data, parse_variants(DEFAULT_VARIANTS_JSON), LIMITS, (4, 3))
    web, thumb = rendering.variants
    assert (web.animation, web.frames, thumb.animation, thumb.frames) == (MOVING, 31, POSTER, 1)
    assert rendering.animation == MOVING and rendering.placeholders is not None
    first, _ = next(shown_frames(data))
    assert images.decode(thumb.data).size == first.size
    assert worst_difference(first, images.decode(thumb.data).convert("RGBA")) < 64


def test_a_still_variant_shows_the_poster_frame_it_names() -> None:
    frames = [Image.new("RGB", (32, 32), (i * 60, 0, 0)) for i in range(4)]
    data = images.encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    specs = parse_variants('[{"name": "p", "max": 32, "format": "png", "poster_frame": 2}]')
    rendering = render_variants(data, specs, LIMITS)
    assert rendering.variants[0].animation == POSTER and rendering.animation == "still"
    assert images.decode(rendering.variants[0].data).convert("RGB").getpixel((5, 5)) == (120, 0, 0)


def test_transparency_is_kept() -> None:
    rendering = render_variants(fixture("dispose_bgnd_transparency.gif"), FULL_SIZE, LIMITS)
    for frame, _duration in shown_frames(moving(rendering)):
        assert frame.getchannel("A").getextrema()[0] == 0


def test_animated_avif_when_the_profile_asks_for_it() -> None:
    specs = parse_variants('[{"name": "full", "max": 4000, "format": "avif", "quality": 70, "effort": 6}]')
    rendering = render_variants(fixture("chi.gif"), specs, LIMITS)
    variant = rendering.variants[0]
    assert (variant.format, variant.animation, variant.frames) == ("avif", MOVING, 31)
    output = Image.open(io.BytesIO(variant.data))
    assert output.format == "AVIF" and getattr(output, "n_frames", 1) == 31


def test_over_the_frame_limit_every_moving_variant_is_a_still_and_only_its_poster_is_decoded() -> None:
    data = images.gif(frames=40)
    rendering = render_variants(data, FULL_SIZE, DecodeLimits(("GIF",), max_animation_frames=39))
    variant = rendering.variants[0]
    assert (variant.animation, variant.frames, rendering.animation) == (TRUNCATED, 1, TRUNCATED)
    assert rendering.source.frames == 40 and rendering.source.duration_ms is None  # not every frame decoded
    assert images.decode(variant.data).format == "WEBP"


def test_a_variant_may_set_its_own_frame_limit() -> None:
    specs = parse_variants('[{"name": "full", "max": 100, "max_frames": 10}, {"name": "small", "max": 50}]')
    rendering = render_variants(images.gif(frames=20), specs, LIMITS)
    assert [v.animation for v in rendering.variants] == [TRUNCATED, MOVING]


def test_the_work_limit_keeps_the_smallest_variants_moving() -> None:
    specs = parse_variants('[{"name": "large", "max": 120}, {"name": "small", "max": 60}]')
    # 3 frames: small is 3 x 60 x 40 = 7,200 output pixels, large 3 x 120 x 80 = 28,800
    limits = DecodeLimits(("GIF",), max_animation_work=20_000)
    rendering = render_variants(images.gif(frames=3), specs, limits)
    assert {v.name: v.animation for v in rendering.variants} == {"large": TRUNCATED, "small": MOVING}
    assert rendering.animation == TRUNCATED


def test_plan_counts_frames_times_output_pixels_from_the_smallest_variant_up() -> None:
    specs = parse_variants(
        '[{"name": "a", "max": 100}, {"name": "b", "max": 50}, {"name": "c", "max": 50, "format": "jpeg"}]'
    )
    limits = DecodeLimits(("GIF",), max_animation_work=10 * (100 * 100 + 50 * 50))
    assert animation.plan(specs, (100, 100), 10, limits) == {"a": MOVING, "b": MOVING, "c": POSTER}
    assert animation.plan(specs, (100, 100), 11, limits) == {"a": TRUNCATED, "b": MOVING, "c": POSTER}


def test_an_animation_larger_than_the_upload_becomes_its_poster() -> None:
    """Noise, encoded by the upload at the lowest quality: the variant's quality 100 only grows it."""
    frames = [Image.effect_noise((200, 200), 90).convert("RGB") for _ in range(3)]
    data = images.encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], quality=1, duration=100)
    specs = parse_variants('[{"name": "full", "max": 150, "format": "webp", "quality": 100}]')
    variant = render_variants(data, specs, LIMITS).variants[0]
    assert (variant.animation, variant.frames) == (LARGER, 1)
    assert len(variant.data) < len(data)


def test_a_webp_animation_larger_than_the_upload_at_its_size_is_the_uploads_own_encoding() -> None:
    frames = [Image.effect_noise((120, 120), 90).convert("RGB") for _ in range(3)]
    exif = Image.Exif()
    exif[0x010F] = "Camera"
    data = images.encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], quality=1, duration=100, exif=exif)
    specs = parse_variants('[{"name": "full", "max": 150, "format": "webp", "quality": 100}]')
    variant = render_variants(data, specs, LIMITS).variants[0]
    assert (variant.animation, variant.method, variant.frames) == (MOVING, "original_stripped", 3)
    assert b"Camera" not in variant.data and len(variant.data) < len(data)
    assert getattr(Image.open(io.BytesIO(variant.data)), "n_frames", 1) == 3


def test_cover_crops_every_frame_where_it_crops_the_first() -> None:
    specs = parse_variants('[{"name": "square", "width": 40, "height": 40, "fit": "cover", "crop": "entropy"}]')
    rendering = render_variants(fixture("chi.gif"), specs, LIMITS)
    assert {frame.size for frame, _ in shown_frames(moving(rendering, "square"))} == {(40, 40)}


def test_decompression_heavy_frames_within_the_input_bound_cost_only_their_poster() -> None:
    """90 valid frames of a megapixel, a few bytes each: 90 million output pixels are past the work
    limit, so the variant is a still and only the first frame is decoded."""
    rendering = render_variants(crafted.flat_frames_gif(90), FULL_SIZE, LIMITS)
    assert (rendering.variants[0].animation, rendering.source.frames) == (TRUNCATED, 90)
    assert rendering.source.duration_ms is None


def test_frames_are_streamed_not_held() -> None:
    """200 frames of 400 x 400: held as RGBA they would take 128 MiB; the render grows by a fraction,
    and within the memory estimate (decode.memory_needed)."""
    base = images.gradients(400, 400).quantize(64)  # quantized once: 200 quantizations took 10 s
    frames = [base.rotate(angle) for angle in range(0, 200 * 3, 3)]
    data = images.encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=40)
    verdict = fuzz.render(data)
    assert verdict.outcome == "ok", verdict
    assert verdict.growth < min(48 * 1024 * 1024, verdict.allowed_growth)


def test_webp_metadata_is_stripped_and_the_header_says_so() -> None:
    exif = Image.Exif()
    exif[0x010F] = "Camera"
    data = images.encode(Image.new("RGB", (8, 8)), "WEBP", exif=exif, xmp=b"<x:xmpmeta/>")
    stripped = animation.without_metadata(data, "WEBP")
    assert b"EXIF" not in stripped and b"XMP " not in stripped
    assert stripped[20] & 0x0C == 0  # VP8X: no EXIF, no XMP
    assert images.decode(stripped).size == (8, 8)


@pytest.mark.parametrize(
    ("variant", "field"),
    [
        ({"format": "jpeg", "animate": True}, "animate"),
        ({"format": "png", "animate": True}, "animate"),
        ({"animate": "yes"}, "animate"),
        ({"poster_frame": -1}, "poster_frame"),
        ({"max_frames": 0}, "max_frames"),
    ],
)
def test_animation_options_are_validated_naming_the_field(variant: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=rf"VARIANTS\[0\]\.{field}"):
        parse_variants(json.dumps([{"name": "v", "max": 100, **variant}]))
