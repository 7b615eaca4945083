"""GET, list and DELETE of images, as the caller may see them: their own, or all for an admin."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from chalicelib import parsing
from chalicelib.domain import ImageRecord, Status
from chalicelib.endings import remove_objects
from chalicelib.errors import BadRequest, Busy, Forbidden, NotFound
from chalicelib.ports import ListQuery, ObjectStore, Ports, RecordStore
from chalicelib.settings import Settings
from chalicelib.transforms import transform_link
from chalicelib.views import public_view

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
DEFAULT_PAGE = 20
MAX_PAGE = 100
# DELETE waits at most this long for an outcome being published, so no `image.done` follows its 204.
DELETE_PATIENCE_SECONDS = 5.0
_LIST_PARAMETERS = {"status", "limit", "cursor", "sha256", "owner"}
# GET /images/{id}?wait=N: at most this long, well under API Gateway's 29 s integration timeout.
MAX_WAIT_SECONDS = 25
WAIT_FIRST_DELAY = 0.1
WAIT_MAX_DELAY = 2.0


class Viewer(Protocol):
    """Who is asking: the owner their images are filed under, and whether they may see all."""

    @property
    def owner(self) -> str: ...

    @property
    def is_admin(self) -> bool: ...


def _not_found(image_id: str) -> NotFound:
    return NotFound(f"No image with id {image_id}.")


def _visible(record: ImageRecord | None, viewer: Viewer) -> bool:
    """Another owner's image is answered exactly like a missing one: no existence oracle."""
    return record is not None and (viewer.is_admin or record.owner == viewer.owner)


def get_record(image_id: str, viewer: Viewer, records: RecordStore) -> ImageRecord:
    record = records.get(parsing.image_id(image_id))
    if record is None or record.is_deleted or not _visible(record, viewer):
        raise _not_found(image_id)
    return record


def parse_wait(params: Mapping[str, str] | None) -> int:
    """`?wait=N`: seconds to wait for an outcome, 0 to MAX_WAIT_SECONDS (0 or absent: answer at once)."""
    return parsing.query_integer(params, "wait", 0, 0, MAX_WAIT_SECONDS)


def wait_for_outcome(
    image_id: str,
    viewer: Viewer,
    ports: Ports,
    seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> ImageRecord:
    """The record as soon as it is done or failed, or as it is after `seconds`.

    Strongly consistent reads, spaced 0.1 s, 0.2 s, 0.4 s … doubling to at most 2 s apart: at most
    17 reads for a 25 s wait (docs: waiting without polling), a handful for a typical image.
    """
    records = ports.records
    record = get_record(image_id, viewer, records)
    give_up_at = clock() + seconds
    delay = WAIT_FIRST_DELAY
    while not record.is_final:
        left = give_up_at - clock()
        if left <= 0:
            break
        sleep(min(delay, left))
        delay = min(delay * 2, WAIT_MAX_DELAY)
        record = get_record(image_id, viewer, records)
    return record


def object_url(bucket: str, key: str, store: ObjectStore, settings: Settings) -> str:
    """A stable public link behind OUTPUT_BASE_URL (CDN, cacheable forever), else a presigned GET."""
    if settings.output_base_url:
        return f"{settings.output_base_url}/{key}"
    return store.presign_get(bucket, key, settings.download_url_ttl)


def image_view(record: ImageRecord, settings: Settings, ports: Ports) -> dict[str, Any]:
    """The public view with download URLs, and for a done image on a stage with keys, its signed
    transform link (on-demand variants: transforms.py)."""
    store = ports.store
    view = public_view(record, lambda output: object_url(output.bucket, output.key, store, settings))
    link = transform_link(record, settings, ports.signing_keys, ports.now())
    if link is not None:
        view["links"]["transform"] = link
    return view


def parse_list_query(params: Mapping[str, str] | None, viewer: Viewer) -> ListQuery:
    params = params or {}
    parsing.known_fields(params, _LIST_PARAMETERS, "query parameter")
    status = params.get("status") or None
    if status is not None and status not in {str(s) for s in Status}:
        raise BadRequest(f"status must be one of {', '.join(str(s) for s in Status)}.", "invalid_field")
    limit = parsing.query_integer(params, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    sha256 = (params.get("sha256") or "").lower() or None
    if sha256 is not None and not _SHA256.match(sha256):
        raise BadRequest("sha256 must be 64 hexadecimal characters.", "invalid_field")
    owner: str | None = viewer.owner
    if params.get("owner"):  # empty: absent, as every empty query value
        if not viewer.is_admin:
            raise Forbidden("owner may only be given by an admin; others always see their own images.", "admin_only")
        owner = params["owner"] or None
    elif viewer.is_admin:
        owner = None  # an admin's list is every owner's, unless narrowed
    if owner is None and sha256 is not None:
        raise BadRequest("sha256 lookups are per owner: give owner as well.", "invalid_field")
    return ListQuery(owner, limit, params.get("cursor") or None, Status(status) if status else None, sha256)


def list_images(params: Mapping[str, str] | None, viewer: Viewer, settings: Settings, ports: Ports) -> dict[str, Any]:
    page = ports.records.list_page(parse_list_query(params, viewer))
    return {"items": [image_view(item, settings, ports) for item in page.items], "next_cursor": page.next_cursor}


def delete_image(
    image_id: str,
    viewer: Viewer,
    settings: Settings,
    ports: Ports,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    patience: float = DELETE_PATIENCE_SECONDS,
) -> None:
    """Tombstone the record, then remove the original and every output of every attempt.

    The tombstone comes first: its version change makes every in-flight writer's next write
    fail, so a worker that is rendering deletes what it wrote and publishes nothing. An outcome
    already being published is waited for (briefly), so no `image.done` follows the 204. If S3
    keeps an object, StorageError (503) leaves the tombstone: a retried DELETE removes what is
    left and answers 404, as any DELETE of a deleted image does.
    """
    records, store = ports.records, ports.store
    give_up_at = clock() + patience
    while True:
        record = records.get(parsing.image_id(image_id))
        if record is None or not _visible(record, viewer):
            raise _not_found(image_id)
        if record.is_deleted:
            remove_objects(record, store, settings)  # finish what an earlier DELETE could not
            raise _not_found(image_id)
        if record.is_final and not record.notified and record.lease_live(ports.now().timestamp()):
            if clock() > give_up_at:
                raise Busy(f"Image {image_id} is being finished; retry the DELETE in a few seconds.")
            sleep(0.1)
            continue
        if records.save(record.tombstone(ports.now())) is not None:
            break
        if clock() > give_up_at:
            raise Busy(f"Image {image_id} kept changing; retry the DELETE in a few seconds.")
    remove_objects(record, store, settings)
