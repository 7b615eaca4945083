"""Real image files generated with Pillow, for tests: photo-like content, not flat colour.

Each builder returns encoded bytes, exactly what a client would upload.
"""

from __future__ import annotations

import io
import os
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw

CORPUS = Path(os.environ.get("IMGPRESS_CORPUS", Path.home() / ".cache" / "imgpress-corpus" / "corpus"))


def photo(width: int = 1200, height: int = 800) -> Image.Image:
    """Smooth gradients plus fine detail, like a photo: compresses like one."""
    base = Image.effect_mandelbrot((width, height), (-2.2, -1.2, 0.8, 1.2), 64)
    noise = Image.effect_noise((width, height), 24)
    red = Image.linear_gradient("L").resize((width, height))
    return Image.merge("RGB", (red, base, Image.blend(base, noise, 0.5)))


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def jpeg(width: int = 1200, height: int = 800, **params: object) -> bytes:
    return encode(photo(width, height), "JPEG", quality=90, **params)


def png(width: int = 640, height: int = 480) -> bytes:
    return encode(photo(width, height), "PNG")


def marked(width: int = 400, height: int = 200) -> Image.Image:
    """Upright reference: red top-left quadrant, blue elsewhere. Orientation tests look for red."""
    image = Image.new("RGB", (width, height), (0, 0, 255))
    ImageDraw.Draw(image).rectangle((0, 0, width // 2 - 1, height // 2 - 1), fill=(255, 0, 0))
    return image


# Stored pixels for each EXIF orientation such that a viewer applying the tag shows `marked()`.
_INVERSE = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def oriented_jpeg(orientation: int, **extra_exif: object) -> bytes:
    upright = marked()
    method = _INVERSE[orientation]
    stored = upright.transpose(method) if method is not None else upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    for tag, value in extra_exif.items():
        exif[int(tag)] = value
    return encode(stored, "JPEG", quality=95, exif=exif.tobytes())


def rgba_png(width: int = 300, height: int = 200) -> bytes:
    """Transparent background with an opaque black disc."""
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse((width // 4, height // 4, 3 * width // 4, 3 * height // 4), fill=(0, 0, 0, 255))
    return encode(image, "PNG")


def palette_trns_png() -> bytes:
    image = Image.new("P", (200, 200), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    ImageDraw.Draw(image).rectangle((50, 50, 149, 149), fill=1)
    return encode(image, "PNG", transparency=0)


def gray16_png(width: int = 512, height: int = 16) -> bytes:
    image = Image.new("I;16", (width, height))
    image.putdata([int(x * 65535 / (width - 1)) for x in range(width)] * height)
    return encode(image, "PNG")


def cmyk_jpeg() -> bytes:
    return encode(Image.new("RGB", (300, 200), (200, 30, 30)).convert("CMYK"), "JPEG", quality=95)


def gif(frames: int = 3) -> bytes:
    images = [Image.new("P", (120, 80), i) for i in range(frames)]
    for image in images:
        image.putpalette([v for i in range(256) for v in (i, 255 - i, 128)])
    return encode(images[0], "GIF", save_all=True, append_images=images[1:], duration=100)


def webp() -> bytes:
    return encode(photo(800, 600), "WEBP", quality=90)


def mpo() -> bytes:
    """A phone-style JPEG with a second frame (Pillow reports it as MPO)."""
    first, second = photo(800, 600), photo(400, 300)
    return encode(first, "MPO", save_all=True, append_images=[second])


def png_header(width: int, height: int) -> bytes:
    """A syntactically valid PNG header claiming width x height, with no real pixel data."""
    import struct
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b"")


def gradients(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """Smooth gradients in every channel (alpha too): real decode work, yet small files, fast to make."""
    ramp = Image.linear_gradient("L").resize((width, height))
    disc = Image.radial_gradient("L").resize((width, height))
    bands = [ramp, disc, ramp.transpose(Image.Transpose.ROTATE_180), disc.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    return Image.merge(mode, bands[: len(mode)])


@cache  # 2 s to encode, asked for more than once
def large_webp(width: int = 8660, height: int = 5773) -> bytes:
    """Just under 50 MP of RGBA WebP: about 3 s and 400 MiB to render on one core here."""
    return encode(gradients(width, height, "RGBA"), "WEBP", quality=80, method=0)


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def corpus_file(name: str) -> bytes:
    """A real file from the shared corpus (`make corpus`); the test is skipped where it is not built."""
    import pytest

    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"corpus not built ({path}); run `make corpus`")
    return path.read_bytes()


def fixture(name: str) -> bytes:
    """A small file kept in tests/fixtures/ (made once with a tool the tests do not need)."""
    return (Path(__file__).resolve().parent / "fixtures" / name).read_bytes()


def flat_png(width: int = 7000, height: int = 7000) -> bytes:
    """49 MP of one colour: about 160 KB to send and a second to make, about 150 MB once decoded."""
    return encode(Image.new("RGB", (width, height), (200, 100, 50)), "PNG")
