"""Every structural guard in one table, and the tally that walkers report to as they go.

A guard bounds one thing a walker counts (scans, segments, chunks, boxes, bytes of metadata...).
The tally checks it the moment the count passes its limit, so a walk stops early on hostile input:
its own cost is bounded by the limits, not by the size of the file.

The limits come from the shared corpus and from what cameras and editors write (docs/guards.md,
bench/HOSTILE.md): each is at least 5x anything real seen, and the worst file crafted just under
it still renders in a few seconds on one core.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from chalicelib.errors import ImageRejected

KIB, MIB = 1024, 1024 * 1024


@dataclass(frozen=True)
class Guard:
    limit: int
    code: str
    counts: str  # what is counted, for messages and docs: "progressive scans"


GUARDS: dict[str, Guard] = {
    # JPEG. Each scan is a pass over the coefficients of the components it covers: libjpeg spends
    # ~40 ns per 8x8 block per scan however few bytes the scan has, so scans are bounded twice.
    "jpeg.scans": Guard(100, "too_many_scans", "scans"),
    "jpeg.scan_blocks": Guard(100_000_000, "too_many_scans", "8x8 blocks decoded over all scans"),
    "jpeg.tables": Guard(1000, "too_many_chunks", "tables and markers outside scans (DQT, DHT, DRI, RSTn...)"),
    "jpeg.metadata_segments": Guard(1000, "too_much_metadata", "APPn and COM segments"),
    "jpeg.metadata_bytes": Guard(16 * MIB, "too_much_metadata", "bytes of APPn and COM segments"),
    # Pillow joins Exif segments by repeated concatenation: quadratic in their number.
    "jpeg.exif_segments": Guard(8, "too_much_metadata", "Exif APP1 segments"),
    "jpeg.photoshop_resources": Guard(5000, "too_much_metadata", "Photoshop image resources (APP13)"),
    # Pillow reads fill and junk bytes between segments one at a time (~0.3 us each).
    "jpeg.padding_bytes": Guard(64 * KIB, "corrupt", "bytes of fill or junk between segments"),
    # TIFF directories: EXIF (JPEG, PNG, WebP, HEIF, AVIF) and the JPEG MPF index. Pillow copies each
    # value it reads, so values that overlap (one blob read by thousands of entries) multiply memory.
    "exif.entries": Guard(4096, "too_much_metadata", "EXIF directory entries"),
    "exif.value_bytes": Guard(512 * KIB, "too_much_metadata", "bytes of EXIF values read"),
    "icc.bytes": Guard(8 * MIB, "too_much_metadata", "bytes of ICC profile"),
    # LittleCMS evaluates every pipeline stage at each of ~36,000 grid colours (icc.py).
    "icc.elements": Guard(32, "too_much_metadata", "processing elements in ICC profile pipelines"),
    # PNG. Pillow handles every chunk in Python (~2.5 us each), and inflates every iCCP chunk.
    "png.chunks": Guard(50_000, "too_many_chunks", "chunks"),
    "png.ancillary_chunks": Guard(1000, "too_many_chunks", "ancillary chunks"),
    "png.text_chunks": Guard(512, "too_much_metadata", "text chunks (tEXt, zTXt, iTXt)"),
    "png.iccp_chunks": Guard(8, "too_much_metadata", "iCCP chunks"),
    "png.metadata_bytes": Guard(16 * MIB, "too_much_metadata", "bytes of ancillary chunks"),
    "png.frames": Guard(20_000, "too_many_frames", "APNG frames"),
    # GIF. Pillow walks sub-blocks in Python and builds comments by repeated concatenation.
    "gif.frames": Guard(20_000, "too_many_frames", "frames"),
    "gif.blocks": Guard(50_000, "too_many_chunks", "extension blocks"),
    "gif.sub_blocks": Guard(500_000, "too_many_chunks", "data sub-blocks"),
    "gif.comments": Guard(1000, "too_much_metadata", "comment extensions"),
    "gif.comment_bytes": Guard(16 * KIB, "too_much_metadata", "bytes of comments"),
    "gif.metadata_bytes": Guard(4 * MIB, "too_much_metadata", "bytes of comment and application extensions"),
    "gif.padding_bytes": Guard(64 * KIB, "corrupt", "bytes of junk between blocks"),
    "gif.canvas_ratio": Guard(16, "canvas_too_large", "canvas pixels per pixel its frames cover"),
    # WebP (RIFF): libwebp's demuxer is C and linear; the canvas is allocated whole.
    "webp.chunks": Guard(100_000, "too_many_chunks", "chunks"),
    "webp.frames": Guard(20_000, "too_many_frames", "frames"),
    "webp.metadata_bytes": Guard(16 * MIB, "too_much_metadata", "bytes of EXIF, XMP, ICCP and unknown chunks"),
    "webp.canvas_ratio": Guard(16, "canvas_too_large", "canvas pixels per pixel its frames cover"),
    # AVIF and HEIF (ISO-BMFF).
    "bmff.boxes": Guard(10_000, "too_many_chunks", "boxes"),
    "bmff.depth": Guard(32, "nesting_too_deep", "levels of nested boxes"),
    "bmff.items": Guard(1000, "too_many_chunks", "items"),
    "bmff.references": Guard(10_000, "too_many_chunks", "item references, properties and associations"),
    "bmff.tiles": Guard(1024, "too_many_tiles", "grid tiles and overlay inputs"),
    "bmff.decoded_ratio": Guard(4, "too_many_pixels", "pixels decoded per pixel of the image shown"),
    "bmff.units": Guard(100_000, "too_many_chunks", "NAL units or OBUs in coded items"),
    "bmff.pictures": Guard(8, "too_many_frames", "coded pictures in one image item"),
    "bmff.metadata_bytes": Guard(16 * MIB, "too_much_metadata", "bytes of metadata items as decoders copy them"),
}

_NAMES = {"WEBP": "WebP"}  # sniff_format's names, as messages spell them
RGBA_BYTES = 4  # a pixel of 8-bit RGBA, what decoders convert to for Pillow (which stores RGB so too)
# Canvas and decoded-pixel guards apply from this many pixels: below it, any canvas is cheap whatever its frames.
CANVAS_FLOOR = 1_000_000


@dataclass
class Survey:
    """What a walk saw: the peak of every metric, the frames counted, the loop iterations spent, and
    the bytes the decoder will hold besides the image it hands to Pillow (coefficients, planes, its
    own output buffers), which decode.check_memory adds to the render's own."""

    container: str
    metrics: dict[str, int] = field(default_factory=dict)
    frames: int = 1
    steps: int = 0
    decoder_bytes: int = 0
    whole_input: bool = False  # the decoder cannot wait for more data (arithmetic-coded JPEG)


class Tally:
    """Counts for one walk; raises ImageRejected as soon as a count passes its guard's limit.

    With `guards=None` nothing is enforced: the benchmark uses that to measure real files.
    """

    def __init__(self, container: str, guards: Mapping[str, Guard] | None = GUARDS) -> None:
        self.survey = Survey(container)
        self._name = _NAMES.get(container, container)
        self._guards = guards

    def step(self) -> None:
        self.survey.steps += 1

    def add(self, metric: str, amount: int = 1) -> None:
        metrics = self.survey.metrics
        value = metrics[metric] = metrics.get(metric, 0) + amount
        self._check(metric, value)

    def peak(self, metric: str, value: int) -> None:
        metrics = self.survey.metrics
        if value > metrics.get(metric, 0):
            metrics[metric] = value
            self._check(metric, value)

    def remaining(self, metric: str) -> int:
        """How much more of `metric` the guards allow (unbounded when they are not enforced)."""
        guard = self._guards.get(metric) if self._guards is not None else None
        return (guard.limit if guard is not None else 1 << 62) - self.survey.metrics.get(metric, 0)

    def refuse(self, message: str, code: str = "corrupt") -> ImageRejected:
        return ImageRejected(f"The {self._name} {message}", code)

    def _check(self, metric: str, value: int) -> None:
        guard = self._guards.get(metric) if self._guards is not None else None
        if guard is not None and value > guard.limit:
            raise self.refuse(f"has {value:,} {guard.counts}; the limit is {guard.limit:,}.", guard.code)
