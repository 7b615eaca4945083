"""What the placeholders cost per image: every corpus file rendered to the 320 px thumbnail, then timed.

    make bench-placeholders
    .venv/bin/python -m bench.placeholders_bench [CORPUS_DIR] [--repeat N] [--references]

Each file goes through render_variants with the default `thumb` variant (320 px WebP q75), exactly
as the pipeline makes it; files the pipeline refuses (TIFF, HEIC, AVIF...) are listed as skipped.
The WebP thumbnail is decoded once, then compute_placeholders is timed N times on it and each part
separately. Per-image figures are the median of the N runs; `best` is the fastest run of the whole,
the cost on an idle core (other processes on the machine push the medians up). Results:
bench/PLACEHOLDERS.md.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from bench.corpus import DEFAULT_CORPUS
from chalicelib.errors import ImageRejected
from chalicelib.imaging import placeholders
from chalicelib.imaging.blurhash import rgb_to_blurhash
from chalicelib.imaging.compose import WHITE, flatten
from chalicelib.imaging.render import render_variants
from chalicelib.imaging.thumbhash import rgba_to_thumbhash
from chalicelib.settings import imaging_settings

SETTINGS = imaging_settings({})  # the Lambda's defaults
THUMB = tuple(spec for spec in SETTINGS.variants if spec.name == "thumb")
LIMITS = SETTINGS.decode_limits()
BUDGET_MS = 10.0
PARTS = ("decode", "working", "thumbhash", "blurhash", "dominant", "lqip", "total")
COLUMNS = (*PARTS, "best")


@dataclass(frozen=True)
class Measurement:
    name: str
    size: tuple[int, int]
    mode: str
    ms: dict[str, float]  # median per part; "total" is compute_placeholders as a whole, "best" its fastest run
    lqip_chars: int


def thumbnail(data: bytes) -> bytes:
    """The pipeline's own 320 px thumbnail of an upload (raises ImageRejected as the pipeline would)."""
    return render_variants(data, THUMB, LIMITS).variants[0].data


def measure(name: str, webp: bytes, repeat: int) -> Measurement:
    image = _decode(webp)
    small = placeholders.working_copy(image)
    rgba = small.convert("RGBA")
    opaque = flatten(small, WHITE) if small.mode == "RGBA" else small
    parts: dict[str, Callable[[], object]] = {
        "decode": lambda: _decode(webp),
        "working": lambda: placeholders.working_copy(image),
        "thumbhash": lambda: rgba_to_thumbhash(rgba.width, rgba.height, rgba.tobytes()),
        "blurhash": lambda: rgb_to_blurhash(opaque.width, opaque.height, opaque.tobytes()),
        "dominant": lambda: placeholders.dominant_color(small),
        "lqip": lambda: placeholders.lqip_data_uri(small),
        "total": lambda: placeholders.compute_placeholders(image),
    }
    times = {part: _times_ms(run, repeat) for part, run in parts.items()}
    ms = {part: statistics.median(runs) for part, runs in times.items()}
    ms["best"] = min(times["total"])
    lqip = placeholders.compute_placeholders(image).lqip
    return Measurement(name, image.size, image.mode, ms, len(lqip))


def _decode(webp: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(webp))
    image.load()
    return image


def _times_ms(run: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return times


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def run(corpus: Path, repeat: int, out: Callable[[str], None] = print) -> list[Measurement]:
    """Measure every file in `corpus`, print a table and a summary, return the measurements."""
    results: list[Measurement] = []
    skipped: list[str] = []
    out(f"{'file':44} {'thumb':>9} {'mode':4} " + " ".join(f"{column:>9}" for column in COLUMNS) + "  lqip")
    for path in sorted(p for p in corpus.iterdir() if p.is_file()):
        try:
            webp = thumbnail(path.read_bytes())
        except ImageRejected as exc:
            skipped.append(f"{path.name} ({exc.code})")
            continue
        result = measure(path.name, webp, repeat)
        results.append(result)
        size = f"{result.size[0]}x{result.size[1]}"
        timings = " ".join(f"{result.ms[column]:9.2f}" for column in COLUMNS)
        out(f"{result.name[:44]:44} {size:>9} {result.mode:4} {timings}  {result.lqip_chars}")
    if not results:
        raise SystemExit(f"no image in {corpus} could be rendered")
    totals = [result.ms["total"] for result in results]
    bests = [result.ms["best"] for result in results]
    out("")
    out(f"{len(results)} images, {len(skipped)} skipped: {', '.join(skipped) or 'none'}")
    out("median of parts (ms): " + ", ".join(f"{p} {statistics.median(r.ms[p] for r in results):.2f}" for p in PARTS))
    out(
        f"compute_placeholders per image (ms): median {statistics.median(totals):.2f}, "
        f"p95 {percentile(totals, 0.95):.2f}, max {max(totals):.2f}; budget {BUDGET_MS:.0f} ms"
    )
    out(f"fastest run per image (ms): median {statistics.median(bests):.2f}, max {max(bests):.2f}")
    out(f"largest lqip data URI: {max(r.lqip_chars for r in results)} characters")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    versions = f"python {platform.python_version()}, Pillow {Image.__version__}"
    out(f"{versions}, {os.cpu_count()} cores, load {load}, repeat {repeat}")
    return results


def compare_with_pure_python_references(corpus: Path, repeat: int, out: Callable[[str], None] = print) -> None:
    """Why imgpress has its own encoders: the PyPI pure-Python ones on the same 32 px working copies."""
    import blurhash as blurhash_port  # test-only packages (requirements-dev.txt)
    import thumbhash as thumbhash_port

    costs: dict[str, list[float]] = {"thumbhash": [], "thumbhash port": [], "blurhash": [], "blurhash port": []}
    for path in sorted(p for p in corpus.iterdir() if p.is_file()):
        try:
            small = placeholders.working_copy(_decode(thumbnail(path.read_bytes())))
        except ImageRejected:
            continue
        if small.mode == "RGBA":
            continue  # the thumbhash port fails on alpha
        rgba = small.convert("RGBA")
        pixels, width = small.tobytes(), small.width
        rows = [
            [list(pixels[i : i + 3]) for i in range(3 * y * width, 3 * (y + 1) * width, 3)] for y in range(small.height)
        ]
        runs: dict[str, Callable[[], object]] = {
            "thumbhash": lambda: rgba_to_thumbhash(rgba.width, rgba.height, rgba.tobytes()),
            "thumbhash port": lambda: thumbhash_port.rgba_to_thumb_hash(rgba.width, rgba.height, list(rgba.tobytes())),
            "blurhash": lambda: rgb_to_blurhash(small.width, small.height, small.tobytes()),
            "blurhash port": lambda: blurhash_port.encode(rows, 4, 3),
        }
        for name, run_once in runs.items():
            costs[name].append(statistics.median(_times_ms(run_once, repeat)))
    out("")
    count = len(costs["blurhash"])
    out(f"pure-Python PyPI encoders on the same opaque 32 px working copies ({count} images), median ms:")
    out("  " + ", ".join(f"{name} {statistics.median(values):.2f}" for name, values in costs.items()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--repeat", type=int, default=21, help="timed runs per image and part (default 21)")
    parser.add_argument(
        "--references", action="store_true", help="also time the pure-Python PyPI encoders (thumbhash, blurhash)"
    )
    args = parser.parse_args(argv)
    if not args.corpus.is_dir():
        print(f"{args.corpus} is not a folder; build the corpus with `make corpus`", file=sys.stderr)
        return 2
    run(args.corpus, args.repeat)
    if args.references:
        compare_with_pure_python_references(args.corpus, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
