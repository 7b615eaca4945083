"""The cost vector: every AWS request one upload and one reprocess cause on the local stack, and
what a front end adds to them. Pinned to devstack/cost_vector.py's UPLOAD and REPROCESS, the numbers
bench/capacity.py's model and bench/cost.py's prices run on, so a change that adds a request or a
write unit shows up here (docs/performance.md explains each line; devstack/ledger.py counts them)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from chalicelib.aws.records import BY_OWNER_SHARD, BY_OWNER_STATUS_SHARD, owner_shard_of, shard_of
from devstack.cost_vector import (
    LIST_REQUESTS,
    LONG_POLL_READS,
    POLL_READS,
    REPROCESS,
    UPLOAD,
    Vector,
    list_page_read_units,
)
from tests import images
from tests.live_stack import StackClient, ledger, running_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def quiet_stack() -> Iterator[StackClient]:
    """No sweeper runs during these tests: its periodic queries are no upload's cost."""
    with running_stack({"LOCAL_SCHEDULE_SECONDS": "3600"}) as live:
        yield StackClient(live.api, live.aws)


def settled(stack: StackClient, since: int, image_id: str, puts: int) -> dict[str, Any]:
    """The image's ledger once its `puts`-th PutItem (the one after the publish) is in and nothing
    more has come for a second (the consumer's delete of its message comes after it)."""
    deadline = time.monotonic() + 60
    report = ledger(stack.aws, since, image_id)
    while report["totals"]["requests"].get("dynamodb:PutItem", 0) < puts and time.monotonic() < deadline:
        time.sleep(0.2)
        report = ledger(stack.aws, since, image_id)
    while time.monotonic() < deadline:
        time.sleep(1)
        later = ledger(stack.aws, since, image_id)
        if later["entries"] == report["entries"]:
            break
        report = later
    return report


def measured(totals: dict[str, Any], image_id: str, owner: str, sha256: str) -> Vector:
    """The ledger's sums as a Vector, partition key values written as the model's patterns (the
    owner's listing indexes end in the owner shard, the others' shard is of SHARDS)."""
    names = {owner: "{owner}", sha256: "{sha256}"}

    def pattern(value: str, index: str) -> str:
        owner_sharded = index in (BY_OWNER_SHARD, BY_OWNER_STATUS_SHARD)
        shard = {owner_shard_of(image_id): "{owner_shard}"} if owner_sharded else {shard_of(image_id): "{shard}"}
        return "#".join({**names, **shard}.get(part, part) for part in value.split("#"))

    return Vector(
        requests=totals["requests"],
        table_write_units=totals["dynamodb_table_write_units"],
        read_units=totals["dynamodb_read_units"],
        index_writes={
            index: {pattern(value, index): units for value, units in partitions.items()}
            for index, partitions in totals["dynamodb_partition_write_units"].items()
        },
    )


def test_one_upload_and_one_reprocess_cost_exactly_the_modelled_vector(quiet_stack: StackClient) -> None:
    stack = quiet_stack
    since = ledger(stack.aws)["next"]
    image_id = stack.upload(images.jpeg(1200, 800), "image/jpeg", "photo.jpg")
    report = settled(stack, since, image_id, 4)
    owner = next(entry["owner"] for entry in report["entries"] if entry["owner"])
    sha256 = requests.get(f"{stack.api}/images/{image_id}", timeout=10).json()["sha256"]
    assert measured(report["totals"], image_id, owner, sha256) == UPLOAD

    since = ledger(stack.aws)["next"]
    asked = requests.post(f"{stack.api}/images/{image_id}/reprocess", json={"profile": "default"}, timeout=10)
    assert asked.status_code == 202, asked.text
    report = settled(stack, since, image_id, 4)
    assert measured(report["totals"], image_id, owner, sha256) == REPROCESS


def test_what_each_kind_of_front_end_adds(quiet_stack: StackClient) -> None:
    """API requests per upload, and the AWS requests behind them, for a front end that polls every
    0.5 s, one that long-polls (`?wait=25`), and one that listens to SNS (no request at all)."""
    stack = quiet_stack
    data = images.jpeg(1200, 800)

    since = ledger(stack.aws)["next"]
    requests.get(f"{stack.api}/images/{'0' * 32}", timeout=10)
    assert ledger(stack.aws, since)["totals"]["requests"] == {"dynamodb:GetItem": POLL_READS}  # one poll

    image_id = stack.upload(data, "image/jpeg", "photo.jpg")
    polls = 0
    while polls < 120:  # a minute at most
        polls += 1
        if requests.get(f"{stack.api}/images/{image_id}", timeout=10).json()["status"] in ("done", "failed"):
            break
        time.sleep(0.5)

    since = ledger(stack.aws)["next"]
    image_id = stack.upload(data, "image/jpeg", "photo.jpg")
    answer = requests.get(f"{stack.api}/images/{image_id}", params={"wait": 25}, timeout=30).json()
    assert answer["status"] == "done"
    waited = settled(stack, since, image_id, 4)["totals"]["requests"]["dynamodb:GetItem"] - 1  # less the handler's

    since = ledger(stack.aws)["next"]
    listed = requests.get(f"{stack.api}/images", params={"limit": 20}, timeout=10)
    assert listed.status_code == 200
    totals = ledger(stack.aws, since)["totals"]
    assert totals["requests"] == LIST_REQUESTS
    assert totals["dynamodb_read_units"] == list_page_read_units(len(listed.json()["items"]))
    print(f"polls every 0.5 s: {polls}; one ?wait=25: {waited} GetItem")
    assert 1 <= waited <= LONG_POLL_READS
