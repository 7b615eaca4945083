"""Every shipped profile, end to end on the local stack; and the one-bucket layout."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests import images
from tests.live_stack import StackClient, running_stack

pytestmark = pytest.mark.e2e

PHOTO = images.jpeg(1600, 1200)
EXPECTED: dict[str, dict[str, tuple[str, int, int]]] = {
    "default": {"web": ("webp", 1600, 1200), "thumb": ("webp", 320, 240)},
    "compress": {"compressed": ("jpeg", 1600, 1200)},
    "thumbnail200": {"thumbnail": ("jpeg", 200, 150)},
    "resize": {"resized": ("jpeg", 1024, 768)},
    "lowres-jpeg": {"lowres": ("jpeg", 480, 360)},
    "web800": {"web800": ("webp", 800, 600)},
    "avatar": {"avatar": ("webp", 512, 512), "avatar-small": ("webp", 128, 128)},
}


def upload_with_profile(live: StackClient, profile: str, data: bytes) -> dict[str, Any]:
    slot = requests.post(f"{live.api}/uploads", json={"content_type": "image/jpeg", "profile": profile}, timeout=10)
    assert slot.status_code == 201, slot.text
    upload = slot.json()["upload"]
    sent = requests.post(
        upload["url"], data=upload["fields"], files={"file": ("p.jpg", data, "image/jpeg")}, timeout=30
    )
    assert sent.status_code in (200, 201, 204)
    return live.wait(slot.json()["id"])


@pytest.mark.parametrize("profile", sorted(EXPECTED))
def test_profile_end_to_end(stack: StackClient, profile: str) -> None:
    record = upload_with_profile(stack, profile, PHOTO)
    assert record["status"] == "done" and record["profile"] == profile
    got = {name: (o["format"], o["width"], o["height"]) for name, o in record["outputs"].items()}
    assert got == EXPECTED[profile]
    for output in record["outputs"].values():
        fetched = requests.get(output["url"], timeout=10)
        assert fetched.status_code == 200 and len(fetched.content) == output["bytes"]
        assert images.decode(fetched.content).size == (output["width"], output["height"])
    if profile == "compress":
        assert record["outputs"]["compressed"]["bytes"] <= len(PHOTO)
        assert record["original"]["bucket"] and record["outputs"]["compressed"]["key"].endswith("/compressed.jpg")
    messages = [m for m in stack.notifications() if m["id"] == record["id"]]
    assert len(messages) == 1 and messages[0]["profile"] == profile


@pytest.fixture(scope="module")
def one_bucket() -> Iterator[StackClient]:
    with running_stack({"OUTPUT_BUCKET": "imgpress-local-input"}) as live:
        yield StackClient(live.api, live.aws)


def test_one_bucket_outputs_never_trigger_processing(one_bucket: StackClient) -> None:
    record = upload_with_profile(one_bucket, "default", PHOTO)
    assert record["status"] == "done"
    assert all(
        o["bucket"] == "imgpress-local-input" and o["key"].startswith("processed/") for o in record["outputs"].values()
    )
    one_bucket.idle()  # any (wrong) notification of the outputs has been delivered and handled
    again = requests.get(f"{one_bucket.api}/images/{record['id']}", timeout=10).json()
    assert (again["completed_at"], again["attempts"], again["outputs"].keys()) == (
        record["completed_at"],
        record["attempts"],
        record["outputs"].keys(),
    )  # not processed again (updated_at moves once more: the record is marked notified after the publish)
    assert [m["id"] for m in one_bucket.notifications()] == [record["id"]]
