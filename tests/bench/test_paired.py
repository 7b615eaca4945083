"""Paired timing: imgpress and a baseline taking turns in a process, for classes not clearly faster."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.corpus import CorpusImage
from bench.run import Bench, Job
from bench.targets import ClassCheck, class_verdicts, paired_ratio, with_pairing
from chalicelib.imaging.specs import DEFAULT_VARIANTS_JSON
from tests import images

pytestmark = pytest.mark.slow


def test_the_engines_take_turns_in_one_worker_and_every_round_is_timed(tmp_path: Path) -> None:
    path = tmp_path / "png_screenshot__generated.png"
    path.write_bytes(images.png(160, 100))
    image = CorpusImage(path, "png_screenshot", 160, 100, False)
    cpus = Bench(tmp_path, repeat=1, progress=lambda _line: None).paired(
        image, ["imgpress", "naive"], Job("default", DEFAULT_VARIANTS_JSON), rounds=3, processes=2
    )
    assert set(cpus) == {"imgpress", "naive"}
    assert all(len(seconds) == 3 and all(s >= 0 for s in seconds) for seconds in cpus.values())


def test_the_ratio_is_paired_per_round_and_a_median_over_images() -> None:
    # Round by round imgpress takes 0.9x the baseline, though the rounds themselves drift 3x.
    drifting = [0.1, 0.2, 0.3, 0.2, 0.1]
    faster = paired_ratio([([0.9 * s for s in drifting], drifting)] * 3)
    assert faster.estimate == pytest.approx(0.9)
    assert faster.high < 1.0 and not faster.parity
    assert (faster.images, faster.rounds) == (3, 5)


def test_an_interval_holding_one_reads_as_parity() -> None:
    theirs = [0.100] * 9
    ours = [0.098, 0.103, 0.099, 0.101, 0.097, 0.104, 0.100, 0.102, 0.099]
    even = paired_ratio([(ours, theirs)])
    assert even.low < 1.0 < even.high and even.parity
    assert "parity" in even.describe()
    assert paired_ratio([(ours, theirs)]) == even  # seeded: the same data gives the same interval


def check(time_ratio: float, time_ratio_correct: float) -> ClassCheck:
    return ClassCheck(
        "png_screenshot", 2, 1, {}, {}, {}, time_ratio, time_ratio, time_ratio_correct, fair=("a.png", "b.png")
    )


def test_only_ratios_close_to_one_are_paired_and_the_verdict_uses_the_paired_ratio() -> None:
    rounds = {"imgpress": [0.095] * 5, "naive": [0.100] * 5, "naive-correct": [0.100] * 5}
    cpus = {"a.png": rounds, "b.png": rounds, "c.png": rounds}
    close = check(time_ratio=1.03, time_ratio_correct=0.80)
    assert close.needs_pairing() and check(0.90, 1.30).needs_pairing() and not check(0.90, 0.94).needs_pairing()
    paired = with_pairing(close, cpus)
    assert paired.paired_vs_naive is not None and paired.paired_vs_naive.images == 2  # the fair images only
    assert paired.paired_vs_correct is None  # 0.80x needs no second look
    naive_verdict, correct_verdict = [v for v in class_verdicts([paired]) if "time" in v.target]
    assert naive_verdict.met is True and "0.950x taking turns" in naive_verdict.measured
    assert "separate processes 1.03x" in naive_verdict.measured
    assert correct_verdict.met is True and correct_verdict.measured == "0.80x"
