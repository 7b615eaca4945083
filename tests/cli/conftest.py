"""Run the installed `imgpress` console script, exactly as a user's shell would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

IMGPRESS = Path(sys.executable).with_name("imgpress")


def run_imgpress(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    merged = {k: v for k, v in os.environ.items() if k != "IMGPRESS_API"}
    merged.update(env or {})
    return subprocess.run([str(IMGPRESS), *args], capture_output=True, text=True, env=merged, timeout=timeout)


@pytest.fixture(scope="session", autouse=True)
def imgpress_is_installed() -> None:
    assert IMGPRESS.exists(), f"{IMGPRESS} missing: requirements-dev.txt installs it with `-e .` (run make install)"
