"""The interfaces the pipeline and the API need from AWS. Adapters: records.py (DynamoDB: images and
backfill progress), quota_store.py (DynamoDB), storage.py (S3), notify.py (SNS), queue.py (SQS);
in-memory fakes with the same contract live in tests/fakes.py,
and tests/contract/ runs one suite against both."""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from chalicelib.auth.principal import Principal
from chalicelib.domain import Failure, ImageRecord, Status
from chalicelib.signing import SigningKeys


class RecordExists(Exception):
    """`create` found a record with that id already (ids are random: a bug or an attack)."""


@dataclass(frozen=True)
class ListQuery:
    """One page of an owner's images, newest first; `status` or `sha256` narrow it."""

    owner: str | None  # None: every owner's (an admin's view)
    limit: int
    cursor: str | None = None
    status: Status | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class Page:
    items: Sequence[ImageRecord]
    next_cursor: str | None


class RecordStore(Protocol):
    def create(self, record: ImageRecord) -> None:
        """Store a new record; RecordExists if the id is taken."""

    def get(self, image_id: str) -> ImageRecord | None:
        """The record as last written (strongly consistent), tombstones included."""

    def save(self, record: ImageRecord) -> ImageRecord | None:
        """Write `record` as version `record.version + 1` if the stored one is still at
        `record.version`; None if it moved on or is gone. The only way a record changes."""

    def list_page(self, query: ListQuery) -> Page:
        """Newest first, tombstones excluded. BadRequest(invalid_cursor) for a cursor not issued
        for this very query."""

    def find_done_twin(self, owner: str, sha256: str, profile: str, exclude_id: str) -> ImageRecord | None:
        """The newest done image of `owner` with these bytes and profile (dedupe never crosses owners)."""

    def open_records(self, status: Status, since: str, before: str) -> Sequence[ImageRecord]:
        """Records in the open `status` (pending, or processing: an upload's claim or a claimed
        reprocess) that entered it in [since, before) (ISO times; the sweeper's windows, so each
        run reads a bounded slice). See ImageRecord.open_status."""


@dataclass(frozen=True)
class StoredObject:
    """An object as read: its ETag (unquoted) and size, and its bytes unless it was too large to read."""

    etag: str
    size: int
    data: bytes | None


class ObjectStore(Protocol):
    @property
    def output_bucket(self) -> str: ...

    def read_original(self, bucket: str, key: str, max_bytes: int) -> StoredObject | None:
        """The object as it is now (None if absent). Bodies over `max_bytes` are not downloaded."""

    def head_original(self, bucket: str, key: str) -> StoredObject | None:
        """ETag and size of the object as it is now, no bytes (None if absent)."""

    def redrive(self, bucket: str, key: str) -> None:
        """Make S3 announce the object again (a fresh ObjectCreated event), bytes unchanged."""

    def put_output(self, key: str, data: bytes, content_type: str, tags: dict[str, str]) -> None: ...

    def copy_output(self, source_key: str, key: str, tags: dict[str, str]) -> None: ...

    def list_keys(self, bucket: str, prefix: str) -> list[str]: ...

    def delete_keys(self, bucket: str, keys: Sequence[str]) -> None:
        """Delete every key or raise StorageError naming those that remain."""

    def presign_get(self, bucket: str, key: str, ttl_seconds: int) -> str: ...


class Notifier(Protocol):
    def publish(self, record: ImageRecord) -> str:
        """Publish the final record's message; returns the message id."""


@dataclass(frozen=True)
class ReprocessMessage:
    """One queued reprocess request: which image, which request of it (ImageRecord.reprocess.id),
    and the backfill that asked, whose progress the consumer counts."""

    image_id: str
    request_id: str
    backfill: str | None = None

    def to_body(self) -> str:
        body = {"image_id": self.image_id, "request_id": self.request_id, "backfill": self.backfill}
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_body(cls, body: str) -> ReprocessMessage | None:
        """None for anything that is not a message of ours (it is dropped, not retried)."""
        try:
            data = json.loads(body)
            image_id, request_id, backfill = data["image_id"], data["request_id"], data.get("backfill")
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        if not (isinstance(image_id, str) and isinstance(request_id, str) and image_id and request_id):
            return None
        return cls(image_id, request_id, backfill if isinstance(backfill, str) and backfill else None)


@dataclass(frozen=True)
class QueueDepth:
    """How much is left: waiting to be received, being worked on, and given up (dead-letter queue)."""

    waiting: int
    in_flight: int
    dead_letters: int

    def to_dict(self) -> dict[str, int]:
        return {"waiting": self.waiting, "in_flight": self.in_flight, "dead_letters": self.dead_letters}


class ReprocessQueue(Protocol):
    def send(self, messages: Sequence[ReprocessMessage]) -> list[ReprocessMessage]:
        """Enqueue; returns the messages that could not be sent (the caller leaves their requests
        for a re-run). Raises only when nothing could be sent at all."""

    def depth(self) -> QueueDepth: ...


@dataclass(frozen=True)
class BackfillProgress:
    """What a backfill has done so far: requests queued, and outcomes counted by the consumer."""

    id: str
    owner: str
    profile: str
    queued: int = 0
    done: int = 0
    failed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "owner": self.owner,
            "profile": self.profile,
            "queued": self.queued,
            "done": self.done,
            "failed": self.failed,
        }


class BackfillLog(Protocol):
    def start(self, backfill: BackfillProgress) -> bool:
        """Record a new backfill; False if that id exists already."""

    def get(self, backfill_id: str) -> BackfillProgress | None: ...

    def count(self, backfill_id: str, counter: str, amount: int = 1) -> None:
        """Add `amount` to `queued`, `done` or `failed` (an atomic increment; no read first)."""


@dataclass(frozen=True)
class Counter:
    """One change to one of an owner's quota counters: `attribute` of the item of UTC day `window`
    moves by `amount`. A rise may not take it above `limit` (0: no ceiling); a fall may not take
    it below 0."""

    window: str  # "2026-11-29": the UTC day whose item holds the counter
    attribute: str
    amount: int
    limit: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return (self.window, self.attribute)

    def allows(self, current: int) -> bool:
        after = current + self.amount
        if self.amount < 0:
            return after >= 0
        return self.limit == 0 or after <= self.limit


class QuotaStore(Protocol):
    def apply(
        self, owner: str, changes: Sequence[Counter], expired: Sequence[tuple[str, str]] = ()
    ) -> dict[tuple[str, str], int] | None:
        """Make every change of `owner`'s counters, atomically, or none. None when made; else the
        values before, keyed like `Counter.key` (0 for an absent counter), of every change in each
        item that refused. `expired` keys (counters nobody reads any more) are removed on the way,
        only from items that `changes` write."""


@dataclass(frozen=True)
class UploadedPart:
    """One part of a multipart upload as S3 lists it: the ETag unquoted, the size in bytes."""

    number: int
    etag: str
    size: int


class NoSuchUpload(Exception):
    """The multipart upload does not exist (never did, completed, or aborted)."""


class InvalidPart(Exception):
    """Completing named a part S3 does not have with that ETag."""


@dataclass(frozen=True)
class PresignedPost:
    """A browser form that uploads one file to one key: POST `fields`, then the file, to `url`."""

    url: str
    fields: dict[str, str]


class Uploads(Protocol):
    """Clients' uploads into the input bucket: a presigned POST for a file in one request, S3
    multipart for one in parts. Only ever to a slot's key: callers check the key."""

    def presign_post(self, key: str, content_type: str, max_bytes: int, ttl_seconds: int) -> PresignedPost:
        """A form S3 accepts for `ttl_seconds`, for exactly `key` and `content_type`, 1 to `max_bytes` bytes."""

    def start(self, key: str, content_type: str) -> str:
        """CreateMultipartUpload; returns the upload id."""

    def presign_part(self, key: str, upload_id: str, number: int, size: int | None, ttl_seconds: int) -> str:
        """A URL for one UploadPart PUT; with `size`, the Content-Length is signed so no other fits."""

    def parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        """Every part uploaded so far, by number (ListParts, all pages); NoSuchUpload if none."""

    def complete(self, key: str, upload_id: str, parts: Sequence[UploadedPart]) -> str:
        """CompleteMultipartUpload with exactly these parts; returns the object's location.
        NoSuchUpload, or InvalidPart for a part S3 does not hold with that ETag."""

    def abort(self, key: str, upload_id: str) -> None:
        """AbortMultipartUpload; an upload already gone is not an error."""


class UploadQuotas(Protocol):
    """The per-owner limits a new upload slot is taken against (quota.Quotas, over a QuotaStore)."""

    def take(self, caller: Principal, size: int | None, now: datetime) -> None:
        """Count a slot of `size` declared bytes for `caller`, or raise QuotaExceeded (429)."""

    def release_slot(self, owner: str, opened_at: str, now: datetime) -> None:
        """The slot opened at `opened_at` is no longer open (its upload arrived, or it ended)."""

    def take_transform(self, owner: str, now: datetime) -> None:
        """Count one on-demand render against `owner`'s daily limit, or raise QuotaExceeded (429)."""


class TransformState(enum.StrEnum):
    RENDERING = "rendering"  # claimed: its holder renders until `lease_until`
    DONE = "done"  # the object is stored
    FAILED = "failed"  # the render was refused (a code, as an image's); answered as is until it expires


@dataclass(frozen=True)
class TransformEntry:
    """What the ledger knows of one on-demand variant (named by its object key)."""

    state: TransformState
    lease_until: float = 0.0
    code: str | None = None
    message: str | None = None
    expires_at: float | None = None  # epoch s; past it the entry no longer counts (DynamoDB's TTL removes it)

    def live(self, now: float) -> bool:
        """Whether it still stands: an unexpired result, or a render whose holder is still within its lease."""
        if self.state is TransformState.RENDERING:
            return self.lease_until > now
        return self.expires_at is None or self.expires_at > now


class Claim(enum.StrEnum):
    CLAIMED = "claimed"  # render it: this caller holds the lease
    TAKEN = "taken"  # someone else rendered it, renders it now, or failed it: see the entry
    IMAGE_FULL = "image_full"  # the image has its TRANSFORM_MAX_VARIANTS_PER_IMAGE distinct variants
    STAGE_FULL = "stage_full"  # the stage rendered TRANSFORM_MAX_RENDERS_PER_DAY today


@dataclass(frozen=True)
class TransformLimits:
    """The caps a new variant is counted against: per image revision, per stage and UTC day (0: none)."""

    per_image: int
    per_day: int


class TransformLedger(Protocol):
    """Which on-demand variants exist or are being rendered, so each is rendered once, and the caps.
    (DynamoDB: aws/transform_ledger.py, items in the images table; in memory: tests/fakes.py.)"""

    def get(self, key: str) -> TransformEntry | None: ...

    def claim(
        self, key: str, counted_as: str, day: str, lease_until: float, now: float, limits: TransformLimits
    ) -> tuple[Claim, TransformEntry | None]:
        """Take the render of `key` unless it is taken: a new variant is counted, in one write, against
        `counted_as`'s cap (the image revision's) and the stage's cap for `day`, or not at all; a dead
        holder's lease (past `lease_until`) or an expired failure is taken over, uncounted. TAKEN
        comes with the entry as it stands."""

    def finish(self, key: str, entry: TransformEntry, keep_seconds: int, now: float) -> None:
        """Record the claimed render's end (DONE or FAILED); the item expires `keep_seconds` after `now`."""


class ImageEndings(Protocol):
    """How an image is ended by someone other than its attempts (endings.Endings)."""

    def end_for_good(
        self,
        record: ImageRecord,
        failure: Failure,
        ended_by: str | None = None,
        uploaded_at: datetime | None = None,
    ) -> str:
        """Fail `record` under a lease of its own and publish it once; "failed", or "skipped" if it moved on."""


class Ports(Protocol):
    """Everything a request handler reaches AWS (and the time) through: the one way handlers get their
    ports. services.AwsPorts builds each adapter on first use; tests pass in-memory fakes."""

    @property
    def records(self) -> RecordStore: ...

    @property
    def store(self) -> ObjectStore: ...

    @property
    def uploads(self) -> Uploads: ...

    @property
    def quotas(self) -> UploadQuotas: ...

    @property
    def endings(self) -> ImageEndings:
        """How an image ends (its one SNS message included), for a slot a client gave up on."""

    @property
    def reprocess_queue(self) -> ReprocessQueue: ...

    @property
    def transforms(self) -> TransformLedger: ...

    @property
    def signing_keys(self) -> SigningKeys | None:
        """The stage's transform-link keys (None: on-demand variants are off)."""

    @property
    def backfills(self) -> BackfillLog: ...

    def now(self) -> datetime:
        """The current time, UTC (tests set it)."""
