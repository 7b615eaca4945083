"""devstack/metrics.py: the stack's CloudWatch sums EMF records per metric and dimension set, as the
specification reads them, and ignores every other line."""

from __future__ import annotations

import json
from typing import Any

from devstack.metrics import METRICS_PATH, MetricsEndpoint, MetricStore


def emf(values: dict[str, Any], **dimensions: str) -> str:
    directive = {
        "Namespace": "imgpress",
        "Dimensions": [["Stage"], ["Stage", *dimensions]],
        "Metrics": [{"Name": name, "Unit": "Milliseconds"} for name in values],
    }
    return json.dumps(
        {"_aws": {"Timestamp": 0, "CloudWatchMetrics": [directive]}, "Stage": "local", **dimensions, **values}
    )


def test_samples_are_summed_per_metric_and_dimension_set() -> None:
    store = MetricStore()
    store.read_line(emf({"RenderTime": 300.0}, Profile="default"))
    store.read_line(emf({"RenderTime": [100.0, 200.0]}, Profile="thumbs"))  # EMF allows several values
    for noise in ("[INFO] starting", '{"level": "INFO", "message": "no metrics"}', '{"_aws": broken'):
        store.read_line(noise)
    report = store.report()
    series = {(m["name"], tuple(sorted(m["dimensions"].items()))): m for m in report["metrics"]}
    everything = series[("RenderTime", (("Stage", "local"),))]
    assert (everything["count"], everything["sum"], everything["min"], everything["max"]) == (3, 600.0, 100.0, 300.0)
    assert everything["unit"] == "Milliseconds" and everything["namespace"] == "imgpress"
    assert series[("RenderTime", (("Profile", "thumbs"), ("Stage", "local")))]["count"] == 2
    assert report["records"] == 2 and len(series) == 3


def test_the_endpoint_answers_its_path_and_passes_on_the_rest() -> None:
    store = MetricStore()
    store.read_line(emf({"ImagesDone": 1.0}))
    statuses: list[str] = []
    app = MetricsEndpoint(lambda environ, start: [b"moto"], store)
    body = b"".join(app({"PATH_INFO": METRICS_PATH}, lambda status, headers: statuses.append(status)))
    assert statuses == ["200 OK"] and json.loads(body)["metrics"][0]["name"] == "ImagesDone"
    assert app({"PATH_INFO": "/imgpress-local-input"}, lambda *args: None) == [b"moto"]
