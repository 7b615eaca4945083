"""Sandboxes of the sample app, invoked directly: the context, timeouts, crashes, memory, logs."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.functions import FunctionConfig
from devstack.lambda_runtime import FunctionPool, Invocation
from tests.devstack.sample_app import read_journal

pytestmark = pytest.mark.integration

SAMPLE = FunctionConfig(
    name="handle_upload",
    app_module="tests.devstack.sample_app",
    handler="handle_upload",
    deployed_name="sample-local-handle_upload",
    timeout=2.0,
    memory_mb=160,
)


def s3_event(key: str) -> dict[str, Any]:
    return {"Records": [{"eventSource": "aws:s3", "s3": {"bucket": {"name": "sample-input"}, "object": {"key": key}}}]}


@pytest.fixture(scope="module")
def journal() -> Iterator[Path]:
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        yield Path(directory)


@pytest.fixture(scope="module")
def pool(journal: Path) -> Iterator[FunctionPool]:
    pool = FunctionPool(SAMPLE, 1, {**os.environ, "SAMPLE_JOURNAL": str(journal)}, memory_watchdog=True)
    yield pool
    pool.stop()


def attempts(journal: Path, key: str) -> list[dict[str, Any]]:
    return [entry for entry in read_journal(journal, "attempts") if entry["key"] == key]


def invoke(pool: FunctionPool, key: str, request_id: str) -> Invocation:
    return pool.invoke(s3_event(key), request_id)


def test_the_context_is_lambdas_and_its_remaining_time_counts_down_from_the_timeout(
    pool: FunctionPool, journal: Path
) -> None:
    result = invoke(pool, "uploads/ok-context", "request-1")
    assert not result.failed, result.payload
    first, second = result.payload["remaining_ms"]
    assert 1500 < first <= 2000 and 290 <= first - second < 1000  # the handler slept 0.3 s between the two
    (attempt,) = attempts(journal, "uploads/ok-context")
    context = attempt["context"]
    assert context["aws_request_id"] == "request-1"
    assert context["function_name"] == "sample-local-handle_upload" and context["function_version"] == "$LATEST"
    assert (
        context["invoked_function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:sample-local-handle_upload"
    )
    assert context["memory_limit_in_mb"] == "160"  # a string, as Lambda's runtime has it
    assert context["log_group_name"] == "/aws/lambda/sample-local-handle_upload"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", context["log_stream_name"])


def test_a_timed_out_invocation_is_killed_without_cleanup_and_its_sandbox_replaced(
    pool: FunctionPool, journal: Path
) -> None:
    result = invoke(pool, "uploads/sleep-1", "request-2")
    assert result.failed and result.function_error == "Unhandled"
    assert result.payload == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": "RequestId: request-2 Error: Task timed out after 2.00 seconds",
    }
    assert 2000 <= result.duration_ms < 3500
    (attempt,) = attempts(journal, "uploads/sleep-1")
    assert not read_journal(journal, "finally")  # SIGKILL: the handler's `finally` never ran
    with pytest.raises(ProcessLookupError):
        os.kill(attempt["pid"], 0)
    after = invoke(pool, "uploads/ok-after-timeout", "request-3")
    assert not after.failed
    assert attempts(journal, "uploads/ok-after-timeout")[0]["pid"] != attempt["pid"]


def test_an_exception_is_an_unhandled_error_and_the_sandbox_stays_warm(pool: FunctionPool, journal: Path) -> None:
    result = invoke(pool, "uploads/raise-1", "request-4")
    assert result.failed and result.function_error == "Unhandled"
    assert result.payload["errorType"] == "RuntimeError"
    assert result.payload["errorMessage"] == "planned failure for uploads/raise-1"
    assert result.payload["requestId"] == "request-4"
    assert any("sample_app.py" in line for line in result.payload["stackTrace"])
    assert not any("devstack/worker.py" in line for line in result.payload["stackTrace"])
    invoke(pool, "uploads/ok-after-raise", "request-5")
    assert attempts(journal, "uploads/ok-after-raise")[0]["pid"] == attempts(journal, "uploads/raise-1")[0]["pid"]


def test_a_process_exit_is_a_runtime_exit_error(pool: FunctionPool) -> None:
    result = invoke(pool, "uploads/exit-1", "request-6")
    assert result.payload == {
        "errorType": "Runtime.ExitError",
        "errorMessage": "RequestId: request-6 Error: Runtime exited with error: exit status 3",
    }
    assert not invoke(pool, "uploads/ok-after-exit", "request-7").failed


@pytest.mark.parametrize("behaviour", ["hog", "childhog"])
def test_going_over_the_memory_size_kills_the_sandbox(pool: FunctionPool, behaviour: str) -> None:
    """Its processes count together, a child's memory as its parent's, as Lambda counts them."""
    result = invoke(pool, f"uploads/{behaviour}-1", "request-8")
    assert result.payload["errorType"] == "Runtime.OutOfMemory"
    assert result.duration_ms < 1900  # killed when it went over, not at the timeout


def test_what_the_handler_prints_is_its_log_never_its_response(
    pool: FunctionPool, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="devstack.lambda"):
        result = invoke(pool, "uploads/noisy-1", "request-9")
    assert result.payload["key"] == "uploads/noisy-1"
    lines = [record.getMessage() for record in caplog.records]
    assert '[handle_upload request-9] {"type": "result", "payload": "forged"}' in lines
    assert "[handle_upload request-9] to stderr" in lines
    assert any(line.startswith("[handle_upload] REPORT RequestId: request-9 Duration: ") for line in lines)


@pytest.mark.parametrize(
    "module, handler, error_type",
    [
        ("tests.devstack.no_such_app", "handle_upload", "Runtime.ImportModuleError"),
        ("tests.devstack.sample_app", "no_such_handler", "Runtime.HandlerNotFound"),
    ],
)
def test_a_broken_init_fails_the_invocation(module: str, handler: str, error_type: str) -> None:
    function = FunctionConfig("broken", module, handler, "sample-local-broken", 2.0, 160)
    pool = FunctionPool(function, 1, dict(os.environ), memory_watchdog=True)
    try:
        result = pool.invoke({}, "request-10")
    finally:
        pool.stop()
    assert result.failed and result.payload["errorType"] == error_type
