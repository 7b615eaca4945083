"""Smoke test of the whole benchmark harness (the full run is `make bench`): every phase runs for
real, in worker processes, on two small generated images, with the two engines every target
compares and one timed run each. How classes are judged is tests/bench/test_targets.py's part, the
engines themselves tests/bench/test_engines.py's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import main
from bench.report import Results
from tests import images

pytestmark = pytest.mark.slow

PHOTO, DISC = "jpeg_large__generated_photo.jpg", "png_alpha__generated_disc.png"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Results, Path]:
    root = tmp_path_factory.mktemp("bench")
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / PHOTO).write_bytes(images.jpeg(640, 400))
    (corpus / DISC).write_bytes(images.rgba_png(64, 48))
    options = {"--repeat": "1", "--rounds": "1", "--import-runs": "1", "--engines": "imgpress,naive"}
    paths = {"--corpus": corpus, "--results": root / "RESULTS.md", "--out": root / "out"}
    results = main([part for pair in {**options, **paths}.items() for part in map(str, pair)])
    return results, root


def test_every_engine_ran_on_every_image_with_sane_numbers(run: tuple[Results, Path]) -> None:
    _, root = run
    raw = json.loads((root / "out" / "results.json").read_text())
    assert {(m["image"], m["engine"]) for m in raw["matrix"]} == {
        (image, engine) for image in (PHOTO, DISC) for engine in ("imgpress", "naive")
    }
    for m in raw["matrix"]:
        assert m["seconds"] > 0 and m["peak_rss_mib"] >= 0
        assert [o["name"] for o in m["outputs"]] == ["web", "thumb"]
        for output in m["outputs"]:
            assert 0 < output["ssim"] <= 1 and output["bytes"] > 0 and Path(output["path"]).is_file()
    photo = next(m for m in raw["matrix"] if m["image"] == PHOTO and m["engine"] == "imgpress")
    assert [(o["width"], o["height"]) for o in photo["outputs"]] == [(640, 400), (320, 200)]
    assert photo["outputs"][0]["ssim"] > 0.9
    assert {(t["engine"], t["processes"]) for t in raw["throughput"]} == {
        (engine, processes) for engine in ("imgpress", "naive") for processes in (1, 2)
    }
    assert raw["stages"]["encode"] > 0 and raw["import_time"]["import_app_seconds"] > 0


def test_naive_is_not_compared_where_it_drops_alpha(run: tuple[Results, Path]) -> None:
    results, _ = run
    checks = {c.image_class: c for c in results.checks}
    assert (checks["png_alpha"].compared, checks["png_alpha"].excluded) == (0, 1)
    assert checks["jpeg_large"].compared == 1 and checks["jpeg_large"].time_ratio is not None
    dropped = next(m for m in results.matrix if m.engine == "naive" and m.image.name == DISC)
    kept = next(m for m in results.matrix if m.engine == "imgpress" and m.image.name == DISC)
    assert kept.output("web")["ssim"] > dropped.output("web")["ssim"]


def test_report_states_command_targets_and_every_section(run: tuple[Results, Path]) -> None:
    _, root = run
    text = (root / "RESULTS.md").read_text()
    assert "Produced by `python -m bench --repeat 1" in text
    for section in (
        "## Machine",
        "## Targets",
        "## 20 MP baseline JPEG",
        "## Per class",
        "## Throughput",
        "## Where the default job's time goes",
        '## `python -c "import app"`',
        "## Every measurement",
    ):
        assert section in text
    assert "time <= 0.5x naive" in text and "peak RSS <= 2.5 MiB per source MP" in text
    assert "| time <= 1.0x pyvips | pyvips not measured | not checked |" in text
