"""The local stack as `make run` starts it (`python -m devstack`), in a subprocess, for tests over real HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import requests

from devstack.stack import free_port

ROOT = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 60


@dataclass(frozen=True)
class LiveStack:
    api: str  # http://127.0.0.1:<port> of the chalice local server
    aws: str  # http://127.0.0.1:<port> of the moto server behind it
    log: Path  # everything the stack printed so far, its functions' logs included

    def output(self) -> str:
        return self.log.read_text()


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
            yield LiveStack(api, f"http://127.0.0.1:{aws_port}", Path(log.name))
        finally:
            process.terminate()
            process.wait(timeout=10)


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
