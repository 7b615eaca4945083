"""Ownership, checked from outside: `API_AUTH=jwt make run` (local issuer, DEDUPE=true) with two
users and an admin, over real HTTP. Another owner's image is answered exactly like a missing one
(404, never 403) on every route; the owner travels in GET and in the SNS message; an admin sees
every owner's images; dedupe never copies across owners.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests import images
from tests.jwt_stack import Caller, JwtStack, jwt_stack

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class World:
    stack: JwtStack
    alice: Caller
    bob: Caller
    admin: Caller
    photo: bytes
    alices: str  # alice's first upload of `photo`, done


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with jwt_stack(tmp_path_factory.mktemp("issuer"), {"DEDUPE": "true"}) as stack:
        alice, bob, admin = stack.caller("alice"), stack.caller("bob"), stack.admin("root")
        photo = images.jpeg(900, 600)
        first = alice.upload(photo)
        assert alice.wait(first)["status"] == "done"
        yield World(stack, alice, bob, admin, photo, first)


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_owners_are_distinct_per_user_and_carried_by_get(world: World) -> None:
    assert len({world.alice.owner, world.bob.owner, world.admin.owner}) == 3
    record = world.alice.get(f"/images/{world.alices}").json()
    assert record["owner"] == world.alice.owner and record["sha256"] == hashlib.sha256(world.photo).hexdigest()


def test_another_owners_image_is_a_404_like_a_missing_one_on_every_route(world: World) -> None:
    missing = "0" * 32
    for path in (f"/images/{world.alices}", f"/images/{missing}"):
        for response in (world.bob.get(path), world.bob.delete(path)):
            assert response.status_code == 404, response.text
            assert response.json() == {
                "error": {"code": "not_found", "message": f"No image with id {path.rsplit('/', 1)[1]}."}
            }
    assert world.alice.get(f"/images/{world.alices}").json()["status"] == "done"  # bob's DELETE did nothing


def test_another_owners_images_are_in_no_listing_or_lookup(world: World) -> None:
    digest = hashlib.sha256(world.photo).hexdigest()
    assert world.alices in ids(world.alice.get("/images"))
    assert world.alices in ids(world.alice.get(f"/images?sha256={digest}"))
    assert world.alices not in ids(world.bob.get("/images"))
    assert world.alices not in ids(world.bob.get("/images?status=done"))
    assert world.alices not in ids(world.bob.get(f"/images?sha256={digest}"))
    narrowed = world.bob.get(f"/images?owner={world.alice.owner}")
    assert narrowed.status_code == 403 and narrowed.json()["error"]["code"] == "admin_only"


def test_dedupe_never_copies_across_owners_and_the_events_carry_the_owner(world: World) -> None:
    events = world.stack.events()
    bobs = world.bob.upload(world.photo)  # the very bytes alice has, done
    alices_again = world.alice.upload(world.photo)
    bob_record, again = world.bob.wait(bobs), world.alice.wait(alices_again)
    assert bob_record["status"] == "done" and bob_record["deduplicated_from"] is None
    assert bob_record["owner"] == world.bob.owner
    assert again["status"] == "done" and again["deduplicated_from"] == world.alices
    assert world.bob.get(f"/images/{alices_again}").status_code == 404
    messages = {m["id"]: m for m in events.notifications()}
    assert messages[bobs]["owner"] == world.bob.owner and messages[bobs]["deduplicated_from"] is None
    assert messages[alices_again]["owner"] == world.alice.owner


def test_an_admin_sees_and_deletes_every_owners_images_and_can_narrow_to_one(world: World) -> None:
    bobs = world.bob.upload(images.png(320, 240))
    world.bob.wait(bobs)
    everyone = ids(world.admin.get("/images?limit=100"))
    assert {world.alices, bobs} <= set(everyone)
    assert world.admin.get(f"/images/{world.alices}").json()["owner"] == world.alice.owner
    assert world.admin.get(f"/images/{bobs}").json()["owner"] == world.bob.owner
    only_bob = ids(world.admin.get(f"/images?owner={world.bob.owner}&limit=100"))
    assert bobs in only_bob and world.alices not in only_bob
    digest = hashlib.sha256(world.photo).hexdigest()
    assert world.alices in ids(world.admin.get(f"/images?owner={world.alice.owner}&sha256={digest}"))
    assert world.admin.get(f"/images?sha256={digest}").status_code == 400  # lookups by bytes are per owner
    assert world.admin.delete(f"/images/{bobs}").status_code == 204
    assert world.bob.get(f"/images/{bobs}").status_code == 404
