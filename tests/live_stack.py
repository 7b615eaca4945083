"""The local stack as `make run` starts it (`python -m devstack`), in a subprocess, for tests over real HTTP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import boto3
import requests

from devstack.stack import NOTIFICATIONS_QUEUE, free_port

ROOT = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 60


@dataclass(frozen=True)
class LiveStack:
    api: str  # http://127.0.0.1:<port> of the chalice local server
    aws: str  # http://127.0.0.1:<port> of the moto server behind it
    log: Path  # everything the stack printed so far, its functions' logs included
    pid: int  # the stack's process (its sandboxes are its children)

    def output(self) -> str:
        return self.log.read_text()

    def idle(self, timeout: float = 60) -> None:
        wait_idle(self.aws, timeout)


@contextmanager
def running_stack(settings: Mapping[str, str] | None = None) -> Iterator[LiveStack]:
    """Yields once GET /health answers; the stack is terminated on exit. `settings` adds env (CORS_ALLOW_ORIGINS…).

    Its output goes to a temporary file, not a pipe nobody reads (a full pipe would block the stack).
    """
    api_port, aws_port = free_port(), free_port()
    env = {**os.environ, **(settings or {}), "PORT": str(api_port), "AWS_PORT": str(aws_port)}
    api = f"http://127.0.0.1:{api_port}"
    with tempfile.TemporaryDirectory() as directory, open(Path(directory) / "devstack.log", "w+") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True
        )
        try:
            _wait_until_healthy(api, process, log)
            yield LiveStack(api, f"http://127.0.0.1:{aws_port}", Path(log.name), process.pid)
        finally:
            process.terminate()
            # It kills its sandboxes and exits at once; a stop that hung is cut short after 10 s, its
            # threads' tracebacks in the log, kept in test-artifacts/ (devstack/__main__.py).
            if process.wait(timeout=30) != 0:
                (ROOT / "test-artifacts").mkdir(exist_ok=True)
                shutil.copy(log.name, ROOT / "test-artifacts" / f"devstack-stop-{process.pid}.log")


def _wait_until_healthy(api: str, process: subprocess.Popen[str], log: IO[str]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise AssertionError(f"devstack exited with {process.returncode}:\n{log.read()}")
        try:
            if requests.get(f"{api}/health", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"devstack did not answer {api}/health within {STARTUP_SECONDS}s")


def wait_idle(aws: str, timeout: float = 60) -> None:
    """Returns once the stack has nothing left to do on its own (devstack/idle.py): no queued event or
    message, no running invocation. What a test waits on before asserting that nothing else happens."""
    answer = requests.get(f"{aws}/_idle", params={"timeout": timeout}, timeout=timeout + 30)
    assert answer.status_code == 200, f"the stack is still busy after {timeout} s: {answer.text}"


def ledger(aws: str, since: int = 0, image: str | None = None) -> dict[str, Any]:
    """The stand-in's request ledger after entry `since`, about `image` only if given (devstack/ledger.py):
    `next`, `totals`, `by_owner`, `entries`."""
    params: dict[str, Any] = {"since": since, **({"image": image} if image else {})}
    return dict(requests.get(f"{aws}/_ledger", params=params, timeout=30).json())


def metrics(aws: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, Any]]:
    """The stand-in's `/_metrics` (devstack/metrics.py) by (metric name, sorted dimensions)."""
    report = requests.get(f"{aws}/_metrics", timeout=10).json()
    return {(m["name"], tuple(sorted(m["dimensions"].items()))): m for m in report["metrics"]}


class StackClient:
    """A front end's view of a running stack: slots, browser-style uploads, polling, and the SNS
    messages (read from the queue devstack subscribes to the topic)."""

    def __init__(self, api: str, aws: str) -> None:
        self.api = api
        self.aws = aws
        self.sqs = boto3.client(
            "sqs",
            endpoint_url=aws,
            region_name="us-east-1",
            aws_access_key_id="imgpress-local",
            aws_secret_access_key="imgpress-local",
        )
        self.queue = self.sqs.get_queue_url(QueueName=NOTIFICATIONS_QUEUE)["QueueUrl"]
        self.s3 = boto3.client(
            "s3",
            endpoint_url=aws,
            region_name="us-east-1",
            aws_access_key_id="imgpress-local",
            aws_secret_access_key="imgpress-local",
        )

    def idle(self, timeout: float = 60) -> None:
        wait_idle(self.aws, timeout)

    def notifications(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages"
        ):
            for message in batch:
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])
        return found

    def slot(self, content_type: str = "image/jpeg", filename: str = "photo.jpg", size: int | None = None) -> Any:
        body = {"filename": filename, "content_type": content_type, **({"size": size} if size else {})}
        slot = requests.post(f"{self.api}/uploads", json=body, timeout=10)
        assert slot.status_code == 201, slot.text
        return slot.json()

    @staticmethod
    def send(slot: Any, data: bytes, content_type: str = "image/jpeg", filename: str = "photo.jpg") -> None:
        """Exactly what a browser's FormData POST does: the policy fields, then the file last."""
        upload = slot["upload"]
        sent = requests.post(
            upload["url"], data=upload["fields"], files={"file": (filename, data, content_type)}, timeout=60
        )
        assert sent.status_code in (200, 201, 204), sent.text

    def upload(self, data: bytes, content_type: str, filename: str) -> str:
        slot = self.slot(content_type, filename, len(data))
        self.send(slot, data, content_type, filename)
        return str(slot["id"])

    def wait(self, image_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = requests.get(f"{self.api}/images/{image_id}", timeout=10).json()
            if record["status"] in ("done", "failed"):
                return dict(record)
            time.sleep(0.2)
        raise AssertionError(f"{image_id} still {record['status']} after {timeout}s")
