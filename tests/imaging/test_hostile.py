"""Hostile input never gets past the checks, never starts a process, never costs much memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import ImageFile

from chalicelib.errors import ImageRejected
from chalicelib.imaging import decode
from chalicelib.imaging.limits import DecodeLimits
from chalicelib.imaging.render import render_variants
from chalicelib.imaging.specs import DEFAULT_VARIANTS_JSON, parse_variants
from chalicelib.imaging.structure import GUARDS
from tests import crafted, images
from tests.crafted import ATTACKS, PROBES, WORST

LIMITS = DecodeLimits(("JPEG", "PNG", "WEBP", "GIF"))
ALL_FORMATS = DecodeLimits(("JPEG", "PNG", "WEBP", "GIF", "AVIF", "HEIF"))
SPECS = parse_variants(DEFAULT_VARIANTS_JSON)
ROOT = Path(__file__).resolve().parents[2]
_PROCESS_EVENTS: list[str] = []


def _audit(event: str, _args: Any) -> None:
    if event.startswith(("subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork")):
        _PROCESS_EVENTS.append(event)


sys.addaudithook(_audit)


@pytest.mark.parametrize("name", sorted(crafted.REJECTED))
def test_hostile_file_is_rejected_with_its_code_and_starts_no_process(name: str) -> None:
    build, code = crafted.REJECTED[name]
    data = build()
    _PROCESS_EVENTS.clear()
    with pytest.raises(ImageRejected) as raised:
        render_variants(data, SPECS, ALL_FORMATS)
    assert raised.value.code == code, raised.value.message
    assert _PROCESS_EVENTS == []


_MEASURE = textwrap.dedent(
    """
    import json, resource, sys
    sys.path.insert(0, sys.argv[1])
    from chalicelib.errors import ImageRejected
    from chalicelib.imaging.limits import DecodeLimits
    from chalicelib.imaging.render import render_variants
    from chalicelib.imaging.specs import DEFAULT_VARIANTS_JSON, parse_variants
    data = open(sys.argv[2], "rb").read()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        render_variants(data, parse_variants(DEFAULT_VARIANTS_JSON), DecodeLimits(("JPEG", "PNG", "WEBP", "GIF")))
        code = None
    except ImageRejected as error:
        code = error.code
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"code": code, "peak_growth_kib": after - before}))
    """
)


@pytest.mark.integration  # one subprocess per file, to measure its peak memory alone
@pytest.mark.parametrize(
    "name", ["zero-png-9000x9000", "ztxt-bomb", "iccp-bomb", "gif-300-frames-1mp", "webp-120-frames-1mp"]
)
def test_rejection_happens_before_decoding_so_memory_stays_flat(name: str, tmp_path: Path) -> None:
    """Decoding any of these would need 100 MB to 1 GB; rejecting them must cost almost nothing."""
    build, code = crafted.REJECTED[name]
    sample = tmp_path / "sample"
    sample.write_bytes(build())
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(ROOT), str(sample)], capture_output=True, text=True, check=True
    )
    measured = json.loads(result.stdout)
    assert measured["code"] == code
    assert measured["peak_growth_kib"] < 20 * 1024


def test_jpeg_with_html_appended_is_processed_and_the_html_is_gone() -> None:
    rendering = render_variants(crafted.jpeg_with_html(), SPECS, LIMITS)
    assert [v.name for v in rendering.variants] == ["web", "thumb"]
    assert all(b"<script" not in v.data and b"<html" not in v.data for v in rendering.variants)


def test_animation_within_limits_uses_its_first_frame() -> None:
    rendering = render_variants(
        images.gif(frames=40), parse_variants('[{"name": "f", "max": 60, "format": "png"}]'), LIMITS
    )
    first = images.decode(rendering.variants[0].data).convert("RGB").getpixel((5, 5))
    assert first == (0, 255, 128)  # palette entry 0 of every frame is (i, 255 - i, 128) for frame i


PHONE_FORMATS = ("derived_heic__sunset_12mp.heic", "derived_avif__sunset_12mp.avif")
PHONE_LIMITS = DecodeLimits(("JPEG", "AVIF", "HEIF"), max_pixels=1_000_000)


@pytest.mark.parametrize("name", PHONE_FORMATS)
def test_heic_and_avif_pass_the_same_checks_before_decoding(name: str, tmp_path: Path) -> None:
    data = images.corpus_file(name)
    with pytest.raises(ImageRejected) as raised:
        render_variants(data, SPECS, PHONE_LIMITS)
    assert raised.value.code == "too_many_pixels"
    sample = tmp_path / "sample"
    sample.write_bytes(data)
    script = _MEASURE.replace(
        'DecodeLimits(("JPEG", "PNG", "WEBP", "GIF"))', 'DecodeLimits(("AVIF", "HEIF"), max_pixels=1_000_000)'
    )
    measured = json.loads(
        subprocess.run(
            [sys.executable, "-c", script, str(ROOT), str(sample)], capture_output=True, text=True, check=True
        ).stdout
    )
    assert measured["code"] == "too_many_pixels" and measured["peak_growth_kib"] < 20 * 1024


@pytest.mark.parametrize("name", PHONE_FORMATS)
def test_truncated_heic_and_avif_fail_cleanly(name: str) -> None:
    data = images.corpus_file(name)
    for cut in (data[:200], data[: len(data) // 2]):
        with pytest.raises(ImageRejected) as raised:
            render_variants(cut, SPECS, DecodeLimits(("AVIF", "HEIF")))
        assert raised.value.code in ("truncated", "corrupt")


@pytest.mark.parametrize("brand", [b"heic", b"avif"])
def test_fake_iso_media_headers_are_corrupt_not_crashes(brand: bytes) -> None:
    fake = b"\x00\x00\x00\x18ftyp" + brand + b"\x00\x00\x00\x00mif1" + b"\x00" * 4 + bytes(range(256)) * 8
    with pytest.raises(ImageRejected) as raised:
        render_variants(fake, SPECS, DecodeLimits(("AVIF", "HEIF")))
    assert raised.value.code == "corrupt"


# Issue #14, measured on this code before the structure walk: 20 s, 11 s, and 857 MiB.
ISSUE_14 = {
    "jpeg-5000-repeated-scans": (5000, "jpeg-repeated-scans", "too_many_scans"),
    "jpeg-2mb-of-small-exif-segments": (20_000, "jpeg-small-exif-segments", "too_much_metadata"),
    "jpeg-6m-empty-app1-markers": (6_000_000, "jpeg-empty-app1", "too_much_metadata"),
}


@pytest.mark.parametrize("name", sorted(ISSUE_14))
def test_issue_14_files_are_refused_before_pillow_reads_a_byte(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    scale, attack, code = ISSUE_14[name]
    data = ATTACKS[attack].build(scale)

    def never(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("Pillow was asked to open a file the structure walk refuses")

    monkeypatch.setattr(decode.Image, "open", never)
    started = time.process_time()
    with pytest.raises(ImageRejected) as refused:
        render_variants(data, SPECS, LIMITS)
    assert refused.value.code == code
    assert time.process_time() - started < 1.0  # CPU milliseconds in fact; not stretched by a busy machine


# Probes whose file at the limit no decoder takes, the count being all they are: scans over a frame
# of 64 MP; a grid naming one tile many times; tiles declaring more pixels than they code.
WALK_ONLY = {"jpeg.scan_blocks", "bmff.tiles", "bmff.decoded_ratio"}


@pytest.mark.parametrize("metric", sorted(set(PROBES) - WALK_ONLY))
def test_a_file_at_a_guards_limit_still_renders(metric: str) -> None:
    rendering = render_variants(PROBES[metric].build(GUARDS[metric].limit), SPECS, ALL_FORMATS)
    assert [v.name for v in rendering.variants] == ["web", "thumb"]


@pytest.mark.parametrize(("metric", "size"), [("bmff.tiles", (32 * 64, 31 * 64)), ("bmff.decoded_ratio", (1024, 1024))])
def test_the_largest_grids_decoders_accept_render(metric: str, size: tuple[int, int]) -> None:
    rendering = render_variants(WORST[metric](), SPECS, ALL_FORMATS)
    assert (rendering.source.width, rendering.source.height) == size


def test_apng_frames_count_towards_the_animation_limit() -> None:
    with pytest.raises(ImageRejected) as refused:
        render_variants(crafted.apng(150, 1000), SPECS, LIMITS)
    assert refused.value.code == "too_many_frames"
    assert "150 frames" in refused.value.message


def test_arithmetic_coded_jpegs_render() -> None:
    """libjpeg decodes them, but cannot wait for more data mid-scan: Pillow's block-by-block feed
    broke every one over 64 KB (`corrupt`) until the whole file was handed over at once."""
    rendering = render_variants(images.fixture("arithmetic.jpg"), SPECS, LIMITS)
    assert (rendering.source.width, rendering.source.height) == (800, 600)


def test_a_render_that_would_not_fit_its_memory_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any render needs more than 64 MiB by the estimate (decode.check_memory): the encoders' share alone."""
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda _image: pytest.fail("decoded"))
    with pytest.raises(ImageRejected) as refused:
        render_variants(images.webp(), SPECS, DecodeLimits(("WEBP",), max_render_bytes=64 * 1024 * 1024))
    assert refused.value.code == "too_much_memory"
    assert "RENDER_MEMORY_MB" in refused.value.message


def test_running_out_of_memory_in_a_decoder_is_refused_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def exhausted(*_args: object, **_kwargs: object) -> None:
        raise MemoryError

    data = images.png(64, 48)
    monkeypatch.setattr(ImageFile.ImageFile, "load", exhausted)
    with pytest.raises(ImageRejected) as refused:
        render_variants(data, SPECS, LIMITS)
    assert refused.value.code == "too_much_memory"
