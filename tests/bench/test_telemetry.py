"""bench/telemetry.py: both writers produce the same metrics, and a short run reports every figure."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import telemetry
from chalicelib import logs, metrics
from tests.loglines import captured


@pytest.fixture
def quiet() -> Iterator[None]:
    """telemetry.silence() rewires the functions' logger; `captured` puts it back afterwards."""
    with captured("INFO"):
        yield


def test_the_comparison_writes_the_metrics_chalicelib_writes(quiet: None) -> None:
    sink = telemetry.silence()
    record, timing, now = telemetry.finished_upload()
    metrics.upload_done(record, timing, now)
    logs.METRICS.info("done", extra={"fields": telemetry.handwritten_fields(record, timing, now)})
    ours, theirs = (json.loads(line) for line in sink.getvalue().splitlines())
    names = [[m["Name"] for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]] for line in (ours, theirs)]
    assert sorted(names[0]) == sorted(names[1])
    assert ours["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == theirs["_aws"]["CloudWatchMetrics"][0]["Dimensions"]


@pytest.mark.slow
def test_a_short_run_reports_the_cold_start_and_the_per_image_cost(quiet: None, tmp_path: Path) -> None:
    out = tmp_path / "TELEMETRY.md"
    telemetry.main(["--runs", "1", "--records", "20", "--rounds", "2", "--out", str(out)])
    text = out.read_text()
    assert len(re.findall(r"\| [\d.]+ ms \|", text)) == len(telemetry.PROBES)
    assert len(re.findall(r"\| [\d.]+ µs \| [\d.]+ µs \|", text)) == 2
