"""`imgpress upload` of large files: S3 multipart through the API, resumed by a re-run, against the local stack."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imgpress_cli import resumable
from imgpress_cli.api import ApiError, ImgpressApi
from tests.cli.conftest import run_imgpress
from tests.live_stack import LiveStack, running_stack

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def live() -> Iterator[LiveStack]:
    with running_stack() as stack:
        yield stack


@pytest.fixture
def big_png(tmp_path: Path) -> Path:
    """About 12 MB of real PNG (random pixels do not compress): three 5 MiB parts."""
    from tests.test_uppy_e2e import noise_png

    path = tmp_path / "big.png"
    path.write_bytes(noise_png(2000, 2000))
    return path


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "imgpress" / "uploads"


def test_a_large_file_goes_up_in_parts_and_wait_needs_no_polling(live: LiveStack, big_png: Path, cache: Path) -> None:
    result = run_imgpress(
        "upload", str(big_png), "--api", live.api, "--json", "--wait", env={"XDG_CACHE_HOME": str(cache.parent.parent)}
    )
    assert result.returncode == 0, result.stderr
    [image] = json.loads(result.stdout)
    assert image["status"] == "done" and image["original"]["bytes"] == big_png.stat().st_size
    assert not list(cache.glob("*.json")), "a finished upload leaves no state behind"
    # --wait holds one request per image until the outcome instead of polling every half second.
    waits = [line for line in live.output().splitlines() if f"/images/{image['id']}?wait=" in line]
    assert 1 <= len(waits) <= 2, waits


def test_a_rerun_resumes_without_resending_the_parts_s3_holds(
    live: LiveStack, big_png: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = ImgpressApi(live.api)
    put = resumable._put_part
    sent: list[int] = []
    faults = [2]  # the first try of part 2 fails, as a dropped connection would

    def interrupted(api: ImgpressApi, state: Any, number: int, data: bytes) -> str:
        if number in faults:
            faults.remove(number)
            raise ApiError("upload_failed", "the network went away")
        sent.append(number)
        return put(api, state, number, data)

    monkeypatch.setattr(resumable, "_put_part", interrupted)
    with pytest.raises(ApiError):
        resumable.upload_in_parts(api, big_png, "image/png")
    [state_file] = cache.glob("*.json")
    assert sorted(json.loads(state_file.read_text())["parts"]) == ["1"] and sent == [1]

    sent.clear()
    image_id = resumable.upload_in_parts(api, big_png, "image/png")
    assert sent == [2, 3]  # part 1 is held by S3: never sent again
    assert not state_file.exists()
    image = api.wait(image_id, timeout=60)
    assert image["status"] == "done" and image["original"]["bytes"] == big_png.stat().st_size


def test_a_changed_file_starts_a_new_upload(
    live: LiveStack, big_png: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = ImgpressApi(live.api)
    put = resumable._put_part

    def fail_after_one(api: ImgpressApi, state: Any, number: int, data: bytes) -> str:
        if number > 1:
            raise ApiError("upload_failed", "interrupted")
        return put(api, state, number, data)

    monkeypatch.setattr(resumable, "_put_part", fail_after_one)
    with pytest.raises(ApiError):
        resumable.upload_in_parts(api, big_png, "image/png")
    first = json.loads(next(cache.glob("*.json")).read_text())
    stat = big_png.stat()
    os.utime(big_png, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # the file was touched
    monkeypatch.setattr(resumable, "_put_part", put)
    image_id = resumable.upload_in_parts(api, big_png, "image/png")
    assert image_id != first["image_id"]
