"""Reprocessing: ask for final images to be rendered again from their kept originals, one at a time
(`POST /images/{id}/reprocess`) or a page of a backfill at a time (`POST /backfills`), and consume
the queue those requests go to (the `reprocess_images` function).

The API only records a request on the image (domain.Reprocess) and queues a message naming it;
the consumer does the work through the upload pipeline's own claim, render, store, record and
notify steps (pipeline.UploadProcessor.reprocess). docs: reprocessing.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from chalicelib import parsing
from chalicelib.domain import ImageRecord, Reprocess, Status, iso
from chalicelib.errors import BadRequest, Busy, Conflict, Forbidden, Gone, NotFound, StorageError
from chalicelib.images import MAX_PAGE, Viewer, get_record
from chalicelib.pipeline import UploadProcessor
from chalicelib.ports import (
    BackfillLog,
    BackfillProgress,
    ListQuery,
    ObjectStore,
    Ports,
    ReprocessMessage,
)
from chalicelib.settings import Settings

log = logging.getLogger("imgpress.reprocess")
_REQUEST_TRIES = 3  # re-reads after losing a version race to the pipeline
_BACKFILL_STATUSES = (Status.DONE, Status.FAILED)


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


# -- one image ----------------------------------------------------------------------------------


def request_reprocess(
    image_id: str, body: bytes | str | None, viewer: Viewer, settings: Settings, ports: Ports
) -> ImageRecord:
    """Record a request to render the image again (with `profile`, default its own) and queue it.

    404 for an image the caller may not see; 409 `not_final` while it is pending or processing;
    410 `original_gone` when the original has expired or was removed (nothing is changed then).
    Asking again for the same profile while a request is open sends its message again (harmless:
    the consumer acts on a request once), so a lost message is recovered by repeating the call.
    """
    data = parsing.json_object(body, required=False)
    parsing.known_fields(data, {"profile"})
    record = get_record(image_id, viewer, ports.records)
    profile = parsing.profile(data.get("profile", record.profile), settings.imaging.profiles.profiles)
    for _ in range(_REQUEST_TRIES):
        _check_reprocessable(record, ports.store)
        request = _reusable(record, profile, None) or Reprocess(new_request_id(), profile, iso(ports.now()))
        saved = record if request is record.reprocess else _save_request(record, request, ports)
        if saved is not None:
            if ports.reprocess_queue.send([ReprocessMessage(saved.id, request.id)]):
                raise StorageError("The reprocess queue did not take the request; ask again.", "queue_unavailable")
            return saved
        record = get_record(image_id, viewer, ports.records)
    raise Busy(f"Image {image_id} kept changing; ask again in a few seconds.")


def _check_reprocessable(record: ImageRecord, store: ObjectStore) -> None:
    if not record.is_final:
        raise Conflict(f"Image {record.id} is {record.status}; reprocess it once it is done or failed.", "not_final")
    head = store.head_original(record.input_bucket, record.input_key)
    if head is None:
        raise Gone(
            f"The original of image {record.id} is no longer stored (retention expired or removed).", "original_gone"
        )
    if head.etag != record.source_etag:
        raise Conflict(f"A new upload to image {record.id} is about to be processed.", "upload_in_progress")


def _reusable(record: ImageRecord, profile: str, backfill: str | None) -> Reprocess | None:
    """The open request to send again instead of making a new one, if it asks for the same thing."""
    open_request = record.reprocess if record.reprocess is not None and record.reprocess.is_open else None
    if open_request is not None and open_request.profile == profile and open_request.backfill == backfill:
        return open_request
    return None


def _save_request(record: ImageRecord, request: Reprocess, ports: Ports) -> ImageRecord | None:
    return ports.records.save(record.reprocess_requested(request, ports.now()))


# -- a backfill, one page at a time ---------------------------------------------------------------


@dataclass(frozen=True)
class BackfillPage:
    """One `POST /backfills` call: which images, for which backfill, and from where."""

    profile: str
    status: Status
    since: str | None
    owner: str | None
    backfill: str | None
    cursor: str | None
    limit: int
    dry_run: bool


_BACKFILL_FIELDS = {"profile", "status", "since", "owner", "backfill", "cursor", "limit", "dry_run"}


def parse_backfill_page(body: bytes | str | None, viewer: Viewer, settings: Settings) -> BackfillPage:
    data = parsing.json_object(body, required=False)
    parsing.known_fields(data, _BACKFILL_FIELDS)
    if "profile" not in data:
        raise BadRequest("profile is required: the profile every selected image is rendered with.", "missing_field")
    status = data.get("status", "done")
    if not isinstance(status, str) or status not in {str(s) for s in _BACKFILL_STATUSES}:
        raise BadRequest("status must be done or failed.", "invalid_field")
    limit = parsing.integer(data.get("limit", MAX_PAGE), "limit", 1, MAX_PAGE)
    owner: str | None = parsing.optional_text(data, "owner")  # null or empty: absent
    if owner is not None and not viewer.is_admin:
        raise Forbidden("owner may only be given by an admin; others backfill their own images.", "admin_only")
    if owner is None and not viewer.is_admin:
        owner = viewer.owner  # an admin's backfill covers every owner unless narrowed
    return BackfillPage(
        profile=parsing.profile(data["profile"], settings.imaging.profiles.profiles),
        status=Status(status),
        since=iso(parsing.moment(data["since"], "since")) if data.get("since") not in (None, "") else None,
        owner=owner,
        backfill=parsing.optional_text(data, "backfill"),
        cursor=parsing.optional_text(data, "cursor"),
        limit=limit,
        dry_run=parsing.boolean(data, "dry_run"),
    )


def enqueue_backfill_page(page: BackfillPage, viewer: Viewer, ports: Ports) -> dict[str, Any]:
    """Select one page of the caller's images (every owner's for an admin), record a request on
    each that this backfill has not finished, and queue them. Returns counts and the next cursor.

    Idempotent by backfill id: an image this backfill already reprocessed is skipped; one with an
    open request of this backfill has its message sent again (a stopped run may have lost it);
    one whose request failed is asked again.
    """
    backfills = ports.backfills
    progress = _backfill(page, viewer, backfills)
    listing = ports.records.list_page(ListQuery(page.owner, page.limit, page.cursor, page.status))
    counts: Counter[str] = Counter()
    to_send: list[ReprocessMessage] = []
    new_requests: set[str] = set()
    reached_since = False
    for record in listing.items:
        if page.since is not None and record.created_at < page.since:
            reached_since = True  # newest first: every later image is older still
            break
        counts["selected"] += 1
        verdict, message = _backfill_one(record, progress, page.dry_run, ports)
        counts[verdict] += 1
        if message is not None:
            to_send.append(message)
            if verdict == "queued":
                new_requests.add(record.id)
    # Unsent requests stay open on their records: a re-run of the backfill sends them again.
    unsent = {m.image_id for m in ports.reprocess_queue.send(to_send)} if to_send else set()
    counts["queued"] -= len(unsent & new_requests)
    counts["requeued"] -= len(unsent - new_requests)
    counts["unsent"] += len(unsent)
    if counts["queued"] > 0:
        backfills.count(progress.id, "queued", counts["queued"])
    skipped = {name: counts[name] for name in ("already_done", "not_final", "original_gone", "changed") if counts[name]}
    return {
        "backfill": progress.id,
        "profile": progress.profile,
        "dry_run": page.dry_run,
        "selected": counts["selected"],
        "queued": counts["queued"] + counts["would_queue"],
        "requeued": counts["requeued"] + counts["would_requeue"],
        "unsent": counts["unsent"],
        "skipped": skipped,
        "next_cursor": None if reached_since else listing.next_cursor,
    }


def _backfill(page: BackfillPage, viewer: Viewer, backfills: BackfillLog) -> BackfillProgress:
    """The backfill this page belongs to: a new one (its id minted here), or the one named."""
    if page.backfill is None:
        progress = BackfillProgress(f"bf-{uuid.uuid4().hex[:12]}", viewer.owner, page.profile)
        if not page.dry_run and not backfills.start(progress):
            raise Busy("A backfill id collided; ask again.")
        return progress
    found = backfills.get(page.backfill)
    if found is None or not (viewer.is_admin or found.owner == viewer.owner):
        raise NotFound(f"No backfill {page.backfill}.")
    if found.profile != page.profile:
        raise BadRequest(f"Backfill {found.id} renders with profile {found.profile!r}.", "invalid_field")
    return found


def _backfill_one(
    record: ImageRecord, progress: BackfillProgress, dry_run: bool, ports: Ports
) -> tuple[str, ReprocessMessage | None]:
    """What the backfill does with one image: a verdict to count, and the message to send, if any."""
    if record.backfill == progress.id and (record.reprocess is None or record.reprocess.backfill != progress.id):
        return "already_done", None
    open_request = _reusable(record, progress.profile, progress.id)
    if open_request is not None:
        if dry_run:
            return "would_requeue", None
        return "requeued", ReprocessMessage(record.id, open_request.id, progress.id)
    try:
        _check_reprocessable(record, ports.store)
    except Gone:
        return "original_gone", None
    except Conflict:
        return "not_final", None
    if dry_run:
        return "would_queue", None
    request = Reprocess(new_request_id(), progress.profile, iso(ports.now()), backfill=progress.id)
    saved = _save_request(record, request, ports)
    if saved is None:
        return "changed", None  # the pipeline moved it on meanwhile: a re-run picks it up
    return "queued", ReprocessMessage(record.id, request.id, progress.id)


def backfill_progress(backfill_id: str, viewer: Viewer, ports: Ports) -> dict[str, Any]:
    """The counters of one backfill and the queue's depth (which every reprocess request shares)."""
    found = ports.backfills.get(backfill_id)
    if found is None or not (viewer.is_admin or found.owner == viewer.owner):
        raise NotFound(f"No backfill {backfill_id}.")
    return {**found.to_dict(), "queue": ports.reprocess_queue.depth().to_dict()}


# -- the consumer ---------------------------------------------------------------------------------


class QueueRecord(Protocol):
    """What the consumer needs of one SQS record (chalice.app.SQSRecord has both)."""

    @property
    def body(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


def consume_batch(
    records: Iterable[QueueRecord], processor: UploadProcessor, settings: Settings, context: Any, backfills: BackfillLog
) -> dict[str, list[dict[str, str]]]:
    """Process a batch of reprocess messages; report the ones to retry as `batchItemFailures`.

    Each message gets an equal share of the invocation's time left, so all are tried; one that
    fails (a held claim, an AWS fault) is retried alone, its neighbours are not. What keeps failing
    ends failed on its request's last claim, or reaches the dead-letter queue.
    """
    items = list(records)
    failures: list[dict[str, str]] = []
    for position, item in enumerate(items):
        message_id = str(item.to_dict().get("messageId", ""))
        message = ReprocessMessage.from_body(item.body)
        if message is None:
            log.warning("dropped a message that is no reprocess request: %s", message_id)
            continue
        deadline = settings.attempt_deadline(context, share=len(items) - position)
        try:
            outcome = processor.reprocess(message, deadline, message_id)
        except Exception:
            log.warning("reprocess of %s will be retried", message.image_id, exc_info=True)
            failures.append({"itemIdentifier": message_id})
            continue
        if message.backfill and outcome in ("done", "failed"):
            _count_quietly(backfills, message.backfill, outcome)
    return {"batchItemFailures": failures}


def _count_quietly(backfills: BackfillLog, backfill_id: str, outcome: str) -> None:
    try:
        backfills.count(backfill_id, outcome)
    except Exception:  # Progress is advisory; the record is what counts.
        log.warning("could not count %s for backfill %s", outcome, backfill_id, exc_info=True)
