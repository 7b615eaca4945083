"""Which Lambda functions the Chalice app registers, and how each is configured on the local stage.

Chalice itself knows the triggers (`app.event_sources`) and the sizes (.chalice/config.json);
the asynchronous-invocation settings are not Chalice's, they live in infra/ (handler.json,
stages.json), so they are read from there. Everything here is plain data: no processes, no AWS.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalice.app import BaseEventSourceConfig, Chalice
from chalice.config import Config
from chalice.constants import DEFAULT_LAMBDA_MEMORY_SIZE, DEFAULT_LAMBDA_TIMEOUT

ROOT = Path(__file__).resolve().parent.parent
STAGE = "local"
FALLBACK_STAGE = "dev"  # a function sized for dev but not for local runs with dev's sizes
ACCOUNT = "123456789012"  # moto's account: the one every local ARN names
REGION = "us-east-1"

# Function -> the stage variable naming its on-failure SQS queue. infra/handler.json gives only
# the S3 handler an EventInvokeConfig; every other async invocation gets Lambda's defaults.
ON_FAILURE_QUEUES = {"handle_upload": "UPLOAD_FAILURE_QUEUE"}
LAMBDA_DEFAULT_RETRIES = 2
LAMBDA_DEFAULT_EVENT_AGE_SECONDS = 21600
# AWS waits about 1 min, then 2 min, between async attempts; locally a second, then two.
DEFAULT_RETRY_DELAYS = (1.0, 2.0)


@dataclass(frozen=True)
class FunctionConfig:
    """One Lambda function: what to import, what it is called, how long and how big it may run."""

    name: str  # Chalice's name for it, e.g. handle_upload
    app_module: str  # the module holding the Chalice app, imported by each sandbox
    handler: str  # the attribute of app_module Lambda calls (Chalice's handler_string, minus "app.")
    deployed_name: str  # <app>-<stage>-<name>, as `chalice deploy` names it
    timeout: float  # seconds
    memory_mb: int

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.deployed_name}"


@dataclass(frozen=True)
class EventInvokeConfig:
    """Lambda's asynchronous-invocation settings for one function (AWS::Lambda::EventInvokeConfig)."""

    maximum_retry_attempts: int = LAMBDA_DEFAULT_RETRIES
    maximum_event_age_seconds: int = LAMBDA_DEFAULT_EVENT_AGE_SECONDS
    retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS
    on_failure_queue: str | None = None  # a queue name

    def retry_delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based); the last delay repeats."""
        return self.retry_delays[min(attempt, len(self.retry_delays)) - 1]


@dataclass(frozen=True)
class Registration:
    """A function and the trigger Chalice registered it with."""

    function: FunctionConfig
    trigger: BaseEventSourceConfig


def registrations(app: Chalice, app_module: str, environ: Mapping[str, str] = os.environ) -> list[Registration]:
    """Every event-source function of `app` (S3, SQS, schedules, ...), configured for the local stage."""
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return [
        Registration(
            function_config(app.app_name, source.name, source.handler_string, app_module, config, environ), source
        )
        for source in app.event_sources
    ]


def function_config(
    app_name: str,
    name: str,
    handler_string: str,
    app_module: str,
    config: Mapping[str, Any],
    environ: Mapping[str, str],
) -> FunctionConfig:
    """Sizes as Chalice resolves them for the local stage, then dev, then Chalice's defaults.

    LOCAL_LAMBDA_TIMEOUT_<NAME> (seconds) and LOCAL_LAMBDA_MEMORY_<NAME> (MB) override them,
    e.g. LOCAL_LAMBDA_TIMEOUT_HANDLE_UPLOAD=3 for a test that must watch a timeout happen.
    """
    module, _, attribute = handler_string.rpartition(".")
    timeout = _setting(config, name, "lambda_timeout", DEFAULT_LAMBDA_TIMEOUT)
    memory = _setting(config, name, "lambda_memory_size", DEFAULT_LAMBDA_MEMORY_SIZE)
    suffix = name.upper()
    return FunctionConfig(
        name=name,
        app_module=app_module if module == "app" else module,
        handler=attribute,
        deployed_name=f"{app_name}-{STAGE}-{name}",
        timeout=float(environ.get(f"LOCAL_LAMBDA_TIMEOUT_{suffix}", timeout)),
        memory_mb=int(environ.get(f"LOCAL_LAMBDA_MEMORY_{suffix}", memory)),
    )


def _setting(config: Mapping[str, Any], function: str, key: str, default: Any) -> Any:
    for stage in (STAGE, FALLBACK_STAGE):
        value = getattr(Config(chalice_stage=stage, function_name=function, config_from_disk=dict(config)), key)
        if value is not None:
            return value
    return default


def event_invoke_config(
    function: str, env: Mapping[str, str], environ: Mapping[str, str] = os.environ
) -> EventInvokeConfig:
    """The async settings infra deploys for `function` (dev's values), with local retry delays.

    LOCAL_ASYNC_RETRY_DELAYS (comma-separated seconds, default "1,2") sets the waits between attempts.
    """
    delays = tuple(float(d) for d in environ.get("LOCAL_ASYNC_RETRY_DELAYS", "").split(",") if d.strip())
    delays = delays or DEFAULT_RETRY_DELAYS
    if function not in ON_FAILURE_QUEUES:
        return EventInvokeConfig(retry_delays=delays)
    parameters = handler_stack_parameters()
    return EventInvokeConfig(
        maximum_retry_attempts=int(parameters["MaximumRetryAttempts"]),
        maximum_event_age_seconds=int(parameters["MaximumEventAgeInSeconds"]),
        retry_delays=delays,
        on_failure_queue=env.get(ON_FAILURE_QUEUES[function]) or None,
    )


def handler_stack_parameters() -> dict[str, Any]:
    """infra/handler.json's parameter defaults, overridden by the dev stage's in infra/stages.json."""
    template = json.loads((ROOT / "infra" / "handler.json").read_text())
    stages = json.loads((ROOT / "infra" / "stages.json").read_text())
    defaults = {name: body.get("Default") for name, body in template["Parameters"].items()}
    return {**defaults, **stages.get(FALLBACK_STAGE, {}).get("handler", {})}
