"""Load on the local stack: 39 concurrent browser-style uploads from 8 owners, one of them six times
busier, each processed exactly once; the ledger's request counts per owner and in total are reported.

39, not hundreds: what it proves (every upload ends once, with its outputs and one message, and each
owner's requests are its uploads times the cost vector) holds at any count above the sandboxes and
client threads; more only made the suite slower (docs: testing)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from devstack.cost_vector import UPLOAD
from tests import images
from tests.jwt_stack import Caller, JwtStack, jwt_stack
from tests.live_stack import ROOT, StackClient, ledger

pytestmark = pytest.mark.slow

OWNERS = 8
HOT_UPLOADS = 18  # one owner uploads six times as much as each of the others
OTHER_UPLOADS = 3
UPLOADS = HOT_UPLOADS + (OWNERS - 1) * OTHER_UPLOADS  # 39
CLIENT_THREADS = 8
# Waiting ends when no image has finished for this long (not at a fixed time: on a loaded machine
# the images may take minutes, and that is slow, not broken).
STALL_SECONDS = 120


@pytest.fixture(scope="module")
def owners_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JwtStack]:
    with jwt_stack(tmp_path_factory.mktemp("issuer"), {"LOCAL_SCHEDULE_SECONDS": "3600"}) as stack:
        yield stack


def wait_for_notifications(events: StackClient, ids: set[str]) -> Counter[str]:
    """SNS messages per image until every image has one, failing only when progress stalls.

    Listening to the topic, not polling every record, keeps the load the test itself adds small."""
    counts: Counter[str] = Counter()
    last_progress = time.monotonic()
    while not ids <= set(counts):
        before = len(set(counts) & ids)
        counts.update(message["id"] for message in events.notifications())
        if len(set(counts) & ids) > before:
            last_progress = time.monotonic()
        missing = ids - set(counts)
        assert time.monotonic() - last_progress < STALL_SECONDS, f"no image finished for {STALL_SECONDS} s: {missing}"
    events.idle()  # a duplicate would come from an event or attempt still going on
    counts.update(message["id"] for message in events.notifications())
    return counts


def test_concurrent_uploads_from_several_owners_all_finish_once(owners_stack: JwtStack) -> None:
    events = owners_stack.events()
    events.notifications()  # start from an empty queue
    callers = [owners_stack.caller(f"owner{n:02d}") for n in range(OWNERS)]
    distinct = [images.jpeg(1200 + 8 * i, 800) for i in range(10)]
    jobs: list[tuple[Caller, bytes]] = [(callers[0], distinct[i % 10]) for i in range(HOT_UPLOADS)]
    jobs += [(caller, distinct[i % 10]) for caller in callers[1:] for i in range(OTHER_UPLOADS)]
    jobs = jobs[::2] + jobs[1::2]  # owners interleaved, not one after the other
    since = ledger(owners_stack.live.aws)["next"]
    started = time.monotonic()
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        ids = list(pool.map(lambda job: job[0].upload(job[1]), jobs))
    uploaded = time.monotonic()
    counts = wait_for_notifications(events, set(ids))
    finished = time.monotonic()

    report = ledger(owners_stack.live.aws, since)  # before the checks below add their reads
    assert len(set(ids)) == UPLOADS
    assert set(counts) == set(ids) and set(counts.values()) == {1}, "one SNS message per image"
    for (caller, data), image_id in zip(jobs, ids):
        record = caller.get(f"/images/{image_id}").json()
        assert record["status"] == "done", record
        assert record["original"]["bytes"] == len(data)
        assert record["outputs"]["web"]["width"] == record["original"]["width"]  # under 2048: not enlarged
        assert record["outputs"]["thumb"]["width"] == 320

    per_owner = {caller.owner: report["by_owner"].get(caller.owner, {}).get("requests", {}) for caller in callers}
    uploads_of = Counter(caller.owner for caller, _ in jobs)
    for owner, requests_made in per_owner.items():
        for name, count in UPLOAD.requests.items():
            # Exactly the vector per upload unless a delivery was retried (more, never fewer).
            assert requests_made.get(name, 0) >= count * uploads_of[owner], (owner, name, requests_made)
    total = report["totals"]
    result = {
        "uploads": UPLOADS,
        "owners": OWNERS,
        "client_threads": CLIENT_THREADS,
        "upload_seconds": round(uploaded - started, 2),
        "total_seconds": round(finished - started, 2),
        "images_per_second": round(UPLOADS / (finished - started), 1),
        "requests_total": total["requests"],
        "dynamodb_write_units_total": total["dynamodb_write_units"],
        "requests_per_upload": {name: round(n / UPLOADS, 2) for name, n in total["requests"].items()},
        "requests_per_owner": {
            owner[-12:]: {"uploads": uploads_of[owner], "requests": sum(made.values())}
            for owner, made in per_owner.items()
        },
        "hot_owner_busiest_partitions": {
            index: max(partitions.values())
            for index, partitions in report["by_owner"][callers[0].owner]["dynamodb_partition_write_units"].items()
        },
    }
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "load.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    assert requests.get(f"{owners_stack.live.api}/health", timeout=10).status_code == 200
