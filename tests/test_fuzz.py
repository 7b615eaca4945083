"""The fuzzer (tests/fuzz.py) for a short, fixed budget on every run, and every finding it ever kept
replayed: each must now render or be refused with a code, within its bounds."""

from __future__ import annotations

import pytest

from tests import fuzz

pytestmark = pytest.mark.integration  # every input is rendered in a child process

CI_SECONDS = 10  # `make fuzz` runs it for longer (FUZZ_SECONDS)


def test_every_seed_renders_within_its_bounds() -> None:
    for name, data in fuzz.seeds().items():
        verdict = fuzz.render(data)
        assert verdict.outcome == "ok" and verdict.problem(len(data)) is None, (name, verdict)


def test_a_short_run_finds_nothing() -> None:
    findings, executions = fuzz.fuzz(CI_SECONDS, seed=23)
    assert executions > 0
    assert [(f.seed, f.problem) for f in findings] == []


@pytest.mark.parametrize(
    ("name", "data"), list(fuzz.regressions()) or [pytest.param("none", b"", marks=pytest.mark.skip)]
)
def test_every_kept_finding_is_handled(name: str, data: bytes) -> None:
    assert fuzz.render(data).problem(len(data)) is None
