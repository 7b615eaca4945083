"""ThumbHash encoder against Evan Wallace's own encoder and the PyPI port, on real pixels."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import thumbhash as reference
from PIL import Image

from chalicelib.imaging.placeholders import working_copy
from chalicelib.imaging.thumbhash import rgba_to_thumbhash
from tests import images
from tests.imaging import placeholder_vectors

VECTORS = placeholder_vectors.load()
# The port mishandles alpha (an operator-precedence bug), so only opaque corpus images compare.
OPAQUE_CORPUS = [
    path
    for path in sorted(images.CORPUS.glob("*.png")) + sorted(images.CORPUS.glob("*.jpg"))
    if not Image.open(path).has_transparency_data
]


def encode(image: Image.Image) -> bytes:
    rgba = image.convert("RGBA")
    return rgba_to_thumbhash(rgba.width, rgba.height, rgba.tobytes())


def port(image: Image.Image) -> bytes:
    rgba = image.convert("RGBA")
    return bytes(reference.rgba_to_thumb_hash(rgba.width, rgba.height, list(rgba.tobytes())))


@pytest.mark.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])
def test_same_bytes_as_the_official_encoder(vector: placeholder_vectors.Vector) -> None:
    """Photos, a 100 px input, portrait, a 32x4 strip, soft and hard alpha: Evan Wallace's JS output."""
    assert base64.b64encode(encode(vector.image)).decode() == vector.thumbhash


def test_vectors_cover_alpha_and_every_shape() -> None:
    assert {v.image.mode for v in VECTORS} == {"RGB", "RGBA"}
    assert {(v.image.width > v.image.height, v.image.width < v.image.height) for v in VECTORS} == {
        (True, False),
        (False, True),
        (False, False),
    }
    assert max(max(v.image.size) for v in VECTORS) == 100


@pytest.mark.parametrize("size", [(1200, 800), (640, 960), (1000, 1000), (2000, 150), (7, 5), (1, 1)])
def test_same_bytes_as_the_python_port_on_generated_photos(size: tuple[int, int]) -> None:
    image = working_copy(images.photo(*size))
    assert encode(image) == port(image)


@pytest.mark.integration  # the shared corpus of real files
@pytest.mark.skipif(not OPAQUE_CORPUS, reason="no corpus: `make corpus` builds it")
@pytest.mark.parametrize("path", OPAQUE_CORPUS, ids=[p.name for p in OPAQUE_CORPUS])
def test_same_bytes_as_the_python_port_on_the_corpus(path: Path) -> None:
    image = working_copy(Image.open(path))
    ours, theirs = encode(image), port(image)
    # Only terms that are mathematically zero, summed in another order, can land on the other side of
    # a rounding half, and only in synthetic, symmetric images (PngSuite's gradients): 2 nibbles there.
    differences = [(a, b) for a, b in zip(ours, theirs) if a != b]
    assert len(ours) == len(theirs) and len(differences) <= 2


@pytest.mark.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])
def test_average_colour_decodes_back(vector: placeholder_vectors.Vector) -> None:
    rgba = vector.image.convert("RGBA")
    r, g, b, a = reference.thumb_hash_to_average_rgba(list(encode(vector.image)))
    alpha = [value / 255 for value in rgba.getchannel("A").tobytes()]
    weight = sum(alpha) or 1
    for decoded, band in zip((r, g, b), "RGB"):
        actual = sum(w * v for w, v in zip(alpha, rgba.getchannel(band).tobytes())) / weight / 255
        assert decoded == pytest.approx(actual, abs=0.04)
    assert a == pytest.approx(sum(alpha) / len(alpha), abs=0.07)


def test_colour_under_fully_transparent_pixels_does_not_matter() -> None:
    green_behind = Image.new("RGBA", (20, 20), (0, 255, 0, 0))
    red_behind = Image.new("RGBA", (20, 20), (255, 0, 0, 0))
    for image in (green_behind, red_behind):
        image.paste((0, 0, 200, 255), (5, 5, 15, 15))
    assert encode(green_behind) == encode(red_behind)


def test_aspect_and_alpha_flags() -> None:
    landscape, portrait = encode(Image.new("RGB", (32, 16), "grey")), encode(Image.new("RGB", (16, 32), "grey"))
    assert landscape[4] >> 7 == 1 and portrait[4] >> 7 == 0
    assert encode(Image.new("RGBA", (8, 8), (0, 0, 0, 100)))[2] >> 7 == 1
    assert landscape[2] >> 7 == 0


@pytest.mark.parametrize("size", [(101, 10), (10, 101), (0, 10)])
def test_refuses_what_the_reference_refuses(size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="does not fit"):
        rgba_to_thumbhash(*size, bytes(size[0] * size[1] * 4))


def test_refuses_a_wrong_pixel_count() -> None:
    with pytest.raises(ValueError, match="bytes of RGBA"):
        rgba_to_thumbhash(4, 4, bytes(4 * 4 * 3))
