"""A backfill over `make run`, as an operator runs it: 23 small images uploaded through the API, then
`imgpress backfill --profile thumbnail200 --page-size 5` queues them all (one API call per page, five
pages, the last one short) and watches the stack's `reprocess_images` consumer (an SQS mapping the
local runtime discovered) drain the queue.

Checked from outside: every record moved to the new profile, generation 1, its outputs replaced
(only the new revision's objects remain), one SNS message per outcome; a re-run of the same backfill
queues nothing. Small pages make a few images exercise what hundreds would: cursors across pages and
a resumed backfill (docs: testing).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests import images
from tests.cli.conftest import run_imgpress
from tests.live_stack import StackClient, running_stack

pytestmark = pytest.mark.slow

IMAGES = 23
PAGE_SIZE = 5  # five pages of backfill, the last one short
LIST_LIMIT = 10  # three pages of GET /images
OUTPUT_BUCKET = "imgpress-local-output"


@pytest.fixture(scope="module")
def stack() -> Iterator[StackClient]:
    with running_stack() as live:
        yield StackClient(live.api, live.aws)


def all_images(stack: StackClient) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": str(LIST_LIMIT), **({"cursor": cursor} if cursor else {})}
        page = requests.get(f"{stack.api}/images", params=params, timeout=30).json()
        found.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return found


def output_keys(stack: StackClient) -> set[str]:
    keys: set[str] = set()
    for page in stack.s3.get_paginator("list_objects_v2").paginate(Bucket=OUTPUT_BUCKET, Prefix="processed/"):
        keys.update(obj["Key"] for obj in page.get("Contents", []))
    return keys


def wait_until_all_done(stack: StackClient, ids: set[str], timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        records = [r for r in all_images(stack) if r["id"] in ids]
        if len(records) == len(ids) and all(r["status"] == "done" for r in records):
            return records
        assert time.monotonic() < deadline, Counter(r["status"] for r in records)
        time.sleep(1)


def test_a_backfill_over_several_pages_changes_every_record_output_and_message_once(stack: StackClient) -> None:
    started = time.monotonic()
    stack.notifications()
    photos = [images.jpeg(96 + n % 7, 64 + n % 5) for n in range(IMAGES)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = set(pool.map(lambda data: stack.upload(data, "image/jpeg", "small.jpg"), photos))
    before = {r["id"]: r for r in wait_until_all_done(stack, ids, timeout=240)}
    uploaded_messages = Counter(m["id"] for m in stack.notifications())
    assert all(r["profile"] == "default" and r["generation"] == 0 for r in before.values())
    old_keys = {o["key"] for r in before.values() for o in r["outputs"].values()}
    assert old_keys <= output_keys(stack)
    uploaded_at = time.monotonic()

    paging = ("--page-size", str(PAGE_SIZE), "--api", stack.api)
    dry = run_imgpress("backfill", "--profile", "thumbnail200", "--dry-run", "--json", *paging)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["queued"] == IMAGES and output_keys(stack) >= old_keys

    result = run_imgpress("backfill", "--profile", "thumbnail200", "--json", "--interval", "1", *paging, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["queued"], summary["done"], summary["failed"]) == (IMAGES, IMAGES, 0), summary
    assert "rate" in result.stderr and "ETA" in result.stderr  # the progress lines
    assert f"{-(-IMAGES // PAGE_SIZE)} page(s)" in result.stderr  # one API call per page
    backfilled_at = time.monotonic()

    after = {r["id"]: r for r in all_images(stack) if r["id"] in ids}
    assert len(after) == IMAGES
    for image_id, record in after.items():
        assert record["status"] == "done" and record["profile"] == "thumbnail200", record
        assert record["generation"] == 1 and record["reprocess"] is None
        assert record["backfill"] == summary["backfill"]
        [(name, output)] = record["outputs"].items()
        assert name == "thumbnail" and output["format"] == "jpeg" and output["key"].startswith(f"processed/{image_id}/")
        assert record["original"] == before[image_id]["original"]
    new_keys = {o["key"] for r in after.values() for o in r["outputs"].values()}
    assert output_keys(stack) == new_keys and not new_keys & old_keys  # the old revisions are gone

    stack.idle()  # every reprocess has published its message
    messages = stack.notifications()
    reprocessed = Counter(m["id"] for m in messages if m["generation"] == 1)
    assert set(reprocessed) == ids and set(reprocessed.values()) == {1}, reprocessed.most_common(3)
    assert all(m["type"] == "image.done" and m["profile"] == "thumbnail200" for m in messages)
    assert sum(uploaded_messages.values()) == IMAGES and len(messages) == IMAGES

    rerun = run_imgpress(
        "backfill", "--profile", "thumbnail200", "--backfill", summary["backfill"], "--no-wait", "--json", *paging
    )
    assert rerun.returncode == 0, rerun.stderr
    counts = json.loads(rerun.stdout)
    assert counts.get("queued", 0) == 0 and counts["skipped already_done"] == IMAGES
    print(
        f"\n{IMAGES} images: uploaded and processed in {uploaded_at - started:.0f} s, "
        f"backfilled in {backfilled_at - uploaded_at:.0f} s"
    )
