"""Where the whole default job spends its time, and what each candidate knob buys.

Knobs that are configuration (WebP effort) run through imgpress itself; knobs inside the imaging
core (draft, resampling filter, reducing_gap) are measured on Pillow directly, on the same steps
imgpress performs, because the core is not ours to edit from the benchmark.
"""

from __future__ import annotations

import io
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.corpus import REPO, CorpusImage
from bench.quality import Reference
from bench.run import Bench, Job, Measurement, call_worker


def stage_profile(image: CorpusImage, job: Job, repeat: int) -> dict[str, float]:
    """Seconds per run of imgpress's job on `image`, by stage (decode, resize, encode, colour, ...)."""
    request = {
        "mode": "profile",
        "engine": "imgpress",
        "path": str(image.path),
        "variants": job.variants,
        "repeat": repeat,
    }
    return call_worker(request)


def effort_sweep(bench: Bench, images: Sequence[CorpusImage], job: Job, efforts: Sequence[int]) -> list[Measurement]:
    """The job through imgpress with every variant's `effort` (WebP method) set to each value."""
    return [
        bench.measure(image, "imgpress", job.with_effort(effort), label=f"effort={effort}")
        for effort in efforts
        for image in images
    ]


def allocator_sweep(
    bench: Bench, image: CorpusImage, job: Job, settings: dict[str, dict[str, str]]
) -> list[Measurement]:
    """The job through imgpress under Pillow's allocator environment variables (read at import)."""
    return [bench.measure(image, "imgpress", job, label=label, env=env) for label, env in settings.items()]


@dataclass(frozen=True)
class ResampleResult:
    label: str
    seconds: float
    ssim: float


def _decode_and_resize(
    data: bytes, size: tuple[int, int], draft: bool, resample: Any, reducing_gap: float | None
) -> Any:
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    if draft:
        image.draft(image.mode, size)
    image.load()
    return image.resize(size, resample, reducing_gap=reducing_gap)


def resample_sweep(image: CorpusImage, box: int, repeat: int) -> list[ResampleResult]:
    """Decode + resize of an upright JPEG to the `box` variant size, each way, with lossless SSIM."""
    from PIL import Image

    data = image.path.read_bytes()
    reference = Reference.from_bytes(data)
    factor = min(box / image.width, box / image.height, 1.0)
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    filters = Image.Resampling
    ways: dict[str, Callable[[], Any]] = {
        "full decode, LANCZOS (naive)": lambda: _decode_and_resize(data, size, False, filters.LANCZOS, None),
        "full decode, LANCZOS, reducing_gap=3": lambda: _decode_and_resize(data, size, False, filters.LANCZOS, 3.0),
        "draft, LANCZOS (imgpress, progressive JPEG)": lambda: _decode_and_resize(
            data, size, True, filters.LANCZOS, None
        ),
        "draft, BICUBIC": lambda: _decode_and_resize(data, size, True, filters.BICUBIC, None),
        "draft, HAMMING (imgpress, baseline JPEG)": lambda: _decode_and_resize(data, size, True, filters.HAMMING, None),
        "draft, BILINEAR": lambda: _decode_and_resize(data, size, True, filters.BILINEAR, None),
    }
    results = []
    for label, way in ways.items():
        pixels = way()
        seconds = []
        for _ in range(repeat):
            started = time.process_time()
            way()
            seconds.append(time.process_time() - started)
        lossless = io.BytesIO()
        pixels.save(lossless, format="PNG", compress_level=1)
        results.append(ResampleResult(label, statistics.median(seconds), reference.ssim(lossless.getvalue())))
    return results


def import_time(runs: int) -> dict[str, Any]:
    """Wall time of `python -c "import app"` (the Lambda cold-start import), and what it loaded."""
    probe = "import sys, app; print(sorted(m for m in ('PIL', 'boto3', 'botocore.client') if m in sys.modules))"

    def timed(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True)
        return time.perf_counter() - started

    heavy = subprocess.run([sys.executable, "-c", probe], cwd=REPO, check=True, capture_output=True, text=True)
    timed("import app")
    return {
        "import_app_seconds": statistics.median(timed("import app") for _ in range(runs)),
        "bare_python_seconds": statistics.median(timed("pass") for _ in range(runs)),
        "heavy_modules_loaded": json.loads(heavy.stdout.strip().replace("'", '"')),
    }
