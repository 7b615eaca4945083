"""Every bash and Python sample of the docs runs, against one local stack (tests/docsamples.py).

A page's samples run in order in one bash session, as a reader follows the page: what one block
sets (`ID=...`) the next may use. Each session starts in a scratch directory holding the files
the docs name (`photo.jpg`, `logo.png`, `notes.txt`) and `.venv`; `127.0.0.1:8000` in a sample is
the stack's address, `imgpress` calls it (`IMGPRESS_API`), `AWS_PORT` is its AWS stand-in's port,
and curl fails on an HTTP error status, so a sample that calls a route wrongly fails here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from PIL import Image, ImageDraw

from tests.docsamples import ROOT, Sample, all_samples
from tests.live_stack import LiveStack, running_stack

pytestmark = pytest.mark.e2e

PAGES = sorted({sample.page for sample in all_samples() if sample.runs}, key=lambda page: (page != "README.md", page))
PAGE_SECONDS = 120
TOOLS = ("bash", "curl", "jq", "sha256sum")  # what the samples call besides imgpress and python


@pytest.fixture(scope="module")
def stack() -> Iterator[LiveStack]:
    with running_stack() as live:
        yield live


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files the samples name, as a reader would have them next to the commands."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{', '.join(missing)} missing: .ci/run installs them", pytrace=False)
        pytest.skip(f"the samples need {', '.join(missing)}")
    directory = tmp_path_factory.mktemp("samples")
    photo = Image.new("RGB", (3000, 2000), (150, 112, 84))
    draw = ImageDraw.Draw(photo)
    for x in range(0, 3000, 50):
        draw.line([(x, 0), (3000 - x, 2000)], fill=(x % 255, 90, 200 - x % 200), width=9)
    photo.save(directory / "photo.jpg", quality=90)
    logo = Image.new("RGBA", (400, 400), (0, 0, 0, 0))
    ImageDraw.Draw(logo).ellipse((40, 40, 360, 360), fill=(30, 120, 200, 255))
    logo.save(directory / "logo.png")
    (directory / "notes.txt").write_text("not an image\n")
    (directory / ".venv").symlink_to(Path(sys.prefix))
    (directory / ".curlrc").write_text("--fail-with-body\n")
    return directory


def session(samples: list[Sample], address: str) -> str:
    """One bash script for a page's samples; a failure names the sample it happened in."""
    lines = ["set -euo pipefail", "trap 'echo \"failed in the sample at $SAMPLE\" >&2' ERR"]
    for sample in samples:
        code = sample.code.replace("127.0.0.1:8000", address)
        lines.append(f"SAMPLE={sample}")
        if sample.language == "python":
            code = f"python - <<'IMGPRESS_SAMPLE'\n{code}IMGPRESS_SAMPLE\n"
        lines.append(code)
    return "\n".join(lines)


@pytest.mark.parametrize("page", PAGES)
def test_the_samples_of_each_page_run(page: str, stack: LiveStack, workspace: Path) -> None:
    samples = [sample for sample in all_samples() if sample.page == page and sample.runs]
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "IMGPRESS_API": stack.api,
        "AWS_PORT": str(urlsplit(stack.aws).port),
        "CURL_HOME": str(workspace),
        "XDG_CACHE_HOME": str(workspace / ".cache"),
    }
    address = urlsplit(stack.api).netloc
    result = subprocess.run(
        ["bash", "-c", session(samples, address)],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=PAGE_SECONDS,
    )
    assert result.returncode == 0, f"{page}:\n{result.stderr[-3000:]}\n{result.stdout[-2000:]}"
