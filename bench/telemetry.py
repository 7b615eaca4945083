"""What metrics and structured logs cost: `python -m bench.telemetry` -> bench/TELEMETRY.md.

Two candidates for writing CloudWatch's Embedded Metric Format: Powertools for AWS Lambda (Metrics),
what chalicelib/metrics.py uses, and a hand-written record (`handwritten_line` below, the comparison).
For each:
- the cold start: `import app` in a fresh interpreter as shipped (Powertools loads on the first
  record), what importing Powertools there would add, and the first record of a fresh process,
  which pays the lazy import;
- per image: the one JSON line of a finished upload (its log fields and nine metric values), written
  through the logger the functions use into memory, medians of repeated rounds.
"""

from __future__ import annotations

import argparse
import io
import logging
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.corpus import REPO
from bench.machine import load_average
from chalicelib import logs, metrics
from chalicelib.domain import ImageRecord, OriginalInfo, OutputInfo, Status

REPORT = REPO / "bench" / "TELEMETRY.md"
# Each probe prints the seconds its timed part took, in a fresh interpreter; the lazy import is
# what a process pays on its first metric record, the eager one what `import app` would pay more.
PROBES = {
    "`import app`, as shipped (Powertools not loaded)": "import time\nstarted = time.perf_counter()\nimport app",
    "Powertools Metrics imported after the app (what an eager import would add)": (
        "import app, time\nstarted = time.perf_counter()\nimport aws_lambda_powertools.metrics"
    ),
}
PROBES["the first metric record of a process (pays the lazy import)"] = """
import app, time
from bench.telemetry import finished_upload, silence
from chalicelib import metrics
silence()
record, timing, now = finished_upload()
started = time.perf_counter()
metrics.upload_done(record, timing, now)"""


def finished_upload() -> tuple[ImageRecord, metrics.Timing, datetime]:
    """A typical done record: a 3000x2000 JPEG and its two WebP variants, on its second attempt."""
    now = datetime.now(UTC)
    pending = ImageRecord.pending(
        "0123456789abcdef0123456789abcdef",
        owner="user-123",
        profile="default",
        content_type="image/jpeg",
        input_bucket="input",
        input_key="uploads/0123456789abcdef0123456789abcdef",
        now=now - timedelta(seconds=3),
    )
    outputs = {
        "web": OutputInfo("webp", "image/webp", 2048, 1365, 10770, "output", "processed/web.webp"),
        "thumb": OutputInfo("webp", "image/webp", 320, 213, 1080, "output", "processed/thumb.webp"),
    }
    record = replace(pending, status=Status.DONE, attempts=2, original=OriginalInfo(112766, "jpeg", 3000, 2000))
    record = replace(record, outputs=outputs)
    return record, metrics.Timing(now - timedelta(seconds=3), now - timedelta(seconds=1), 370.0), now


def silence() -> io.StringIO:
    """The functions' logger, JSON lines into memory (what a Lambda writes to stdout, minus the pipe)."""
    sink = io.StringIO()
    logger = logging.getLogger("imgpress")
    logger.handlers[:] = [logging.StreamHandler(sink)]
    logger.propagate = False
    logs.configure(logger, "INFO")
    return sink


def handwritten_fields(record: ImageRecord, timing: metrics.Timing, now: datetime) -> dict[str, Any]:
    """The fields of the line metrics.upload_done writes, its EMF part built by hand (the comparison only)."""
    values = {
        "ImagesDone": 1.0,
        "Attempts": float(record.attempts),
        "RenderTime": timing.render_ms,
        "UploadToFinal": (now - timing.uploaded_at).total_seconds() * 1000 if timing.uploaded_at else 0.0,
        "RetryWait": (timing.attempt_started - timing.uploaded_at).total_seconds() * 1000
        if timing.uploaded_at
        else 0.0,
        "BytesIn": float(record.original.bytes if record.original else 0),
        "BytesOut": float(sum(o.bytes for o in record.outputs.values())),
        "BytesSaved": 0.0,
        "OutputPixels": float(sum(o.width * o.height for o in record.outputs.values())),
    }
    dimensions = {"Stage": "local", "Function": "handle_upload", "Profile": record.profile}
    directive = {
        "Namespace": metrics.NAMESPACE,
        "Dimensions": [["Stage"], list(dimensions)],
        "Metrics": [{"Name": name, "Unit": metrics.METRICS[name]} for name in values],
    }
    return {
        "outcome": "done",
        "_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [directive]},
        **dimensions,
        **values,
        "image_id": record.id,
        "owner": logs.owner_hash(record.owner),
    }


def per_record_microseconds(write: Callable[[], Any], records: int, rounds: int) -> dict[str, float]:
    """Median and worst round of `rounds` rounds of `records` writes, in microseconds per record."""
    write()  # the lazy import, and warm caches
    per_round = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(records):
            write()
        per_round.append((time.perf_counter() - started) / records * 1e6)
    return {"median_us": statistics.median(per_round), "worst_round_us": max(per_round)}


def per_image(records: int, rounds: int) -> dict[str, dict[str, float]]:
    sink = silence()
    record, timing, now = finished_upload()

    def powertools() -> None:
        metrics.upload_done(record, timing, now)

    def handwritten() -> None:
        logs.METRICS.info("done", extra={"fields": handwritten_fields(record, timing, now)})

    measured = {
        "Powertools (chalicelib/metrics.py)": per_record_microseconds(powertools, records, rounds),
        "hand-written EMF": per_record_microseconds(handwritten, records, rounds),
    }
    sink.truncate(0)
    return measured


def cold_start_seconds(runs: int) -> dict[str, float]:
    """Median of each probe over `runs` fresh interpreters, the probes taking turns (so the load of
    a shared machine falls on all of them alike)."""
    timings: dict[str, list[float]] = {name: [] for name in PROBES}
    for _ in range(runs):
        for name, code in PROBES.items():
            timings[name].append(float(_run(f"{code}\nprint(time.perf_counter() - started)")))
    return {name: statistics.median(found) for name, found in timings.items()}


def _run(code: str) -> str:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, check=True, capture_output=True, text=True
    ).stdout


def report(cold: dict[str, float], images: dict[str, dict[str, float]], load: str) -> str:
    lines = [
        "# Metrics and structured logs: what they cost",
        "",
        "Written by `python -m bench.telemetry` (`make bench-telemetry`); each import and first record in a",
        f"fresh interpreter, medians. Load average (1, 5, 15 min) after measuring: {load}, on 2 cores.",
        "",
        "## Cold start",
        "",
        "| | median |",
        "|---|---|",
        *(f"| {name} | {seconds * 1000:.1f} ms |" for name, seconds in cold.items()),
        "",
        "## Per image",
        "",
        "One finished upload's line (log fields and nine metric values), through the functions' logger:",
        "",
        "| writer | median | worst round |",
        "|---|---|---|",
        *(f"| {name} | {m['median_us']:.0f} µs | {m['worst_round_us']:.0f} µs |" for name, m in images.items()),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="fresh interpreters per import figure")
    parser.add_argument("--records", type=int, default=2000, help="records per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=REPORT)
    args = parser.parse_args(argv)
    cold = cold_start_seconds(args.runs)
    images = per_image(args.records, args.rounds)
    args.out.write_text(report(cold, images, load_average()))
    print(args.out.read_text())


if __name__ == "__main__":
    main()
