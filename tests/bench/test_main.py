"""Smoke test of the whole benchmark harness on two generated images (the full run is `make bench`).

Runs every phase for real, in worker processes, with one timed run each. pyvips is a bench-only
extra: without it that engine is skipped, and the report must say so rather than fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import main
from bench.engines import vips_available
from bench.report import Results
from tests import images

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Results, Path]:
    root = tmp_path_factory.mktemp("bench")
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "jpeg_large__generated_photo.jpg").write_bytes(images.jpeg(2600, 1700))
    (corpus / "png_alpha__generated_disc.png").write_bytes(images.rgba_png(400, 300))
    results = main(
        [
            "--corpus",
            str(corpus),
            "--repeat",
            "1",
            "--rounds",
            "2",
            "--import-runs",
            "1",
            "--results",
            str(root / "RESULTS.md"),
            "--out",
            str(root / "out"),
        ]
    )
    return results, root


def engines() -> list[str]:
    return ["imgpress", "imgpress+placeholders", "naive", "naive-correct"] + (["pyvips"] if vips_available() else [])


def test_every_engine_ran_on_every_image_with_sane_numbers(run: tuple[Results, Path]) -> None:
    _, root = run
    raw = json.loads((root / "out" / "results.json").read_text())
    measured = {(m["image"], m["engine"]) for m in raw["matrix"]}
    assert measured == {
        (image, engine)
        for image in ("jpeg_large__generated_photo.jpg", "png_alpha__generated_disc.png")
        for engine in engines()
    }
    for m in raw["matrix"]:
        assert m["seconds"] > 0 and m["peak_rss_mib"] > 0  # what the render added to the worker's memory
        assert [o["name"] for o in m["outputs"]] == ["web", "thumb"]
        for output in m["outputs"]:
            assert 0 < output["ssim"] <= 1 and output["bytes"] > 0 and Path(output["path"]).is_file()
    jpeg = {m["engine"]: m for m in raw["matrix"] if m["image"].startswith("jpeg")}
    assert jpeg["imgpress"]["outputs"][0]["width"] == 2048
    assert jpeg["imgpress"]["outputs"][0]["ssim"] > 0.9


def test_naive_is_not_compared_where_it_drops_alpha(run: tuple[Results, Path]) -> None:
    results, _ = run
    checks = {c.image_class: c for c in results.checks}
    assert checks["png_alpha"].compared == 0 and checks["png_alpha"].excluded == 1
    assert checks["png_alpha"].strict is None
    assert checks["jpeg_large"].compared == 1
    alpha = next(m for m in results.matrix if m.engine == "naive" and m.image.image_class == "png_alpha")
    kept = next(m for m in results.matrix if m.engine == "imgpress" and m.image.image_class == "png_alpha")
    assert kept.output("web")["ssim"] > alpha.output("web")["ssim"]


def test_time_is_compared_with_the_recipe_made_correct_where_naive_is_wrong(run: tuple[Results, Path]) -> None:
    results, _ = run
    checks = {c.image_class: c for c in results.checks}
    assert checks["png_alpha"].time_ratio is None and checks["png_alpha"].time_ratio_correct is not None
    assert checks["jpeg_large"].time_ratio is not None
    correct = next(m for m in results.matrix if m.engine == "naive-correct" and m.image.image_class == "png_alpha")
    assert correct.output("web")["ssim"] > 0.99  # the same picture as the reference, alpha included
    verdicts = {v.target: v for v in results.verdicts}
    assert verdicts["PNG with alpha: time <= naive"].met is None
    assert "PNG with alpha: time <= naive made correct" in verdicts


def test_report_states_command_targets_and_every_section(run: tuple[Results, Path]) -> None:
    _, root = run
    text = (root / "RESULTS.md").read_text()
    assert "Produced by `python -m bench --corpus" in text
    for section in (
        "## Machine",
        "## Targets",
        "## 20 MP baseline JPEG",
        "## Per class",
        "## Throughput",
        "## Where the default job's time goes",
        "### WebP effort",
        '## `python -c "import app"`',
    ):
        assert section in text
    assert "time <= 0.5x naive" in text and "peak RSS <= 2.5 MiB per source MP" in text
    assert ("pyvips not installed" in text) != vips_available()
