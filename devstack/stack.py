"""Run imgpress locally, no AWS account: moto's server stands in for S3, DynamoDB, SNS and SQS.

Real HTTP end to end: clients get presigned POSTs pointing at the moto server, upload with
ordinary multipart requests, and S3 notifications (to an SQS queue, since moto cannot invoke
Lambda) are delivered by worker threads to the decorated handler exactly as Lambda calls it:
`handle_upload({"Records": [record]}, context)`. A handler exception leaves the message on
the queue, so it is redelivered after the visibility timeout, like Lambda's async retries.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import socket
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EVENTS_QUEUE = "imgpress-local-upload-events"
NOTIFICATIONS_QUEUE = "imgpress-local-notifications"
log = logging.getLogger("imgpress.devstack")


def stage_environment(stage: str = "local") -> dict[str, str]:
    """The env a deployed stage would get: config.json's globals, then the stage's, then overrides."""
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    env: dict[str, str] = dict(config.get("environment_variables", {}))
    env.update(config["stages"][stage].get("environment_variables", {}))
    env.update({k: os.environ[k] for k in env if k in os.environ})
    return env


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LocalStack:
    """Start with `start()`; `api_url` is then live. `stop()` tears everything down."""

    def __init__(self, host: str = "127.0.0.1", api_port: int = 8000, aws_port: int = 0, workers: int = 4) -> None:
        self.host = host
        self.api_port = api_port or free_port(host)
        self.aws_port = aws_port or free_port(host)
        self.workers = workers
        self.env = stage_environment()
        self.notifications_queue_url = ""
        self._events_queue_url = ""
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._moto: Any = None
        self._api: Any = None
        self.app_module: ModuleType | None = None

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def aws_url(self) -> str:
        return f"http://{self.host}:{self.aws_port}"

    def start(self) -> LocalStack:
        from moto.server import ThreadedMotoServer

        self._moto = ThreadedMotoServer(ip_address=self.host, port=self.aws_port, verbose=False)
        self._moto.start()
        os.environ.update(self.env)
        # Fake credentials on purpose: nothing started here may ever reach a real AWS account.
        os.environ.update(
            AWS_ENDPOINT_URL=self.aws_url,
            AWS_ACCESS_KEY_ID="imgpress-local",
            AWS_SECRET_ACCESS_KEY="imgpress-local",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_REGION="us-east-1",
        )
        os.environ.pop("AWS_SESSION_TOKEN", None)
        os.environ.pop("AWS_PROFILE", None)
        stable_urls = os.environ.get("STABLE_URLS", "").lower() in ("1", "true", "yes")
        if stable_urls:
            # The moto server plays the CDN: public, stable links straight to the output objects.
            os.environ["OUTPUT_BASE_URL"] = f"{self.aws_url}/{self.env['OUTPUT_BUCKET']}"

        from devstack import resources

        resources.create_resources(self.env)
        if stable_urls:
            resources.allow_public_reads(self.env)
        self._events_queue_url = resources.wire_upload_events(self.env, EVENTS_QUEUE)
        self.notifications_queue_url = resources.subscribe_queue(self.env, NOTIFICATIONS_QUEUE)

        self.app_module = importlib.import_module("app")
        from chalicelib import services

        services.reset()
        for n in range(self.workers):
            self._spawn(self._deliver_events, f"s3-events-{n}")
        self._start_api()
        return self

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _start_api(self) -> None:
        from chalice.config import Config

        from devstack.gateway import create_local_server  # API Gateway's error bodies, as deployed

        assert self.app_module is not None
        self._api = create_local_server(self.app_module.app, Config(chalice_stage="local"), self.host, self.api_port)
        self._spawn(self._api.serve_forever, "api")

    def _deliver_events(self) -> None:
        """Long-poll the S3 event queue and invoke the handler the way Lambda does."""
        import boto3

        sqs = boto3.client("sqs")
        assert self.app_module is not None
        handler = self.app_module.handle_upload
        while not self._stopping.is_set():
            try:
                messages = sqs.receive_message(
                    QueueUrl=self._events_queue_url, WaitTimeSeconds=1, MaxNumberOfMessages=1
                ).get("Messages", [])
            except Exception:
                if self._stopping.is_set():
                    return
                log.exception("receiving S3 events failed")
                continue
            for message in messages:
                if self._invoke(handler, json.loads(message["Body"])):
                    sqs.delete_message(QueueUrl=self._events_queue_url, ReceiptHandle=message["ReceiptHandle"])

    @staticmethod
    def _invoke(handler: Any, body: dict[str, Any]) -> bool:
        if body.get("Event") == "s3:TestEvent":
            return True  # S3 sends one when a notification is configured; Lambda never sees it.
        try:
            for record in body.get("Records", []):
                handler({"Records": [record]}, None)
        except Exception:
            log.exception("handler raised; the event will be redelivered")
            return False
        return True

    def stop(self) -> None:
        self._stopping.set()
        if self._api is not None:
            self._api.server.shutdown()
            self._api.server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._moto is not None:
            self._moto.stop()
