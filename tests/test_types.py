"""The house style's type check: every function in shipped code and tooling is typed and consistent."""
from __future__ import annotations

import subprocess
import sys

from tests.live_stack import ROOT

CHECKED = ["app.py", "chalicelib", "devstack", "infra", "cli/imgpress_cli", "examples"]


def test_mypy_passes_with_untyped_defs_disallowed() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--disallow-untyped-defs", "--ignore-missing-imports", *CHECKED],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
