"""The npm packages of tests/uppy/ (Uppy, esbuild, TypeScript, openapi-typescript…), from its committed lock file."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

PACKAGES = Path(__file__).resolve().parent / "uppy"


def npm_ci() -> str:
    """npm's path, after `npm ci` if node_modules is missing or older than the lock file.

    A missing npm fails under CI, where a skip would hide it, and skips elsewhere."""
    npm = shutil.which("npm")
    if npm is None:
        if os.environ.get("CI"):
            pytest.fail("npm is missing: the machine's Node.js and npm install tests/uppy", pytrace=False)
        pytest.skip("npm is not installed")
    installed = PACKAGES / "node_modules" / ".package-lock.json"
    lock = PACKAGES / "package-lock.json"
    # One `npm ci` at a time: pytest-xdist's workers may need the packages at once (`make test`).
    with open(PACKAGES / ".npm-ci.lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"], cwd=PACKAGES, check=True, capture_output=True, timeout=300
            )
    return npm


def bin_of(name: str) -> Path:
    """An installed package's command (node_modules/.bin)."""
    return PACKAGES / "node_modules" / ".bin" / name
