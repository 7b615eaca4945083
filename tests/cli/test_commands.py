"""upload, status, list and delete through the installed `imgpress` command, against the local stack."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack.stack import free_port
from tests import images
from tests.cli.conftest import run_imgpress
from tests.live_stack import LiveStack, running_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def live() -> Iterator[LiveStack]:
    with running_stack() as stack:
        yield stack


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "holiday photo.jpg"
    path.write_bytes(images.jpeg(2400, 1600))
    return path


def upload_json(live: LiveStack, *paths: Path, wait: bool = True) -> tuple[list[dict[str, Any]], Any]:
    args = ["upload", *map(str, paths), "--api", live.api, "--json"] + (["--wait"] if wait else [])
    result = run_imgpress(*args)
    return json.loads(result.stdout), result


def test_upload_wait_json_goes_through_s3_and_reports_the_variants(live: LiveStack, photo: Path) -> None:
    [image], result = upload_json(live, photo)
    assert result.returncode == 0, result.stderr
    assert image["file"] == str(photo) and image["filename"] == "holiday photo.jpg" and image["status"] == "done"
    original = image["original"]
    assert original["key"] == f"uploads/{image['id']}" and original["bucket"]
    assert {k: original[k] for k in ("format", "width", "height", "bytes")} == {
        "format": "JPEG",
        "width": 2400,
        "height": 1600,
        "bytes": photo.stat().st_size,
    }
    assert {n: (o["width"], o["height"]) for n, o in image["outputs"].items()} == {
        "web": (2048, 1365),
        "thumb": (320, 213),
    }
    fetched = requests.get(image["outputs"]["web"]["url"], timeout=10)
    assert images.decode(fetched.content).size == (2048, 1365)
    # The progress bar goes to stderr (printed once, finished, when stderr is not a terminal).
    assert "holiday photo.jpg" in result.stderr and "100%" in result.stderr and "uploaded" in result.stderr


def test_upload_prints_a_table_and_fails_the_exit_code_for_bad_files(
    live: LiveStack, photo: Path, tmp_path: Path
) -> None:
    fake = tmp_path / "fake.png"
    fake.write_bytes(bytes(range(256)) * 4)  # binary junk: not an image at all
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    result = run_imgpress("upload", str(photo), str(fake), str(notes), "--wait", env={"IMGPRESS_API": live.api})
    assert result.returncode == 1
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["ID", "FILE", "STATUS", "ORIGINAL", "SAVED", "VARIANTS", "/", "ERROR"]
    assert len(rows) == 3
    assert "done" in rows[0] and "JPEG 2400x1600" in rows[0] and "web webp 2048x1365" in rows[0]
    assert "failed" in rows[1] and "not_an_image: The file is not an image." in rows[1]
    assert "not_uploaded" in rows[2] and "unsupported_type: text/plain is not accepted" in rows[2]
    assert "notes.txt: unsupported_type" in result.stderr


def test_upload_without_wait_returns_at_once_and_status_follows_it(live: LiveStack, photo: Path) -> None:
    [image], result = upload_json(live, photo, wait=False)
    assert result.returncode == 0 and image["status"] in ("pending", "processing", "done")
    deadline = time.monotonic() + 60
    while (status := json.loads(run_imgpress("status", image["id"], "--api", live.api, "--json").stdout))[
        "status"
    ] != "done":
        assert time.monotonic() < deadline, status
        time.sleep(0.3)
    assert status["id"] == image["id"] and status["outputs"]["thumb"]["width"] == 320

    details = run_imgpress("status", image["id"], "--api", live.api)
    assert details.returncode == 0
    fields = dict(line.split(None, 1) for line in details.stdout.splitlines())
    assert fields["id"] == image["id"] and fields["status"] == "done"
    assert fields["original"] == f"JPEG 2400x1600 {photo.stat().st_size / 1024:.1f} KB"
    assert fields["web"].startswith("webp 2048x1365 ") and "http" in fields["web"]
    assert fields["saved"].endswith(f"({status['savings']['percent']:g}%)")


def test_list_pages_filters_and_follows_cursors(live: LiveStack, tmp_path: Path) -> None:
    paths = []
    for n in range(3):
        path = tmp_path / f"list-{n}.png"
        path.write_bytes(images.png(64 + n, 48))
        paths.append(path)
    uploaded, _ = upload_json(live, *paths)
    ids = {image["id"] for image in uploaded}

    first = json.loads(run_imgpress("list", "--api", live.api, "--status", "done", "--limit", "2", "--json").stdout)
    assert len(first["items"]) == 2 and first["next_cursor"]
    everything = json.loads(run_imgpress("list", "--api", live.api, "--limit", "2", "--all", "--json").stdout)
    assert ids <= {item["id"] for item in everything["items"]} and everything["next_cursor"] is None

    table = run_imgpress("list", "--api", live.api, "--limit", "2")
    assert table.returncode == 0 and len(table.stdout.splitlines()) == 3
    assert "more: imgpress list --cursor" in table.stderr


def test_delete_removes_the_image_and_reports_unknown_ids(live: LiveStack, photo: Path) -> None:
    [image], _ = upload_json(live, photo)
    deleted = run_imgpress("delete", image["id"], "--api", live.api)
    assert deleted.returncode == 0 and deleted.stdout.strip() == f"deleted {image['id']}"
    assert requests.get(f"{live.api}/images/{image['id']}", timeout=10).status_code == 404

    again = run_imgpress("delete", image["id"], "--api", live.api)
    assert again.returncode == 1 and f"{image['id']}: not_found" in again.stderr
    bad = run_imgpress("status", "not-an-id", "--api", live.api)
    assert bad.returncode == 1 and "invalid_id" in bad.stderr


def test_an_unreachable_api_is_a_clear_error(photo: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    result = run_imgpress("list", "--api", nowhere)
    assert result.returncode == 1 and f"unreachable: cannot reach the imgpress API at {nowhere}" in result.stderr
    upload = run_imgpress("upload", str(photo), "--json", env={"IMGPRESS_API": nowhere})
    assert upload.returncode == 1 and json.loads(upload.stdout)[0]["error"]["code"] == "unreachable"


def test_upload_with_a_profile_and_phone_formats(live: LiveStack, photo: Path, tmp_path: Path) -> None:
    result = run_imgpress("upload", str(photo), "--api", live.api, "--json", "--wait", "--profile", "thumbnail200")
    [image] = json.loads(result.stdout)
    assert result.returncode == 0 and image["profile"] == "thumbnail200" and set(image["outputs"]) == {"thumbnail"}
    heic = tmp_path / "phone.heic"
    heic.write_bytes(images.corpus_file("derived_heic__sunset_12mp.heic"))
    [phone], outcome = upload_json(live, heic)
    assert outcome.returncode == 0 and phone["content_type"] == "image/heic" and phone["original"]["format"] == "HEIF"
    unknown = run_imgpress("upload", str(photo), "--api", live.api, "--json", "--profile", "nope")
    assert unknown.returncode == 1 and json.loads(unknown.stdout)[0]["error"]["code"] == "unknown_profile"
