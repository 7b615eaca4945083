"""The bounds a decode is held to, and their defaults: one owner for both, the image core's and the
stage settings' (settings.VARIABLES takes its defaults from here). Pure: no Pillow, cheap to import."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024
MAX_PIXELS = 50_000_000
MAX_SIDE = 12_000
MAX_ANIMATION_PIXELS = 100_000_000  # frames x width x height, for every animated format: refused above
# An animation is rendered moving within both, else its variants are stills (docs: processing, animations):
# 1,000 frames is over a minute at 15 fps; 50 million output pixels (frames x the animated variants'
# pixels) took 10.5 s to encode lossy and 32 s lossless on one core, noise, the worst case measured.
MAX_ANIMATION_FRAMES = 1000
MAX_ANIMATION_WORK = 50_000_000
# Lambda allocates CPU in proportion to memory: one full vCPU at 1769 MB, two from 3538 MB.
MB_PER_VCPU = 1769
# A render may use the function's memory less what the handler holds besides (the runtime, the app
# and its clients, the upload's bytes); outside Lambda, as on the stage's 1769 MB upload handler.
HANDLER_RESERVE_MB = 256
RENDER_MEMORY_MB = MB_PER_VCPU - HANDLER_RESERVE_MB


@dataclass(frozen=True)
class DecodeLimits:
    """Bounds checked against the structure and the header, before decoding, so memory stays bounded."""

    allowed_decoders: tuple[str, ...]
    max_pixels: int = MAX_PIXELS
    max_side: int = MAX_SIDE
    max_animation_pixels: int = MAX_ANIMATION_PIXELS
    max_render_bytes: int = RENDER_MEMORY_MB * MIB  # what one render may allocate (decode.check_memory)
    max_animation_frames: int = MAX_ANIMATION_FRAMES  # a variant with more frames is a still
    max_animation_work: int = MAX_ANIMATION_WORK  # frames x pixels of every moving variant, at most
