"""`imgpress compress` on generated images: the Lambda's renderer, its settings and its failure codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chalicelib.imaging.limits import DecodeLimits
from chalicelib.imaging.render import render_variants
from chalicelib.settings import Settings
from tests import images
from tests.cli.conftest import run_imgpress
from tests.conftest import ENV
from tests.live_stack import ROOT

pytestmark = pytest.mark.integration

SEED_RECIPES = json.dumps(
    [
        {"name": "thumb200", "max": 200, "format": "jpeg"},
        {"name": "lowres", "scale": 30, "format": "jpeg", "quality": 40, "progressive": True},
        {"name": "web800", "max": 800, "format": "webp", "quality": 80},
    ]
)


def lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_writes_exactly_what_the_lambda_would_store(tmp_path: Path) -> None:
    data = images.jpeg(2400, 1600)
    source = tmp_path / "photo.jpg"
    source.write_bytes(data)
    result = run_imgpress("compress", str(source), "-o", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    [line] = lines(result.stdout)
    assert line["input"] == str(source) and line["status"] == "done" and line["error"] is None
    assert line["original"] == {"format": "JPEG", "width": 2400, "height": 1600, "bytes": len(data)}

    # The local stage's settings, as the deployed handler reads them, rendered in-process.
    lambda_settings = Settings.from_env(ENV).imaging
    limits = DecodeLimits(lambda_settings.allowed_decoders, lambda_settings.max_pixels, lambda_settings.max_side)
    expected = {v.name: v for v in render_variants(data, lambda_settings.variants, limits).variants}
    assert list(line["outputs"]) == list(expected) == ["web", "thumb"]
    for name, output in line["outputs"].items():
        written = Path(output["path"])
        assert written == tmp_path / "out" / f"photo.{name}.webp"
        assert written.read_bytes() == expected[name].data
        assert (output["width"], output["height"], output["bytes"], output["format"]) == (
            expected[name].width,
            expected[name].height,
            len(expected[name].data),
            "webp",
        )
        assert images.decode(written.read_bytes()).size == (output["width"], output["height"])
    web = line["outputs"]["web"]["bytes"]
    assert line["savings"] == {"bytes": len(data) - web, "percent": round(100 * (len(data) - web) / len(data), 1)}


def test_one_line_per_file_failures_carry_the_code_and_the_exit_status(tmp_path: Path) -> None:
    inputs = {
        "good.png": images.png(640, 480),
        "fake.jpg": bytes(range(256)) * 4,
        "empty.gif": b"",
        "header-bomb.png": images.png_header(20000, 20000),
        "cut.jpg": images.jpeg(800, 600)[:3000],
    }
    for name, data in inputs.items():
        (tmp_path / name).write_bytes(data)
    paths = [str(tmp_path / name) for name in inputs] + [str(tmp_path / "missing.jpg")]
    result = run_imgpress("compress", *paths, "-o", str(tmp_path / "out"))
    assert result.returncode == 1
    by_input = {Path(line["input"]).name: line for line in lines(result.stdout)}
    assert list(by_input) == [*inputs, "missing.jpg"]
    assert by_input["good.png"]["status"] == "done"
    codes = {name: line["error"]["code"] for name, line in by_input.items() if line["status"] == "failed"}
    assert codes == {
        "fake.jpg": "not_an_image",
        "empty.gif": "empty",
        "header-bomb.png": "too_many_pixels",
        "cut.jpg": "truncated",
        "missing.jpg": "unreadable",
    }
    assert all(by_input[name]["outputs"] == {} for name in codes)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.thumb.webp", "good.web.webp"]


def test_variants_option_previews_other_settings(tmp_path: Path) -> None:
    source = tmp_path / "photo.jpg"
    source.write_bytes(images.jpeg(1200, 800))
    result = run_imgpress("compress", str(source), "-o", str(tmp_path), "--variants", SEED_RECIPES)
    assert result.returncode == 0, result.stderr
    outputs = lines(result.stdout)[0]["outputs"]
    assert {name: (o["format"], o["width"], o["height"]) for name, o in outputs.items()} == {
        "thumb200": ("jpeg", 200, 133),
        "lowres": ("jpeg", 360, 240),
        "web800": ("webp", 800, 533),
    }
    assert images.decode(Path(outputs["lowres"]["path"]).read_bytes()).info.get("progressive") == 1


def test_honours_the_lambda_environment_variables(tmp_path: Path) -> None:
    source = tmp_path / "photo.png"
    source.write_bytes(images.png(640, 480))
    env = {"VARIANTS": '[{"name": "small", "max": 100, "format": "png"}]', "MAX_UPLOAD_BYTES": "1000"}
    too_big = lines(run_imgpress("compress", str(source), "-o", str(tmp_path), env=env).stdout)[0]
    assert too_big["error"]["code"] == "too_large"
    small = lines(run_imgpress("compress", str(source), "-o", str(tmp_path), env={"VARIANTS": env["VARIANTS"]}).stdout)[
        0
    ]
    assert small["outputs"]["small"]["width"] == 100 and small["outputs"]["small"]["format"] == "png"
    only_png = run_imgpress("compress", str(source), "-o", str(tmp_path), env={"ALLOWED_CONTENT_TYPES": "image/jpeg"})
    assert lines(only_png.stdout)[0]["error"]["code"] == "unsupported_format" and only_png.returncode == 1


def test_bad_variants_are_a_usage_error_naming_the_field(tmp_path: Path) -> None:
    source = tmp_path / "photo.jpg"
    source.write_bytes(images.jpeg(300, 200))
    result = run_imgpress(
        "compress", str(source), "-o", str(tmp_path), "--variants", '[{"name": "x", "format": "bmp", "max": 10}]'
    )
    assert result.returncode == 2 and result.stdout == ""
    assert "VARIANTS[0].format" in result.stderr


def test_same_names_from_different_folders_do_not_overwrite_each_other(tmp_path: Path) -> None:
    for folder, size in (("a", (300, 200)), ("b", (200, 300))):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "photo.jpg").write_bytes(images.jpeg(*size))
    result = run_imgpress(
        "compress", str(tmp_path / "a" / "photo.jpg"), str(tmp_path / "b" / "photo.jpg"), "-o", str(tmp_path / "out")
    )
    webs = [line["outputs"]["web"] for line in lines(result.stdout)]
    assert [Path(w["path"]).name for w in webs] == ["photo.web.webp", "photo-2.web.webp"]
    assert [(w["width"], w["height"]) for w in webs] == [(300, 200), (200, 300)]


def test_profile_option_runs_a_shipped_profile(tmp_path: Path) -> None:
    source = tmp_path / "photo.jpg"
    source.write_bytes(images.jpeg(1200, 800))
    result = run_imgpress("compress", str(source), "-o", str(tmp_path), "--profile", "thumbnail200")
    assert result.returncode == 0, result.stderr
    outputs = lines(result.stdout)[0]["outputs"]
    assert {name: (o["format"], o["width"], o["height"]) for name, o in outputs.items()} == {
        "thumbnail": ("jpeg", 200, 133)
    }
    unknown = run_imgpress("compress", str(source), "-o", str(tmp_path), "--profile", "nope")
    assert unknown.returncode == 2 and "thumbnail200" in unknown.stderr


def test_compress_and_the_benchmark_never_load_the_aws_sdk(tmp_path: Path) -> None:
    """They use the image core's settings only: no bucket names to fake, no botocore to import."""
    source = tmp_path / "photo.jpg"
    source.write_bytes(images.jpeg(400, 300))
    probe = (
        "import sys\n"
        "from imgpress_cli.main import main\n"
        "import bench.__main__, bench.run, bench.engines, bench.worker\n"
        f"try:\n    main(['compress', {str(source)!r}, '-o', {str(tmp_path / 'out')!r}])\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in ('boto3', 'botocore') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout + result.stderr
