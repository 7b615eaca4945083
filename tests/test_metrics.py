"""chalicelib/metrics.py: what each ending, re-drive and refusal writes, read back as CloudWatch reads
an EMF line; the pipeline and recovery on in-memory fakes (tests/test_pipeline.py's rig) write them."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from chalicelib import logs, metrics
from chalicelib.deadline import Deadline
from chalicelib.errors import NotFound, QuotaExceeded, Unauthorized
from chalicelib.settings import Settings
from tests.conftest import ENV
from tests.loglines import captured, parsed
from tests.test_pipeline import Rig

INPUT_BUCKET = ENV["INPUT_BUCKET"]
# EMF: the units CloudWatch accepts (the ones imgpress uses among them).
UNITS = {"Count", "Milliseconds", "Bytes", "Seconds", "Percent", "None"}


class Lines:
    """Every line the functions' logger writes, parsed."""

    def __init__(self, sink: io.StringIO) -> None:
        self._sink = sink

    def all(self) -> list[dict[str, Any]]:
        return parsed(self._sink)

    def records(self) -> list[dict[str, Any]]:
        """The EMF records among them."""
        return [line for line in self.all() if "_aws" in line]


@pytest.fixture
def lines() -> Iterator[Lines]:
    """At LOG_LEVEL=WARNING: metric lines are written whatever the level."""
    with captured("WARNING") as sink:
        logs.begin("handle_upload", "request-1")
        yield Lines(sink)


@pytest.fixture
def rig() -> Rig:
    return Rig(Settings.from_env(ENV))


def samples(record: dict[str, Any]) -> dict[str, float]:
    """A record's metric values by name, checked against the EMF specification on the way."""
    (directive,) = record["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == metrics.NAMESPACE and isinstance(record["_aws"]["Timestamp"], int)
    for dimensions in directive["Dimensions"]:
        assert dimensions[0] == "Stage" and all(isinstance(record[d], str) and record[d] for d in dimensions)
        assert not {"image_id", "owner", "request_id"} & set(dimensions)
    values = {}
    for definition in directive["Metrics"]:
        name = definition["Name"]
        assert definition["Unit"] == metrics.METRICS[name] in UNITS
        assert isinstance(record[name], float)
        values[name] = record[name]
    return values


def test_a_done_upload_is_one_line_with_its_metrics_its_id_and_its_owner_hashed(rig: Rig, lines: Lines) -> None:
    image_id = rig.new_image(owner="alice@example.com")
    event = replace(rig.upload(image_id, b"photo bytes"), uploaded_at=rig.clock.now)
    assert rig.deliver(event) == "done"
    (record,) = lines.records()
    values = samples(record)
    assert values["ImagesDone"] == 1 and values["Attempts"] == 1 and values["UploadToFinal"] == 0
    assert values["BytesIn"] == len(b"photo bytes") and values["OutputPixels"] == 2 * 40 * 30
    assert "RetryWait" not in values and values["RenderTime"] >= 0
    assert record["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Stage"], ["Stage", "Function", "Profile"]]
    assert (record["Stage"], record["Function"], record["Profile"]) == ("local", "handle_upload", "default")
    assert record["image_id"] == image_id and record["request_id"] == "request-1" and record["outcome"] == "done"
    assert record["owner"] == logs.owner_hash("alice@example.com") and "alice" not in json.dumps(lines.all())
    assert [line["outcome"] for line in lines.all()] == ["done"]  # WARNING: the other events are not written


def test_a_rejected_file_is_failed_by_its_code(rig: Rig, lines: Lines) -> None:
    rig.deliver(rig.upload(rig.new_image(), b"BAD bytes"))
    (record,) = lines.records()
    assert samples(record)["ImagesFailed"] == 1
    assert record["Code"] == "corrupt" and record["code"] == "corrupt"
    assert record["_aws"]["CloudWatchMetrics"][0]["Dimensions"][1] == ["Stage", "Function", "Code"]


def test_the_failure_queue_ends_an_upload_with_its_latency_and_its_wait(rig: Rig, lines: Lines) -> None:
    image_id = rig.new_image()
    event = rig.upload(image_id, b"photo bytes")
    uploaded = rig.clock.now
    for _ in range(3):  # three attempts claim the image and die (no code after the claim runs)
        claimed = rig.records.get(image_id)
        assert claimed is not None
        rig.records.save(claimed.claimed("token", event.etag, event.size, rig.clock.now.timestamp() + 1, rig.clock.now))
        rig.clock.advance(60)
    logs.begin("end_abandoned_uploads", "request-2")
    assert rig.recovery.end_abandoned(INPUT_BUCKET, event.key, "RetriesExhausted", None, uploaded) == "failed"
    (record,) = lines.records()
    values = samples(record)
    assert values["ImagesFailed"] == values["EndedByFailureQueue"] == 1 and values["Attempts"] == 3
    assert values["UploadToFinal"] == values["RetryWait"] == 180_000
    assert (record["Function"], record["Code"], record["ended_by"]) == (
        "end_abandoned_uploads",
        "processing_error",
        "failure_queue",
    )


def test_the_sweeper_counts_what_it_ends_and_what_it_sends_again(rig: Rig, lines: Lines) -> None:
    waiting = rig.new_image()
    rig.upload(waiting, b"photo bytes")  # no S3 event ever came
    rig.clock.advance(rig.settings.redrive_after_seconds + 1)
    rig.recovery.sweep(Deadline(60))
    rig.clock.advance(rig.settings.stuck_after_seconds + 1)
    rig.recovery.sweep(Deadline(60))
    redriven, ended = lines.records()
    assert samples(redriven) == {"RedrivenBySweeper": 1.0}
    assert samples(ended)["EndedBySweeper"] == samples(ended)["ImagesFailed"] == 1
    assert "UploadToFinal" not in samples(ended)  # no S3 event time is known for it


@pytest.mark.parametrize(
    ("error", "metric", "code"),
    [
        (QuotaExceeded("Too many open slots.", "open_slots", 60), "QuotaRefusals", "open_slots"),
        (Unauthorized("The token has expired.", "token_expired"), "AuthRefusals", "token_expired"),
    ],
)
def test_refusals_are_counted_by_their_code(lines: Lines, error: Any, metric: str, code: str) -> None:
    logs.begin("api_handler", "api-request")
    metrics.refused(error, "bob")
    metrics.refused(NotFound("No such image."))  # any other answer is API Gateway's metrics
    (record,) = lines.records()
    assert samples(record) == {metric: 1.0} and record["Code"] == code and record["Function"] == "api_handler"
    assert record["owner"] == logs.owner_hash("bob")


def test_an_event_time_ahead_of_the_clock_gives_no_negative_latency(rig: Rig, lines: Lines) -> None:
    """S3's clock and Lambda's are not the same clock."""
    event = replace(rig.upload(rig.new_image(), b"photo bytes"), uploaded_at=rig.clock.now + timedelta(seconds=5))
    rig.deliver(event)
    assert samples(lines.records()[0])["UploadToFinal"] == 0


def test_every_metric_is_explained_on_the_monitoring_page() -> None:
    page = (Path(__file__).resolve().parent.parent / "docs" / "troubleshooting.md").read_text()
    assert [name for name in metrics.METRICS if f"`{name}`" not in page] == []
