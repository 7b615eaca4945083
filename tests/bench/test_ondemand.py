"""The on-demand benchmark runs (synthetic photos when there is no corpus), and its report and costs add up."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import ondemand
from tests import images

pytestmark = pytest.mark.slow


def test_measures_upload_and_first_renders_and_reports_their_cost(tmp_path: Path) -> None:
    result = ondemand.measure(images.jpeg(1600, 1200), "image/jpeg", repeat=1)
    assert set(result) == {"upload", "320.webp", "640.avif", "1280.webp", "2048.jpeg", "hit"}
    assert all(seconds > 0 for seconds in result.values())
    assert result["hit"] < result["320.webp"]  # a hit renders nothing
    report = ondemand.report([("photo", result)], 1769, 1, ("1.0", "1.0"))
    assert "| photo |" in report and "Cost per 1,000 first renders at `api_handler` 1769 MB" in report
    fixed = ondemand.cost_per_thousand(0.0, 1769)  # requests, units, API Gateway and the AWS round trips
    assert 0.014 < fixed < 0.018 and ondemand.cost_per_thousand(1.0, 1769) > fixed + 0.02


def test_without_a_corpus_it_makes_its_own_photos(tmp_path: Path) -> None:
    sources = ondemand._sources(tmp_path / "absent")
    assert [content_type for _, _, content_type in sources] == ["image/jpeg", "image/jpeg"]
