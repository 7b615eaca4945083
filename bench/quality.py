"""Fidelity of an output: SSIM against a correctly oriented reference rendered at the output's size.

The reference is the slow, careful route every engine is judged by: full decode, EXIF orientation,
embedded ICC profile to sRGB, 16-bit scaled (not clipped), alpha kept, one LANCZOS resize from full
size (Pillow resizes RGBA premultiplied). It is built with Pillow, so it shares Pillow's colour
conversions (and its naive CMYK->RGB when a CMYK file has no profile).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageCms, ImageOps

_WINDOW = 11
_SIGMA = 1.5
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2
_SRGB = ImageCms.createProfile("sRGB")
_BACKGROUNDS = ((255, 255, 255), (0, 0, 0))


def upright_reference(data: bytes) -> Image.Image:
    """The full-size source as a viewer shows it, in sRGB, as RGB or RGBA."""
    Image.MAX_IMAGE_PIXELS = None
    image: Image.Image = Image.open(io.BytesIO(data))
    icc_profile = image.info.get("icc_profile")
    image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I"):
        scaled = np.asarray(image, dtype=np.float64) * (255 / 65535)
        image = Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")
    rgb_mode = "RGBA" if image.has_transparency_data else "RGB"
    profile = _profile(icc_profile)
    space = profile.profile.xcolor_space.strip() if profile else None
    if profile and space == "CMYK" and image.mode == "CMYK":
        return _to_srgb(image, profile, "RGB")
    image = image.convert(rgb_mode)
    if profile and space == "RGB":
        return _to_srgb(image, profile, rgb_mode)
    return image


def has_foreign_profile(data: bytes) -> bool:
    """Whether the source's pixels need a colour transform to show right: an ICC profile, not sRGB."""
    with Image.open(io.BytesIO(data)) as image:
        profile = _profile(image.info.get("icc_profile"))
    return profile is not None and "srgb" not in ImageCms.getProfileDescription(profile).lower()


def _to_srgb(image: Image.Image, profile: ImageCms.ImageCmsProfile, mode: str) -> Image.Image:
    converted = ImageCms.profileToProfile(image, profile, _SRGB, outputMode=mode)
    return image if converted is None else converted


def _profile(icc_profile: bytes | None) -> ImageCms.ImageCmsProfile | None:
    if not icc_profile:
        return None
    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
    except (ImageCms.PyCMSError, OSError):
        return None


@dataclass
class Reference:
    """One source's upright reference, resized (and cached) per output size."""

    full: Image.Image
    colour_managed: bool = False  # the source carries a colour profile other than sRGB

    def __post_init__(self) -> None:
        self._sized: dict[tuple[int, int], Image.Image] = {}

    @classmethod
    def from_bytes(cls, data: bytes) -> Reference:
        return cls(upright_reference(data), has_foreign_profile(data))

    @property
    def size(self) -> tuple[int, int]:
        return self.full.size

    @property
    def has_visible_alpha(self) -> bool:
        return self.full.mode == "RGBA" and self.full.getchannel("A").getextrema() != (255, 255)

    def at(self, size: tuple[int, int]) -> Image.Image:
        if size not in self._sized:
            self._sized[size] = self.full.resize(size, Image.Resampling.LANCZOS)
        return self._sized[size]

    def ssim(self, encoded: bytes) -> float:
        """SSIM of an encoded output against the reference at that output's size.

        Transparent images are composited over white and over black and the worse score kept,
        so an output that drops or mangles alpha cannot hide behind one background.
        """
        output = Image.open(io.BytesIO(encoded))
        output.load()
        return ssim_shown(self.at(output.size), output)


def ssim_shown(reference: Image.Image, output: Image.Image) -> float:
    """SSIM of two pictures as they are shown: over white, and over black too where either has alpha."""
    backgrounds = _BACKGROUNDS if reference.mode == "RGBA" or output.mode in ("RGBA", "LA", "PA") else _BACKGROUNDS[:1]
    return min(ssim(_over(reference, bg), _over(output, bg)) for bg in backgrounds)


def _over(image: Image.Image, background: tuple[int, int, int]) -> np.ndarray:
    """Luma (BT.601) of the image composited over a solid background, as float64."""
    rgba = image.convert("RGBA")
    canvas = Image.new("RGB", rgba.size, background)
    canvas.paste(rgba, mask=rgba.getchannel("A"))
    rgb = np.asarray(canvas, dtype=np.float64)
    return rgb @ np.array([0.299, 0.587, 0.114])


def _gaussian_taps(size: int) -> np.ndarray:
    offsets = np.arange(size) - (size - 1) / 2
    taps = np.exp(-(offsets**2) / (2 * _SIGMA**2))
    return taps / taps.sum()


def _filter(plane: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable 'valid' Gaussian filter by shifted slices (fast without scipy)."""
    n = len(taps)
    rows = sum(taps[i] * plane[i : plane.shape[0] - n + 1 + i, :] for i in range(n))
    return sum(taps[i] * rows[:, i : rows.shape[1] - n + 1 + i] for i in range(n))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5) of two equal-size planes."""
    if a.shape != b.shape:
        raise ValueError(f"SSIM needs equal sizes, got {a.shape} and {b.shape}")
    window = min(_WINDOW, *a.shape)
    window -= 0 if window % 2 else 1
    taps = _gaussian_taps(window)
    mu_a, mu_b = _filter(a, taps), _filter(b, taps)
    var_a = _filter(a * a, taps) - mu_a**2
    var_b = _filter(b * b, taps) - mu_b**2
    cov = _filter(a * b, taps) - mu_a * mu_b
    score = ((2 * mu_a * mu_b + _C1) * (2 * cov + _C2)) / ((mu_a**2 + mu_b**2 + _C1) * (var_a + var_b + _C2))
    return float(score.mean())
