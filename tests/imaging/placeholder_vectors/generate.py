"""Rebuild the reference vectors: the algorithms' own encoders, run on committed small inputs.

The tests never run this; they read the committed PNGs and expected.json. To rebuild (needs
node, npm, PyPI and the corpus from `make corpus`), from the repository root:

    .venv/bin/python -m tests.imaging.placeholder_vectors.generate

It writes each input as an RGB/RGBA PNG (the exact pixels the encoders see), then asks
- ThumbHash: Evan Wallace's JavaScript encoder, npm `thumbhash@0.1.1`;
- BlurHash: Wolt's C encoder, PyPI `blurhash-python==1.2.2`, on the input flattened onto white.
  Not Wolt's TypeScript encoder (npm `blurhash@2.0.5`): it takes the largest *signed* AC term
  where the C and Swift originals take the largest absolute one, so its hashes differ whenever
  the largest term is negative.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

from chalicelib.imaging.compose import WHITE, flatten
from chalicelib.imaging.placeholders import working_copy
from tests import images

HERE = Path(__file__).parent
BLURHASH_COMPONENTS = [(4, 3), (1, 1), (9, 9), (3, 5)]
THUMBHASH_NPM = "thumbhash@0.1.1"
BLURHASH_PYPI = "blurhash-python==1.2.2"


def see_through_photo() -> Image.Image:
    """A photo fading to transparent at the edges, with fully transparent corners."""
    photo = images.photo(600, 400).convert("RGBA")
    mask = Image.radial_gradient("L").resize(photo.size).point(lambda v: max(0, 255 - v * 2))
    photo.putalpha(mask)
    return photo


def disc() -> Image.Image:
    image = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse((60, 60, 240, 240), fill=(200, 40, 40, 255))
    return image


def inputs() -> dict[str, Image.Image]:
    corpus = {
        "astronaut": "png_photo__skimage_astronaut.png",
        "chelsea": "png_photo__skimage_chelsea.png",
        "rocket": "jpeg_small__skimage_rocket.jpg",
    }
    found = {name: working_copy(Image.open(images.CORPUS / file)) for name, file in corpus.items()}
    return found | {
        "photo_landscape": working_copy(images.photo(1200, 800)),
        "photo_portrait": working_copy(images.photo(600, 900)),
        "photo_strip": working_copy(images.photo(1600, 200)),
        "photo_100px": working_copy(images.photo(1200, 800), 100),
        "see_through": working_copy(see_through_photo()),
        "disc": working_copy(disc()),
    }


def main() -> None:
    requests = []
    for name, image in inputs().items():
        image.save(HERE / f"{name}.png")
        opaque = flatten(image, WHITE) if image.mode == "RGBA" else image
        requests.append(
            {
                "name": name,
                "width": image.width,
                "height": image.height,
                "rgba": base64.b64encode(image.convert("RGBA").tobytes()).decode(),
                "rgb": base64.b64encode(opaque.tobytes()).decode(),
                "components": BLURHASH_COMPONENTS,
            }
        )
    lines = "\n".join(json.dumps(request) for request in requests)
    with tempfile.TemporaryDirectory() as work:
        shutil.copy(HERE / "thumbhash_official.mjs", work)
        subprocess.run(["npm", "install", "--silent", "--no-save", THUMBHASH_NPM], cwd=work, check=True)
        thumbhashes = _answers(["node", "thumbhash_official.mjs"], lines, work, {})
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", work, BLURHASH_PYPI], check=True)
        blurhashes = _answers([sys.executable, str(HERE / "blurhash_official.py")], lines, work, {"PYTHONPATH": work})
    vectors = [{"name": name, **thumbhashes[name], **blurhashes[name]} for name in thumbhashes]
    encoders = {"thumbhash": f"npm {THUMBHASH_NPM}", "blurhash": f"PyPI {BLURHASH_PYPI}"}
    expected = {"encoders": encoders, "vectors": vectors}
    (HERE / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")


def _answers(command: list[str], lines: str, cwd: str, env: dict[str, str]) -> dict[str, dict[str, object]]:
    result = subprocess.run(
        command, cwd=cwd, input=lines, capture_output=True, text=True, check=True, env={**os.environ, **env}
    )
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    return {answer.pop("name"): answer for answer in answers}


if __name__ == "__main__":
    main()
