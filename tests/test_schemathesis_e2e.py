"""Property-based testing of the whole API with Schemathesis, over real HTTP against the local stack.

Every operation of the served /openapi.json, with generated and mutated inputs (positive and
negative), the examples, the coverage phase (boundaries of every parameter) and stateful
sequences that follow the document's links (start a multipart upload, then sign, list, complete
and abort it; open a slot, then read and delete its image). Checks: no 5xx, every status
documented for its operation, the documented Content-Type, every body valid against its schema.
Run size and time: docs/testing.md#property-based-testing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live_stack import LiveStack, running_stack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
MAX_EXAMPLES = 20  # per operation and phase; the whole run stays within a few minutes on 2 cores
SEED = 20261129  # reproducible in CI; IMGPRESS_SCHEMATHESIS_SEED overrides it to explore
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


@pytest.fixture(scope="module")
def live() -> Iterator[LiveStack]:
    with running_stack() as stack:
        yield stack


def test_every_operation_survives_generated_and_mutated_requests(live: LiveStack, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    report = ARTIFACTS / "schemathesis-junit.xml"
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{live.api}/openapi.json",
        "--url",
        live.api,
        "--checks",
        CHECKS,
        "--mode",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        os.environ.get("IMGPRESS_SCHEMATHESIS_SEED", str(SEED)),
        # One worker: hypothesis' lambda descriptions call ast.parse, which is not thread-safe on 3.11.
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "junit",
        "--report-junit-path",
        str(report),
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks", "PYTHONPATH": str(ROOT)}
    began = time.monotonic()
    # Run from a scratch directory: Schemathesis keeps a cache (.schemathesis/) where it runs.
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=540)
    summary = run.stdout[-6000:]
    print(f"schemathesis: {time.monotonic() - began:.0f} s\n{summary}")
    assert run.returncode == 0, f"{summary}\n{run.stderr[-3000:]}"
