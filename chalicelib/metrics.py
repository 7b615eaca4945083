"""Metrics as CloudWatch receives them: Embedded Metric Format (EMF) records, one per event, each
also that event's structured log line (chalicelib/logs.py), so every sample can be traced to its image.

Namespace `imgpress`. Each record has two dimension sets: `Stage` alone (what the alarms read) and
`Stage, Function` plus the event's `Profile` or `Code` (what the dashboard breaks down by). Image
ids, request ids and owners are properties of the line, never dimensions. The vocabulary is
`METRICS`; docs/troubleshooting.md explains each metric and the alarms on them.

Powertools for AWS Lambda (Metrics) serialises the records, imported on the first one so that
`import app` does not pay for it (bench/TELEMETRY.md has the numbers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib import logs
from chalicelib.domain import ImageRecord
from chalicelib.errors import ImgpressError
from chalicelib.imaging.results import RenderedVariant
from chalicelib.settings import get_stage
from chalicelib.views import savings

NAMESPACE = "imgpress"
# Every metric imgpress emits, and its CloudWatch unit.
METRICS: dict[str, str] = {
    # Outcomes, one per image (or request) each.
    "ImagesDone": "Count",
    "ImagesFailed": "Count",  # by Code
    "ImagesDeduplicated": "Count",  # done by copying an identical earlier image's outputs
    "ImagesReprocessed": "Count",
    "ReprocessesFailed": "Count",  # by Code; the image keeps its outputs
    "EndedByFailureQueue": "Count",  # also counted in ImagesFailed
    "EndedBySweeper": "Count",  # also counted in ImagesFailed (or ReprocessesFailed)
    "RedrivenBySweeper": "Count",  # an upload whose S3 event never came, sent again
    "QuotaRefusals": "Count",  # 429, by Code: the limit
    "AuthRefusals": "Count",  # 401, by Code
    # On-demand variants (transforms.py), by Code for refusals.
    "TransformsRendered": "Count",  # a variant rendered and stored: the only ones that cost a render
    "TransformHits": "Count",  # a variant found stored (the API's; the CDN's own hits never reach it)
    "TransformRefusals": "Count",  # refused: a bad link, an off-ladder width, a cap, a render refused
    "TransformRenderTime": "Milliseconds",
    # Latency.
    "UploadToFinal": "Milliseconds",  # from the S3 event's time to done or failed
    "RenderTime": "Milliseconds",
    "RetryWait": "Milliseconds",  # from the S3 event to the attempt that ended the image, when not the first
    # Volume.
    "Attempts": "Count",
    "BytesIn": "Bytes",
    "BytesOut": "Bytes",
    "BytesSaved": "Bytes",  # by the largest output, as the API's `savings` says
    "OutputPixels": "Count",
}
ENDED_BY = {"failure_queue": "EndedByFailureQueue", "sweeper": "EndedBySweeper"}


@dataclass
class Timing:
    """When an image's upload happened (its S3 event's time, unknown for a reprocess or a lost
    event), when the attempt that ends it started, and how long its render took, if it rendered."""

    uploaded_at: datetime | None
    attempt_started: datetime
    render_ms: float | None = None


def upload_done(record: ImageRecord, timing: Timing, now: datetime) -> None:
    values = {"ImagesDone": 1.0, **_latencies(record, timing, now), **_volume(record)}
    if record.deduplicated_from:
        values["ImagesDeduplicated"] = 1.0
    outputs = {name: output.bytes for name, output in record.outputs.items()}
    extra = {"outputs": outputs, "deduplicated_from": record.deduplicated_from}
    emit("done", values, {"Profile": record.profile}, record, **extra)


def reprocess_done(record: ImageRecord, timing: Timing) -> None:
    values = {"ImagesReprocessed": 1.0, **_render(timing), **_volume(record)}
    emit("reprocessed", values, {"Profile": record.profile}, record, request=record.reprocessed_by)


def upload_failed(
    record: ImageRecord, code: str, timing: Timing | None, now: datetime, ended_by: str | None = None
) -> None:
    """`ended_by` names who ended an upload its own attempts could not: failure_queue or sweeper."""
    values = {"ImagesFailed": 1.0, "Attempts": float(record.attempts)}
    if timing is not None:
        values.update(_latencies(record, timing, now))
    if ended_by is not None:
        values[ENDED_BY[ended_by]] = 1.0
    if record.original is not None:
        values["BytesIn"] = float(record.original.bytes)
    emit("failed", values, {"Code": code}, record, code=code, ended_by=ended_by)


def reprocess_failed(record: ImageRecord, code: str, timing: Timing | None, ended_by: str | None = None) -> None:
    values = {"ReprocessesFailed": 1.0, **(_render(timing) if timing else {})}
    if ended_by is not None:
        values[ENDED_BY[ended_by]] = 1.0
    request = record.reprocess.id if record.reprocess else None
    emit("reprocess_failed", values, {"Code": code}, record, code=code, ended_by=ended_by, request=request)


def redriven(record: ImageRecord) -> None:
    emit("redriven", {"RedrivenBySweeper": 1.0}, {}, record)


def refused(error: ImgpressError, owner: str | None = None) -> None:
    """A 401 or a 429 the API answered (other answers are API Gateway's metrics)."""
    metric = {401: "AuthRefusals", 429: "QuotaRefusals"}.get(error.http_status)
    if metric is None:
        return
    code = str(getattr(error, "limit", error.code))
    fields = {"owner": logs.owner_hash(owner)} if owner else {}
    emit("refused", {metric: 1.0}, {"Code": code}, None, status=error.http_status, code=code, **fields)


def transform_rendered(record: ImageRecord, key: str, variant: RenderedVariant, render_ms: float) -> None:
    values = {"TransformsRendered": 1.0, "TransformRenderTime": render_ms, "BytesOut": float(len(variant.data))}
    emit("transform_rendered", values, {"Format": variant.format}, record, key=key, width=variant.width)


def transform_hit(record: ImageRecord) -> None:
    emit("transform_hit", {"TransformHits": 1.0}, {}, record)


def transform_refused(record: ImageRecord | None, code: str) -> None:
    emit("transform_refused", {"TransformRefusals": 1.0}, {"Code": code}, record, code=code)


def _latencies(record: ImageRecord, timing: Timing, now: datetime) -> dict[str, float]:
    values = {"Attempts": float(record.attempts), **_render(timing)}
    if timing.uploaded_at is not None:
        values["UploadToFinal"] = _ms(now - timing.uploaded_at)
        if record.attempts > 1:
            values["RetryWait"] = _ms(timing.attempt_started - timing.uploaded_at)
    return values


def _render(timing: Timing) -> dict[str, float]:
    return {"RenderTime": timing.render_ms} if timing.render_ms is not None else {}


def _volume(record: ImageRecord) -> dict[str, float]:
    bytes_in = record.original.bytes if record.original else 0
    saved = savings(bytes_in, record.outputs)
    return {
        "BytesIn": float(bytes_in),
        "BytesOut": float(sum(output.bytes for output in record.outputs.values())),
        "BytesSaved": float(saved["bytes"]) if saved else 0.0,
        "OutputPixels": float(sum(output.width * output.height for output in record.outputs.values())),
    }


def _ms(delta: Any) -> float:
    return max(delta.total_seconds() * 1000, 0.0)


def emit(
    name: str, values: Mapping[str, float], dimensions: Mapping[str, str], record: ImageRecord | None, **fields: Any
) -> None:
    """One EMF record, written as the log line of event `name` (with the image's id and owner's hash)."""
    from aws_lambda_powertools.metrics import EphemeralMetrics

    stage, function = get_stage(), logs.current().function
    metrics = EphemeralMetrics(namespace=NAMESPACE)
    metrics.add_dimension("Stage", stage)
    metrics.add_dimensions(Stage=stage, Function=function, **dimensions)
    for metric, value in values.items():
        metrics.add_metric(name=metric, unit=METRICS[metric], value=value)
    line = {"outcome": name, **fields, **metrics.serialize_metric_set()}
    for metric in values:  # one sample as a number, not Powertools' list of one: Logs Insights sorts by it
        line[metric] = values[metric]
    if record is not None:
        line.update(image_id=record.id, owner=logs.owner_hash(record.owner))
    logs.METRICS.info(name, extra={"fields": line})
