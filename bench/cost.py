"""What one image costs on AWS, from measurements on the corpus: `python -m bench.cost` -> bench/COST.md.

Per image class (bench/corpus.py), each image in a fresh process: the default profile's render CPU
time and peak memory, then the wall time of the same render with the variants encoded one after the
other (1 vCPU, Lambda's 1769 MB) and in parallel on two threads (2 vCPUs from 3538 MB), the two taking
turns so the machine's other load hits both alike. The parallel outputs are checked byte for byte.

The dollars come from those numbers, the request counts of one upload's path through imgpress
(counted from the code, below), and the published prices in PRICES (us-east-1, x86, on-demand; the
date and the pages they were read from are in the report).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.corpus import CLASSES, DEFAULT_CORPUS, REPO, CorpusImage, ensure, load

PRICES_READ = "2026-11-29"
# USD, us-east-1. Sources (read on PRICES_READ) are listed in the report and docs/performance.md.
PRICES = {
    "lambda_gb_second": 0.0000166667,  # x86
    "lambda_request": 0.20 / 1e6,
    "s3_put": 0.005 / 1000,  # PUT, COPY, POST, LIST
    "s3_get": 0.0004 / 1000,  # GET, HEAD
    "s3_gb_month": 0.023,  # S3 Standard, first 50 TB
    "dynamodb_wru": 0.625 / 1e6,  # on-demand write request unit
    "dynamodb_rru": 0.125 / 1e6,  # on-demand read request unit
    "sns_publish": 0.50 / 1e6,
    "sqs_request": 0.40 / 1e6,
}
ONE_VCPU_MB, TWO_VCPU_MB = 1769, 3538
# Not measured here: the handler's AWS calls around the render (GET the original, PUT each output,
# four DynamoDB writes and a read, one SNS publish), about 10 ms each inside a region.
IO_SECONDS = 0.08


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def two_core_wall(main: Sequence[float], encodes: Sequence[float]) -> float:
    """The wall time of a render on two cores, from its serial CPU profile: the main thread's work
    between encodes (`main`, one more item than `encodes`), each encode submitted when the main
    thread reaches it and run on whichever core frees first (the second core from the start, the
    main thread's once it has nothing left but waiting)."""
    clock, released = 0.0, []
    for work, encode in zip(main, encodes):
        clock += work
        released.append((clock, encode))
    main_done = clock + main[-1]
    cores = [0.0, main_done]  # the pool's core, and the main thread's once it only waits
    finished = main_done
    for release, encode in released:
        core = min(range(2), key=lambda c: max(release, cores[c]))
        cores[core] = max(release, cores[core]) + encode
        finished = max(finished, cores[core])
    return finished


def cpu_profile(render: Any, render_module: Any) -> tuple[list[float], list[float]]:
    """One serial render timed in CPU seconds: the work between encodes, and each encode."""
    marks: list[tuple[float, float]] = []
    original = render_module.encode

    def timed(*args: Any, **kwargs: Any) -> bytes:
        start = time.process_time()
        try:
            return bytes(original(*args, **kwargs))
        finally:
            marks.append((start, time.process_time()))

    render_module.encode = timed
    try:
        began = time.process_time()
        render(1)
        ended = time.process_time()
    finally:
        render_module.encode = original
    edges = [began, *(t for mark in marks for t in mark), ended]
    main = [edges[2 * n + 1] - edges[2 * n] for n in range(len(marks) + 1)]
    return main, [end - start for start, end in marks]


def worker(request: dict[str, Any]) -> dict[str, Any]:
    """One image in this (fresh) process: peak memory of a serial render, then paired timings."""
    from chalicelib.imaging import render as render_module
    from chalicelib.imaging.render import render_variants
    from chalicelib.imaging.settings import ImagingSettings
    from chalicelib.imaging.specs import parse_variants

    settings = ImagingSettings.from_env({})
    specs = parse_variants(request["variants"]) if request.get("variants") else settings.variants
    limits = settings.decode_limits()
    data = Path(request["path"]).read_bytes()

    def render(threads: int) -> list[bytes]:
        rendering = render_variants(data, specs, limits, settings.blurhash_components, encode_threads=threads)
        return [variant.data for variant in rendering.variants]

    render(1)  # warm: imports, colour transforms, first allocations
    gc.collect()
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # the kernel's high-water mark restarts from the current RSS
    baseline = _status_kib("VmRSS")
    serial_bytes = render(1)
    peak_kib = _status_kib("VmHWM")
    timings: dict[int, dict[str, list[float]]] = {1: {"wall": [], "cpu": []}, 2: {"wall": [], "cpu": []}}
    for round_number in range(request["repeat"]):
        for threads in (1, 2) if round_number % 2 == 0 else (2, 1):
            wall, cpu = time.perf_counter(), time.process_time()
            outputs = render(threads)
            timings[threads]["wall"].append(time.perf_counter() - wall)
            timings[threads]["cpu"].append(time.process_time() - cpu)
            if outputs != serial_bytes:
                raise AssertionError(f"{request['path']}: {threads} encode threads changed the output bytes")
    ideal = [two_core_wall(*cpu_profile(render, render_module)) for _ in range(request["repeat"])]
    return {
        "ideal_2": statistics.median(ideal),
        "peak_mib": (peak_kib - baseline) / 1024,
        "process_peak_mib": peak_kib / 1024,
        "output_bytes": sum(len(b) for b in serial_bytes),
        "variants": len(serial_bytes),
        **{
            f"{kind}_{threads}": statistics.median(values[kind])
            for threads, values in timings.items()
            for kind in values
        },
    }


@dataclass(frozen=True)
class Measured:
    image: CorpusImage
    peak_mib: float
    process_peak_mib: float
    output_bytes: int
    variants: int
    cpu_1: float
    wall_1: float
    cpu_2: float
    wall_2: float
    ideal_2: float  # two cores to itself: from the serial CPU profile (two_core_wall)


# Where parallel encoding can matter: more than one large variant (the default profile has one).
THREE_LARGE = json.dumps(
    [
        {"name": "webp", "max": 2048, "format": "webp", "quality": 80},
        {"name": "jpeg", "max": 2048, "format": "jpeg", "quality": 80},
        {"name": "half", "max": 1024, "format": "webp", "quality": 80},
    ]
)
PARALLEL_CLASSES = ("jpeg_large", "jpeg_mid", "png_large", "webp")


def measure(image: CorpusImage, repeat: int, variants: str | None = None) -> Measured:
    request = json.dumps({"path": str(image.path), "repeat": repeat, "variants": variants})
    done = subprocess.run(
        [sys.executable, "-m", "bench.cost", "--worker"], input=request, capture_output=True, text=True, cwd=REPO
    )
    if done.returncode != 0:
        raise RuntimeError(f"{image.name}: {done.stderr.strip()[-2000:]}")
    return Measured(image, **json.loads(done.stdout))


# -- requests of one upload, counted from the code ----------------------------------------------------


def dynamodb_units(outputs: int) -> tuple[int, int]:
    """Write and read request units of one upload's record: created, claimed, completed, notified.

    Sizes come from the real item (records.to_item) of a production-like record with `outputs`
    variants, weighed by the local stack's ledger rules (devstack/ledger.py, AWS's item size and
    index write rules), which tests/test_capacity_e2e.py checks on the stack itself."""
    from boto3.dynamodb.types import TypeSerializer

    from chalicelib.domain import ImageRecord, OriginalInfo, Outcome, OutputInfo
    from chalicelib.records import to_item
    from devstack.ledger import IndexShape, item_size, read_units, write_units
    from devstack.resources import table_definition

    now = datetime(2026, 11, 29, tzinfo=UTC)
    image_id = "f" * 32
    pending = ImageRecord.pending(
        image_id,
        owner="0123456789ab:" + "u" * 36,
        profile="default",
        content_type="image/jpeg",
        input_bucket="imgpress-prod-input-123456789012-us-east-1",
        input_key=f"uploads/{image_id}",
        now=now,
        filename="IMG_0001.jpg",
        declared_size=4_000_000,
    )
    claimed = pending.claimed("c" * 32, "e" * 32, 4_000_000, now.timestamp() + 60, now, "r" * 36)
    outcome = Outcome(
        OriginalInfo(4_000_000, "JPEG", 6000, 4000),
        {
            f"variant{n}": OutputInfo(
                "webp", "image/webp", 2048, 1365, 300_000, "imgpress-prod-output-123456789012-us-east-1",
                f"processed/{image_id}/cccccccccccc/variant{n}.webp",
            )
            for n in range(outputs)
        },
        sha256="a" * 64,
        placeholders={"blurhash": "L" * 28, "thumbhash": "t" * 32, "dominant_color": "#808080", "lqip": "d" * 400},
    )  # fmt: skip
    completed = claimed.completed(outcome, now)
    notified = completed.marked_notified(now)
    serializer = TypeSerializer()
    items = [
        {name: serializer.serialize(value) for name, value in to_item(record).items()}
        for record in (pending, claimed, completed, notified)
    ]
    indexes = [
        IndexShape(
            index["IndexName"],
            tuple(key["AttributeName"] for key in index["KeySchema"]),
            tuple(index["Projection"].get("NonKeyAttributes", [])),
        )
        for index in table_definition()["GlobalSecondaryIndexes"]
    ]
    writes = 0.0
    for before, after in zip([None, *items], items):
        table, by_index = write_units(before, after, indexes, ("id",))
        writes += table + sum(sum(partitions.values()) for partitions in by_index.values())
    reads = read_units([item_size(items[-1])], consistent=True, per_item=True)  # the handler's consistent read
    return int(writes), int(reads)


def cost_per_image(measured: Measured, memory_mb: int, seconds: float) -> dict[str, float]:
    writes, reads = dynamodb_units(measured.variants)
    return {
        "lambda": PRICES["lambda_request"] + memory_mb / 1024 * seconds * PRICES["lambda_gb_second"],
        # The browser's POST of the original, one PUT per output; the handler's GET of the original.
        "s3_requests": (1 + measured.variants) * PRICES["s3_put"] + PRICES["s3_get"],
        "dynamodb": writes * PRICES["dynamodb_wru"] + reads * PRICES["dynamodb_rru"],
        "sns": PRICES["sns_publish"],
        "storage_month": measured.output_bytes / 1024**3 * PRICES["s3_gb_month"],
    }


# -- the report ---------------------------------------------------------------------------------------


def _load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _class_row(image_class: str, items: Sequence[Measured]) -> str:
    cpu = statistics.median(m.cpu_1 for m in items)
    ideal = statistics.median(m.ideal_2 for m in items)
    return (
        f"| {CLASSES[image_class]} | {len(items)} | {statistics.median(m.image.megapixels for m in items):.1f} | "
        f"{cpu:.3f} | {max(m.peak_mib for m in items):.0f} | {ideal:.3f} | {100 * (1 - ideal / cpu):.0f} % | "
        f"{statistics.median(m.wall_1 for m in items):.3f} | {statistics.median(m.wall_2 for m in items):.3f} |"
    )


def _dollar_row(image_class: str, items: Sequence[Measured]) -> str:
    cpu = statistics.median(m.cpu_1 for m in items)
    ideal = statistics.median(m.ideal_2 for m in items)
    typical = sorted(items, key=lambda m: m.cpu_1)[len(items) // 2]
    one = cost_per_image(typical, ONE_VCPU_MB, cpu + IO_SECONDS)
    two = cost_per_image(typical, TWO_VCPU_MB, ideal + IO_SECONDS)
    per_image_1 = sum(v for k, v in one.items() if k != "storage_month")
    per_image_2 = sum(v for k, v in two.items() if k != "storage_month")
    output_bytes = statistics.median(m.output_bytes for m in items)
    return (
        f"| {CLASSES[image_class]} | {ONE_VCPU_MB / 1024 * (cpu + IO_SECONDS):.3f} | {1000 * one['lambda']:.4f} | "
        f"{1000 * per_image_1:.4f} | {1e6 * per_image_1:.2f} | {1000 * per_image_2:.4f} | {1e6 * per_image_2:.2f} | "
        f"{output_bytes / 1024:.0f} | {1e6 * output_bytes / 1024**3 * PRICES['s3_gb_month']:.2f} |"
    )


def report(results: Sequence[Measured], parallel: Sequence[Measured], repeat: int, started: str, ended: str) -> str:
    by_class: dict[str, list[Measured]] = {}
    for result in results:
        by_class.setdefault(result.image.image_class, []).append(result)
    cpu_total, ideal_total = sum(m.cpu_1 for m in results), sum(m.ideal_2 for m in results)
    wall_total_1, wall_total_2 = sum(m.wall_1 for m in results), sum(m.wall_2 for m in results)
    writes, reads = dynamodb_units(2)
    fixed = cost_per_image(results[0], ONE_VCPU_MB, 0.0)
    return "\n".join(
        [
            "# What an image costs",
            "",
            "Produced by `python -m bench.cost` (bench/cost.py): each image in a fresh process, the default "
            f"profile (2048 px + 320 px WebP), {repeat} rounds; medians. Machine: {os.cpu_count()} cores, Python "
            f"{platform.python_version()}; load average {started} at the start, {ended} at the end (other work "
            "shares this machine).",
            "",
            "## Render time, memory, and parallel encoding",
            "",
            "*Render CPU s* is one serial render's CPU time: what one vCPU (1769 MB) spends. *Two vCPUs* is the "
            "wall time of the same render with variants encoded on a second thread and two cores to itself, "
            "computed from its serial CPU profile (the work between encodes and each encode, scheduled as the "
            "thread pool runs them), so the machine's other load does not blur it. *Measured* walls, serial and "
            "with two encode threads taking turns, share this machine's cores with that load. Peak MiB: above "
            "the process's resident memory before the render.",
            "",
            "| class | images | MP | render CPU s | peak MiB | two vCPUs s | saves | measured 1 thread s | measured 2 threads s |",
            "|---|---|---|---|---|---|---|---|---|",
            *(_class_row(image_class, items) for image_class, items in by_class.items()),
            "",
            f"All {len(results)} images: {cpu_total:.2f} CPU s one after the other, {ideal_total:.2f} s with two "
            f"vCPUs ({100 * (1 - ideal_total / cpu_total):.0f} % less); measured here {wall_total_1:.2f} s and "
            f"{wall_total_2:.2f} s. Outputs with two encode threads were byte-identical in every round.",
            "",
            "With three large variants (2048 px WebP, 2048 px JPEG, 1024 px WebP), where two encode threads have "
            "more than one big encode to share:",
            "",
            "| image | MP | render CPU s | two vCPUs s | saves | measured 1 thread s | measured 2 threads s |",
            "|---|---|---|---|---|---|---|",
            *(
                f"| {m.image.name} | {m.image.megapixels:.1f} | {m.cpu_1:.3f} | {m.ideal_2:.3f} | "
                f"{100 * (1 - m.ideal_2 / m.cpu_1):.0f} % | {m.wall_1:.3f} | {m.wall_2:.3f} |"
                for m in parallel
            ),
            "",
            "## Dollars per image class",
            "",
            f"Lambda duration = render CPU s at 1769 MB, or the two-vCPU wall at 3538 MB, plus {IO_SECONDS:g} s for "
            "the handler's AWS calls (an estimate: not measured here). Requests per upload: one Lambda invocation; "
            "S3: the browser's POST, one PUT per output, one GET of the original; DynamoDB: four writes of the "
            "record and its index entries, one consistent read; one SNS publish. Storage: the outputs, per month "
            "kept. Free tiers ignored.",
            "",
            "| class | GB-s at 1769 MB | Lambda $ / 1,000 | all $ / 1,000 at 1769 MB | all $ / 1,000,000 at 1769 MB | all $ / 1,000 at 3538 MB | all $ / 1,000,000 at 3538 MB | outputs KiB | storage $ / 1,000,000 images / month |",
            "|---|---|---|---|---|---|---|---|---|",
            *(_dollar_row(image_class, items) for image_class, items in by_class.items()),
            "",
            f"Every image, whatever its class: Lambda request ${1e6 * PRICES['lambda_request']:.2f} per million; S3 "
            f"requests ${1e6 * fixed['s3_requests']:.2f} per million images; DynamoDB {writes} WRU + {reads} RRU = "
            f"${1e6 * fixed['dynamodb']:.2f} per million; SNS ${1e6 * fixed['sns']:.2f} per million.",
            "",
            f"Prices (USD, us-east-1, read {PRICES_READ}): "
            + ", ".join(f"{name} {value:.10g}" for name, value in PRICES.items())
            + ".",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cost", description=__doc__)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--per-class", type=int, default=3, help="images per class (default %(default)s)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds of serial/parallel pairs per image")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "COST.md")
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(sys.stdin.read()))))
        return
    images = load(ensure(args.corpus))
    chosen: list[CorpusImage] = []
    for image_class in CLASSES:
        chosen += [image for image in images if image.image_class == image_class][: args.per_class]
    started = _load_average()
    results, parallel = [], []
    for image in chosen:
        results.append(measure(image, args.repeat))
        print(f"{image.name}: {results[-1].cpu_1:.3f} s CPU, {results[-1].wall_1:.3f} -> {results[-1].wall_2:.3f} s")
    for image_class in PARALLEL_CLASSES:
        for image in [i for i in chosen if i.image_class == image_class][:1]:
            parallel.append(measure(image, args.repeat, THREE_LARGE))
            print(f"{image.name}, three large variants: {parallel[-1].wall_1:.3f} -> {parallel[-1].wall_2:.3f} s")
    args.out.write_text(report(results, parallel, args.repeat, started, _load_average()))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
