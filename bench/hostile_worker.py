"""Render one file as the Lambda handler does and print one JSON line: `python hostile_worker.py ROOT FILE`.

Run as a script, not a module, so that `chalicelib` is imported from ROOT: the benchmark can measure
another checkout (the code before the structure guards) with the same files. Where ROOT renders in a
child process (imaging/isolation.py), so does this, and the child's time and peak are the render's;
with --compare it is then rendered three times more each way, in this process and in a child, for
what the child costs (the medians). With --deadline SECONDS it is rendered under that deadline
(chalicelib/deadline.py) in this process and in a child, and the seconds until each stopped printed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Older checkouts (`--before`) had one Settings that insisted these were named.
NO_RESOURCES = {"INPUT_BUCKET": "-", "OUTPUT_BUCKET": "-", "TABLE_NAME": "-", "TOPIC_ARN": "-"}


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _settings() -> Any:
    """The default profile and decode limits, read the way the checkout at ROOT reads them."""
    try:
        from chalicelib.settings import imaging_settings

        return imaging_settings({})
    except ImportError:  # a checkout from before one settings reader (`--before`)
        from chalicelib.imaging.settings import ImagingSettings

        return ImagingSettings.from_env({})  # type: ignore[attr-defined]


def main(root: str, path: str, compare: bool = False) -> None:
    sys.path.insert(0, root)
    from chalicelib.errors import ImageRejected
    from chalicelib.imaging.render import render_variants

    settings = _settings()
    limits = settings.decode_limits()
    data = Path(path).read_bytes()

    def render() -> Any:
        return render_variants(data, settings.variants, limits, settings.blurhash_components)

    try:  # what pipeline.render_with_pillow does, where ROOT has it
        from chalicelib.imaging.decode import memory_needed, prepare_decoders
        from chalicelib.imaging.isolation import run_isolated

        prepare_decoders(limits.allowed_decoders)
        isolated = True
    except ImportError:
        isolated = False
    baseline = _status_kib("VmRSS")
    wall, own, children = time.perf_counter(), time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        rendering = run_isolated(render, limits.max_render_bytes) if isolated else render()
        outcome, pixels = "ok", rendering.source.width * rendering.source.height
    except ImageRejected as rejected:
        outcome, pixels = rejected.code, 0
    wall = time.perf_counter() - wall
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() - own + used.ru_utime + used.ru_stime - children.ru_utime - children.ru_stime
    # The peak of the process that rendered: the child's, or this one's (imports included).
    peak = max(_status_kib("VmHWM"), used.ru_maxrss)
    result = {
        "outcome": outcome,
        "wall": wall,
        "cpu": cpu,
        "pixels": pixels,
        "baseline_kib": baseline,
        "peak_kib": peak,
        "estimate_kib": _estimate(data, limits, memory_needed) // 1024 if isolated else 0,
    }
    if compare and isolated:
        result["direct_wall"] = _median_wall(render)
        result["isolated_wall"] = _median_wall(lambda: run_isolated(render, limits.max_render_bytes))
    print(json.dumps(result))


def _median_wall(render: Callable[[], Any], runs: int = 3) -> float:
    from chalicelib.errors import ImageRejected

    walls = []
    for _ in range(runs):
        started = time.perf_counter()
        with contextlib.suppress(ImageRejected):
            render()
        walls.append(time.perf_counter() - started)
    return statistics.median(walls)


def _estimate(data: bytes, limits: Any, memory_needed: Any) -> int:
    """decode.check_memory's estimate of the render's memory (0 for a file refused before it)."""
    from chalicelib.errors import ImageRejected
    from chalicelib.formats import sniff_format
    from chalicelib.imaging.decode import open_guarded
    from chalicelib.imaging.structure import check_structure

    container = sniff_format(data[:1024])
    unbounded = dataclasses.replace(limits, max_render_bytes=1 << 62)
    try:
        survey = check_structure(data, str(container))
        return int(memory_needed(survey, open_guarded(data, unbounded).size))
    except ImageRejected:
        return 0


def deadline(root: str, path: str, seconds: float) -> None:
    sys.path.insert(0, root)
    from chalicelib.deadline import Deadline, DeadlineExceeded
    from chalicelib.imaging.decode import prepare_decoders
    from chalicelib.imaging.isolation import run_isolated
    from chalicelib.imaging.render import render_variants

    settings = _settings()
    limits = settings.decode_limits()
    prepare_decoders(limits.allowed_decoders)
    data = Path(path).read_bytes()

    def render() -> Any:
        return render_variants(data, settings.variants, limits, settings.blurhash_components)

    stopped = {}
    for how, work in (("in_process", render), ("isolated", lambda: run_isolated(render, limits.max_render_bytes))):
        started = time.perf_counter()
        with contextlib.suppress(DeadlineExceeded), Deadline(seconds).enforced():
            work()
        stopped[how] = time.perf_counter() - started
    print(json.dumps(stopped))


if __name__ == "__main__":
    if sys.argv[3:4] == ["--deadline"]:
        deadline(sys.argv[1], sys.argv[2], float(sys.argv[4]))
    else:
        main(sys.argv[1], sys.argv[2], "--compare" in sys.argv[3:])
