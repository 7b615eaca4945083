"""How close does `target_ssim` get in its 3 encodes? Every corpus image, three sizes, JPEG, WebP and AVIF.

Run: .venv/bin/python -m bench.quality_targeting [--jobs 2] > bench/QUALITY_TARGETING.md
     .venv/bin/python -m bench.quality_targeting --calibrate   (the TYPICAL_LOSS table in chalicelib/imaging/quality.py)

For each (image, size, format) the whole curve is measured once: SSIM and encode + measure time at
every quality 1-100, with the variant encoder's settings. Encoders are deterministic, so replaying
the search against the curve is exactly what a live search would see, and it shows what the grid
allows: a target is *reachable* when some quality lands within ±0.005 of it. Curves are cached in
bench/out/quality_curves.jsonl (delete it to measure afresh). Images are split into halves by a hash
of their name; the typical curves in quality.py come from the calibration half only, so the held-out
half shows how the search does on images it has not seen.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from multiprocessing import Pool
from pathlib import Path

import PIL
from PIL import Image

from bench.corpus import DEFAULT_CORPUS, REPO
from chalicelib.imaging import quality
from chalicelib.imaging.render import encode
from chalicelib.imaging.specs import VariantSpec

CACHE = REPO / "bench" / "out" / "quality_curves.jsonl"
SIZES = (2048, 1024, 320)  # the default variants' sizes
FORMATS = ("jpeg", "webp", "avif")
TARGETS = (0.90, 0.93, 0.95, 0.97, 0.98, 0.99)
HIT, NEAR = 0.005, 0.01
SKIP = (".tif", ".tiff", ".heic", ".avif")  # what the pipeline refuses, and the AVIF copy of a JPEG already here
QUALITIES = range(1, 101)
RULE = "|---|---|---|---|---|---|---|---|"


@dataclass(frozen=True)
class Curve:
    """SSIM and seconds (encode + measure) at each quality 1-100 of one image, size and format."""

    image: str
    size: int
    fmt: str
    ssim: tuple[float, ...]
    seconds: tuple[float, ...]

    @property
    def calibration(self) -> bool:
        return zlib.crc32(self.image.encode()) % 2 == 0


@dataclass(frozen=True)
class Search:
    curve: Curve
    target: float
    qualities: tuple[int, ...]  # encoded, in order
    ssim: float

    @property
    def error(self) -> float:
        return abs(self.ssim - self.target)

    @property
    def reachable(self) -> bool:
        return any(abs(s - self.target) <= HIT for s in self.curve.ssim)

    @property
    def seconds(self) -> float:
        return sum(self.curve.seconds[q - 1] for q in self.qualities)


def fitted(path: Path, size: int) -> Image.Image:
    with Image.open(path) as source:
        pixels = source.convert("RGB")
    pixels.thumbnail((size, size))
    return pixels


def measure_curve(job: tuple[Path, int, str]) -> Curve:
    path, size, fmt = job
    pixels = fitted(path, size)
    measure, spec = quality.ssim_against(pixels), VariantSpec("bench", fmt)
    ssim, seconds = [], []
    for q in QUALITIES:
        start = time.perf_counter()
        ssim.append(measure(encode(pixels, fmt, replace(spec, quality=q))))
        seconds.append(time.perf_counter() - start)
    return Curve(path.name, size, fmt, tuple(ssim), tuple(seconds))


def jobs(corpus: Path) -> list[tuple[Path, int, str]]:
    """Every (image, size, format), leaving out a size that would repeat a smaller one's pixels."""
    found = []
    for path in sorted(corpus.iterdir()):
        if path.suffix.lower() in SKIP:
            continue
        with Image.open(path) as image:
            longest = max(image.size)
        sizes = [s for s in SIZES if longest > max((t for t in SIZES if t < s), default=0)]
        found += [(path, size, fmt) for size in sizes for fmt in FORMATS]
    return found


def load_curves(corpus: Path, cache: Path, workers: int, log: Callable[[str], None]) -> list[Curve]:
    curves = {(c.image, c.size, c.fmt): c for c in _read_cache(cache)}
    missing = [j for j in jobs(corpus) if (j[0].name, j[1], j[2]) not in curves]
    cache.parent.mkdir(parents=True, exist_ok=True)
    with Pool(workers) as pool, cache.open("a") as out:
        for done, curve in enumerate(pool.imap_unordered(measure_curve, missing), 1):
            out.write(json.dumps(curve.__dict__) + "\n")
            out.flush()
            curves[(curve.image, curve.size, curve.fmt)] = curve
            log(f"{done}/{len(missing)} {curve.image} {curve.size} {curve.fmt}")
    wanted = {(p.name, s, f) for p, s, f in jobs(corpus)}
    return sorted((c for key, c in curves.items() if key in wanted), key=lambda c: (c.image, -c.size, c.fmt))


def _read_cache(cache: Path) -> Iterable[Curve]:
    if cache.is_file():
        for line in cache.read_text().splitlines():
            raw = json.loads(line)
            yield Curve(raw["image"], raw["size"], raw["fmt"], tuple(raw["ssim"]), tuple(raw["seconds"]))


def replay(curve: Curve, target: float) -> Search:
    """The live search, fed from the measured curve instead of the encoder."""
    encoded: list[int] = []

    def encode_at(q: int) -> bytes:
        encoded.append(q)
        return bytes([q])

    _data, _quality, ssim = quality.encode_for_ssim(target, encode_at, lambda data: curve.ssim[data[0] - 1], curve.fmt)
    return Search(curve, target, tuple(encoded), ssim)


def typical_loss(curves: Sequence[Curve], fmt: str) -> tuple[float, ...]:
    """Median ln(1 - SSIM) at each knot quality, over the calibration half."""
    chosen = [c for c in curves if c.fmt == fmt and c.calibration]
    return tuple(
        round(statistics.median(math.log(max(1e-4, 1 - c.ssim[q - 1])) for c in chosen), 2)
        for q in quality.KNOT_QUALITIES
    )


def share(searches: Sequence[Search], bound: float) -> str:
    if not searches:
        return "–"
    hits = sum(s.error <= bound for s in searches)
    return f"{hits}/{len(searches)} ({100 * hits / len(searches):.1f} %)"


def row(label: str, searches: Sequence[Search]) -> str:
    reachable = [s for s in searches if s.reachable]
    median = f"{statistics.median(s.error for s in reachable):.4f}" if reachable else "–"
    return (
        f"| {label} | {share(searches, HIT)} | {share(reachable, HIT)} | {share(searches, NEAR)} "
        f"| {share(reachable, NEAR)} | {median} | {statistics.mean(len(s.qualities) for s in searches):.2f} "
        f"| {1000 * statistics.mean(s.seconds for s in searches):.0f} |"
    )


def non_monotone(curve: Curve) -> bool:
    """SSIM falls by more than the tolerance somewhere as quality rises."""
    peak = -1.0
    for s in curve.ssim:
        if peak - s > HIT:
            return True
        peak = max(peak, s)
    return False


def report(corpus: Path, curves: Sequence[Curve], out: Callable[[str], None]) -> None:
    searches = [replay(c, t) for c in curves for t in TARGETS]
    header = (
        "| searches | all ±0.005 | reachable ±0.005 | all ±0.01 | reachable ±0.01 "
        "| median error (reachable) | encodes per search | encode + measure ms per search |"
    )
    out("# target_ssim: how close 3 encodes get\n")
    out(
        "Command: `.venv/bin/python -m bench.quality_targeting > bench/QUALITY_TARGETING.md` · "
        f"corpus `{corpus}` ({len({c.image for c in curves})} images) · sizes {SIZES} px · targets {TARGETS} "
        f"· Pillow {PIL.__version__}\n"
    )
    out(
        "A target is *reachable* when some quality 1-100 lands within ±0.005 of it. Each search is replayed "
        "on the image's measured curve (see the module docstring); its time is the encode + measure time of "
        "the qualities it tried, as measured for the curve.\n"
    )
    out(header)
    out(RULE)
    out(row(f"all {len(searches)}", searches))
    for label, half in (("calibration half", True), ("held-out half", False)):
        out(row(label, [s for s in searches if s.curve.calibration == half]))
    out("\n## By format and size\n")
    out(header)
    out(RULE)
    for fmt in FORMATS:
        of_format = [s for s in searches if s.curve.fmt == fmt]
        if of_format:
            out(row(f"{fmt}, all sizes", of_format))
        for size in SIZES:
            chosen = [s for s in of_format if s.curve.size == size]
            if chosen:
                out(row(f"{fmt} {size}", chosen))
    out("\n## By target\n")
    out(header)
    out(RULE)
    for target in TARGETS:
        out(row(f"{target}", [s for s in searches if s.target == target]))
    misses = [s for s in searches if s.reachable and s.error > HIT]
    narrow = sum(sum(abs(x - s.target) <= HIT for x in s.curve.ssim) <= 2 for s in misses)
    out(
        f"\nReachable targets missed: {len(misses)}; {narrow} of them are hit by at most two qualities, "
        f"{sum(non_monotone(s.curve) for s in misses)} lie on a curve that drops by more than 0.005 somewhere."
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.quality_targeting",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--jobs", type=int, default=1, help="processes measuring curves")
    parser.add_argument("--calibrate", action="store_true", help="print the typical curves instead of the report")
    args = parser.parse_args(argv)
    curves = load_curves(args.corpus, args.cache, args.jobs, lambda line: print(line, file=sys.stderr))
    if args.calibrate:
        for fmt in FORMATS:
            print(f'    "{fmt}": {typical_loss(curves, fmt)},')
    else:
        report(args.corpus, curves, print)


if __name__ == "__main__":
    main()
