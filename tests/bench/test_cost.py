"""bench/cost.py: the two-core schedule, the DynamoDB units of one upload, a worker run, the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.corpus import CorpusImage
from bench.cost import Measured, cost_per_image, dynamodb_units, report, two_core_wall, worker
from tests import images


def test_two_cores_hide_whatever_runs_beside_an_encode() -> None:
    # main: 0.1 before the big encode (0.2), then 0.02 and 0.03 around the small one (0.01)
    assert two_core_wall([0.1, 0.02, 0.03], [0.2, 0.01]) == pytest.approx(0.3)
    assert two_core_wall([0.1, 0.0], [0.2]) == pytest.approx(0.3)  # nothing to overlap: serial
    assert two_core_wall([0.1, 0.3, 0.0], [0.2, 0.2]) == pytest.approx(0.6)  # both encodes hidden but the last
    assert two_core_wall([0.05], []) == pytest.approx(0.05)


def test_an_upload_writes_its_record_four_times_with_its_index_entries() -> None:
    writes, reads = dynamodb_units(2)
    assert 4 + 4 <= writes <= 40 and reads == 1  # four item writes, each index entry it touches
    assert dynamodb_units(6)[0] >= writes  # more outputs, a larger item


def test_a_worker_run_is_byte_identical_and_reports_every_figure(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(images.jpeg(900, 600))
    result = worker({"path": str(path), "repeat": 2})
    assert result["variants"] == 2 and result["output_bytes"] > 0
    assert 0 < result["ideal_2"] <= result["cpu_1"] * 1.05
    measured = Measured(CorpusImage(path, "jpeg_mid", 900, 600, False), **result)
    costs = cost_per_image(measured, 1769, result["cpu_1"] + 0.08)
    assert 0 < costs["lambda"] < 1e-4 and costs["storage_month"] > 0
    text = report([measured], [measured], 2, "1.00", "1.00")
    assert "| JPEG, mid, baseline | 1 |" in text and "$ / 1,000,000" in text
