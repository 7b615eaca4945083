"""Render one file as the Lambda handler does and print one JSON line: `python hostile_worker.py ROOT FILE`.

Run as a script, not a module, so that `chalicelib` is imported from ROOT: the benchmark can measure
another checkout (the code before the structure guards) with the same files.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

# Older checkouts (`--before`) had one Settings that insisted these were named.
NO_RESOURCES = {"INPUT_BUCKET": "-", "OUTPUT_BUCKET": "-", "TABLE_NAME": "-", "TOPIC_ARN": "-"}


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def main(root: str, path: str) -> None:
    sys.path.insert(0, root)
    from chalicelib.errors import ImageRejected
    from chalicelib.imaging.render import render_variants

    try:
        from chalicelib.settings import imaging_settings

        settings = imaging_settings({})  # the default profile and decode limits
    except ImportError:  # a checkout from before one settings reader (`--before`)
        from chalicelib.settings import Settings

        settings = Settings.from_env(NO_RESOURCES).imaging
    data = Path(path).read_bytes()
    baseline = _status_kib("VmRSS")
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        # What pipeline._render_with_pillow calls.
        rendering = render_variants(data, settings.variants, settings.decode_limits(), settings.blurhash_components)
        outcome, pixels = "ok", rendering.source.width * rendering.source.height
    except ImageRejected as rejected:
        outcome, pixels = rejected.code, 0
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = _status_kib("VmHWM")  # the process's peak RSS, imports included
    result = {
        "outcome": outcome,
        "wall": wall,
        "cpu": cpu,
        "pixels": pixels,
        "baseline_kib": baseline,
        "peak_kib": peak,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:3])
