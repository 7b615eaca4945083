"""Load on the local stack: hundreds of concurrent browser-style uploads, each processed exactly once."""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests import images
from tests.live_stack import ROOT, StackClient

pytestmark = pytest.mark.slow

UPLOADS = 200
CLIENT_THREADS = 8


def test_200_concurrent_uploads_all_finish_once(stack: StackClient) -> None:
    stack.notifications()  # start from an empty queue
    distinct = [images.jpeg(1200 + 8 * i, 800) for i in range(10)]
    photos = [distinct[i % 10] for i in range(UPLOADS)]
    started = time.monotonic()
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        ids = list(pool.map(lambda data: stack.upload(data, "image/jpeg", "load.jpg"), photos))
        uploaded = time.monotonic()
        records = list(pool.map(lambda image_id: stack.wait(image_id, timeout=300), ids))
    finished = time.monotonic()

    assert len(set(ids)) == UPLOADS
    for data, record in zip(photos, records):
        assert record["status"] == "done", record
        assert record["original"]["bytes"] == len(data)
        assert record["outputs"]["web"]["width"] == record["original"]["width"]  # under 2048: not enlarged
        assert record["outputs"]["thumb"]["width"] == 320
    deadline = time.monotonic() + 30
    counts: Counter[str] = Counter()
    while sum(counts.values()) < UPLOADS and time.monotonic() < deadline:
        counts.update(m["id"] for m in stack.notifications())
    time.sleep(1)
    counts.update(m["id"] for m in stack.notifications())
    assert set(counts) == set(ids) and set(counts.values()) == {1}

    result = {
        "uploads": UPLOADS,
        "client_threads": CLIENT_THREADS,
        "upload_seconds": round(uploaded - started, 2),
        "total_seconds": round(finished - started, 2),
        "images_per_second": round(UPLOADS / (finished - started), 1),
    }
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "load.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
