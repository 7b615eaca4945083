"""One Lambda sandbox: `python -m devstack.worker --app app --handler handle_upload --fd N`.

Started by devstack.lambda_runtime, one process per sandbox. Like Lambda's Python runtime it
imports the handler's module once (init), then serves one invocation at a time with
`handler(event, context)`. Requests and replies travel as JSON over the inherited socket `--fd`,
never stdout/stderr: those are the function's log, so a handler's print cannot corrupt a reply.
The parent enforces the timeout by killing this process, so nothing here needs to watch the clock.
"""

from __future__ import annotations

import argparse
import decimal
import importlib
import json
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

_request_id = ""  # the invocation in progress, for the log format (Lambda keeps it in a global too)


class CognitoIdentity:
    """Empty for anything but mobile SDK calls, as on Lambda (the object exists, its fields are None)."""

    cognito_identity_id: str | None = None
    cognito_identity_pool_id: str | None = None


class LambdaContext:
    """The `context` Lambda's Python runtime passes: the function's facts come from its environment,
    the request's from the invocation, and the remaining time from the deadline the parent enforces."""

    def __init__(self, request_id: str, deadline_ms: int, invoked_function_arn: str) -> None:
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_function_arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")  # a string on Lambda too
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.identity = CognitoIdentity()
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def __repr__(self) -> str:
        return f"LambdaContext(aws_request_id={self.aws_request_id}, function_name={self.function_name})"


def error_object(error_type: str, message: str, request_id: str = "", stack: list[str] | None = None) -> dict[str, Any]:
    """Lambda's error payload, as the runtime reports it (also built by the parent for timeouts)."""
    return {"errorMessage": message, "errorType": error_type, "requestId": request_id, "stackTrace": stack or []}


def _exception_object(error: BaseException, request_id: str = "") -> dict[str, Any]:
    frames = [frame for frame in traceback.extract_tb(error.__traceback__) if frame.filename != __file__]
    return error_object(type(error).__name__, str(error), request_id, traceback.format_list(frames))


def _log_error(error: dict[str, Any]) -> None:
    """The runtime prints an unhandled error into the function's log before it replies."""
    lines = [f"[ERROR] {error['errorType']}: {error['errorMessage']}"]
    if error["stackTrace"]:
        lines += ["Traceback (most recent call last):", *(line.rstrip("\n") for line in error["stackTrace"])]
    print("\n".join(lines), flush=True)


def _json_default(value: Any) -> Any:
    """Lambda's marshaller writes Decimal (DynamoDB numbers) as JSON numbers."""
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _load_handler(module_name: str, attribute: str) -> Callable[..., Any]:
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise _Fault("Runtime.ImportModuleError", f"Unable to import module '{module_name}': {error}") from error
    handler = getattr(module, attribute, None)
    if handler is None:
        raise _Fault("Runtime.HandlerNotFound", f"Handler '{attribute}' missing on module '{module_name}'")
    return handler  # type: ignore[no-any-return]


class _Fault(Exception):
    """A runtime-level failure with Lambda's own error type (Runtime.ImportModuleError, ...)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def invoke(handler: Callable[..., Any], request: dict[str, Any]) -> dict[str, Any]:
    """One invocation: the reply to send, {"type": "result"|"error", ...}."""
    global _request_id
    _request_id = request["requestId"]
    try:
        return {"type": "result", "payload": _call(handler, request)}
    except _Fault as fault:
        failure = error_object(fault.error_type, str(fault), _request_id)
    except Exception as exception:
        failure = _exception_object(exception, _request_id)
    finally:
        _request_id = ""
    _log_error(failure)
    return {"type": "error", "error": failure}


def _call(handler: Callable[..., Any], request: dict[str, Any]) -> Any:
    """handler(event, context), and its response as the JSON Lambda would send back."""
    context = LambdaContext(request["requestId"], request["deadlineMs"], request["invokedFunctionArn"])
    response = handler(request["event"], context)
    if isinstance(response, bytes):
        response = response.decode("utf-8", "replace")
    try:
        return json.loads(json.dumps(response, default=_json_default))
    except (TypeError, ValueError) as problem:
        raise _Fault("Runtime.MarshalError", f"Unable to marshal response: {problem}") from problem


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = _request_id
        return True


def _setup_logging() -> None:
    """The root handler Lambda's runtime installs: `[LEVEL] <UTC time> <request id> message` on stdout."""
    handler = logging.StreamHandler(sys.stdout)
    formatter = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s", "%Y-%m-%dT%H:%M:%S"
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(_RequestIdFilter())
    logging.getLogger().addHandler(handler)


def _exit_with_parent(parent: int) -> None:
    """A sandbox must not outlive its stack (it runs in its own session, so no signal reaches it)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _send(channel: Connection, message: dict[str, Any]) -> None:
    channel.send_bytes(json.dumps(message).encode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One local Lambda sandbox (started by devstack).")
    parser.add_argument("--app", required=True, help="module holding the Chalice app")
    parser.add_argument("--handler", required=True, help="attribute of that module Lambda calls")
    parser.add_argument("--fd", type=int, required=True, help="inherited socket for requests and replies")
    args = parser.parse_args(argv)
    os.set_inheritable(args.fd, False)  # a handler's own subprocesses must not hold the channel open
    channel = Connection(args.fd)
    _exit_with_parent(os.getppid())
    _setup_logging()
    try:
        handler = _load_handler(args.app, args.handler)
    except _Fault as fault:
        _fail_init(channel, error_object(fault.error_type, str(fault)))
        return 1
    except Exception as exception:
        _fail_init(channel, _exception_object(exception))
        return 1
    _send(channel, {"type": "ready"})
    while True:
        try:
            request = json.loads(channel.recv_bytes())
        except EOFError:
            return 0
        _send(channel, invoke(handler, request))


def _fail_init(channel: Connection, error: dict[str, Any]) -> None:
    _log_error(error)
    _send(channel, {"type": "initError", "error": error})


if __name__ == "__main__":
    sys.exit(main())
