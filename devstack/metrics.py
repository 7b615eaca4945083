"""The local stack's CloudWatch: every EMF record the functions write, summed per metric and dimension set.

On AWS, CloudWatch Logs turns each JSON log line with an `_aws` member (Embedded Metric Format,
chalicelib/metrics.py) into metric samples. Here the stack reads the same lines: each sandbox's
stdout as it forwards it (devstack/lambda_runtime.py), and the API's, which runs in the stack's own
process, through a logging handler. `GET /_metrics` on the AWS stand-in's port answers, for each
metric name and dimension set, the count, sum, min and max of its samples (docs: local-stack).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from devstack.wsgi import Environ, StartResponse, WsgiApp, json_answer

METRICS_PATH = "/_metrics"
log = logging.getLogger("devstack.metrics")

SeriesKey = tuple[str, str, tuple[tuple[str, str], ...]]  # namespace, metric, sorted dimensions


@dataclass
class Series:
    """The samples of one metric under one dimension set, as CloudWatch's statistics sum them."""

    unit: str
    count: int = 0
    sum: float = 0.0
    min: float = float("inf")
    max: float = float("-inf")

    def add(self, value: float) -> None:
        self.count += 1
        self.sum += value
        self.min = min(self.min, value)
        self.max = max(self.max, value)


class MetricStore:
    """Every metric sample seen so far, and how many EMF records brought them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[SeriesKey, Series] = {}
        self._records = 0

    def read_line(self, line: str) -> None:
        """A log line: its samples if it is an EMF record; anything else is only a log line."""
        text = line.strip()
        if not text.startswith("{") or '"_aws"' not in text:
            return
        try:
            record = json.loads(text)
        except ValueError:
            return
        if isinstance(record, dict) and isinstance(record.get("_aws"), dict):
            self.add_record(record)

    def add_record(self, record: dict[str, Any]) -> None:
        """Samples by the EMF specification: each directive's metrics, once per dimension set, the
        dimensions' values and the metrics' values (a number or a list of them) read from the record."""
        samples: list[tuple[SeriesKey, str, float]] = []
        for directive in record["_aws"].get("CloudWatchMetrics", []):
            namespace = str(directive.get("Namespace", ""))
            for definition in directive.get("Metrics", []):
                name, unit = str(definition["Name"]), str(definition.get("Unit", "None"))
                raw = record.get(name)
                values = raw if isinstance(raw, list) else [raw]
                for dimensions in directive.get("Dimensions", []):
                    key = (namespace, name, tuple(sorted((str(d), str(record.get(d))) for d in dimensions)))
                    samples += [(key, unit, float(v)) for v in values if isinstance(v, int | float)]
        with self._lock:
            self._records += 1
            for key, unit, value in samples:
                self._series.setdefault(key, Series(unit)).add(value)

    def report(self) -> dict[str, Any]:
        """Every series, by metric name and then dimension set (sorted, so a diff reads well)."""
        with self._lock:
            series = sorted(self._series.items())
            records = self._records
        return {
            "records": records,
            "metrics": [
                {
                    "namespace": namespace,
                    "name": name,
                    "dimensions": dict(dimensions),
                    "unit": found.unit,
                    "count": found.count,
                    "sum": found.sum,
                    "min": found.min,
                    "max": found.max,
                }
                for (namespace, name, dimensions), found in series
            ],
        }


class MetricsEndpoint:
    """WSGI: answers `GET /_metrics` from the store, passes everything else to `app`."""

    def __init__(self, app: WsgiApp, store: MetricStore) -> None:
        self.app = app
        self.store = store

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != METRICS_PATH:
            return self.app(environ, start_response)
        return json_answer(start_response, "200 OK", self.store.report())


class InProcessLines(logging.Handler):
    """The API's log lines (it runs in the stack's process, not in a sandbox) into the store."""

    def __init__(self, store: MetricStore, formatter: logging.Formatter) -> None:
        super().__init__()
        self.store = store
        self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.store.read_line(self.format(record))
        except Exception:  # a metric lost locally must never fail a request
            log.warning("could not read a metric record", exc_info=True)
