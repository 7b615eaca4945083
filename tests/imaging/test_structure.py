"""The structure walk: every guard at its limit and one past it, linear work, never a crash, real
files untouched. Crafted files come from tests/crafted.py, the benchmark's generators too."""

from __future__ import annotations

import contextlib
import io
import random
import struct
import zlib

import pytest
from PIL import Image

from chalicelib.errors import ImageRejected
from chalicelib.formats import sniff_format
from chalicelib.imaging.structure import GUARDS, Tally, check_structure
from chalicelib.imaging.structure import walk as walk_structure
from tests import crafted, images
from tests.crafted import ATTACKS, PROBES


def walk(data: bytes) -> dict[str, int]:
    container = sniff_format(data[:1024])
    assert container is not None
    return check_structure(data, container).metrics


def test_every_guard_has_a_probe_and_a_code_listed_in_the_error_vocabulary() -> None:
    assert set(PROBES) == set(GUARDS)
    documented = ImageRejected.__doc__ or ""
    assert all(guard.code in documented for guard in GUARDS.values())


@pytest.mark.parametrize("metric", sorted(PROBES))
def test_at_the_limit_passes_and_one_step_past_it_is_refused_with_the_guards_code(metric: str) -> None:
    guard, probe = GUARDS[metric], PROBES[metric]
    counted = check_structure(probe.build(guard.limit), probe.container).metrics[metric]
    assert guard.limit - probe.step < counted <= guard.limit
    with pytest.raises(ImageRejected) as refused:
        check_structure(probe.build(guard.limit + probe.step), probe.container)
    assert refused.value.code == guard.code
    assert guard.counts in refused.value.message


def steps_until_refused(data: bytes, container: str) -> int | None:
    """Loop iterations the walk spent before refusing `data` (None if it accepted it)."""
    tally = Tally(container)
    try:
        walk_structure(data, container, tally)
    except ImageRejected:
        return tally.survey.steps
    return None


def _limits(*names: str) -> int:
    return sum(GUARDS[name].limit for name in names)


# The most loop iterations a walk can make before some guard refuses the file, whatever its size:
# each iteration reads one structural element, and every kind of element is counted by a guard.
WALK_BOUND = {
    "JPEG": _limits("jpeg.scans", "jpeg.tables", "jpeg.metadata_segments", "jpeg.photoshop_resources")
    + _limits("jpeg.padding_bytes") // 2  # stray FF00 pairs
    + 2 * _limits("exif.entries"),  # EXIF and MPF
    "PNG": _limits("png.chunks", "exif.entries"),
    "GIF": _limits("gif.frames", "gif.blocks", "gif.sub_blocks"),
    "WEBP": _limits("webp.chunks", "exif.entries"),
    "AVIF": _limits("bmff.boxes", "bmff.items", "bmff.references", "exif.entries"),
    "HEIF": _limits("bmff.boxes", "bmff.items", "bmff.references", "exif.entries"),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_the_walk_refuses_every_attack_within_a_bound_set_by_the_guards_not_the_file(name: str) -> None:
    """Work counted in loop iterations, for the largest size of each attack (up to 25 MiB)."""
    attack = ATTACKS[name]
    largest = steps_until_refused(attack.build(attack.scales[-1]), attack.container)
    assert largest is not None, "the largest size of every attack is refused"
    assert largest <= WALK_BOUND[attack.container]


@pytest.mark.parametrize(
    ("container", "build", "unit"),
    [
        ("JPEG", lambda n: crafted.with_scans(crafted.jpeg_image(64, 64, "L", progressive=True), n), 20),
        ("PNG", lambda n: crafted.png_image(idat=crafted.split_idat(64, 64, n)), 4000),
        ("GIF", crafted.gif_frames, 4000),
        (
            "WEBP",
            lambda n: crafted.animated_webp(
                (64, 64), [crafted.animation_frame(0, 0, 1, 1, crafted.webp_bitstream())] * n
            ),
            4000,
        ),
        ("AVIF", lambda n: crafted.grid(*crafted.grid_shape(n)), 100),
    ],
)
def test_the_walk_of_an_accepted_file_grows_linearly_with_its_structure(
    container: str, build: object, unit: int
) -> None:
    assert callable(build)
    small = check_structure(build(unit), container).steps
    large = check_structure(build(4 * unit), container).steps
    assert 3 * small <= large <= 5 * small


def _mutants(data: bytes, seed: int, count: int = 150) -> list[bytes]:
    rng = random.Random(seed)
    cuts = [data[:cut] for cut in range(0, len(data), max(1, len(data) // 60))]
    flips = []
    for _ in range(count):
        mutant = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            mutant[rng.randrange(len(mutant))] = rng.choice((0, 0xFF, rng.randrange(256)))
        flips.append(bytes(mutant))
    return cuts + flips


BASES = {
    "JPEG": lambda: crafted.after_soi(
        crafted.jpeg_image(64, 48, "RGB", True),
        crafted.exif_segment(crafted.tiff([(0x8769, 4, 1, 26), (0x0112, 3, 1, 6)])),
    ),
    "MPO": images.mpo,
    "APNG": lambda: crafted.apng(3, 16),
    "PNG": lambda: crafted.png_image(
        before=crafted.chunk(b"eXIf", crafted.tiff([(0x0112, 3, 1, 6), (0x010E, 2, 9, 38)], b"described"))
        + crafted.chunk(b"iTXt", b"Raw profile type exif\x00\x00\x00en\x00\x00\nexif\n8\n4949")
    ),
    "GIF": lambda: images.gif(frames=3),
    "WEBP": lambda: crafted.animated_webp(
        (64, 64), [crafted.animation_frame(0, 0, 8, 8, crafted.webp_bitstream(8, 8))] * 3
    ),
    "AVIF": lambda: crafted.grid(2, 2),
    "HEIF": lambda: crafted.grid(2, 2, b"hvc1"),
}


@pytest.mark.parametrize("name", sorted(BASES))
def test_truncated_and_mutated_files_raise_nothing_but_image_rejected(name: str) -> None:
    data = BASES[name]()
    container = sniff_format(data[:1024])
    assert container is not None
    for mutant in _mutants(data, seed=len(name)):
        with contextlib.suppress(ImageRejected):
            check_structure(mutant, container)


@pytest.mark.parametrize("container", ["JPEG", "PNG", "GIF", "WEBP", "AVIF", "HEIF"])
def test_garbage_after_the_magic_raises_nothing_but_image_rejected(container: str) -> None:
    rng = random.Random(7)
    magic = {
        "JPEG": b"\xff\xd8\xff",
        "PNG": crafted.PNG_SIGNATURE,
        "GIF": b"GIF89a",
        "WEBP": b"RIFF\xff\xff\xff\x7fWEBP",
    }
    head = magic.get(container, b"\x00\x00\x00\x18ftypavif\x00\x00\x00\x00mif1")
    for _ in range(300):
        garbage = bytes(rng.randrange(256) for _ in range(rng.randint(0, 600)))
        with contextlib.suppress(ImageRejected):
            check_structure(head + garbage, container)


CORPUS = sorted(images.CORPUS.iterdir()) if images.CORPUS.is_dir() else []


@pytest.mark.parametrize("name", [p.name for p in CORPUS] or ["(corpus not built)"])
def test_every_corpus_file_passes_far_from_every_limit(name: str) -> None:
    data = images.corpus_file(name)
    container = sniff_format(data[:1024])
    assert container is not None
    for metric, value in check_structure(data, container).metrics.items():
        # A ratio of 1 decodes exactly what is shown: nothing in excess, however low its limit.
        assert 5 * value <= GUARDS[metric].limit or (metric.endswith("_ratio") and value <= 1), (metric, value)


# ---------------------------------------------------------------- what each walker reads


def test_jpeg_scans_skip_restart_markers_and_stop_at_the_first_end_of_image() -> None:
    restarts = images.encode(images.photo(300, 200), "JPEG", quality=80, progressive=True)
    counted = walk(restarts + b"\xff\xd8" + restarts)  # a second image after EOI, as in an MPO
    assert counted["jpeg.scans"] == len(crafted.split_scans(restarts)[1])
    assert walk(images.mpo())["jpeg.scans"] == 1


@pytest.mark.parametrize(
    ("inserted", "message"),
    [
        (crafted.segment(0xC0, b"\x08\x00\x10\x00\x10\x01\x01\x11\x00"), "two frame headers"),
        (b"\xff\xd9", "ends before its first scan"),
        (b"\xff\xd8", "FFD8"),
        (crafted.segment(0xDB, b"\x05" + b"\x01" * 64), "quantization table"),
        (crafted.segment(0xC4, b"\x00" + b"\xff" * 16), "Huffman table"),
    ],
)
def test_jpeg_structures_libjpeg_refuses_are_corrupt(inserted: bytes, message: str) -> None:
    base = crafted.jpeg_image()
    head, scans, tail = crafted.split_scans(base)
    data = head + inserted + b"".join(scans) + tail
    with pytest.raises(ImageRejected) as refused:
        walk(data)
    assert refused.value.code == "corrupt"
    assert message in refused.value.message


def test_exif_directories_pillow_reads_are_all_counted() -> None:
    """IFD0 points at the Exif and GPS directories (here one and the same) and on to IFD1."""

    def directory(entries: list[tuple[int, int, int, int]], following: int = 0) -> bytes:
        body = b"".join(struct.pack("<HHII", *entry) for entry in entries)
        return struct.pack("<H", len(entries)) + body + struct.pack("<I", following)

    # IFD0 at 8 (42 bytes), its 20-byte value at 50, the sub-directory at 70 (18 bytes) and its
    # 40-byte value at 88, IFD1 at 128.
    ifd0 = directory([(0x8769, 4, 1, 70), (0x8825, 4, 1, 70), (0x010E, 2, 20, 50)], following=128)
    sub = directory([(0x9003, 2, 40, 88)])
    ifd1 = directory([(0x0201, 4, 1, 0)])
    data = b"II*\x00" + struct.pack("<I", 8) + ifd0 + b"d" * 20 + sub + b"v" * 40 + ifd1
    counted = walk(crafted.after_soi(crafted.jpeg_image(), crafted.exif_segment(data)))
    assert counted["exif.entries"] == 3 + 1 + 1  # the shared sub-directory is read once
    assert counted["exif.value_bytes"] == 20 + 40


def test_png_raw_profile_exif_is_read_as_pillow_reads_it() -> None:
    exif = crafted.overlapping_tiff(60_000, 2000)
    text = b"Raw profile type exif\x00\x00" + zlib.compress(b"\nexif\n%d\n" % len(exif) + exif.hex().encode())
    data = crafted.png_image(before=crafted.chunk(b"zTXt", text))
    with pytest.raises(ImageRejected) as refused:
        walk(data)
    assert "EXIF values" in refused.value.message
    assert Image.open(io.BytesIO(data)).info["Raw profile type exif"].startswith("\nexif")


def test_gif_frames_are_counted_as_pillow_counts_them() -> None:
    frames = [Image.new("RGB", (90 + 7 * i, 60), (40 * i, 200 - 30 * i, 90)) for i in range(5)]
    data = images.encode(frames[0], "GIF", save_all=True, append_images=frames[1:], comment=b"hello", loop=0)
    with Image.open(io.BytesIO(data)) as image:
        assert check_structure(data, "GIF").frames == getattr(image, "n_frames", 1) == 5
    assert check_structure(data[: len(data) // 2], "GIF").frames >= 1
    assert check_structure(crafted.many_frame_gif(300), "GIF").frames == 300


def test_gif_and_webp_canvases_far_larger_than_their_frames_are_refused() -> None:
    attacks = {"gif-huge-screen": 4166, "gif-far-away-frame": 3999, "webp-huge-canvas": 4166}
    for data in (ATTACKS[name].build(scale) for name, scale in attacks.items()):
        with pytest.raises(ImageRejected) as refused:
            walk(data)
        assert refused.value.code == "canvas_too_large"


@pytest.mark.parametrize("kind", [b"av01", b"hvc1"])
def test_coded_sizes_are_read_from_av1_and_hevc_headers(kind: bytes) -> None:
    assert walk(crafted.grid(2, 2, kind, tile=64)).get("bmff.pictures") == 1
    with pytest.raises(ImageRejected) as refused:
        walk(crafted.grid(2, 2, kind, tile=4096, declared=64))
    assert refused.value.code == "corrupt"
    assert "4096x4096" in refused.value.message


@pytest.mark.parametrize("name", ["derived_avif__sunset_12mp.avif", "derived_heic__sunset_12mp.heic"])
def test_real_avif_and_heic_code_the_size_they_declare(name: str) -> None:
    counted = walk(images.corpus_file(name))
    assert counted["bmff.pictures"] == 1 and counted["bmff.units"] >= 2


def test_heif_metadata_is_counted_once_per_image_that_refers_to_it() -> None:
    config, data = crafted.coded_image(b"hvc1", 64)
    images_ = [crafted.Item(b"hvc1", data, [config, crafted.ispe(64, 64)]) for _ in range(40)]
    exif = crafted.Item(b"Exif", b"\x00\x00\x00\x00" + b"\x00" * 500_000)
    built = crafted.iso_file(b"heic", [*images_, exif], [(b"cdsc", 41, list(range(1, 41)))])
    with pytest.raises(ImageRejected) as refused:
        walk(built)
    assert refused.value.code == "too_much_metadata"


# ---------------------------------------------------------------- what the decoders will decode and hold


@pytest.mark.parametrize(
    ("attack", "scale"),
    [
        ("heif-clap-over-tiles-with-alpha", 5),
        ("heif-clap-over-one-picture", 4096),
        ("heif-alpha-larger-than-image", 1),
    ],
)
def test_pictures_decoded_far_beyond_the_pixels_shown_are_refused(attack: str, scale: int) -> None:
    with pytest.raises(ImageRejected) as refused:
        walk(ATTACKS[attack].build(scale))
    assert refused.value.code == "too_many_pixels"
    assert "pixels decoded per pixel of the image shown" in refused.value.message


def test_a_grid_and_its_alpha_plane_are_counted_tile_by_tile_with_their_chroma() -> None:
    """Four 4096 px 4:4:4 tiles (12 samples per 4 pixels) and four 4:0:0 alpha tiles (4), the two
    8192 px canvases they are drawn on, and the RGBA image the decoder converts them to."""
    data = crafted.heif_image(crafted.Coded(4096, 2, 2), crafted.Coded(4096, 2, 2, alpha=True))
    survey = check_structure(data, "HEIF")
    pixels = 8192 * 8192
    assert survey.metrics["bmff.decoded_ratio"] == 2  # colour and alpha, each the size shown
    assert survey.decoder_bytes == 2 * (pixels * 12 // 4 + pixels * 4 // 4) + 4 * pixels


@pytest.mark.parametrize(("subsampling", "samples"), [("4:2:0", 6), ("4:2:2", 8), ("4:4:4", 12), ("4:0:0", 4)])
def test_av1_chroma_is_read_from_the_sequence_header(subsampling: str, samples: int) -> None:
    data = images.encode(Image.new("RGB", (64, 48), (20, 90, 200)), "AVIF", subsampling=subsampling)
    assert check_structure(data, "AVIF").decoder_bytes == 64 * 48 * samples // 4 + 4 * 64 * 48


def test_an_image_sequence_decodes_its_first_sample() -> None:
    """An 'avis' file: libavif decodes the track, whose first sample is a 256 px 4:2:0 picture."""
    assert check_structure(crafted.avif_sequence(256), "AVIF").decoder_bytes == 256 * 256 * 6 // 4 + 4 * 256 * 256


def test_a_progressive_jpeg_holds_every_coefficient_and_a_baseline_one_none() -> None:
    progressive = crafted.jpeg_image(64, 48, "RGB", progressive=True)  # 4:4:4: 3 x 48 blocks
    assert check_structure(progressive, "JPEG").decoder_bytes == 3 * 48 * 128
    assert check_structure(crafted.jpeg_image(64, 48), "JPEG").decoder_bytes == 0


def test_a_webp_is_decoded_onto_canvases_of_its_size() -> None:
    assert check_structure(crafted.riff([crafted.webp_bitstream(30, 20)]), "WEBP").decoder_bytes == 3 * 4 * 30 * 20
    animated = crafted.animated_webp((64, 64), [crafted.animation_frame(0, 0, 8, 8, crafted.webp_bitstream(8, 8))])
    assert check_structure(animated, "WEBP").decoder_bytes == 3 * 4 * 64 * 64


def test_arithmetic_coded_jpegs_are_marked_for_a_whole_input_decode() -> None:
    assert check_structure(images.fixture("arithmetic.jpg"), "JPEG").whole_input
    assert not check_structure(crafted.jpeg_image(), "JPEG").whole_input


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (crafted.metadata_item_of_type(b"Exi\xff"), "an item type that is not a four-character code"),
        (crafted.metadata_item_of_type(b"\x80xif"), "an item type that is not a four-character code"),
        (crafted.still(b"hvc1").replace(b"ispe", b"isp\xe9"), "a property type that is not a four-character code"),
        (
            crafted.heif_image(crafted.Coded(64), crafted.Coded(64, alpha=True)).replace(b"auxid:1", b"auxid:\xff"),
            "an auxiliary type that is not UTF-8 text",
        ),
        (
            crafted.iso_file(b"avif", [crafted.Item(b"av01"), crafted.Item(b"mime", b"x")]).replace(
                b"application/rdf+xml", b"application/\xc3(df+xml"
            ),
            "a content type that is not UTF-8 text",
        ),
    ],
)
def test_what_pi_heif_reads_as_text_must_be_text(data: bytes, message: str) -> None:
    with pytest.raises(ImageRejected) as refused:
        walk(data)
    assert refused.value.code == "corrupt"
    assert message in refused.value.message


def test_a_palette_png_needs_its_palette_before_its_image_data() -> None:
    with pytest.raises(ImageRejected) as refused:
        walk(crafted.palette_png_without_plte())
    assert "without a palette" in refused.value.message
    walk(images.palette_trns_png())
