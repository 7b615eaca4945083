"""Benchmark work in a fresh process: `python -m bench.worker` reads a JSON request on stdin and
prints one JSON result line. Modes: `measure` (one engine, one image), `paired` (several engines
taking turns on one image, for ratios too close to call from separate processes), `batch` (one pass
over many images, for throughput) and `profile` (where imgpress's time goes, by Pillow primitive).

In `measure`, the first run in the process gives the peak RSS (the kernel's high-water mark is reset to the
current RSS just before it, after the imports and with the source bytes already in memory, so the
peak is what processing itself costs); the next `repeat` runs give the median time.
"""

from __future__ import annotations

import cProfile
import gc
import json
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.engines import ENGINES, Output
from bench.machine import reset_peak_rss, status_kib
from chalicelib.imaging.specs import parse_variants


def measure(request: dict[str, Any]) -> dict[str, Any]:
    engine = ENGINES[request["engine"]]()
    engine.prepare()
    specs = parse_variants(request["variants"])
    data = Path(request["path"]).read_bytes()
    gc.collect()
    reset_peak_rss()
    baseline_kib = status_kib("VmRSS")
    outputs = engine.run(data, specs)
    peak_kib = status_kib("VmHWM")
    walls, cpus = [], []
    for _ in range(request["repeat"]):
        wall, cpu = time.perf_counter(), time.process_time()
        outputs = engine.run(data, specs)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {
        "seconds": statistics.median(walls),
        "cpu_seconds": statistics.median(cpus),
        "peak_rss_mib": (peak_kib - baseline_kib) / 1024,
        "process_peak_rss_mib": peak_kib / 1024,
        "outputs": _write(outputs, Path(request["out_dir"])),
    }


def paired(request: dict[str, Any]) -> dict[str, Any]:
    """CPU seconds of every run of each engine, the engines taking turns in one process.

    Separate processes differ by a few percent (heap layout, the host's other tenants) even when
    they run the same calls; taking turns in one process cancels that, and the order flips every
    round so neither engine always runs after the other.
    """
    engines = {name: ENGINES[name]() for name in request["engines"]}
    specs = parse_variants(request["variants"])
    data = Path(request["path"]).read_bytes()
    for engine in engines.values():
        engine.prepare()
        engine.run(data, specs)  # warm: lazy imports, colour transforms, first allocations
    cpus: dict[str, list[float]] = {name: [] for name in engines}
    order = list(engines)
    for round_number in range(request["rounds"]):
        for name in order if round_number % 2 == 0 else reversed(order):
            gc.collect()
            cpu = time.process_time()
            engines[name].run(data, specs)
            cpus[name].append(time.process_time() - cpu)
    return {"cpu_seconds": cpus}


def batch(request: dict[str, Any]) -> dict[str, Any]:
    """One pass of the job over every path; only the processing is timed, not process start-up."""
    engine = ENGINES[request["engine"]]()
    engine.prepare()
    specs = parse_variants(request["variants"])
    busy = 0.0
    for path in request["paths"]:
        data = Path(path).read_bytes()
        started = time.perf_counter()
        engine.run(data, specs)
        busy += time.perf_counter() - started
    return {"seconds": busy}


# Pillow's C entry points, as cProfile names them, grouped into pipeline stages.
_STAGES = (
    ("decode", ("'decode' of 'ImagingDecoder'",)),
    ("resize", ("'resize' of 'ImagingCore'", "'reduce' of 'ImagingCore'")),
    ("encode", ("WebPEncode", "'encode' of 'ImagingEncoder'", "encode_to_file", "AvifEncoder")),
    ("colour", ("_imagingcms", "ImageCms")),
    (
        "convert/copy",
        (
            "'convert' of 'ImagingCore'",
            "'copy' of 'ImagingCore'",
            "'paste' of 'ImagingCore'",
            "'getextrema' of 'ImagingCore'",
            "'transpose' of 'ImagingCore'",
        ),
    ),
)


def profile(request: dict[str, Any]) -> dict[str, Any]:
    """Where one engine's time goes, summed over `repeat` warm runs and split by stage."""
    engine = ENGINES[request["engine"]]()
    engine.prepare()
    specs = parse_variants(request["variants"])
    data = Path(request["path"]).read_bytes()
    engine.run(data, specs)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(request["repeat"]):
        engine.run(data, specs)
    profiler.disable()
    totals = {stage: 0.0 for stage, _ in _STAGES} | {"python and other": 0.0}
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    for (filename, _line, function), (_calls, _primitive, own_seconds, _cumulative, _callers) in stats.items():
        where = f"{filename}:{function}"
        stage = next((name for name, marks in _STAGES if any(mark in where for mark in marks)), "python and other")
        totals[stage] += own_seconds
    return {stage: seconds / request["repeat"] for stage, seconds in totals.items()}


MODES = {"measure": measure, "paired": paired, "batch": batch, "profile": profile}


def _write(outputs: list[Output], out_dir: Path) -> list[dict[str, Any]]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for output in outputs:
        path = out_dir / f"{output.name}.{output.format}"
        path.write_bytes(output.data)
        written.append(
            {
                "name": output.name,
                "format": output.format,
                "width": output.width,
                "height": output.height,
                "bytes": len(output.data),
                "path": str(path),
            }
        )
    return written


if __name__ == "__main__":
    job = json.load(sys.stdin)
    print(json.dumps(MODES[job["mode"]](job)))
