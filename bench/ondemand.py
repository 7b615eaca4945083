"""On-demand variants: first-render latency next to the upload-time render, and what 1,000 cost.

For a few images of the corpus (one per class below; synthetic photos when there is no corpus):
the upload-time render (the default profile, both variants, as `handle_upload` renders it), then
first requests for on-demand variants through `transforms.Transforms` on the in-memory ports (the
signature check, the ledger's claim, the original's read, the isolated render, the store, the
ledger's end: everything but the AWS round trips), at 320 px WebP, 640 px AVIF, 1280 px WebP and
2048 px JPEG, then a second request for one of them (a hit: no render). Medians of `--repeat` runs,
one core. The cost is computed for `--memory-mb` (1769 MB: what a stage with on-demand variants
should give `api_handler`) with bench/cost.py's prices, and written to bench/ONDEMAND.md.

    python -m bench.ondemand [--repeat 3] [--memory-mb 1769]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.corpus import DEFAULT_CORPUS, REPO, CorpusImage, load
from bench.cost import IO_SECONDS, PRICES, PRICES_READ
from bench.machine import load_average

CLASSES = ("jpeg_large", "jpeg_mid", "png_large", "webp")
ASKS = ((320, "webp"), (640, "avif"), (1280, "webp"), (2048, "jpeg"))
# What one first render asks of AWS besides its Lambda time: S3 GET of the original, HEAD of the
# variant's key, PUT of the variant; DynamoDB: the record and the ledger entry read (strongly
# consistent, 1 unit each), the claim's transaction (3 items, 2 units each), the ledger's end (1).
FIRST_RENDER_REQUESTS = {"s3_get": 2, "s3_put": 1}
FIRST_RENDER_UNITS = {"dynamodb_rru": 2, "dynamodb_wru": 7}
API_GATEWAY_PER_MILLION = 3.50  # REST API requests, first 333 million a month (not in bench/cost.py)


def _sources(corpus: Path) -> list[tuple[str, bytes, str]]:
    """(label, bytes, content type) of one image per class, or synthetic photos without a corpus."""
    if corpus.is_dir() and any(corpus.iterdir()):
        found: list[CorpusImage] = load(corpus)
        chosen = [
            next(i for i in found if i.image_class == c) for c in CLASSES if any(i.image_class == c for i in found)
        ]
        kinds = {"png_large": "image/png", "webp": "image/webp"}
        return [
            (f"{i.name} ({i.width}x{i.height})", i.path.read_bytes(), kinds.get(i.image_class, "image/jpeg"))
            for i in chosen
        ]
    from PIL import Image

    made = []
    for width, height in ((6000, 4000), (3000, 2000)):
        buffer = io.BytesIO()
        Image.linear_gradient("L").resize((width, height)).convert("RGB").save(buffer, "JPEG", quality=85)
        made.append((f"synthetic gradient JPEG ({width}x{height})", buffer.getvalue(), "image/jpeg"))
    return made


def _median_seconds(work: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(data: bytes, content_type: str, repeat: int) -> dict[str, float]:
    from chalicelib.pipeline import render_with_pillow as upload_render
    from chalicelib.settings import Settings
    from chalicelib.signing import SigningKeys
    from chalicelib.transforms import Transforms
    from tests.conftest import ENV
    from tests.fakes import FakePorts, InMemoryObjectStore
    from tests.test_transforms import Rig

    settings = Settings.from_env(ENV)
    results = {
        "upload": _median_seconds(lambda: upload_render(data, settings.imaging.variants, settings.imaging), repeat)
    }
    rig = Rig(settings)
    record = rig.done_image(data, content_type)
    link = rig.link(record)
    query = dict(part.split("=", 1) for part in link.split("?", 1)[1].split("&"))
    keys = SigningKeys.parse("k1:" + "s" * 40, "TRANSFORM_KEYS")

    def first(width: int, fmt: str) -> None:
        ports = replace(rig.ports, transforms=type(rig.ports.transforms)(), store=_copy(rig.ports.store))
        Transforms(settings, ports, keys).serve(record.id, f"{width}.{fmt}", query, None)

    for width, fmt in ASKS:
        results[f"{width}.{fmt}"] = _median_seconds(lambda: first(width, fmt), repeat)
    ports = replace(rig.ports, transforms=type(rig.ports.transforms)(), store=_copy(rig.ports.store))
    served = Transforms(settings, ports, keys)
    served.serve(record.id, "320.webp", query, None)
    results["hit"] = _median_seconds(lambda: served.serve(record.id, "320.webp", query, None), max(repeat, 20))
    assert isinstance(ports, FakePorts) and isinstance(ports.store, InMemoryObjectStore)
    return results


def _copy(store: Any) -> Any:
    from tests.fakes import InMemoryObjectStore

    copied = InMemoryObjectStore(store.output_bucket)
    copied.objects = dict(store.objects)
    return copied


def cost_per_thousand(seconds: float, memory_mb: int) -> float:
    lambda_cost = (
        PRICES["lambda_request"].each + memory_mb / 1024 * (seconds + IO_SECONDS) * PRICES["lambda_gb_second"].each
    )
    requests = sum(count * PRICES[name].each for name, count in FIRST_RENDER_REQUESTS.items())
    units = sum(count * PRICES[name].each for name, count in FIRST_RENDER_UNITS.items())
    return 1000 * (lambda_cost + requests + units + API_GATEWAY_PER_MILLION / 1e6)


def report(rows: list[tuple[str, dict[str, float]]], memory_mb: int, repeat: int, loads: tuple[str, str]) -> str:
    columns = ["upload", *(f"{w}.{f}" for w, f in ASKS)]
    lines = [
        "# On-demand variants: first render and cost",
        "",
        f"`make bench-ondemand` (`python -m bench.ondemand`), medians of {repeat} runs, one core of this 2-core",
        f"machine (load average {loads[0]} at the start, {loads[1]} at the end). `upload` is the upload-time",
        "render of the default profile (2048 px and 320 px WebP); the others are an on-demand variant's",
        "first request through `transforms.Transforms` on in-memory ports: claim, read, isolated render,",
        "store, record (AWS round trips not included: about 10 ms each, 6 of them). Seconds:",
        "",
        "| image | " + " | ".join(columns) + " | hit |",
        "|---|" + "---|" * (len(columns) + 1),
    ]
    for label, result in rows:
        cells = [f"{result[c]:.3f}" for c in columns] + [f"{result['hit'] * 1000:.2f} ms"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Cost per 1,000 first renders at `api_handler` {memory_mb} MB (USD; Lambda duration + request, S3 GET",
        "of the original, HEAD and PUT of the variant, 2 DynamoDB read and 7 write units, the API Gateway",
        f"request at ${API_GATEWAY_PER_MILLION:.2f} per million; prices of bench/cost.py, read {PRICES_READ}):",
        "",
        "| image | " + " | ".join(f"{w}.{f}" for w, f in ASKS) + " |",
        "|---|" + "---|" * len(ASKS),
    ]
    for label, result in rows:
        lines.append(
            f"| {label} | "
            + " | ".join(f"${cost_per_thousand(result[f'{w}.{f}'], memory_mb):.4f}" for w, f in ASKS)
            + " |"
        )
    lines += [
        "",
        "A hit costs no render: through the API, one Lambda request and two reads (about $0.005 per",
        "1,000 with API Gateway); behind the CDN, CloudFront's request and byte prices only.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ondemand", description=__doc__)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory-mb", type=int, default=1769)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "ONDEMAND.md")
    args = parser.parse_args(argv)
    started = load_average()
    rows = []
    for label, data, content_type in _sources(args.corpus):
        rows.append((label, measure(data, content_type, args.repeat)))
        print(label, {k: round(v, 3) for k, v in rows[-1][1].items()}, flush=True)
    args.out.write_text(report(rows, args.memory_mb, args.repeat, (started, load_average())))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
