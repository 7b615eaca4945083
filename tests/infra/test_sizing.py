"""The S3 handler's Lambda size, checked against what rendering a 50 MP image really takes here.

Each worst case runs in a fresh interpreter that holds what a warm handler holds (the app,
boto3 clients), reads the upload and renders the default variants; its peak RSS must leave
headroom inside every deployable stage's `handle_upload` memory. (Time is the benchmark's to
measure; at run time each attempt's deadline ends an overlong render as `processing_timeout`.)
A 50 MP RGBA WebP is the worst accepted input (libwebp decodes into its own buffer, then
Pillow copies it); JPEGs are cheap because they are decoded at reduced size.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from infra import stages
from tests import images

pytestmark = pytest.mark.slow

ROOT = stages.PROJECT
WIDTH, HEIGHT = 8660, 5773  # 49.99 MP: just under MAX_PIXELS, within MAX_SIDE
MEMORY_HEADROOM = 1.5  # configured memory >= 1.5 x measured peak
PROBE = """
import json, re, sys
import boto3, app
clients = [boto3.client(s, region_name="us-east-1") for s in ("s3", "sns")] + [boto3.resource("dynamodb", region_name="us-east-1")]
from chalicelib.settings import imaging_settings
from chalicelib.imaging.limits import DecodeLimits
from chalicelib.imaging.render import render_variants
from chalicelib.imaging.settings import ImagingSettings
settings = imaging_settings({})
data = open(sys.argv[1], "rb").read()
rendering = render_variants(data, settings.variants, DecodeLimits(settings.allowed_decoders, settings.max_pixels, settings.max_side))
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent (pytest) across exec.
peak_kib = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
print(json.dumps({"peak_mib": peak_kib / 1024, "size": [rendering.source.width, rendering.source.height]}))
"""


def fifty_megapixels(path: Path, mode: str) -> Path:
    image = images.gradients(WIDTH, HEIGHT, mode)
    if path.suffix == ".webp":
        image.save(path, quality=80, method=0)
    else:
        image.save(path, quality=90, progressive=True)
    return path


@pytest.mark.parametrize("name, mode", [("rgba.webp", "RGBA"), ("progressive.jpg", "RGB")])
def test_rendering_50_megapixels_fits_the_handler_memory(tmp_path: Path, name: str, mode: str) -> None:
    upload = fifty_megapixels(tmp_path / name, mode)
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(upload)], cwd=ROOT, capture_output=True, text=True, check=True, timeout=300
    )
    measured = json.loads(result.stdout)
    assert measured["size"] == [WIDTH, HEIGHT]
    config = stages.load_config(ROOT)
    for stage in ("dev", "prod"):
        handler = config["stages"][stage]["lambda_functions"]["handle_upload"]
        assert measured["peak_mib"] * MEMORY_HEADROOM <= handler["lambda_memory_size"], (stage, measured)
    print(f"{name}: peak {measured['peak_mib']:.0f} MiB")
