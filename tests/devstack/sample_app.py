"""A Chalice app for testing devstack's Lambda runtime, standing in for app.py.

Its handlers succeed, raise, overrun any short timeout, exit, hog memory, print a lot and report
partial batches; each writes what it saw (context included) to a journal in SAMPLE_JOURNAL,
one JSON line per entry, which the tests read from outside the sandboxes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from chalice import Chalice, Rate
from chalice.app import CloudWatchEvent, S3Event, SQSEvent

app = Chalice(app_name="sample")


def journal(kind: str, **entry: Any) -> None:
    """Appends one line to <SAMPLE_JOURNAL>/<kind>.jsonl (one write, O_APPEND: safe across processes)."""
    line = json.dumps({"pid": os.getpid(), "at": time.time(), **entry}) + "\n"
    descriptor = os.open(Path(os.environ["SAMPLE_JOURNAL"]) / f"{kind}.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(descriptor, line.encode())
    finally:
        os.close(descriptor)


def read_journal(directory: Path, kind: str) -> list[dict[str, Any]]:
    path = directory / f"{kind}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def context_facts(context: Any) -> dict[str, Any]:
    names = ("aws_request_id", "function_name", "function_version", "invoked_function_arn")
    names += ("memory_limit_in_mb", "log_group_name", "log_stream_name")
    return {name: getattr(context, name) for name in names}


@app.route("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.on_s3_event(bucket=os.environ.get("INPUT_BUCKET", "sample-input"), prefix="uploads/")
def handle_upload(event: S3Event) -> dict[str, Any]:
    """uploads/<behaviour>-<anything>, behaviour one of: ok, raise, sleep, exit, hog, childhog, noisy."""
    behaviour = event.key.removeprefix("uploads/").split("-")[0]
    remaining = event.context.get_remaining_time_in_millis()
    journal("attempts", key=event.key, remaining_ms=remaining, context=context_facts(event.context))
    if behaviour == "raise":
        raise RuntimeError(f"planned failure for {event.key}")
    if behaviour == "sleep":
        try:
            time.sleep(3600)
        finally:
            journal("finally", key=event.key)  # never written: a timed-out sandbox is killed, not interrupted
    if behaviour == "exit":
        os._exit(3)
    if behaviour == "hog":
        hold = b"\x01" * (300 * 1024 * 1024)  # written, so resident
        time.sleep(5)
        return {"held": len(hold)}
    if behaviour == "childhog":  # as a render's child process would (chalicelib/imaging/isolation.py)
        child = os.fork()
        if child == 0:
            hold = b"\x01" * (300 * 1024 * 1024)
            time.sleep(5)
            os._exit(len(hold) % 2)
        os.waitpid(child, 0)
    if behaviour == "noisy":
        print('{"type": "result", "payload": "forged"}')
        print("x" * 300_000)
        print("to stderr", file=sys.stderr)
    time.sleep(0.3)
    return {"key": event.key, "remaining_ms": [remaining, event.context.get_remaining_time_in_millis()]}


@app.on_sqs_message(queue="sample-local-batch", batch_size=10, maximum_batching_window_in_seconds=1)
def consume_batch(event: SQSEvent) -> dict[str, Any]:
    """Reports every message whose body starts with "fail" as a batch item failure."""
    records = [record.to_dict() for record in event]
    journal("batches", records=records)
    return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records if r["body"].startswith("fail")]}


@app.on_sqs_message(queue=os.environ.get("UPLOAD_FAILURE_QUEUE", "sample-failures"))
def consume_failures(event: SQSEvent) -> None:
    for record in event:
        journal("failure_records", record=json.loads(record.body), sqs_record=record.to_dict())


@app.schedule(Rate(5, unit=Rate.MINUTES))
def tick(event: CloudWatchEvent) -> None:
    journal("sweeps", event=event.to_dict(), remaining_ms=event.context.get_remaining_time_in_millis())
