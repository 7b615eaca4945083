"""Run imgpress locally, no AWS account: moto's server stands in for S3, DynamoDB, SNS and SQS,
and devstack's own runtime for Lambda.

Real HTTP end to end: clients get presigned POSTs pointing at the moto server and upload with
ordinary multipart requests. The routes are served by chalice.local in this process. Every other
function the Chalice app registers (S3 events, SQS consumers, schedules) runs in warm worker
processes with its stage's timeout and memory, invoked with Lambda's semantics: async retries and
an on-failure queue for S3 events, batches and partial failures for SQS, short-interval schedules.
docs/local-stack.md describes what is emulated and the knobs.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import secrets
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from chalice.app import S3EventConfig, ScheduledEventConfig, SQSEventConfig

from devstack import resources
from devstack.async_invoke import AsyncInvoker
from devstack.event_sources import (
    ConfigurationError,
    EventSource,
    S3Notifications,
    Schedule,
    SqsMapping,
    sqs_concurrency,
)
from devstack.functions import ACCOUNT, REGION, ROOT, STAGE, Registration, event_invoke_config, registrations
from devstack.lambda_runtime import FunctionPool
from devstack.ledger import Ledger
from devstack.metrics import InProcessLines, MetricStore
from devstack.moto_internals import queue_depth, recording_moto_server

NOTIFICATIONS_QUEUE = "imgpress-local-notifications"
# Fake credentials on purpose: nothing started here may ever reach a real AWS account. The stand-in
# checks presigned URLs and POST policies against this pair, as S3 checks them against a real one.
LOCAL_ACCESS_KEY = LOCAL_SECRET_KEY = "imgpress-local"
log = logging.getLogger("devstack")


def stage_environment(stage: str = STAGE) -> dict[str, str]:
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


def _flag(environ: dict[str, str], name: str, default: bool) -> bool:
    return environ.get(name, "1" if default else "0").strip().lower() not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class RuntimeSettings:
    """The local runtime's knobs, from the environment (docs/local-stack.md lists them)."""

    app_module: str = "app"
    schedule_seconds: float = 10.0
    report_batch_item_failures: bool = True
    memory_watchdog: bool = True
    resources_template: Path = ROOT / "infra" / "resources.json"

    @classmethod
    def from_env(cls, environ: dict[str, str]) -> RuntimeSettings:
        return cls(
            app_module=environ.get("LOCAL_APP_MODULE", "app"),
            schedule_seconds=float(environ.get("LOCAL_SCHEDULE_SECONDS", "10")),
            report_batch_item_failures=_flag(environ, "LOCAL_SQS_REPORT_BATCH_ITEM_FAILURES", True),
            memory_watchdog=_flag(environ, "LOCAL_LAMBDA_MEMORY_WATCHDOG", True),
            resources_template=Path(environ.get("LOCAL_RESOURCES_TEMPLATE", ROOT / "infra" / "resources.json")),
        )


@dataclass
class LocalFunction:
    """One function as the stack runs it: its sandboxes, its async queue if any, its trigger."""

    registration: Registration
    pool: FunctionPool
    source: EventSource
    invoker: AsyncInvoker | None = None

    def describe(self) -> str:
        function = self.pool.function
        sizes = f"{function.timeout:g} s, {function.memory_mb} MB, {self.pool.size} sandbox(es)"
        return f"{function.name}: {sizes}; {self.source.describe()}"


class LocalStack:
    """Start with `start()`; `api_url` is then live. `stop()` tears everything down."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        api_port: int = 8000,
        aws_port: int = 0,
        workers: int = 4,
        settings: RuntimeSettings | None = None,
    ) -> None:
        self.host = host
        self.api_port = api_port or free_port(host)
        self.aws_port = aws_port or free_port(host)
        self.workers = workers
        self.settings = settings or RuntimeSettings.from_env(dict(os.environ))
        self.env = stage_environment()
        self.notifications_queue_url = ""
        self.functions: list[LocalFunction] = []
        self.skipped: list[str] = []
        self._threads: list[threading.Thread] = []
        self._moto: Any = None
        self.ledger = Ledger()  # every request the AWS stand-in answers (GET <aws_url>/_ledger)
        self.metrics = MetricStore()  # every EMF record the functions write (GET <aws_url>/_metrics)
        self._api_lines: logging.Handler | None = None
        self._api: Any = None
        self.app_module: ModuleType | None = None

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def aws_url(self) -> str:
        return f"http://{self.host}:{self.aws_port}"

    def start(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self._moto = recording_moto_server(
            self.host, self.aws_port, self.ledger, self.metrics, {LOCAL_ACCESS_KEY: LOCAL_SECRET_KEY}, self.busy
        )
        self._moto.start()
        os.environ.update(self.env)
        os.environ.update(
            AWS_ENDPOINT_URL=self.aws_url,
            AWS_ACCESS_KEY_ID=LOCAL_ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=LOCAL_SECRET_KEY,
            AWS_DEFAULT_REGION=REGION,
            AWS_REGION=REGION,
        )
        os.environ.pop("AWS_SESSION_TOKEN", None)
        os.environ.pop("AWS_PROFILE", None)
        stable_urls = os.environ.get("STABLE_URLS", "").lower() in ("1", "true", "yes")
        if stable_urls:
            # The moto server plays the CDN: public, stable links straight to the output objects.
            os.environ["OUTPUT_BASE_URL"] = f"{self.aws_url}/{self.env['OUTPUT_BUCKET']}"

        if not os.environ.get("TRANSFORM_KEYS", "").strip():
            # Transform links are signed with a secret made for this run (deployed: a Secrets Manager secret).
            os.environ["TRANSFORM_KEYS"] = f"local:{secrets.token_urlsafe(32)}"

        resources.create_resources(self.env)
        if stable_urls:
            resources.allow_public_reads(self.env)
        if os.environ.get("CORS_ALLOW_ORIGINS"):
            resources.allow_browser_uploads(self.env, os.environ["CORS_ALLOW_ORIGINS"])
        resources.create_queues(self.settings.resources_template, STAGE, ACCOUNT, REGION)
        missing = resources.missing_queues(self.env)
        if missing:
            raise ConfigurationError(
                f"the stage names queues {self.settings.resources_template.name} does not define: {', '.join(missing)}"
            )
        self.notifications_queue_url = resources.subscribe_queue(self.env, NOTIFICATIONS_QUEUE)

        self.app_module = importlib.import_module(self.settings.app_module)
        from chalicelib import services
        from chalicelib.logs import JsonFormatter

        services.reset()
        self._api_lines = InProcessLines(self.metrics, JsonFormatter())
        logging.getLogger("imgpress").addHandler(self._api_lines)
        self._start_functions()
        self._start_api()

    def _start_functions(self) -> None:
        """A pool of sandboxes and a trigger for every function the app registers."""
        assert self.app_module is not None
        found = registrations(self.app_module.app, self.settings.app_module)
        transports = self._notify_transport_queues([r for r in found if isinstance(r.trigger, S3EventConfig)])
        for registration in found:
            local = self._local_function(registration, transports)
            if local is None:
                self.skipped.append(
                    f"{registration.function.name}: {type(registration.trigger).__name__} is not run locally"
                )
                continue
            self.functions.append(local)
        for local in self.functions:
            if local.invoker is not None:
                local.invoker.start()
            local.source.start()

    def _local_function(self, registration: Registration, transports: dict[str, str]) -> LocalFunction | None:
        """Sandboxes get this process's environment: the stage's variables, fake credentials, the caller's extras."""
        function, trigger = registration.function, registration.trigger
        env, watchdog, lines = dict(os.environ), self.settings.memory_watchdog, self.metrics.read_line
        if isinstance(trigger, S3EventConfig):
            pool = FunctionPool(function, self.workers, env, watchdog, lines)
            invoker = AsyncInvoker(pool, event_invoke_config(function.name, self.env))
            return LocalFunction(
                registration, pool, S3Notifications(invoker, trigger, transports[function.name]), invoker
            )
        if isinstance(trigger, ScheduledEventConfig):
            pool = FunctionPool(function, 1, env, watchdog, lines)
            invoker = AsyncInvoker(pool, event_invoke_config(function.name, self.env))
            return LocalFunction(
                registration, pool, Schedule(invoker, trigger, self.settings.schedule_seconds), invoker
            )
        if isinstance(trigger, SQSEventConfig):
            pool = FunctionPool(function, sqs_concurrency(trigger), env, watchdog, lines)
            try:
                return LocalFunction(
                    registration, pool, SqsMapping(pool, trigger, self.settings.report_batch_item_failures)
                )
            except BaseException:
                pool.stop()
                raise
        return None

    @staticmethod
    def _notify_transport_queues(s3_functions: list[Registration]) -> dict[str, str]:
        """moto cannot invoke Lambda: each S3 function's events go to its own queue. Function name -> URL."""
        by_bucket: dict[str, list[resources.QueueNotification]] = {}
        names: dict[str, str] = {}
        for registration in s3_functions:
            trigger = registration.trigger
            assert isinstance(trigger, S3EventConfig)
            queue = names[registration.function.name] = f"{registration.function.deployed_name}-s3-events"
            by_bucket.setdefault(trigger.bucket, []).append(
                resources.QueueNotification(queue, trigger.events, trigger.prefix, trigger.suffix)
            )
        urls: dict[str, str] = {}
        for bucket, notifications in by_bucket.items():
            urls.update(resources.notify_queues(bucket, notifications))
        return {function: urls[queue] for function, queue in names.items()}

    def busy(self) -> list[str]:
        """What is still to happen without anyone asking, one line each (`GET <aws_url>/_idle` waits
        for none): messages in a queue a function reads, asynchronous events, running invocations."""
        going_on: list[str] = []
        for local in list(self.functions):
            name = local.pool.function.name
            queue = local.source.queue_name()
            if queue and (waiting := queue_depth(REGION, queue)):
                going_on.append(f"{name}: {waiting} message(s) in {queue}")
            if local.invoker is not None and (queued := local.invoker.pending()):
                going_on.append(f"{name}: {queued} asynchronous event(s)")
            if running := local.pool.running():
                going_on.append(f"{name}: {running} invocation(s) running")
        return going_on

    def describe(self) -> list[str]:
        """What runs, one line each (printed on start)."""
        api = "api_handler: routes served in this process by chalice.local (its timeout is not enforced)"
        return [api, *(local.describe() for local in self.functions), *self.skipped]

    def _start_api(self) -> None:
        from chalice.config import Config

        from devstack.gateway import create_local_server  # API Gateway's error bodies, as deployed

        assert self.app_module is not None
        self._api = create_local_server(self.app_module.app, Config(chalice_stage=STAGE), self.host, self.api_port)
        # chalice's serve_forever() takes no poll interval: a short one makes stop() prompt.
        thread = threading.Thread(
            target=self._api.server.serve_forever, kwargs={"poll_interval": 0.05}, name="api", daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def stop(self, wait_for_threads: bool = True) -> None:
        """Triggers first, then sandboxes (a long invocation is killed, not awaited), then the servers.

        `wait_for_threads=False` (a process about to exit: SIGTERM) does not wait for the pollers'
        long polls to end (up to a second). Safe to call twice, and after a failed start."""
        functions, self.functions = self.functions, []
        for local in functions:
            local.source.request_stop()
            if local.invoker is not None:
                local.invoker.request_stop()
        for local in functions:
            local.pool.stop()
        for local in functions if wait_for_threads else ():
            local.source.stop()
            if local.invoker is not None:
                local.invoker.stop()
        api, self._api = self._api, None
        if api is not None:
            api.server.shutdown()
            api.server.server_close()
        for thread in self._threads if wait_for_threads else ():
            thread.join(timeout=5)
        moto, self._moto = self._moto, None
        if moto is not None:
            moto.stop()
        api_lines, self._api_lines = self._api_lines, None
        if api_lines is not None:
            logging.getLogger("imgpress").removeHandler(api_lines)
