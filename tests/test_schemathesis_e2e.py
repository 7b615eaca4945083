"""Property-based testing of the whole API with Schemathesis, over real HTTP against the local stack.

Every operation of the served /openapi.json, with generated and mutated inputs (positive and
negative), the examples, the coverage phase (boundaries of every parameter) and stateful
sequences that follow the document's links (start a multipart upload, then sign, list, complete
and abort it; open a slot, then read and delete its image). Every check Schemathesis has, on a
stack with `API_AUTH=jwt` and two users, alice and bob, as peers: whatever one of them reads of
their own must not be readable by the other (object-level authorization), and no protected
operation may answer without a token (`ignored_auth`). Run size and time:
docs/testing.md#property-based-testing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.jwt_stack import JwtStack, jwt_stack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
MAX_EXAMPLES = 10  # per operation and phase; the whole run stays near a minute on 2 cores
SEED = 20261129  # reproducible in CI; IMGPRESS_SCHEMATHESIS_SEED overrides it to explore
PEERS = ("alice", "bob")
# Every check (in the file, so one operation can leave one out; a --checks option would override
# that), answers within 10 s. A refusal may also be 413 (a size over the stage's limit: too_large);
# a valid request for an upload that has ended is 410 (upload_ended): Schemathesis' lists lack both.
CONFIG = """
[checks]
enabled = true
max_response_time = 10.0

[auth.wfc]
path = "users.json"
peers = {peers}

[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]

[checks.positive_data_acceptance]
expected-statuses = ["2XX", "3XX", 401, 403, 404, 409, 410, 429]

# Which parts an upload has, and how many it may have, is data the document cannot state: a part
# number past the upload's own count, or a part it does not hold, is refused (400 invalid_part).
[[operations]]
include-operation-id = ["signPart", "completeMultipart"]
checks.positive_data_acceptance.enabled = false
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JwtStack]:
    with jwt_stack(tmp_path_factory.mktemp("issuer")) as stack:
        yield stack


def write_config(stack: JwtStack, directory: Path) -> Path:
    """schemathesis.toml and its Web Fuzzing Commons auth document: each peer's bearer token."""
    users = [
        {"name": user, "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {stack.caller(user).token}"}]}
        for user in PEERS
    ]
    (directory / "users.json").write_text(json.dumps({"auth": users}))
    config = directory / "schemathesis.toml"
    config.write_text(CONFIG.format(peers=json.dumps(list(PEERS))))
    return config


def test_every_operation_survives_generated_and_mutated_requests(live: JwtStack, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    report = ARTIFACTS / "schemathesis-junit.xml"
    config = write_config(live, tmp_path)
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(config),
        "run",
        f"{live.live.api}/openapi.json",
        "--url",
        live.live.api,
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
