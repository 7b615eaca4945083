"""Run a render where a crash or an overrun of the decoders ends the image, not the worker.

Decoders are C libraries that read untrusted bytes: a bug in one can kill the process (a segmentation
fault), and their allocations and loops cannot be interrupted from Python. So the render runs in a
child process forked for it, with its own memory limit (RLIMIT_DATA: what it may allocate beyond
what it inherited), and its result comes back through a pipe. The parent only waits on that pipe,
in Python, so the attempt's deadline (a SIGALRM, deadline.py) interrupts the wait on time; the child
is then killed. `os.fork` and a pipe need nothing Lambda lacks (no /dev/shm, no semaphores).

How a child ends, and what the image records:
- it returns or raises ImageRejected: that, as if rendered in this process;
- it runs out of its memory (MemoryError, killed while near its limit, or killed outright, as the
  kernel's out-of-memory killer does): `too_much_memory`;
- it is killed by any other signal (a crash in a decoder): `decoder_crashed`;
- the deadline passes: the child is killed and DeadlineExceeded raised here (`processing_timeout`).
"""

from __future__ import annotations

import os
import pickle
import resource
import select
import signal
import time
from collections.abc import Callable
from typing import Any, TypeVar

from chalicelib.deadline import DeadlineExceeded
from chalicelib.errors import ImageRejected
from chalicelib.imaging.decode import out_of_memory

T = TypeVar("T")
_CHUNK = 1 << 20
# A child killed by a signal had run out of memory, not crashed, when it had grown this close to its limit.
_NEAR_LIMIT = 0.9


def run_isolated(work: Callable[[], T], memory_bytes: int, timeout: float | None = None) -> T:
    """`work()` in a forked child allowed `memory_bytes` more than this process holds now.

    With `timeout` (seconds), the child is killed and DeadlineExceeded raised when it has not
    answered by then: a deadline that holds on any thread (SIGALRM only reaches the main one)."""
    ceiling = _status_bytes("VmData") + memory_bytes
    resident = _status_bytes("VmRSS")
    reading, writing = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(reading)
        _child(work, ceiling, writing)
    os.close(writing)
    try:
        payload = _read_all(reading, None if timeout is None else time.monotonic() + timeout)
    except BaseException:  # the deadline (or anything else) while waiting: the child must not outlive it
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    finally:
        os.close(reading)
    _, status, usage = os.wait4(pid, 0)
    if os.WIFSIGNALED(status) or not payload:
        grown = usage.ru_maxrss * 1024 - resident
        raise _death(os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0, grown >= _NEAR_LIMIT * memory_bytes)
    outcome, value = pickle.loads(payload)
    if outcome == "rejected":
        raise ImageRejected(*value)
    return value  # type: ignore[no-any-return]


def _child(work: Callable[[], Any], ceiling: int, writing: int) -> None:
    status = 0
    try:
        resource.setrlimit(resource.RLIMIT_DATA, (ceiling, ceiling))
        try:
            result: tuple[str, Any] = ("done", work())
        except ImageRejected as rejected:
            result = ("rejected", (rejected.message, rejected.code))
        except MemoryError:
            result = ("rejected", (out_of_memory().message, out_of_memory().code))
        payload = pickle.dumps(result, pickle.HIGHEST_PROTOCOL)
        view = memoryview(payload)
        while view:
            view = view[os.write(writing, view) :]
    except BaseException:
        status = 1
    finally:
        os._exit(status)


def _read_all(fd: int, until: float | None = None) -> bytes:
    chunks: list[bytes] = []
    while True:
        if until is not None and not select.select([fd], [], [], max(until - time.monotonic(), 0))[0]:
            raise DeadlineExceeded
        chunk = os.read(fd, _CHUNK)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _status_bytes(field: str) -> int:
    """VmData (private writable memory, which a child inherits) or VmRSS of this process."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _death(signum: int, near_limit: bool) -> ImageRejected:
    """A child that ended without a result: out of memory if it had grown to its limit or was killed
    (only the out-of-memory killer sends a child SIGKILL; run_isolated's own kill raises before this),
    else a crash."""
    if near_limit or signum == signal.SIGKILL:
        return out_of_memory()
    cause = signal.Signals(signum).name if signum else "it exited without a result"
    return ImageRejected(f"The image decoder crashed on this file ({cause}).", "decoder_crashed")
