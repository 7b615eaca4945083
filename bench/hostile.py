"""The hostile benchmark: each crafted class at several sizes, the worst file each guard still accepts,
the worst legal file of each format, and the corpus, all rendered as the Lambda renders them (in a
child process: imaging/isolation.py), each in a fresh process pinned to one core.

    python -m bench.hostile                       # writes bench/HOSTILE.md (make bench-hostile)
    python -m bench.hostile --before ../main      # also runs the attacks on another checkout
    python -m bench.hostile --save runs.json      # keep the measurements; --load runs.json re-renders

Time and CPU are the render's (the child's CPU included); peak RSS is that of the process that
rendered (the child, or the worker for refused files and older checkouts: interpreter and imports
included, about 60 MB), beside decode.check_memory's estimate. The corpus is also rendered three
times each way, in the worker and in a child, for what the child process costs per image.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import date
from functools import partial
from pathlib import Path

from bench import corpus
from chalicelib.formats import sniff_format
from chalicelib.imaging.structure import GUARDS, check_structure
from chalicelib.settings import imaging_settings
from tests.crafted import ATTACKS, PROBES, WORST, WORST_BY_FORMAT

REPO = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "hostile_worker.py"
REPORT = Path(__file__).resolve().parent / "HOSTILE.md"
DEADLINE_SECONDS = 0.5
MB, MP = 1_000_000, 1_000_000


@dataclass(frozen=True)
class Case:
    group: str  # attack, limit, format or corpus
    name: str
    scale: str
    build: Callable[[], bytes]


@dataclass(frozen=True)
class Measured:
    """One render in a fresh process: its outcome, the render's wall and CPU time, the peak RSS of the
    process that rendered, the decoded pixels, the file's size, the memory estimate; for the corpus,
    the median wall time of a render in the worker and in a child."""

    outcome: str
    wall: float  # seconds
    cpu: float
    peak_kib: int
    pixels: int
    size: int
    estimate_kib: int = 0
    direct_wall: float = 0.0
    isolated_wall: float = 0.0


def cases(include_corpus: bool) -> Iterator[Case]:
    for name, attack in ATTACKS.items():
        for scale in attack.scales:
            yield Case("attack", name, f"{scale:,} {attack.unit}", partial(attack.build, scale))
    for metric, probe in PROBES.items():
        limit = GUARDS[metric].limit
        yield Case("limit", metric, f"{limit:,}", WORST.get(metric, partial(probe.build, limit)))
    for container, (description, build) in WORST_BY_FORMAT.items():
        yield Case("format", container, description, build)
    if include_corpus:
        for image in corpus.load(corpus.DEFAULT_CORPUS):
            yield Case("corpus", image.name, image.image_class, image.path.read_bytes)


def measure(data: bytes, root: Path, timeout: float, compare: bool = False) -> Measured:
    """Render `data` in a fresh process on CPU 0; a run past `timeout` is killed and reported as such
    (its CPU time then from the kernel's accounting of finished children). With `compare`, also the
    median render in that process and in a child of it."""
    with tempfile.TemporaryDirectory() as scratch:
        sample = Path(scratch) / "sample"
        sample.write_bytes(data)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        child = subprocess.Popen(
            [sys.executable, str(WORKER), str(root), str(sample), *(["--compare"] if compare else [])],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            preexec_fn=lambda: os.sched_setaffinity(0, {0}),
        )
        try:
            text, _ = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            used = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = used.ru_utime + used.ru_stime - children.ru_utime - children.ru_stime
            return Measured(f"timeout > {timeout:.0f} s", timeout, cpu, 0, 0, len(data))
    if not text.strip():
        return Measured(f"crashed ({child.returncode})", 0, 0, 0, 0, len(data))
    result = json.loads(text)
    return Measured(
        result["outcome"],
        result["wall"],
        result["cpu"],
        result["peak_kib"],
        result["pixels"],
        len(data),
        result.get("estimate_kib", 0),
        result.get("direct_wall", 0.0),
        result.get("isolated_wall", 0.0),
    )


def deadline_stops(data: bytes, seconds: float) -> dict[str, float]:
    """When a render of `data` under a deadline of `seconds` stopped, in the worker's own process and
    in a child of it (bench/hostile_worker.py --deadline)."""
    with tempfile.TemporaryDirectory() as scratch:
        sample = Path(scratch) / "sample"
        sample.write_bytes(data)
        command = [sys.executable, str(WORKER), str(REPO), str(sample), "--deadline", str(seconds)]
        text = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return dict(json.loads(text))


def corpus_maxima() -> dict[str, tuple[int, str]]:
    """The largest count of every guard over the corpus, and the file it came from."""
    maxima: dict[str, tuple[int, str]] = {}
    for path in sorted(corpus.DEFAULT_CORPUS.iterdir()):
        data = path.read_bytes()
        container = sniff_format(data[:1024])
        if container is None:
            continue
        for metric, value in check_structure(data, container, None).metrics.items():
            if value > maxima.get(metric, (0, ""))[0]:
                maxima[metric] = (value, path.name)
    return maxima


def linear_bound(runs: list[Measured]) -> tuple[float, float, float, float]:
    """A bound on CPU time, c ms + a ms per MB + b ms per decoded MP, that every run meets: c and b
    from a grid, a the least that then covers every run, keeping the triple whose bound at the
    limits (25 MiB, 50 MP) is smallest. Returns (c, a, b, the largest share of its bound a run used)."""
    candidates: list[tuple[float, float, float, float]] = []
    for fixed in (100.0, 150.0, 200.0, 300.0):
        for per_mp in (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 80.0, 100.0, 150.0, 200.0, 300.0):
            per_mb = max(0.0, *((1000 * r.cpu - fixed - per_mp * r.pixels / MP) / (r.size / MB) for r in runs))
            candidates.append((fixed + per_mb * 26.2 + per_mp * 50, fixed, per_mb, per_mp))
    _at_limits, fixed, per_mb, per_mp = min(candidates)
    worst = max(1000 * r.cpu / (fixed + per_mb * r.size / MB + per_mp * r.pixels / MP) for r in runs)
    return fixed, per_mb, per_mp, worst


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:,.0f}" if seconds >= 0.01 else f"{1000 * seconds:.1f}"


def _mb(kib: int) -> str:
    return f"{kib / 1024:,.0f}" if kib else "–"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table_head(intro: str, header: list[str]) -> list[str]:
    return [intro, "", _row(header), _row(["---"] * len(header))]


Results = list[tuple[Case, Measured, Measured | None]]


def save(results: Results, path: Path) -> None:
    rows = [(c.group, c.name, c.scale, asdict(a), asdict(b) if b else None) for c, a, b in results]
    path.write_text(json.dumps(rows))


def load(path: Path) -> Results:
    def unbuilt() -> bytes:
        raise RuntimeError("loaded measurements have no file to build")

    rows = json.loads(path.read_text())
    return [
        (Case(group, name, scale, unbuilt), Measured(**after), Measured(**before) if before else None)
        for group, name, scale, after, before in rows
    ]


def _section(name: str, lines: list[str]) -> list[str]:
    """Lines the docs site includes by name (pymdownx.snippets), so each number is stated once."""
    return [f"<!-- --8<-- [start:{name}] -->", *lines, f"<!-- --8<-- [end:{name}] -->"]


def report(results: Results, before_root: str | None, stops: dict[str, float] | None = None) -> str:
    settings = imaging_settings({})
    import PIL

    variants = ", ".join(f"{v.name} {v.max_width} px {v.format}" for v in settings.variants)
    lines = [
        "# Hostile files: what they cost with the structure guards",
        "",
        f"Measured {date.today():%Y-%m-%d} by `python -m bench.hostile` (`make bench-hostile`) on"
        f" {platform.machine()}, Python {platform.python_version()}, Pillow {PIL.__version__}: each file rendered"
        f" by `render_variants` with the default profile ({variants}) and the default decode limits, in a child"
        " process as the pipeline renders, in a fresh process pinned to one core. Time and CPU: the render"
        " alone. Peak RSS: the process that rendered (the interpreter and imports are about 60 MB);"
        " estimate: what `decode.check_memory` expects before decoding (refused above RENDER_MEMORY_MB,"
        f" {settings.render_memory_mb:,} MiB by default). MAX_UPLOAD_BYTES is {settings.max_upload_bytes:,}."
        " Generators: tests/crafted.py; guards: chalicelib/imaging/structure/guards.py.",
        "",
        "## The linear bound",
        "",
        *_section("bound", _bound(results)),
        "",
        "## The worst file each guard accepts",
        "",
        *_section("guards", _guard_table(results)),
        "",
        "## The worst legal file of each format",
        "",
        *_section("formats", _format_table(results)),
        "",
        "## What rendering in a child process costs",
        "",
        *_section("isolation", _isolation(results, stops)),
        "",
        "## Attacks, by class and size",
        "",
        *_section("attacks", _attack_table(results, before_root)),
        "",
        "## Corpus",
        "",
        _row(["file", "class", "bytes", "outcome", "time ms", "CPU ms", "peak RSS MB", "estimate MB", "decoded MP"]),
        _row(["---"] * 9),
    ]
    for case, after, _before in results:
        if case.group == "corpus":
            lines.append(_render_row(case, after))
    return "\n".join(lines) + "\n"


def _render_row(case: Case, after: Measured) -> str:
    """A file's row: what it is, its size, and what rendering it took and was expected to take."""
    cells = [case.name, case.scale, f"{after.size:,}", after.outcome, _ms(after.wall), _ms(after.cpu)]
    return _row([*cells, _mb(after.peak_kib), _mb(after.estimate_kib), f"{after.pixels / MP:.1f}"])


def _format_table(results: Results) -> list[str]:
    header = ["format", "file", "bytes", "outcome", "time ms", "CPU ms", "peak RSS MB", "estimate MB", "decoded MP"]
    lines = _table_head(
        "Each format at the most pixels allowed, coded the costliest way its encoders here allow"
        " (tests/crafted.py: `WORST_BY_FORMAT`). The estimate is what the render may need by its structure;"
        " the peak, what it used.",
        header,
    )
    for case, after, _before in results:
        if case.group == "format":
            lines.append(_render_row(case, after))
    return lines


def _isolation(results: Results, stops: dict[str, float] | None) -> list[str]:
    lines = []
    if stops is not None:
        lines += [
            f"A deadline of {DEADLINE_SECONDS} s on the worst HEIF (seconds in one call of libheif's decoder)"
            f" stopped the render after **{stops['isolated']:.2f} s** in a child process, and after"
            f" {stops['in_process']:.2f} s in the handler's own process, where the timer's exception waits for"
            " the decoder to give control back.",
            "",
        ]
    compared = [(c, a) for c, a, _b in results if c.group == "corpus" and a.isolated_wall and a.direct_wall]
    if not compared:
        return [*lines, "(The child's cost was not measured: the corpus was left out of this run.)"]
    added = sorted(a.isolated_wall - a.direct_wall for _c, a in compared)
    shares = sorted((a.isolated_wall - a.direct_wall) / a.direct_wall for _c, a in compared)
    median, worst = added[len(added) // 2], max(added)
    return [
        *lines,
        f"Over the {len(compared)} corpus files, each rendered three times in the worker and three times in a"
        " child forked for it (medians compared), the child added a median of"
        f" **{1000 * median:.0f} ms** per image (at most {1000 * worst:.0f} ms; a median"
        f" {shares[len(shares) // 2]:.0%} of the render): the fork, the pages it then copies, the result's"
        " way back through a pipe, and what the child builds again that a warm process keeps (colour"
        " transforms). Rendering in the handler's own process would save that and lose what the child"
        " buys: a decoder crash or an allocation past the memory limit ends one image with a code, and"
        " the deadline stops a decode in C on time.",
    ]


def _bound(results: Results) -> list[str]:
    measured = [after for _case, after, _before in results if not after.outcome.startswith(("timeout", "crashed"))]
    fixed, per_mb, per_mp, worst = linear_bound(measured)
    rejected = [after for _case, after, _before in results if after.outcome != "ok"]
    slowest = max(rejected, key=lambda r: r.cpu, default=Measured("none", 0, 0, 0, 0, 0))
    accepted = [r for r in measured if r.outcome == "ok" and r.pixels >= MP]
    corpus = sum(1 for case, _after, _before in results if case.group == "corpus")
    return [
        f"Over all {len(measured)} renders below ({corpus} of them the corpus), every one used at most"
        f" **{fixed:,.0f} ms + {per_mb:,.0f} ms per MB of upload + {per_mp:,.0f} ms per decoded megapixel** of"
        f" CPU (the closest came to {worst:.0%} of its bound). At the limits, 25 MiB and 50 MP, that is"
        f" {(fixed + per_mb * 26.2 + per_mp * 50) / 1000:.1f} s. CPU time rather than wall time: this machine is"
        " shared, and waiting for a core is not the render's cost.",
        "",
        f"{len(rejected)} files were refused, the slowest in {_ms(slowest.cpu)} ms of CPU"
        f" ({slowest.size / MB:.1f} MB, {slowest.outcome}). Of the accepted files of 1 MP or more, the most CPU"
        f" per decoded megapixel was {max((1000 * r.cpu / (r.pixels / MP) for r in accepted), default=0):,.0f} ms; the"
        f" largest peak RSS of any render, {max(r.peak_kib for r in measured) / 1024:,.0f} MB.",
    ]


def _guard_table(results: Results) -> list[str]:
    maxima = corpus_maxima()
    header = ["guard", "limit", "code", "corpus max", "bytes", "outcome", "CPU ms", "peak RSS MB", "decoded MP"]
    lines = _table_head(
        "Each file is built just under its guard's limit (tests/crafted.py: `WORST`, else"
        " `PROBES[guard].build(limit)`). The corpus maximum is the largest count over the shared corpus"
        " (with the class of the file it comes from).",
        header,
    )
    for case, after, _before in results:
        if case.group != "limit":
            continue
        guard = GUARDS[case.name]
        seen, where = maxima.get(case.name, (0, ""))
        lines.append(
            _row(
                [
                    f"`{case.name}`",
                    f"{guard.limit:,}",
                    guard.code,
                    f"{seen:,}" + (f" ({where.split('__')[0]})" if where else ""),
                    f"{after.size:,}",
                    after.outcome,
                    _ms(after.cpu),
                    f"{after.peak_kib / 1024:,.0f}",
                    f"{after.pixels / MP:.1f}",
                ]
            )
        )
    return lines


def _attack_table(results: Results, before_root: str | None) -> list[str]:
    header = ["class", "size", "bytes", "outcome", "time ms", "CPU ms", "peak RSS MB"]
    lines = []
    if before_root:
        lines += [
            f"*Before*: the same file rendered by {before_root}: its CPU time and peak RSS (a timeout"
            " is wall time: this machine is shared).",
            "",
        ]
        header += ["before: outcome", "before: CPU ms", "before: peak RSS MB"]
    lines += [_row(header), _row(["---"] * len(header))]
    for case, after, before in results:
        if case.group != "attack":
            continue
        cells = [case.name, case.scale, f"{after.size:,}", after.outcome, _ms(after.wall), _ms(after.cpu)]
        cells.append(f"{after.peak_kib / 1024:,.0f}")
        if before_root:
            cells += [before.outcome, _ms(before.cpu), _mb(before.peak_kib)] if before else ["", "", ""]
        lines.append(_row(cells))
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPORT)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a render is killed")
    parser.add_argument("--before", type=Path, help="also run the attacks on this checkout (no guards)")
    parser.add_argument("--before-timeout", type=float, default=60.0)
    parser.add_argument("--before-label", help="how the report names that checkout (default: its path)")
    parser.add_argument("--only", default="", help="run only cases whose name contains this")
    parser.add_argument("--no-corpus", action="store_true")
    parser.add_argument("--save", type=Path, help="also write the measurements to this JSON file")
    parser.add_argument("--load", type=Path, help="render the report from saved measurements")
    args = parser.parse_args(argv)
    label = args.before_label or (str(args.before) if args.before else None)
    stops = deadline_stops(WORST_BY_FORMAT["HEIF"][1](), DEADLINE_SECONDS)
    if args.load:
        args.out.write_text(report(load(args.load), label, stops))
        return
    results: Results = []
    for case in cases(include_corpus=not args.no_corpus):
        if args.only not in case.name:
            continue
        data = case.build()
        after = measure(data, REPO, args.timeout, compare=case.group == "corpus")
        before = None
        if args.before and case.group == "attack":
            before = measure(data, args.before.resolve(), args.before_timeout)
        print(
            f"{case.group:7s} {case.name:36s} {case.scale:>22s} {len(data):>12,} B  {after.outcome:20s}"
            f" {_ms(after.wall):>8s} ms {after.peak_kib / 1024:6.0f} MB"
            + (
                f"   before: {before.outcome} {_ms(before.cpu)} ms CPU {before.peak_kib / 1024:.0f} MB"
                if before
                else ""
            ),
            flush=True,
        )
        results.append((case, after, before))
    if args.save:
        save(results, args.save)
    args.out.write_text(report(results, label, stops))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
