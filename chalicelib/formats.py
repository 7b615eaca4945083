"""Image formats imgpress knows, by content type and by magic bytes. Pure: no Pillow here."""

from __future__ import annotations

# Declared content type -> Pillow decoder names it may legitimately contain.
# Phone JPEGs with a second (depth/preview) frame come out of the JPEG decoder as "MPO".
DECODERS_BY_CONTENT_TYPE: dict[str, tuple[str, ...]] = {
    "image/jpeg": ("JPEG",),
    "image/png": ("PNG",),
    "image/webp": ("WEBP",),
    "image/gif": ("GIF",),
    "image/avif": ("AVIF",),
    "image/heic": ("HEIF",),  # decoded by pi-heif (libheif without the GPL x265 encoder)
    "image/heif": ("HEIF",),
    "image/tiff": ("TIFF",),  # opt-in: TIFF and BMP decoders have the longest CVE histories
    "image/bmp": ("BMP",),
}
DEFAULT_CONTENT_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif", "image/avif", "image/heic", "image/heif")

# Output format name -> (Pillow encoder, content type, file extension).
ENCODERS: dict[str, tuple[str, str, str]] = {
    "jpeg": ("JPEG", "image/jpeg", "jpg"),
    "webp": ("WEBP", "image/webp", "webp"),
    "avif": ("AVIF", "image/avif", "avif"),
    "png": ("PNG", "image/png", "png"),
}

# Source decoder -> output format used by the "same" variant format.
# GIF stills come out as PNG: re-quantising to 256 colours would only lose quality.
# HEIF becomes JPEG (browsers cannot show it); TIFF and BMP become PNG (lossless, like them).
SAME_FORMAT = {
    "JPEG": "jpeg",
    "MPO": "jpeg",
    "PNG": "png",
    "WEBP": "webp",
    "GIF": "png",
    "AVIF": "avif",
    "HEIF": "jpeg",
    "TIFF": "png",
    "BMP": "png",
}

# Source decoder -> output format of a moving "same" variant of an animation (its stills follow SAME_FORMAT).
ANIMATED_SAME_FORMAT = {"GIF": "webp", "PNG": "webp", "WEBP": "webp", "AVIF": "avif"}
# An animation kept in its own encoding (every re-encoding came out larger): format, content type, extension.
KEPT_ANIMATIONS: dict[str, tuple[str, str, str]] = {
    "GIF": ("gif", "image/gif", "gif"),
    "PNG": ("png", "image/png", "png"),
    "WEBP": ("webp", "image/webp", "webp"),
}

_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"\x89PNG\r\n\x1a\n", "PNG"),
    (0, b"GIF87a", "GIF"),
    (0, b"GIF89a", "GIF"),
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (0, b"BM", "BMP"),
    (0, b"\x00\x00\x01\x00", "ICO"),
    (0, b"8BPS", "PSD"),
    (0, b"%!PS", "EPS"),
    (0, b"\xc5\xd0\xd3\xc6", "EPS"),
    (0, b"%PDF", "PDF"),
)
_AVIF_BRANDS = {b"avif", b"avis"}
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}


def _iso_bmff_brand(head: bytes) -> str | None:
    """AVIF or HEIF from an ISO-BMFF `ftyp` box: major brand, then the compatible brands."""
    if head[4:8] != b"ftyp":
        return None
    box_size = int.from_bytes(head[:4], "big")
    brands = [head[8:12]] + [head[i : i + 4] for i in range(16, min(box_size, len(head)) - 3, 4)]
    if any(brand in _AVIF_BRANDS for brand in brands):
        return "AVIF"
    if any(brand in _HEIF_BRANDS for brand in brands):
        return "HEIF"
    return None


def sniff_format(head: bytes) -> str | None:
    """Name the container format from the first bytes, or None if it is no image we know.

    Used before any decoder runs, so a disallowed format never reaches Pillow's plugins.
    """
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    brand = _iso_bmff_brand(head)
    if brand:
        return brand
    for offset, magic, name in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return name
    text = head[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<?xml", b"<svg", b"<!doctype svg")) or b"<svg" in text:
        return "SVG"
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<script")) or b"<script" in text:
        return "HTML"
    if _looks_like_text(head[:512]):
        return "TEXT"  # scripts, JSON, CSV...: documents in disguise, not images
    return None


def _looks_like_text(head: bytes) -> bool:
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return bool(decoded) and all(ch.isprintable() or ch in "\t\r\n" for ch in decoded)


def declared_type_matches(declared: str | None, decoder: str) -> bool:
    """True when the bytes are what the client said (image/heic and image/heif are one family)."""
    return decoder in DECODERS_BY_CONTENT_TYPE.get(declared or "", ())


def allowed_decoders(content_types: tuple[str, ...]) -> tuple[str, ...]:
    """Pillow decoder names for the allowed content types, in a stable order."""
    names: list[str] = []
    for content_type in content_types:
        for name in DECODERS_BY_CONTENT_TYPE.get(content_type, ()):
            if name not in names:
                names.append(name)
    return tuple(names)
