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
import math
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
# USD, us-east-1. Sources (read on PRICES_READ) are listed in the report and docs/deploy/cost-per-image.md.
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


def worker(request: dict[str, Any]) -> dict[str, Any]:
    """One image in this (fresh) process: peak memory of a serial render, then paired timings."""
    from chalicelib.imaging.render import render_variants
    from chalicelib.imaging.settings import ImagingSettings

    settings = ImagingSettings.from_env({})
    specs, limits = settings.variants, settings.decode_limits()
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
    return {
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


def measure(image: CorpusImage, repeat: int) -> Measured:
    request = json.dumps({"path": str(image.path), "repeat": repeat})
    done = subprocess.run(
        [sys.executable, "-m", "bench.cost", "--worker"], input=request, capture_output=True, text=True, cwd=REPO
    )
    if done.returncode != 0:
        raise RuntimeError(f"{image.name}: {done.stderr.strip()[-2000:]}")
    return Measured(image, **json.loads(done.stdout))


# -- requests of one upload, counted from the code ----------------------------------------------------


def dynamodb_units(outputs: int) -> tuple[int, int]:
    """Write and read request units of one upload's record: created, claimed, completed, notified.

    Sizes come from the real item (records.to_item) of a record with `outputs` variants; each write
    also writes every index entry it adds or changes (a key change is a delete and a put)."""
    from chalicelib.domain import ImageRecord, OriginalInfo, Outcome, OutputInfo
    from chalicelib.records import INDEX_KEYS, index_attributes, to_item

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
        placeholders={"blurhash": "L" * 28, "thumbhash": "t" * 32, "dominant_colour": "#808080"},
    )  # fmt: skip
    completed = claimed.completed(outcome, now)
    notified = completed.marked_notified(now)
    writes, before = 0, {}
    for record in (pending, claimed, completed, notified):
        item = to_item(record)
        writes += math.ceil(len(json.dumps(item, default=str)) / 1024)
        after = index_attributes(record)
        for index, (partition, _sort) in INDEX_KEYS.items():
            old, new = before.get(partition), after.get(partition)
            if new is not None and (old != new or record is pending or "updated_at" in INDEX_KEYS[index]):
                writes += 2 if old is not None and old != new else 1
            elif old is not None and new is None:
                writes += 1
        before = after
    reads = math.ceil(len(json.dumps(to_item(notified), default=str)) / 4096)  # the handler's consistent read
    return writes, reads


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


def report(results: Sequence[Measured], repeat: int, started: str, ended: str) -> str:
    by_class: dict[str, list[Measured]] = {}
    for result in results:
        by_class.setdefault(result.image.image_class, []).append(result)
    lines = [
        "# What an image costs",
        "",
        "Produced by `python -m bench.cost` (bench/cost.py): each image in a fresh process, the default "
        f"profile (2048 px + 320 px WebP), {repeat} rounds of serial and 2-thread encodes taking turns, "
        f"medians. Machine: {os.cpu_count()} cores, Python {platform.python_version()}; load average "
        f"{started} at the start, {ended} at the end (other work shares this machine).",
        "",
        "## Render time, memory, and parallel encoding",
        "",
        "| class | images | MP | render CPU s | peak MiB | wall 1 thread s | wall 2 threads s | 2 threads saves | CPU 2 threads s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for image_class, items in by_class.items():
        wall_1 = statistics.median(m.wall_1 for m in items)
        wall_2 = statistics.median(m.wall_2 for m in items)
        lines.append(
            f"| {CLASSES[image_class]} | {len(items)} | {statistics.median(m.image.megapixels for m in items):.1f} | "
            f"{statistics.median(m.cpu_1 for m in items):.3f} | {max(m.peak_mib for m in items):.0f} | "
            f"{wall_1:.3f} | {wall_2:.3f} | {100 * (1 - wall_2 / wall_1):.0f} % | "
            f"{statistics.median(m.cpu_2 for m in items):.3f} |"
        )
    total_1 = sum(m.wall_1 for m in results)
    total_2 = sum(m.wall_2 for m in results)
    lines += [
        "",
        f"All {len(results)} images: {total_1:.2f} s one after the other, {total_2:.2f} s with two encode "
        f"threads ({100 * (1 - total_2 / total_1):.0f} % less wall time); outputs byte-identical.",
        "",
        "## Dollars per image class",
        "",
        f"Lambda duration = render CPU s (1769 MB, one vCPU) or the 2-thread wall s (3538 MB, two vCPUs), plus "
        f"{IO_SECONDS:g} s for the handler's AWS calls (not measured here). Requests per upload: 1 Lambda "
        "invocation; S3: the browser's POST and one PUT per output, one GET of the original; DynamoDB: four "
        "writes of the record and its index entries, one consistent read; one SNS publish. Storage: the "
        "outputs, per month kept. Free tiers ignored.",
        "",
        "| class | GB-s 1769 MB | $ / 1,000 at 1769 MB | $ / 1,000,000 at 1769 MB | $ / 1,000 at 3538 MB | outputs KiB | storage $ / 1,000 images / month |",
        "|---|---|---|---|---|---|---|",
    ]
    for image_class, items in by_class.items():
        cpu = statistics.median(m.cpu_1 for m in items)
        wall_2 = statistics.median(m.wall_2 for m in items)
        typical = items[len(items) // 2]
        one = cost_per_image(typical, ONE_VCPU_MB, cpu + IO_SECONDS)
        two = cost_per_image(typical, TWO_VCPU_MB, wall_2 + IO_SECONDS)
        per_image_1 = sum(v for k, v in one.items() if k != "storage_month")
        per_image_2 = sum(v for k, v in two.items() if k != "storage_month")
        output_kib = statistics.median(m.output_bytes for m in items) / 1024
        lines.append(
            f"| {CLASSES[image_class]} | {ONE_VCPU_MB / 1024 * (cpu + IO_SECONDS):.3f} | {1000 * per_image_1:.4f} | "
            f"{1e6 * per_image_1:.2f} | {1000 * per_image_2:.4f} | {output_kib:.0f} | "
            f"{1000 * statistics.median(m.output_bytes for m in items) / 1024**3 * PRICES['s3_gb_month']:.5f} |"
        )
    writes, reads = dynamodb_units(2)
    sample = cost_per_image(results[0], ONE_VCPU_MB, IO_SECONDS)
    lines += [
        "",
        f"Fixed part of every image, whatever its class: Lambda request ${1e6 * PRICES['lambda_request']:.2f} per "
        f"million; S3 requests ${1e6 * sample['s3_requests']:.2f} per million images; DynamoDB {writes} WRU + "
        f"{reads} RRU = ${1e6 * sample['dynamodb']:.2f} per million; SNS ${1e6 * sample['sns']:.2f} per million.",
        "",
        f"Prices (USD, us-east-1, read {PRICES_READ}): "
        + ", ".join(f"{name} {value:.10g}" for name, value in PRICES.items())
        + ".",
        "",
    ]
    return "\n".join(lines)


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
    results = []
    for image in chosen:
        results.append(measure(image, args.repeat))
        print(
            f"{image.name}: {results[-1].cpu_1:.3f} s CPU, {results[-1].wall_1:.3f} -> {results[-1].wall_2:.3f} s wall",
            flush=True,
        )
    args.out.write_text(report(results, args.repeat, started, _load_average()))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
