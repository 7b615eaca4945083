"""What a front end shows while an image loads: ThumbHash, BlurHash, dominant colour and a tiny WebP.

All four come from one 32 px working copy of the smallest rendered variant (already upright and
sRGB), never from the original: a box downscale is what every one of them wants anyway, and it
keeps the whole set to a few milliseconds per image (bench/PLACEHOLDERS.md).
"""

from __future__ import annotations

import base64
import io
from dataclasses import asdict, dataclass

from PIL import Image

from chalicelib.imaging.blurhash import rgb_to_blurhash
from chalicelib.imaging.compose import WHITE, flatten
from chalicelib.imaging.thumbhash import rgba_to_thumbhash

WORKING_SIDE = 32  # ThumbHash decodes to 32 px and BlurHash needs no more; the LQIP's own limit too
LQIP_MAX_CHARS = 1024  # the whole data URI, so it fits in a JSON record, an SNS message or inline HTML
# Largest side and WebP quality (colour and alpha), tried in order until the data URI fits. The last
# always fits: 8 x 8 pixels of pure noise with alpha make a data URI of about 150 characters.
_LQIP_ATTEMPTS = ((32, 50), (32, 25), (24, 10), (16, 10), (8, 0))
_DOMINANT_CLUSTERS = 5
_KMEANS_ITERATIONS = 8
_OPAQUE = 128  # pixels at least half opaque count towards the dominant colour


@dataclass(frozen=True)
class Placeholders:
    """What goes into the record and the SNS message of a `done` image (README, "Placeholders").

    thumbhash: base64 ThumbHash; blurhash: BlurHash string; dominant_color: "#rrggbb";
    lqip: "data:image/webp;base64,..." of at most 32 px a side and LQIP_MAX_CHARS characters.
    """

    thumbhash: str
    blurhash: str
    dominant_color: str
    lqip: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def compute_placeholders(image: Image.Image, blurhash_components: tuple[int, int] = (4, 3)) -> Placeholders:
    """All placeholders for one image; pass the smallest rendered variant, not the original."""
    small = working_copy(image)
    rgba = small.convert("RGBA")
    return Placeholders(
        thumbhash=base64.b64encode(rgba_to_thumbhash(rgba.width, rgba.height, rgba.tobytes())).decode("ascii"),
        blurhash=rgb_to_blurhash(small.width, small.height, _opaque(small).tobytes(), blurhash_components),
        dominant_color=dominant_color(small),
        lqip=lqip_data_uri(small),
    )


def working_copy(image: Image.Image, side: int = WORKING_SIDE) -> Image.Image:
    """RGB, or RGBA when some pixel is see-through, box-filtered to fit side x side (never enlarged)."""
    has_alpha = image.has_transparency_data
    converted = image.convert("RGBA" if has_alpha else "RGB")
    if has_alpha and converted.getchannel("A").getextrema()[0] == 255:
        converted = converted.convert("RGB")
    scale = min(side / converted.width, side / converted.height, 1.0)
    size = (max(1, round(converted.width * scale)), max(1, round(converted.height * scale)))
    # Pillow resizes RGBA premultiplied, so transparent pixels' colour does not bleed into edges.
    return converted if size == converted.size else converted.resize(size, Image.Resampling.BOX)


def dominant_color(image: Image.Image) -> str:
    """The centre of the largest colour cluster (k-means over a median-cut start), as "#rrggbb".

    Unlike the mean, it is a colour the image actually shows: a red poster with a blue corner is red,
    not purple. Mostly transparent pixels are left out.
    """
    rgb = image.convert("RGB")
    if image.mode == "RGBA":
        pixels = rgb.tobytes()
        alphas = image.getchannel("A").tobytes()
        opaque = b"".join(pixels[3 * i : 3 * i + 3] for i, alpha in enumerate(alphas) if alpha >= _OPAQUE)
        if opaque:
            rgb = Image.frombytes("RGB", (len(opaque) // 3, 1), opaque)
    clusters = rgb.quantize(
        _DOMINANT_CLUSTERS, Image.Quantize.MEDIANCUT, kmeans=_KMEANS_ITERATIONS, dither=Image.Dither.NONE
    )
    pixels_per_entry = clusters.histogram()
    palette = clusters.getpalette() or [0, 0, 0]
    index = max(range(len(palette) // 3), key=lambda entry: pixels_per_entry[entry])
    red, green, blue = palette[index * 3 : index * 3 + 3]
    return f"#{red:02x}{green:02x}{blue:02x}"


def lqip_data_uri(image: Image.Image) -> str:
    """A tiny WebP as a data URI, to stretch (and CSS-blur) in place of the image while it loads."""
    *larger, (side, quality) = _LQIP_ATTEMPTS
    for larger_side, larger_quality in larger:
        uri = _webp_data_uri(working_copy(image, larger_side), larger_quality)
        if len(uri) <= LQIP_MAX_CHARS:
            return uri
    return _webp_data_uri(working_copy(image, side), quality)


def _webp_data_uri(image: Image.Image, quality: int) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="WEBP", quality=quality, alpha_quality=quality, method=6)
    return "data:image/webp;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _opaque(image: Image.Image) -> Image.Image:
    """BlurHash has no alpha: see-through pixels count as the white page behind them."""
    return flatten(image, WHITE) if image.mode == "RGBA" else image
