"""Cropping to exact sizes and drawing watermarks, on upright sRGB pixels."""

from __future__ import annotations

from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from chalicelib.imaging.specs import ASSETS, WatermarkSpec

WHITE = (255, 255, 255)
_ENTROPY_STEPS = 16
_ENTROPY_ANALYSIS_SIDE = 160


def crop_to(image: Image.Image, size: tuple[int, int], strategy: str) -> Image.Image:
    """Crop `image` (already scaled to cover `size`) to exactly `size`."""
    box = crop_box(image, size, strategy)
    return image if box is None else image.crop(box)


def crop_box(image: Image.Image, size: tuple[int, int], strategy: str) -> tuple[int, int, int, int] | None:
    """Where crop_to cuts `image`, or None where it fits already: an animation's frames are all cut
    where its first one is, so the picture does not jump about."""
    width, height = size
    spare_x, spare_y = image.width - width, image.height - height
    if spare_x <= 0 and spare_y <= 0:
        return None
    if strategy == "entropy":
        left, top = _busiest_offset(image, size)
    else:
        left, top = spare_x // 2, spare_y // 2
    return left, top, left + width, top + height


def _busiest_offset(image: Image.Image, size: tuple[int, int]) -> tuple[int, int]:
    """Slide the crop window along the overflowing axis; keep the window with most detail."""
    ratio = min(1.0, _ENTROPY_ANALYSIS_SIDE / max(image.size))
    grey = image.convert("L").resize((max(1, round(image.width * ratio)), max(1, round(image.height * ratio))))
    window = (max(1, round(size[0] * ratio)), max(1, round(size[1] * ratio)))
    spare = (grey.width - window[0], grey.height - window[1])
    best, best_entropy = (0, 0), -1.0
    for step in range(_ENTROPY_STEPS + 1):
        x = spare[0] * step // _ENTROPY_STEPS if spare[0] > 0 else 0
        y = spare[1] * step // _ENTROPY_STEPS if spare[1] > 0 else 0
        entropy = grey.crop((x, y, x + window[0], y + window[1])).entropy()
        if entropy > best_entropy:
            best, best_entropy = (x, y), entropy
    left = min(image.width - size[0], round(best[0] / ratio))
    top = min(image.height - size[1], round(best[1] / ratio))
    return max(0, left), max(0, top)


def apply_watermark(image: Image.Image, spec: WatermarkSpec) -> Image.Image:
    """Composite the watermark; outputs smaller than `min_size` on their long side are left alone."""
    if max(image.size) < spec.min_size:
        return image
    width = max(1, round(image.width * spec.scale))
    mark = _text_mark(spec.text, width) if spec.text is not None else _image_mark(str(spec.image), width)
    if spec.opacity < 1:
        mark = mark.copy()
        mark.putalpha(mark.getchannel("A").point(lambda a: round(a * spec.opacity)))
    margin = round(min(image.size) * spec.margin)
    x, y = _place(spec.position, image.size, mark.size, margin)
    has_alpha = image.mode in ("RGBA", "LA")
    canvas = image.convert("RGBA")
    canvas.alpha_composite(mark, (max(0, x), max(0, y)))
    return canvas if has_alpha else canvas.convert("RGB")


def _place(position: str, box: tuple[int, int], mark: tuple[int, int], margin: int) -> tuple[int, int]:
    spare_x, spare_y = box[0] - mark[0], box[1] - mark[1]
    x = margin if "left" in position else spare_x - margin if "right" in position else spare_x // 2
    y = margin if "top" in position else spare_y - margin if "bottom" in position else spare_y // 2
    return x, y


@lru_cache(maxsize=8)
def _image_mark(name: str, width: int) -> Image.Image:
    with Image.open(ASSETS / name) as source:
        mark = source.convert("RGBA")
    height = max(1, round(mark.height * width / mark.width))
    return mark.resize((width, height), Image.Resampling.LANCZOS)


@lru_cache(maxsize=32)
def _text_mark(text: str, width: int) -> Image.Image:
    """White text with a dark outline, sized so the text spans `width` pixels."""
    probe = ImageFont.load_default(size=100)
    left, _, right, _ = probe.getbbox(text)
    size = max(6, round(100 * width / max(1, right - left)))
    font = ImageFont.load_default(size=size)
    stroke = max(1, size // 16)
    left, top, right, bottom = (int(v) for v in font.getbbox(text, stroke_width=stroke))
    mark = Image.new("RGBA", (right - left, bottom - top), (0, 0, 0, 0))
    ImageDraw.Draw(mark).text(
        (-left, -top), text, font=font, fill=(255, 255, 255, 255), stroke_width=stroke, stroke_fill=(0, 0, 0, 255)
    )
    return mark


def flatten(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Composite transparency onto a solid colour (white by default), never onto black."""
    rgba = image.convert("RGBA")
    canvas = Image.new("RGB", rgba.size, background)
    canvas.paste(rgba, mask=rgba.getchannel("A"))
    return canvas
