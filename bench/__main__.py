"""`python -m bench` (what `make bench` runs): imgpress vs the naive seed recipe vs pyvips on the
shared corpus, written to bench/RESULTS.md (raw numbers in bench/out/results.json)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from bench import corpus, report, targets
from bench.corpus import CorpusImage
from bench.engines import ENGINES, vips_available
from bench.machine import load_average
from bench.run import Bench, Job, import_time, stage_profile, throughput
from chalicelib.imaging.specs import DEFAULT_VARIANTS_JSON

DEFAULT_JOB = Job("default", DEFAULT_VARIANTS_JSON)
WEB_JOB = Job("web", json.dumps([json.loads(DEFAULT_VARIANTS_JSON)[0]]))  # the 2048 px WebP variant alone
QUALITY_OFFSETS = (-5, 5)  # imgpress's rate-distortion curve around each variant's quality
# Each phase's engines, as far as --engines keeps them. The Lambda's whole job (variants and
# placeholders) is timed beside the like-for-like engines, and the per-class matrix adds the seed
# recipe made correct: the fair baseline where the seed recipe's output is wrong.
HEADLINE_ENGINES = ("imgpress", "naive", "pyvips")
JOB_ENGINES = ("imgpress", "imgpress+placeholders", "naive", "pyvips")
MATRIX_ENGINES = ("imgpress", "imgpress+placeholders", "naive", "naive-correct", "pyvips")
PAIRED_ENGINES = ("imgpress", "naive", "naive-correct")
TARGET_ENGINES = ("imgpress", "naive")  # what every target compares


def target_image(images: Sequence[CorpusImage]) -> CorpusImage:
    """The baseline JPEG closest to 20 MP: the issue's headline case."""
    baseline = [
        i
        for i in images
        if i.path.suffix.lower() in (".jpg", ".jpeg")
        and not i.progressive
        and i.image_class in ("jpeg_large", "jpeg_mid")
    ]
    if not baseline:
        raise SystemExit("the corpus has no baseline JPEG photo for the 20 MP target")
    return min(baseline, key=lambda image: abs(image.megapixels - 20))


def pair_if_close(
    bench: Bench, check: targets.ClassCheck, images: Sequence[CorpusImage], engines: Sequence[str], rounds: int
) -> targets.ClassCheck:
    """Time a class again, the engines taking turns in a process, unless it is clearly faster."""
    if not check.needs_pairing():
        return check
    cpus = {
        image.name: bench.paired(image, engines, DEFAULT_JOB, rounds)
        for image in images
        if image.image_class == check.image_class
    }
    return targets.with_pairing(check, cpus)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--corpus",
        type=Path,
        default=corpus.DEFAULT_CORPUS,
        help="directory of corpus images (built with ../shared/corpus/make_corpus.sh if missing)",
    )
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per (engine, image); the median is kept")
    parser.add_argument(
        "--rounds", type=int, default=18, help="turns per engine when a class is not clearly faster (paired timing)"
    )
    parser.add_argument("--results", type=Path, default=corpus.REPO / "bench" / "RESULTS.md")
    parser.add_argument(
        "--out", type=Path, default=corpus.REPO / "bench" / "out", help="outputs of every engine and results.json"
    )
    parser.add_argument("--import-runs", type=int, default=15, help="runs of `python -c 'import app'`")
    parser.add_argument(
        "--engines",
        type=lambda text: text.split(","),
        default=list(ENGINES),
        help=f"comma-separated, at least {' and '.join(TARGET_ENGINES)} (default: all, {','.join(ENGINES)})",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.rounds < 1:
        parser.error("--repeat and --rounds must be at least 1")
    if not set(TARGET_ENGINES) <= set(args.engines) <= set(ENGINES):
        parser.error(f"--engines: {','.join(args.engines)} does not hold {' and '.join(TARGET_ENGINES)} or is unknown")
    return args


def main(argv: Sequence[str] | None = None) -> report.Results:
    args = parse_args(argv)
    command = ("python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:])).strip()
    load_at_start = load_average()
    images = corpus.load(corpus.ensure(args.corpus))
    chosen = set(args.engines)
    if "pyvips" in chosen and not vips_available():
        print("pyvips is not installed (pip install -r bench/requirements.txt): skipping that engine", flush=True)
        chosen.remove("pyvips")

    def kept(engines: Sequence[str]) -> list[str]:
        return [engine for engine in engines if engine in chosen]

    bench = Bench(args.out, args.repeat, progress=lambda line: print(line, flush=True))
    target = target_image(images)

    headline = [bench.measure(target, engine, WEB_JOB, repeat=3 * args.repeat) for engine in kept(HEADLINE_ENGINES)]
    matrix = bench.matrix(images, kept(MATRIX_ENGINES), DEFAULT_JOB)
    quality_curve = [
        bench.measure(image, "imgpress", DEFAULT_JOB.with_quality_offset(offset), label=f"quality{offset:+d}", repeat=1)
        for offset in QUALITY_OFFSETS
        for image in images
    ]
    checks = [
        pair_if_close(bench, check, images, kept(PAIRED_ENGINES), args.rounds)
        for check in targets.per_class(matrix, quality_curve)
    ]
    workers = min(len(os.sched_getaffinity(0)), len(images))  # one on each core, none without an image
    rates = [
        throughput(images, engine, DEFAULT_JOB, processes)
        for engine in kept(JOB_ENGINES)
        for processes in sorted({1, workers})
    ]
    import_seconds = import_time(args.import_runs)
    results = report.Results(
        command=command,
        machine=report.machine_info(),
        repeat=args.repeat,
        target_image=target,
        headline=headline,
        matrix=matrix,
        summaries=targets.summarise(matrix),
        checks=checks,
        verdicts=targets.headline(headline)
        + targets.class_verdicts(checks)
        + [targets.import_verdict(import_seconds["import_app_seconds"])],
        throughput=rates,
        stages=stage_profile(target, DEFAULT_JOB, args.repeat),
        import_time=import_seconds,
        load={"start": load_at_start, "end": load_average()},
    )
    report.write(results, args.results, args.out / "results.json")
    print(f"wrote {args.results}", flush=True)
    for verdict in results.verdicts:
        print(
            f"{'MET' if verdict.met else 'MISSED' if verdict.met is False else 'n/a':7} {verdict.target}: {verdict.measured}"
        )
    return results


if __name__ == "__main__":
    main()
