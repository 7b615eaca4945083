"""A structured fuzzer of the render: real seed files of every accepted format, mutated where their
structure is (lengths, sizes, counts, types) as well as anywhere, each rendered as the Lambda renders
it, in a child process (imaging/isolation.py).

A finding is an input that makes the render do what it promises never to do:
- end in anything but a rendering or ImageRejected (an escaped exception, a crash of the process);
- take more CPU than the linear bound of docs/guards.md allows for its size and decoded pixels;
- grow by more memory than decode.check_memory estimated for it (64 MiB for a refused file).

    python -m tests.fuzz --seconds 600              # make fuzz (FUZZ_SECONDS=600)
    python -m tests.fuzz --seconds 30 --seed 7 --save tests/fixtures/findings
    python -m tests.fuzz --coverage --seconds 600   # make fuzz-coverage: libFuzzer, through Atheris

Findings are minimised (the shortest prefix, then chunks cut out, that still misbehave) and, with
--save, written as regression files that tests/test_fuzz.py replays on every run.

With --coverage, libFuzzer (Atheris, a dev dependency) mutates the same seeds guided by the Python
code each input runs (the walkers, Pillow's plugins): faster, in this process, so a crash ends the
run with its input saved as crash-* (a decoder crash), and an escaped exception, more CPU than the
bound, more than 2.5 GB or more than 20 s as well (libFuzzer's own limits for the last two).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
import resource
import signal
import struct
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from PIL import Image

from chalicelib.errors import ImageRejected
from chalicelib.formats import sniff_format
from chalicelib.imaging.decode import ANIMATED_DECODERS, memory_needed, open_counted
from chalicelib.imaging.isolation import run_isolated
from chalicelib.imaging.limits import DecodeLimits
from chalicelib.imaging.render import render_variants
from chalicelib.imaging.specs import DEFAULT_VARIANTS_JSON, parse_variants
from chalicelib.imaging.structure import check_structure
from tests import crafted, images

FINDINGS = Path(__file__).resolve().parent / "fixtures" / "findings"
REPORT = Path(__file__).resolve().parent.parent / "bench" / "HOSTILE.md"
LIMITS = DecodeLimits(("JPEG", "PNG", "WEBP", "GIF", "AVIF", "HEIF"))
SPECS = parse_variants(DEFAULT_VARIANTS_JSON)
MIB = 1024 * 1024
SLACK = 2.0  # on the linear bound, for a shared machine's noise
REFUSED_GROWTH = 64 * MIB  # what a refused file may add to the process, at most
_BOUNDARIES = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF)


@dataclass(frozen=True)
class Verdict:
    """One render of one input, as the child saw it."""

    outcome: str  # "ok", "rejected:<code>", "escaped:<type>", or "crashed:<signal>" (from the parent)
    cpu_seconds: float = 0.0
    growth: int = 0  # bytes the child's resident memory grew by
    allowed_growth: int = REFUSED_GROWTH
    pixels: int = 0  # decoded (for the time bound)

    def problem(self, size: int) -> str | None:
        """What is wrong with this render of an input of `size` bytes, if anything."""
        if self.outcome.startswith(("escaped", "crashed")):
            return self.outcome
        fixed, per_mb, per_mp = linear_bound()
        bound = SLACK * (fixed + per_mb * size / 1e6 + per_mp * self.pixels / 1e6) / 1000
        if self.cpu_seconds > bound:
            return f"slow: {self.cpu_seconds:.2f} s of CPU, bound {bound:.2f} s"
        if self.growth > self.allowed_growth:
            return f"memory: grew {self.growth // MIB} MiB, estimate {self.allowed_growth // MIB} MiB"
        return None


@cache
def linear_bound() -> tuple[float, float, float]:
    """The bound on a render's CPU that bench/HOSTILE.md measured (docs/guards.md): milliseconds fixed,
    per MB of upload and per decoded megapixel."""
    found = re.search(r"\*\*([\d,]+) ms \+ ([\d,]+) ms per MB of upload \+ ([\d,]+) ms per decoded", REPORT.read_text())
    assert found is not None, f"no linear bound in {REPORT}"
    fixed, per_mb, per_mp = (float(group.replace(",", "")) for group in found.groups())
    return fixed, per_mb, per_mp


def render(data: bytes) -> Verdict:
    """Render `data` in a child process and judge it there (a crash is judged here)."""
    try:
        return run_isolated(lambda: _judged(data), 4 * LIMITS.max_render_bytes)
    except ImageRejected as rejected:  # the child died: run_isolated's own verdict
        return Verdict(f"crashed:{rejected.code}")


def _judged(data: bytes) -> Verdict:
    start_cpu, start_rss = time.process_time(), _resident()
    allowed, pixels = REFUSED_GROWTH, 0
    try:
        allowed = max(allowed, _estimate(data))
        rendering = render_variants(data, SPECS, LIMITS)
        source = rendering.source
        outcome, pixels = "ok", source.width * source.height * source.frames  # every frame decoded, at most
    except ImageRejected as rejected:
        outcome = f"rejected:{rejected.code}"
    except Exception as escaped:  # the finding this fuzzer exists for
        outcome = f"escaped:{type(escaped).__name__}: {str(escaped)[:120]}"
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - start_rss
    return Verdict(outcome, time.process_time() - start_cpu, growth, allowed, pixels)


def _estimate(data: bytes) -> int:
    """decode.check_memory's estimate for `data` (what a render of it may grow by), if it opens."""
    container = sniff_format(data[:1024])
    if container is None or container not in LIMITS.allowed_decoders:
        return 0
    image, frames = open_counted(data, LIMITS)
    animated = frames > 1 and image.format in ANIMATED_DECODERS
    return memory_needed(check_structure(data, container), image.size, frames if animated else 1)


def _resident() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------- seeds and mutations


def seeds() -> dict[str, bytes]:
    """Small real files of every accepted format and the structures their decoders take most paths in."""
    photo = images.photo(48, 32)
    rgba = images.gradients(40, 30, "RGBA")
    frames = [Image.new("P", (24, 16), i) for i in range(3)]
    moving = [images.gradients(24, 16, "RGBA").rotate(angle) for angle in (0, 90, 180)]
    return {
        "baseline.jpg": images.encode(photo, "JPEG", quality=80),
        "progressive.jpg": images.encode(photo, "JPEG", quality=80, progressive=True, subsampling=0),
        "oriented.jpg": images.oriented_jpeg(6),
        "cmyk.jpg": images.cmyk_jpeg(),
        "arithmetic.jpg": images.fixture("arithmetic.jpg"),
        "rgba.png": images.encode(rgba, "PNG"),
        "palette.png": images.palette_trns_png(),
        "grey16.png": images.gray16_png(64, 4),
        "animated.png": crafted.apng(3, 16),
        "animated.gif": images.encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50),
        "disposal.gif": images.encode(
            moving[0], "GIF", save_all=True, append_images=moving[1:], duration=40, disposal=2, loop=2
        ),
        "blend.png": images.encode(
            moving[0], "PNG", save_all=True, append_images=moving[1:], duration=40, disposal=2, blend=1
        ),
        "sequence.avif": images.encode(moving[0], "AVIF", save_all=True, append_images=moving[1:], speed=10),
        "lossy.webp": images.encode(photo, "WEBP", quality=50),
        "lossless.webp": images.encode(rgba, "WEBP", lossless=True),
        "animated.webp": crafted.animated_webp(
            (32, 32), [crafted.animation_frame(0, 0, 8, 8, crafted.webp_bitstream(8, 8))] * 2
        ),
        "still.avif": images.encode(rgba, "AVIF", quality=40, speed=10),
        "grid.avif": crafted.grid(2, 2),
        "still.heic": crafted.still(b"hvc1"),
        "alpha.heic": crafted.heif_image(crafted.Coded(64), crafted.Coded(64, alpha=True), crop=(48, 40)),
        "grid.heic": crafted.grid(2, 2, b"hvc1"),
    }


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to four mutations, most of them where a parser reads a length, size, count or type."""
    mutant = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        rng.choice(_MUTATIONS)(mutant, rng)
        if not mutant:
            break
    return bytes(mutant)


def _flip(mutant: bytearray, rng: random.Random) -> None:
    if mutant:
        mutant[rng.randrange(len(mutant))] ^= 1 << rng.randrange(8)


def _boundary(mutant: bytearray, rng: random.Random) -> None:
    """A big-endian or little-endian field of 1, 2 or 4 bytes set to a boundary value."""
    width = rng.choice((1, 2, 4))
    if len(mutant) > width:
        at = rng.randrange(len(mutant) - width)
        value = rng.choice(_BOUNDARIES) & ((1 << 8 * width) - 1)
        mutant[at : at + width] = value.to_bytes(width, rng.choice(("big", "little")))


def _field(mutant: bytearray, rng: random.Random) -> None:
    """A 4-byte field next to a four-character code (a box's or chunk's size) changed by a little."""
    codes = [i for i in range(4, len(mutant) - 4) if mutant[i : i + 4].isalpha()]
    if codes:
        at = rng.choice(codes) - 4
        (value,) = struct.unpack_from(">I", mutant, at)
        struct.pack_into(">I", mutant, at, (value + rng.choice((-8, -1, 1, 8, 4096))) & 0xFFFFFFFF)


def _truncate(mutant: bytearray, rng: random.Random) -> None:
    del mutant[rng.randrange(len(mutant) + 1) :]


def _repeat(mutant: bytearray, rng: random.Random) -> None:
    """A span copied in again after itself, as a segment, chunk or box repeated."""
    if len(mutant) > 2:
        start = rng.randrange(len(mutant) - 1)
        stop = min(len(mutant), start + rng.randint(1, 64))
        mutant[stop:stop] = mutant[start:stop] * rng.randint(1, 8)


def _splice(mutant: bytearray, rng: random.Random) -> None:
    """A span of the file overwritten with another span of it."""
    if len(mutant) > 8:
        size = rng.randint(1, min(32, len(mutant) // 2))
        source, target = rng.randrange(len(mutant) - size), rng.randrange(len(mutant) - size)
        mutant[target : target + size] = mutant[source : source + size]


_MUTATIONS: tuple[Callable[[bytearray, random.Random], None], ...] = (
    _flip,
    _boundary,
    _boundary,
    _field,
    _field,
    _truncate,
    _repeat,
    _splice,
)


# ---------------------------------------------------------------- the loop


@dataclass(frozen=True)
class Finding:
    seed: str
    problem: str
    data: bytes


def fuzz(seconds: float, seed: int = 0) -> tuple[list[Finding], int]:
    """Mutate and render until `seconds` have passed; returns the findings (minimised) and the
    number of inputs rendered."""
    rng, corpus = random.Random(seed), seeds()
    names = sorted(corpus)
    findings: list[Finding] = []
    executions, stop = 0, time.monotonic() + seconds
    while time.monotonic() < stop:
        name = names[executions % len(names)]
        data = mutate(corpus[name], rng)
        executions += 1
        problem = render(data).problem(len(data))
        if problem is not None:
            findings.append(Finding(name, problem, minimise(data)))
    return findings, executions


def minimise(data: bytes) -> bytes:
    """The shortest prefix, then the fewest bytes, that still show a problem (not always the same one)."""

    def bad(candidate: bytes) -> bool:
        return render(candidate).problem(len(candidate)) is not None

    low, high = 0, len(data)
    while low < high:  # the shortest failing prefix, assuming longer prefixes fail too
        middle = (low + high) // 2
        low, high = (low, middle) if bad(data[:middle]) else (middle + 1, high)
    data = data[:high] if bad(data[:high]) else data
    chunk = max(1, len(data) // 8)
    while chunk >= 1:
        at = 0
        while at < len(data):
            candidate = data[:at] + data[at + chunk :]
            if candidate and bad(candidate):
                data = candidate
            else:
                at += chunk
        chunk //= 2
    return data


def regressions() -> Iterator[tuple[str, bytes]]:
    for path in sorted(FINDINGS.glob("*")):
        if path.is_file():
            yield path.name, path.read_bytes()


def fuzz_with_coverage(seconds: float, seeds_directory: Path, findings: Path) -> None:
    """libFuzzer through Atheris over the seeds; does not return (libFuzzer exits)."""
    import atheris

    for name, data in seeds().items():
        (seeds_directory / name).write_bytes(data)
    findings.mkdir(parents=True, exist_ok=True)

    def one_input(data: bytes) -> None:
        started = time.process_time()
        try:
            rendering = render_variants(data, SPECS, LIMITS)
            pixels = rendering.source.width * rendering.source.height
        except ImageRejected:
            pixels = 0
        problem = Verdict("ok", time.process_time() - started, pixels=pixels).problem(len(data))
        if problem is not None:
            raise AssertionError(problem)

    atheris.instrument_all()
    limits = [f"-max_total_time={int(seconds)}", "-rss_limit_mb=2560", "-timeout=20"]
    atheris.Setup([sys.argv[0], *limits, f"-artifact_prefix={findings}/", str(seeds_directory)], one_input)
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("FUZZ_SECONDS", 60)))
    parser.add_argument("--seed", type=int, default=int.from_bytes(os.urandom(4), "big"))
    parser.add_argument("--save", type=Path, help="write each finding there (tests/fixtures/findings)")
    parser.add_argument("--coverage", action="store_true", help="libFuzzer through Atheris instead")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    warnings.simplefilter("ignore")  # Pillow warns of the broken EXIF and APNG chunks mutants carry
    if args.coverage:
        with tempfile.TemporaryDirectory() as directory:
            fuzz_with_coverage(args.seconds, Path(directory), args.save or Path(directory) / "findings")
    started = time.monotonic()
    findings, executions = fuzz(args.seconds, args.seed)
    elapsed = time.monotonic() - started
    print(f"seed {args.seed}: {executions} inputs in {elapsed:.0f} s ({executions / elapsed:.1f}/s)")
    for finding in findings:
        name = f"{finding.seed}-{hashlib.sha256(finding.data).hexdigest()[:12]}"
        print(f"  {name}: {finding.problem} ({len(finding.data)} bytes)")
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            (args.save / name).write_bytes(finding.data)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
