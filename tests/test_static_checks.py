"""The house style, checked: every function typed (mypy), lint-clean and formatted (ruff, pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.live_stack import ROOT

pytestmark = pytest.mark.integration

TYPED = ["app.py", "chalicelib", "devstack", "infra", "cli/imgpress_cli", "examples"]


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True)


def test_mypy_passes_with_untyped_defs_disallowed() -> None:
    result = _run("mypy", "--disallow-untyped-defs", "--ignore-missing-imports", *TYPED)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("command", [("check",), ("format", "--check")], ids=["lint", "format"])
def test_ruff_finds_nothing(command: tuple[str, ...]) -> None:
    result = _run("ruff", *command, ".")
    assert result.returncode == 0, result.stdout + result.stderr
