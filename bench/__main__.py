"""`python -m bench` (what `make bench` runs): imgpress vs the naive seed recipe vs pyvips on the
shared corpus, written to bench/RESULTS.md (raw numbers in bench/out/results.json)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bench import corpus, experiments, report, targets
from bench.corpus import CLASSES, CorpusImage
from bench.engines import vips_available
from bench.machine import load_average
from bench.run import Bench, Job, throughput
from chalicelib.imaging.specs import DEFAULT_VARIANTS_JSON

DEFAULT_JOB = Job("default", DEFAULT_VARIANTS_JSON)
WEB_JOB = Job("web", json.dumps([json.loads(DEFAULT_VARIANTS_JSON)[0]]))  # the 2048 px WebP variant alone
QUALITY_OFFSETS = (-5, 5)  # imgpress's rate-distortion curve around each variant's quality
PAIRED_ENGINES = ("imgpress", "naive", "naive-correct")
CHEAPER_EFFORTS = (0, 1, 2, 3)  # above the default 4 only costs more time
ALLOCATOR_SETTINGS = {
    "Pillow defaults": {},
    "PILLOW_BLOCKS_MAX=32": {"PILLOW_BLOCKS_MAX": "32"},
    "PILLOW_BLOCK_SIZE=4m, BLOCKS_MAX=32": {"PILLOW_BLOCK_SIZE": "4m", "PILLOW_BLOCKS_MAX": "32"},
}


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


def one_per_class(images: Sequence[CorpusImage]) -> list[CorpusImage]:
    """The largest image of each class: the knob sweeps' sample."""
    return [
        max((i for i in images if i.image_class == c), key=lambda i: i.megapixels)
        for c in CLASSES
        if any(i.image_class == c for i in images)
    ]


def pair_if_close(
    bench: Bench, check: targets.ClassCheck, images: Sequence[CorpusImage], rounds: int
) -> targets.ClassCheck:
    """Time a class again, the engines taking turns in a process, unless it is clearly faster."""
    if not check.needs_pairing():
        return check
    cpus = {
        image.name: bench.paired(image, PAIRED_ENGINES, DEFAULT_JOB, rounds)
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
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.rounds < 1:
        parser.error("--repeat and --rounds must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> report.Results:
    args = parse_args(argv)
    command = ("python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:])).strip()
    load_at_start = load_average()
    images = corpus.load(corpus.ensure(args.corpus))
    vips = ["pyvips"] if vips_available() else []
    if not vips:
        print("pyvips is not installed (pip install -r bench/requirements.txt): skipping that engine", flush=True)
    engines = ["imgpress", "naive", *vips]
    # The Lambda's whole job (variants + placeholders) is timed too, and the per-class matrix adds the
    # seed recipe made correct: the fair baseline where the seed recipe's output is wrong.
    job_engines = ["imgpress", "imgpress+placeholders", "naive", *vips]
    matrix_engines = ["imgpress", "imgpress+placeholders", "naive", "naive-correct", *vips]
    bench = Bench(args.out, args.repeat, progress=lambda line: print(line, flush=True))
    target = target_image(images)

    headline = [bench.measure(target, engine, WEB_JOB, repeat=3 * args.repeat) for engine in engines]
    matrix = bench.matrix(images, matrix_engines, DEFAULT_JOB)
    quality_curve = [
        bench.measure(image, "imgpress", DEFAULT_JOB.with_quality_offset(offset), label=f"quality{offset:+d}", repeat=1)
        for offset in QUALITY_OFFSETS
        for image in images
    ]
    checks = [pair_if_close(bench, check, images, args.rounds) for check in targets.per_class(matrix, quality_curve)]
    cores = len(os.sched_getaffinity(0))
    rates = [
        throughput(images, engine, DEFAULT_JOB, processes) for engine in job_engines for processes in sorted({1, cores})
    ]
    sample = one_per_class(images)
    efforts = experiments.effort_sweep(bench, sample, DEFAULT_JOB, CHEAPER_EFFORTS) + [
        replace(m, label="effort=4 (default)") for m in matrix if m.engine == "imgpress" and m.image in sample
    ]
    import_time = experiments.import_time(args.import_runs)
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
        + [targets.import_verdict(import_time["import_app_seconds"])],
        throughput=rates,
        stages=experiments.stage_profile(target, DEFAULT_JOB, args.repeat),
        efforts=efforts,
        resampling=experiments.resample_sweep(target, 2048, args.repeat),
        allocator=experiments.allocator_sweep(bench, target, DEFAULT_JOB, ALLOCATOR_SETTINGS),
        import_time=import_time,
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
