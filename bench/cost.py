"""What one image costs on AWS, from measurements on the corpus: `python -m bench.cost` -> bench/COST.md.

Per image class (bench/corpus.py), each image in a fresh process: the default profile's render CPU
time and peak memory, then the wall time of the same render with the variants encoded one after the
other (1 vCPU, Lambda's 1769 MB) and in parallel on two threads (2 vCPUs from 3538 MB), the two taking
turns so the machine's other load hits both alike. The parallel outputs are checked byte for byte.

The dollars come from those numbers, the cost vector of one upload (devstack/cost_vector.py: the
requests and DynamoDB units the local stack measures for it) and the published prices in PRICES
(us-east-1, x86, on-demand), each with the page it was read from on PRICES_READ.
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
from pathlib import Path
from typing import Any

from bench.corpus import CLASSES, DEFAULT_CORPUS, REPO, CorpusImage, ensure, load
from bench.machine import load_average, reset_peak_rss, status_kib
from chalicelib.settings import MB_PER_VCPU, imaging_settings
from devstack.cost_vector import UPLOAD

PRICES_READ = "2026-11-29"


@dataclass(frozen=True)
class Price:
    """A published price in USD, us-east-1, x86, on-demand, as read on PRICES_READ."""

    what: str
    usd: float  # for `count` of them
    source: str  # the page it was read from, as Markdown
    count: int = 1

    @property
    def each(self) -> float:
        return self.usd / self.count

    def __str__(self) -> str:
        whole, cents = f"{self.usd:.10f}".rstrip("0").split(".")
        count = "million" if self.count == 1_000_000 else f"{self.count:,}"
        return f"${whole}.{cents:0<2}" + ("" if self.count == 1 else f" per {count}")


_LAMBDA = (
    "AWS Lambda pricing, as transcribed in [api-evangelist/aws-lambda plans]"
    "(https://raw.githubusercontent.com/api-evangelist/aws-lambda/refs/heads/main/plans/aws-lambda-plans-pricing.yml) "
    "(read from aws.amazon.com/lambda/pricing 2026-09-20) and [Artillery's Lambda price table]"
    "(https://app.unpkg.com/artillery@2.0.28/files/lib/platform/aws-lambda/prices.js)"
)
_S3_REQUESTS = "[S3 request fees explained](https://c3x.dev/blog/s3-request-fees-explained)"
_DYNAMODB = (
    "[DynamoDB pricing](https://airbyte.com/data-engineering-resources/dynamodb-pricing); AWS's [on-demand post]"
    "(https://aws.amazon.com/ko/blogs/aws/amazon-dynamodb-on-demand-no-capacity-planning-and-pay-per-request-pricing) "
    "notes the reduced on-demand prices (updated 2025-01-31)"
)
PRICES = {
    "lambda_gb_second": Price("Lambda duration, x86, per GB-second", 0.0000166667, _LAMBDA),
    "lambda_request": Price("Lambda requests", 0.20, _LAMBDA, 1_000_000),
    "s3_put": Price("S3 Standard PUT, COPY, POST, LIST", 0.005, _S3_REQUESTS, 1_000),
    "s3_get": Price("S3 Standard GET, HEAD", 0.0004, _S3_REQUESTS, 1_000),
    "s3_gb_month": Price(
        "S3 Standard storage, per GB-month (first 50 TB)",
        0.023,
        "[Amazon S3 pricing explained, March 2026](https://cloudburn.io/blog/amazon-s3-pricing)",
    ),
    "dynamodb_wru": Price("DynamoDB on-demand write request units", 0.625, _DYNAMODB, 1_000_000),
    "dynamodb_rru": Price("DynamoDB on-demand read request units", 0.125, _DYNAMODB, 1_000_000),
    "sns_publish": Price(
        "SNS publishes (standard topics)",
        0.50,
        "[Amazon SNS pricing (2026-06-13)](https://www.factualminds.com/blog/amazon-sns-pricing-publishes-fanout-protocols/)",
        1_000_000,
    ),
    "sqs_request": Price(
        "SQS requests (standard queues; reprocessing only)",
        0.40,
        "[SQS and SNS cost optimisation](https://awsnegotiations.com/sqs-sns-cost-optimization.html)",
        1_000_000,
    ),
}
# What each request of the upload's vector is billed as.
REQUEST_PRICES = {
    "s3:PostObject": "s3_put",
    "s3:PutObject": "s3_put",
    "s3:GetObject": "s3_get",
    "sns:Publish": "sns_publish",
}
ONE_VCPU_MB, TWO_VCPU_MB = MB_PER_VCPU, 2 * MB_PER_VCPU
# Not measured here: the handler's AWS calls around the render (GET the original, PUT each output,
# four DynamoDB writes and a read, one SNS publish), about 10 ms each inside a region.
IO_SECONDS = 0.08


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
    from chalicelib.imaging.specs import parse_variants

    settings = imaging_settings({})
    specs = parse_variants(request["variants"]) if request.get("variants") else settings.variants
    limits = settings.decode_limits()
    data = Path(request["path"]).read_bytes()

    def render(threads: int) -> list[bytes]:
        rendering = render_variants(data, specs, limits, settings.blurhash_components, encode_threads=threads)
        return [variant.data for variant in rendering.variants]

    render(1)  # warm: imports, colour transforms, first allocations
    gc.collect()
    reset_peak_rss()
    baseline = status_kib("VmRSS")
    serial_bytes = render(1)
    peak_kib = status_kib("VmHWM")
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


# -- the dollars ------------------------------------------------------------------------------------


def cost_per_image(measured: Measured, memory_mb: int, seconds: float) -> dict[str, float]:
    """One upload's dollars: its Lambda invocation, the requests and DynamoDB units of its vector, and
    a month of its outputs in S3."""
    requests = {
        name: count * PRICES[REQUEST_PRICES[name]].each
        for name, count in UPLOAD.requests.items()
        if not name.startswith("dynamodb:")  # billed by their units
    }
    return {
        "lambda": PRICES["lambda_request"].each + memory_mb / 1024 * seconds * PRICES["lambda_gb_second"].each,
        "s3_requests": sum(dollars for name, dollars in requests.items() if name.startswith("s3:")),
        "dynamodb": UPLOAD.write_units * PRICES["dynamodb_wru"].each + UPLOAD.read_units * PRICES["dynamodb_rru"].each,
        "sns": requests["sns:Publish"],
        "storage_month": measured.output_bytes / 1024**3 * PRICES["s3_gb_month"].each,
    }


# -- the report ---------------------------------------------------------------------------------------


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
        f"{output_bytes / 1024:.0f} | {1e6 * output_bytes / 1024**3 * PRICES['s3_gb_month'].each:.2f} |"
    )


def report(results: Sequence[Measured], parallel: Sequence[Measured], repeat: int, started: str, ended: str) -> str:
    by_class: dict[str, list[Measured]] = {}
    for result in results:
        by_class.setdefault(result.image.image_class, []).append(result)
    cpu_total, ideal_total = sum(m.cpu_1 for m in results), sum(m.ideal_2 for m in results)
    wall_total_1, wall_total_2 = sum(m.wall_1 for m in results), sum(m.wall_2 for m in results)
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
            f"Every image, whatever its class: Lambda request ${1e6 * PRICES['lambda_request'].each:.2f} per million; S3 "
            f"requests ${1e6 * fixed['s3_requests']:.2f} per million images; DynamoDB {UPLOAD.write_units:g} WRU + {UPLOAD.read_units:g} RRU = "
            f"${1e6 * fixed['dynamodb']:.2f} per million; SNS ${1e6 * fixed['sns']:.2f} per million.",
            "",
            *price_table(),
            "",
        ]
    )


def price_table() -> list[str]:
    return [
        f"Prices (USD, us-east-1, x86, on-demand, read {PRICES_READ}):",
        "",
        "| item | price | source |",
        "|---|---|---|",
        *(f"| {price.what} | {price} | {price.source} |" for price in PRICES.values()),
    ]


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
    started = load_average()
    results, parallel = [], []
    for image in chosen:
        results.append(measure(image, args.repeat))
        print(f"{image.name}: {results[-1].cpu_1:.3f} s CPU, {results[-1].wall_1:.3f} -> {results[-1].wall_2:.3f} s")
    for image_class in PARALLEL_CLASSES:
        for image in [i for i in chosen if i.image_class == image_class][:1]:
            parallel.append(measure(image, args.repeat, THREE_LARGE))
            print(f"{image.name}, three large variants: {parallel[-1].wall_1:.3f} -> {parallel[-1].wall_2:.3f} s")
    args.out.write_text(report(results, parallel, args.repeat, started, load_average()))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
