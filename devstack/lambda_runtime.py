"""Lambda's sandboxes, locally: warm worker processes per function, invoked as Lambda's Invoke API does.

A sandbox is a `python -m devstack.worker` process (spawned, never forked from this multi-threaded
stack) that imports the app once and runs one invocation at a time. This side holds the clock: past
the function's timeout, or over its memory size, the sandbox's process group gets SIGKILL, as on
Lambda, so no `finally` and no cleanup runs; the invocation fails and a fresh sandbox takes its place.
Its memory is its processes' together (a render's child process too), as Lambda's limit counts them.
Everything the worker prints is the function's log, forwarded line by line to the stack's log (and
to the stack's metrics, which read the EMF records among the lines, as CloudWatch Logs does).
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from devstack.functions import ROOT, FunctionConfig

# Lambda gives init 10 s, then retries it within the first invocation; a loaded laptop importing
# the app in several sandboxes at once gets more before an init counts as failed.
INIT_SECONDS = 30.0
WATCH_SECONDS = 0.1  # how often a running invocation's memory is checked
log = logging.getLogger("devstack.lambda")
LineReader = Callable[[str], None]  # what else reads each line of a function's log


class Stopped(Exception):
    """The pool was stopped; no invocation was made."""


@dataclass(frozen=True)
class Invocation:
    """What Lambda's Invoke API returns: the response payload, or the error object and `functionError`."""

    request_id: str
    payload: Any
    function_error: str | None = None  # "Unhandled" when it failed (the X-Amz-Function-Error header)
    duration_ms: float = 0.0

    @property
    def failed(self) -> bool:
        return self.function_error is not None


def platform_error(error_type: str, request_id: str, message: str) -> dict[str, str]:
    """An error Lambda itself reports (timeouts, crashes), not the function's runtime."""
    return {"errorType": error_type, "errorMessage": f"RequestId: {request_id} Error: {message}"}


def sandbox_environment(function: FunctionConfig, base: Mapping[str, str]) -> dict[str, str]:
    """The stage's environment plus the variables Lambda's runtime sets (the context reads some)."""
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    return {
        **base,
        "AWS_LAMBDA_FUNCTION_NAME": function.deployed_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.deployed_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{python}",
        "LAMBDA_TASK_ROOT": str(ROOT),
        "_HANDLER": f"app.{function.handler}",
        "TZ": ":UTC",
        "PYTHONUNBUFFERED": "1",
    }


def _memory_mb(pid: int, field: str, path: str = "status") -> float:
    """A memory field of a process (/proc/<pid>/status: VmHWM, its peak), in MB; 0 where /proc is not
    available."""
    try:
        with open(f"/proc/{pid}/{path}") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _tree_memory_mb(pid: int) -> float:
    """The memory a process and its descendants use now, each page counted once (their Pss added up):
    what Lambda's memory limit counts."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        total += _memory_mb(current, "Pss", "smaps_rollup")
        with contextlib.suppress(OSError), open(f"/proc/{current}/task/{current}/children") as children:
            pending.extend(int(child) for child in children.read().split())
    return total


class Sandbox:
    """One warm worker process of a function."""

    def __init__(
        self,
        function: FunctionConfig,
        env: Mapping[str, str],
        memory_watchdog: bool,
        read_line: LineReader | None = None,
    ) -> None:
        self.function = function
        self._memory_watchdog = memory_watchdog
        self._read_line = read_line
        self._channel, child = multiprocessing.Pipe()
        command = [sys.executable, "-m", "devstack.worker", "--app", function.app_module, "--handler", function.handler]
        self.process = subprocess.Popen(
            [*command, "--fd", str(child.fileno())],
            cwd=ROOT,
            env=sandbox_environment(function, env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(child.fileno(),),
            start_new_session=True,  # Ctrl-C in a terminal reaches the stack, which stops sandboxes itself
        )
        child.close()
        self._ready = False
        self._peak_mb = 0.0
        self._request_id = "init"
        threading.Thread(target=self._forward_logs, name=f"log-{function.name}", daemon=True).start()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def invoke(self, event: Any, request_id: str) -> Invocation:
        started = time.monotonic()
        self._request_id = request_id
        try:
            outcome = self._run(event, request_id)
        finally:
            self._request_id = "-"
        duration = (time.monotonic() - started) * 1000
        peak = max(_memory_mb(self.process.pid, "VmHWM") if self.alive else 0.0, self._peak_mb)
        log.info(
            "[%s] REPORT RequestId: %s Duration: %.2f ms Memory Size: %d MB Max Memory Used: %.0f MB",
            self.function.name,
            request_id,
            duration,
            self.function.memory_mb,
            peak,
        )
        if outcome.get("type") == "result":
            return Invocation(request_id, outcome["payload"], None, duration)
        return Invocation(request_id, outcome["error"], "Unhandled", duration)

    def _run(self, event: Any, request_id: str) -> dict[str, Any]:
        if not self._ready:
            init = self._await(INIT_SECONDS, request_id, "Init timed out")
            if init.get("type") != "ready":
                self.kill()
                return init if "error" in init else {"type": "error", "error": init}
            self._ready = True
        deadline_ms = int((time.time() + self.function.timeout) * 1000)
        request = {"requestId": request_id, "deadlineMs": deadline_ms, "invokedFunctionArn": self.function.arn}
        try:
            self._channel.send_bytes(json.dumps({**request, "event": event}).encode())
        except OSError:
            return {"type": "error", "error": self._exit_error(request_id)}
        reply = self._await(self.function.timeout, request_id, "Task timed out")
        return reply if "type" in reply else {"type": "error", "error": reply}

    def _await(self, seconds: float, request_id: str, timed_out: str) -> dict[str, Any]:
        """The worker's next message, or Lambda's error when time, memory or the process runs out first."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                if self._channel.poll(min(remaining, WATCH_SECONDS)):
                    return dict(json.loads(self._channel.recv_bytes()))
            except (EOFError, OSError):
                return self._exit_error(request_id)
            used = _tree_memory_mb(self.process.pid) if self._memory_watchdog else 0.0
            self._peak_mb = max(self._peak_mb, used)
            if used > self.function.memory_mb:
                self.kill()
                log.warning(
                    "[%s %s] out of memory: over %d MB", self.function.name, request_id, self.function.memory_mb
                )
                return platform_error("Runtime.OutOfMemory", request_id, "Runtime exited with error: signal: killed")
        self.kill()
        log.warning("[%s %s] %s after %.2f seconds", self.function.name, request_id, timed_out, seconds)
        return platform_error("Sandbox.Timedout", request_id, f"{timed_out} after {seconds:.2f} seconds")

    def _exit_error(self, request_id: str) -> dict[str, str]:
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = -signal.SIGKILL
        status = (
            f"signal: {signal.Signals(-code).name.removeprefix('SIG').lower()}" if code < 0 else f"exit status {code}"
        )
        return platform_error("Runtime.ExitError", request_id, f"Runtime exited with error: {status}")

    def kill(self) -> None:
        """SIGKILL to the sandbox's whole process group, as Lambda ends a sandbox: nothing gets to clean up."""
        if self.alive:
            self._peak_mb = max(self._peak_mb, _memory_mb(self.process.pid, "VmHWM"))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._channel.close()

    def _forward_logs(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            log.info("[%s %s] %s", self.function.name, self._request_id, line)
            if self._read_line is not None:
                self._read_line(line)


class FunctionPool:
    """The sandboxes of one function: `size` warm ones, so at most `size` invocations at a time."""

    def __init__(
        self,
        function: FunctionConfig,
        size: int,
        env: Mapping[str, str],
        memory_watchdog: bool,
        read_line: LineReader | None = None,
    ) -> None:
        self.function = function
        self.size = size
        self._env = dict(env)
        self._memory_watchdog = memory_watchdog
        self._read_line = read_line
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._idle: queue.Queue[Sandbox] = queue.Queue()
        self._all: set[Sandbox] = set()
        for _ in range(size):
            self._idle.put(self._spawn())

    def _spawn(self) -> Sandbox:
        sandbox = Sandbox(self.function, self._env, self._memory_watchdog, self._read_line)
        with self._lock:
            self._all.add(sandbox)
        return sandbox

    def invoke(self, event: Any, request_id: str | None = None) -> Invocation:
        """Runs `event` in the next free sandbox (waiting for one); raises Stopped once the pool is stopped."""
        sandbox = self._acquire()
        try:
            return sandbox.invoke(event, request_id or str(uuid.uuid4()))
        finally:
            self._release(sandbox)

    def running(self) -> int:
        """Invocations in progress (a sandbox being replaced counts as busy until it is back)."""
        return self.size - self._idle.qsize()

    def _acquire(self) -> Sandbox:
        while not self._stopped.is_set():
            try:
                return self._idle.get(timeout=0.5)
            except queue.Empty:
                continue
        raise Stopped(self.function.name)

    def _release(self, sandbox: Sandbox) -> None:
        if sandbox.alive or self._stopped.is_set():
            self._idle.put(sandbox)
            return
        with self._lock:
            self._all.discard(sandbox)
        log.info("[%s] sandbox %d is gone; starting a fresh one", self.function.name, sandbox.process.pid)
        self._idle.put(self._spawn())

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            sandboxes = list(self._all)
        for sandbox in sandboxes:
            sandbox.kill()
