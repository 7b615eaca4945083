"""Reference vectors: small real inputs and what the algorithms' own encoders made of them.

Each `<name>.png` holds the exact pixels an encoder saw (RGB, or RGBA with straight alpha);
expected.json holds Evan Wallace's ThumbHash and Wolt's BlurHash for them (generate.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Vector:
    name: str
    image: Image.Image
    thumbhash: str  # base64
    blurhash: dict[str, str]  # "4x3" -> hash, of the image flattened onto white


def load() -> list[Vector]:
    vectors = json.loads((HERE / "expected.json").read_text())["vectors"]
    return [Vector(v["name"], _open(HERE / f"{v['name']}.png"), v["thumbhash"], v["blurhash"]) for v in vectors]


def pixel_rows(image: Image.Image) -> list[list[list[int]]]:
    """RGB pixels as rows of [r, g, b] lists: the input the pure-Python `blurhash` package takes."""
    data, width = image.convert("RGB").tobytes(), image.width
    return [[list(data[i : i + 3]) for i in range(3 * y * width, 3 * (y + 1) * width, 3)] for y in range(image.height)]


def _open(path: Path) -> Image.Image:
    image = Image.open(path)
    image.load()
    return image
