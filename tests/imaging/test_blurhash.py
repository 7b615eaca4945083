"""BlurHash encoder against Wolt's own C encoder and the pure-Python port, on real pixels."""

from __future__ import annotations

from pathlib import Path

import blurhash as reference
import pytest
from blurhash.blurhash import base83_decode
from PIL import Image

from chalicelib.imaging.blurhash import rgb_to_blurhash
from chalicelib.imaging.compose import WHITE, flatten
from chalicelib.imaging.placeholders import working_copy
from tests import images
from tests.imaging import placeholder_vectors

VECTORS = placeholder_vectors.load()
CORPUS_FILES = sorted(images.CORPUS.glob("*.png")) + sorted(images.CORPUS.glob("*.jpg"))
COMPONENTS = [(4, 3), (1, 1), (9, 9), (3, 5), (2, 1)]


def opaque(image: Image.Image) -> Image.Image:
    return flatten(image, WHITE) if image.mode == "RGBA" else image.convert("RGB")


def encode(image: Image.Image, components: tuple[int, int] = (4, 3)) -> str:
    rgb = opaque(image)
    return rgb_to_blurhash(rgb.width, rgb.height, rgb.tobytes(), components)


def port(image: Image.Image, components: tuple[int, int]) -> str:
    return str(reference.encode(placeholder_vectors.pixel_rows(opaque(image)), *components))


@pytest.mark.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])
def test_same_string_as_wolts_c_encoder(vector: placeholder_vectors.Vector) -> None:
    for components, expected in vector.blurhash.items():
        x, y = map(int, components.split("x"))
        assert encode(vector.image, (x, y)) == expected, components


@pytest.mark.parametrize("components", COMPONENTS)
@pytest.mark.parametrize("size", [(1200, 800), (640, 960), (2000, 150), (3, 2)])
def test_same_string_as_the_python_port_on_generated_photos(size: tuple[int, int], components: tuple[int, int]) -> None:
    image = working_copy(images.photo(*size))
    assert encode(image, components) == port(image, components)


@pytest.mark.integration  # the shared corpus of real files
@pytest.mark.skipif(not CORPUS_FILES, reason="no corpus: `make corpus` builds it")
@pytest.mark.parametrize("path", CORPUS_FILES, ids=[p.name for p in CORPUS_FILES])
def test_same_string_as_the_python_port_on_the_corpus(path: Path) -> None:
    image = working_copy(Image.open(path))
    assert encode(image) == port(image, (4, 3))


def linear_mean(values: list[int]) -> float:
    return sum(reference.srgb_to_linear(value) for value in values) / len(values)


@pytest.mark.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])
def test_decodes_back_to_the_images_average_light(vector: placeholder_vectors.Vector) -> None:
    """BlurHash averages light, not sRGB values: its DC term is the image's linear-light mean."""
    rgb = opaque(vector.image)
    hash_ = encode(vector.image)
    dc = base83_decode(hash_[2:6])
    # Decoded larger: the corner-sampled cosines only average out over many pixels.
    decoded = [pixel for row in reference.decode(hash_, 4 * rgb.width, 4 * rgb.height) for pixel in row]
    for band, channel in enumerate(rgb.split()):
        actual = linear_mean(list(channel.tobytes()))
        assert dc >> (16 - 8 * band) & 255 == pytest.approx(reference.linear_to_srgb(actual), abs=1)
        assert linear_mean([pixel[band] for pixel in decoded]) == pytest.approx(actual, abs=0.03)


def test_flat_colour_keeps_its_colour() -> None:
    hash_ = encode(Image.new("RGB", (16, 16), (200, 30, 30)))
    assert base83_decode(hash_[2:6]) == 200 << 16 | 30 << 8 | 30


def test_component_counts_are_in_the_hash() -> None:
    for x, y in COMPONENTS:
        hash_ = encode(images.photo(32, 21), (x, y))
        assert reference.components(hash_) == (x, y) and len(hash_) == 4 + 2 * x * y


@pytest.mark.parametrize("components", [(0, 3), (4, 10), (10, 1)])
def test_refuses_component_counts_the_format_cannot_hold(components: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="components"):
        encode(images.photo(32, 21), components)


def test_refuses_a_wrong_pixel_count() -> None:
    with pytest.raises(ValueError, match="RGB pixels"):
        rgb_to_blurhash(4, 4, bytes(4 * 4 * 4))
