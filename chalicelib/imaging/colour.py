"""Bring decoded pixels to sRGB, the one colour space every browser shows correctly.

Building a LittleCMS transform costs 5-10 ms, more than applying it to a 320 px thumbnail, and
the same few profiles (a camera's sRGB, Display P3, Adobe RGB, a printer's CMYK) arrive over and
over. So a transform is built once per (profile, mode) and kept while the process lives, which in
Lambda is a warm container's many invocations.
"""

from __future__ import annotations

import io
import logging
from functools import lru_cache

from PIL import Image, ImageCms

log = logging.getLogger("imgpress.imaging")  # JSON lines, like every imgpress logger (chalicelib/logs.py)

_TRANSFORMS_KEPT = 16  # distinct (profile, mode) pairs; each transform is a few hundred KiB at most
_SRGB = ImageCms.createProfile("sRGB")


def to_srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """Convert through the embedded profile; CMYK without a usable one gets Pillow's conversion."""
    if icc_profile and image.mode in ("RGB", "RGBA", "CMYK"):
        transform = _transform_to_srgb(icc_profile, image.mode)
        if transform is not None:
            return transform.apply(image)
    if image.mode == "CMYK":
        return image.convert("RGB")
    return image


@lru_cache(maxsize=_TRANSFORMS_KEPT)
def _transform_to_srgb(icc_profile: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """The transform for `mode` pixels tagged with `icc_profile`; None when none is needed
    (an RGB profile that is sRGB already) or the profile is unusable (then it is ignored)."""
    output_mode = "RGBA" if mode == "RGBA" else "RGB"
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        if mode != "CMYK" and "srgb" in ImageCms.getProfileDescription(profile).lower():
            return None
        return ImageCms.buildTransform(profile, _SRGB, mode, output_mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        log.info("ignoring an unusable ICC profile")
        return None
