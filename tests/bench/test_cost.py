"""bench/cost.py: the two-core schedule, a worker run, one upload's dollars, the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.corpus import CorpusImage
from bench.cost import PRICES, Measured, cost_per_image, price_table, report, two_core_wall, worker
from tests import images


def test_two_cores_hide_whatever_runs_beside_an_encode() -> None:
    # main: 0.1 before the big encode (0.2), then 0.02 and 0.03 around the small one (0.01)
    assert two_core_wall([0.1, 0.02, 0.03], [0.2, 0.01]) == pytest.approx(0.3)
    assert two_core_wall([0.1, 0.0], [0.2]) == pytest.approx(0.3)  # nothing to overlap: serial
    assert two_core_wall([0.1, 0.3, 0.0], [0.2, 0.2]) == pytest.approx(0.6)  # both encodes hidden but the last
    assert two_core_wall([0.05], []) == pytest.approx(0.05)


def measured(path: Path, output_bytes: int = 1024**3) -> Measured:
    return Measured(CorpusImage(path, "jpeg_mid", 900, 600, False), 30, 90, output_bytes, 0.2, 0.2, 0.2, 0.1, 0.1)


def test_an_upload_pays_its_vectors_requests_and_units_at_the_listed_prices() -> None:
    costs = cost_per_image(measured(Path("photo.jpg")), 1024, 2.0)
    assert costs["lambda"] == pytest.approx(0.20 / 1e6 + 2 * 0.0000166667)
    assert costs["s3_requests"] == pytest.approx(3 * 0.005 / 1000 + 0.0004 / 1000)  # POST, two PUTs; one GET
    assert costs["dynamodb"] == pytest.approx((20 * 0.625 + 0.125) / 1e6)  # 20 write units, 1 read unit
    assert costs["sns"] == pytest.approx(0.50 / 1e6)
    assert costs["storage_month"] == pytest.approx(0.023)  # 1 GiB of outputs
    rows = price_table()
    assert all(any(f"| {p.what} | {p} | {p.source} |" == row for row in rows) for p in PRICES.values())
    assert "| Lambda requests | $0.20 per million |" in "\n".join(rows)


def test_a_worker_run_is_byte_identical_and_reports_every_figure(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(images.jpeg(480, 320))
    result = worker({"path": str(path), "repeat": 2})
    assert result["output_bytes"] > 0
    assert 0 < result["ideal_2"] <= result["cpu_1"] * 1.05
    text = report([Measured(CorpusImage(path, "jpeg_mid", 480, 320, False), **result)], [], 2, "1.00", "1.00")
    assert "| JPEG, mid, baseline | 1 |" in text and "$ / 1,000,000" in text and "20 WRU + 1 RRU" in text
