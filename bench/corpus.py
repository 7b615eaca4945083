"""The benchmark's images: the shared corpus of real files, sorted into the classes we report on.

The corpus is built by `../shared/corpus/make_corpus.sh` (apt/npm/PyPI only); its file names carry
their class as a prefix (`jpeg_large__…`). Progressive JPEGs are told apart by their header, so
they form their own class whatever their size.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MAKE_CORPUS = REPO.parent / "shared" / "corpus" / "make_corpus.sh"
DEFAULT_CORPUS = Path(os.environ.get("IMGPRESS_CORPUS", Path.home() / ".cache" / "imgpress-corpus" / "corpus"))

# (class, title) in report order; a file's class comes from its name prefix (see classify).
CLASSES: dict[str, str] = {
    "jpeg_large": "JPEG, large, baseline",
    "jpeg_mid": "JPEG, mid, baseline",
    "jpeg_progressive": "JPEG, progressive",
    "jpeg_rotated": "JPEG, EXIF orientation 6",
    "jpeg_cmyk": "JPEG, CMYK",
    "jpeg_small": "JPEG, small",
    "png_large": "PNG, large",
    "png_screenshot": "PNG screenshot",
    "png_alpha": "PNG with alpha",
    "png_other": "PNG grey / palette / 16-bit / photo",
    "gif": "GIF (first frame)",
    "webp": "WebP",
}
_PREFIXES = {
    "jpeg_large": "jpeg_large",
    "jpeg_mid": "jpeg_mid",
    "jpeg_small": "jpeg_small",
    "derived_orient6": "jpeg_rotated",
    "derived_cmyk": "jpeg_cmyk",
    "png_large": "png_large",
    "png_screenshot": "png_screenshot",
    "png_alpha": "png_alpha",
    "png_gray": "png_other",
    "png_palette": "png_other",
    "png_16bit": "png_other",
    "png_photo": "png_other",
    "gif_anim": "gif",
    "gif_static": "gif",
    "webp": "webp",
}


@dataclass(frozen=True)
class CorpusImage:
    path: Path
    image_class: str
    width: int
    height: int
    progressive: bool

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


def classify(name: str, progressive: bool) -> str | None:
    """The report class of a corpus file, or None for formats imgpress does not accept (TIFF, HEIC, AVIF)."""
    image_class = _PREFIXES.get(name.split("__", 1)[0])
    if image_class in ("jpeg_large", "jpeg_mid") and progressive:
        return "jpeg_progressive"
    return image_class


def load(directory: Path) -> list[CorpusImage]:
    """Every accepted image in `directory`, in class order then by name."""
    from PIL import Image

    images = []
    for path in sorted(directory.iterdir()):
        if classify(path.name, progressive=False) is None:
            continue
        with Image.open(path) as image:
            progressive = bool(image.info.get("progressive"))
            images.append(
                CorpusImage(path, str(classify(path.name, progressive)), image.width, image.height, progressive)
            )
    order = list(CLASSES)
    return sorted(images, key=lambda image: (order.index(image.image_class), image.name))


def ensure(directory: Path) -> Path:
    """Build the shared corpus unless it is already there (the script is idempotent, needs apt)."""
    if directory.is_dir() and any(directory.iterdir()):
        return directory
    if not MAKE_CORPUS.is_file():
        raise SystemExit(f"no corpus at {directory} and no {MAKE_CORPUS} to build it")
    subprocess.run(["bash", str(MAKE_CORPUS)], check=True, env={**os.environ, "OUT": str(directory)})
    return directory
