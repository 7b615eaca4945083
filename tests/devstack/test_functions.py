"""Function discovery and configuration: Chalice's registrations, the stage's sizes, infra's async settings."""

from __future__ import annotations

import json
from typing import Any

from chalice.app import S3EventConfig, ScheduledEventConfig, SQSEventConfig

from devstack.functions import ROOT, event_invoke_config, function_config, handler_stack_parameters, registrations
from devstack.stack import stage_environment
from tests.devstack import sample_app

CONFIG: dict[str, Any] = {
    "stages": {
        "local": {"lambda_functions": {"sized_locally": {"lambda_timeout": 5}}},
        "dev": {"lambda_functions": {"sized_for_dev": {"lambda_timeout": 7, "lambda_memory_size": 256}}},
    }
}


def test_sizes_come_from_the_local_stage_then_dev_then_chalices_defaults() -> None:
    def sizes(name: str, environ: dict[str, str] | None = None) -> tuple[float, int]:
        config = function_config("sample", name, f"app.{name}", "app", CONFIG, environ or {})
        return config.timeout, config.memory_mb

    assert sizes("sized_locally") == (5, 128)
    assert sizes("sized_for_dev") == (7, 256)
    assert sizes("unsized") == (60, 128)
    assert sizes("unsized", {"LOCAL_LAMBDA_TIMEOUT_UNSIZED": "1.5", "LOCAL_LAMBDA_MEMORY_UNSIZED": "512"}) == (1.5, 512)


def test_the_local_stage_sizes_its_functions_as_dev_does() -> None:
    stages = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]
    local, dev = stages["local"]["lambda_functions"], stages["dev"]["lambda_functions"]
    sizes = ("lambda_memory_size", "lambda_timeout")  # dev's entries also name their IAM policy files
    assert {name: {key: dev[name][key] for key in sizes} for name in local} == local
    assert set(dev) - set(local) == {"jwt_authorizer"}  # the local stack runs with API_AUTH=none by default


def test_every_registration_of_the_app_is_found_with_its_name_and_handler() -> None:
    found = {r.function.name: r for r in registrations(sample_app.app, "tests.devstack.sample_app", {})}
    assert set(found) == {"handle_upload", "consume_batch", "consume_failures", "tick"}
    assert isinstance(found["handle_upload"].trigger, S3EventConfig)
    assert isinstance(found["consume_batch"].trigger, SQSEventConfig)
    assert isinstance(found["tick"].trigger, ScheduledEventConfig)
    upload = found["handle_upload"].function
    assert (upload.app_module, upload.handler, upload.deployed_name) == (
        "tests.devstack.sample_app",
        "handle_upload",
        "sample-local-handle_upload",
    )
    assert (upload.timeout, upload.memory_mb) == (60, 1769)  # the `local` stage of .chalice/config.json


def test_the_upload_handlers_async_settings_are_the_ones_infra_deploys() -> None:
    """infra/handler.json configures handle_upload's retries and sends failures to the resources
    stack's UploadFailureQueue; every stage names that same queue in UPLOAD_FAILURE_QUEUE."""
    handler = json.loads((ROOT / "infra" / "handler.json").read_text())["Resources"]["UploadHandlerInvokeConfig"]
    assert handler["Properties"]["FunctionName"] == {"Fn::Sub": "imgpress-${Stage}-handle_upload"}
    assert handler["Properties"]["DestinationConfig"]["OnFailure"]["Destination"] == {"Ref": "UploadFailureQueueArn"}
    queue = json.loads((ROOT / "infra" / "resources.json").read_text())["Resources"]["UploadFailureQueue"]
    for stage in ("local", "dev", "prod"):
        expected = queue["Properties"]["QueueName"]["Fn::Sub"].replace("${Stage}", stage)
        assert stage_environment(stage)["UPLOAD_FAILURE_QUEUE"] == expected

    config = event_invoke_config("handle_upload", stage_environment("local"), {"LOCAL_ASYNC_RETRY_DELAYS": "0.5, 1"})
    dev = handler_stack_parameters()
    assert config.maximum_retry_attempts == dev["MaximumRetryAttempts"] == 2
    assert config.maximum_event_age_seconds == dev["MaximumEventAgeInSeconds"]
    assert config.on_failure_queue == "imgpress-local-upload-failures"
    assert [config.retry_delay(n) for n in (1, 2, 3)] == [0.5, 1.0, 1.0]


def test_other_async_functions_get_lambdas_defaults_and_no_destination() -> None:
    config = event_invoke_config("tick", stage_environment("local"), {})
    assert (config.maximum_retry_attempts, config.maximum_event_age_seconds) == (2, 21600)
    assert config.on_failure_queue is None and config.retry_delays == (1.0, 2.0)
