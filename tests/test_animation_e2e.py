"""Animated uploads over the local stack (`make run`), from outside: real animated files become a moving
WebP and a still poster, the record and the SNS message say so and match their schemas, and the
stored output really is an animation; hostile animations end `failed` with their code."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest
import requests
from jsonschema import Draft202012Validator
from PIL import Image

from tests import crafted, images, openapi
from tests.live_stack import ROOT, StackClient

pytestmark = pytest.mark.e2e

EVENTS = Draft202012Validator(json.loads((ROOT / "docs" / "schemas" / "image-event.schema.json").read_text()))
# file -> (content type, frames)
FILES = {
    "chi.gif": ("image/gif", 31),
    "iss634.webp": ("image/webp", 42),
    "apng_dispose_op_previous_region.png": ("image/png", 3),
}


def messages_for(stack: StackClient, ids: set[str]) -> list[dict[str, Any]]:
    """The SNS messages of `ids`, once each has one (every upload ends with exactly one)."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while {m["id"] for m in found} < ids and time.monotonic() < deadline:
        found += [m for m in stack.notifications() if m["id"] in ids]
    return found


def test_real_animations_come_out_moving_with_a_still_poster(stack: StackClient) -> None:
    ids = {name: stack.upload(images.fixture(f"animated/{name}"), kind, name) for name, (kind, _) in FILES.items()}
    messages = messages_for(stack, set(ids.values()))
    for name, image_id in ids.items():
        response = requests.get(f"{stack.api}/images/{image_id}", timeout=10)
        openapi.check_response("GET", f"/images/{image_id}", response.status_code, response.headers, response.content)
        record = response.json()
        frames = FILES[name][1]
        assert record["status"] == "done" and record["animation"] == "animated", record
        assert record["original"]["animated"] and record["original"]["frames"] == frames
        assert record["original"]["duration_ms"] > 0 and record["original"]["loop"] is not None
        web, thumb = record["outputs"]["web"], record["outputs"]["thumb"]
        assert (web["animation"], web["frames"], thumb["animation"], thumb["frames"]) == (
            "animated",
            frames,
            "poster",
            1,
        )
        assert record["markup"]["animated"] and record["markup"]["poster"] == thumb["url"]
        stored = Image.open(io.BytesIO(requests.get(web["url"], timeout=10).content))
        assert getattr(stored, "n_frames", 1) > 1 and stored.info["loop"] == record["original"]["loop"]
        assert images.decode(requests.get(thumb["url"], timeout=10).content).size == (thumb["width"], thumb["height"])
        sent = [m for m in messages if m["id"] == image_id]
        assert len(sent) == 1 and not list(EVENTS.iter_errors(sent[0]))
        assert sent[0]["outputs"]["web"]["animation"] == "animated" and sent[0]["animation"] == "animated"


@pytest.mark.parametrize(
    "name", ["gif-300-frames-1mp", "gif-many-tiny-frames", "gif-frames-off-the-screen", "gif-150-flat-frames-1mp"]
)
def test_hostile_animations_end_failed_with_their_code(stack: StackClient, name: str) -> None:
    build, code = crafted.REJECTED[name]
    image_id = stack.upload(build(), "image/gif", f"{name}.gif")
    record = stack.wait(image_id)
    assert (record["status"], record["error"]["code"], record["attempts"]) == ("failed", code, 1)
    assert [m["status"] for m in messages_for(stack, {image_id})] == ["failed"]
