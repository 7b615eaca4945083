"""The image record and its lifecycle. Pure: imports neither boto3 nor Pillow.

    pending --claim--> processing --complete--> done
                           |      --fail------> failed
                           '-- a newer upload, or an expired lease: claimed again

Every change returns a new record; a store writes it only if the stored version is still the
one it was read at, and bumps the version (optimistic concurrency). That one rule is the whole
idempotency mechanism: two deliveries, a stale worker, a DELETE and the sweeper can race, and
exactly one of them moves the record on from any given version.

A lease marks a record someone is working on: the claim's holder while it processes and until
its notification is out, or whoever ends an abandoned image. Nobody else finishes, notifies or
deletes a record under a live lease.

Reprocessing renders a final image again from its kept original (docs: reprocessing). The record
keeps its status and advertised outputs meanwhile and carries a `Reprocess` request beside them:

    done|failed + reprocess(queued) --claim--> reprocess(processing) --complete--> done, new outputs
                                                                     --fail------> unchanged, reprocess(failed)

A newer upload to the slot takes over a pending request (its profile applies to the new bytes).
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any


class Status(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"


FINAL = frozenset({Status.DONE, Status.FAILED})
PENDING_TTL_SECONDS = 7 * 24 * 3600  # an upload slot nobody used expires from the table
TOMBSTONE_TTL_SECONDS = 24 * 3600  # a deleted image's id stays reserved (late events, stale workers)


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """Millisecond ISO 8601 in UTC with a Z: sortable as a string (index sort keys)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(stamp: str) -> datetime:
    """The inverse of `iso` (and any ISO 8601 date or time; parsing.moment bounds what clients send)."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


IMAGE_ID = re.compile(r"[0-9a-f]{32}")


def new_image_id() -> str:
    """122 random bits (uuid4), hex: unguessable, URL- and key-safe."""
    return uuid.uuid4().hex


def is_image_id(text: str) -> bool:
    """Whether `text` has the shape of an id `new_image_id` mints (clients' and keys' ids are checked)."""
    return IMAGE_ID.fullmatch(text) is not None


def new_claim_token() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Failure:
    """Why an image failed: a stable `code` (see the failure codes in the docs) and a sentence."""

    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class OriginalInfo:
    """The uploaded file as it turned out to be; format and size are unknown until decoded."""

    bytes: int
    format: str | None = None
    width: int | None = None
    height: int | None = None
    # An animation (frames > 1): its one play in ms (None unless every frame was decoded) and how
    # many times it plays (0: for ever). Shown for animations only.
    animated: bool = False
    frames: int | None = None
    duration_ms: int | None = None
    loop: int | None = None

    def to_dict(self) -> dict[str, Any]:
        fields = {"format": self.format, "width": self.width, "height": self.height, "bytes": self.bytes}
        if self.animated:
            fields.update(animated=self.animated, frames=self.frames, duration_ms=self.duration_ms, loop=self.loop)
        return fields


@dataclass(frozen=True)
class OutputInfo:
    """One stored variant. `key` is versioned by the attempt that wrote it (see `output_revision`)."""

    format: str
    content_type: str
    width: int
    height: int
    bytes: int
    bucket: str
    key: str
    method: str = "reencoded"  # or "original_stripped": the source's own JPEG data, metadata removed
    quality: int | None = None  # chosen by a target_ssim search, with the SSIM it reached
    ssim: float | None = None
    # Of an animated upload: what this variant became (animated, poster, truncated, larger_than_source)
    # and its frames (1 for a still).
    animation: str | None = None
    frames: int | None = None

    def to_dict(self) -> dict[str, Any]:
        fields = {
            "format": self.format,
            "content_type": self.content_type,
            "width": self.width,
            "height": self.height,
            "bytes": self.bytes,
            "bucket": self.bucket,
            "key": self.key,
            "method": self.method,
        }
        if self.ssim is not None:
            fields.update(quality=self.quality, ssim=self.ssim)
        if self.animation is not None:
            fields.update(animation=self.animation, frames=self.frames)
        return fields


@dataclass(frozen=True)
class Outcome:
    """What an attempt produced, ready to become a final record."""

    original: OriginalInfo | None
    outputs: Mapping[str, OutputInfo] = field(default_factory=dict)
    sha256: str | None = None
    type_mismatch: bool = False
    placeholders: Mapping[str, str] | None = None
    deduplicated_from: str | None = None
    animation: str | None = None  # of an animated upload: animated, truncated or still


class ReprocessStatus(enum.StrEnum):
    QUEUED = "queued"  # asked for; a message is on the reprocess queue
    PROCESSING = "processing"  # claimed by a consumer, under its lease
    FAILED = "failed"  # every attempt failed: the previous outputs stayed


@dataclass(frozen=True)
class Reprocess:
    """A request to render a final image again, possibly with another profile.

    `id` names the request: queue messages carry it, so a message for an older request, or one
    delivered twice, finds nothing to do. `backfill` names the batch job that asked, if any.
    """

    id: str
    profile: str
    requested_at: str
    status: ReprocessStatus = ReprocessStatus.QUEUED
    backfill: str | None = None
    attempts: int = 0
    error: Failure | None = None

    @property
    def is_open(self) -> bool:
        return self.status is not ReprocessStatus.FAILED

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "profile": self.profile,
            "requested_at": self.requested_at,
            "status": str(self.status),
            "backfill": self.backfill,
            "attempts": self.attempts,
            "error": self.error.to_dict() if self.error else None,
        }


class ReprocessDecision(enum.Enum):
    """What a consumer should do with a queue message for reprocess request `id`."""

    CLAIM = "claim"  # the request is open and nobody else is working on it
    BUSY = "busy"  # another consumer holds the lease: return the message for later
    FINISHED = "finished"  # it already ended: at most re-send its notification
    STALE = "stale"  # superseded (a newer request, a new upload) or deleted: drop the message


class Decision(enum.Enum):
    """What a worker should do with an upload of `etag`, given the record as it stands."""

    CLAIM = "claim"  # new work: claim it (pending, a newer upload, or a dead worker's lease)
    BUSY = "busy"  # another delivery is processing these very bytes: retry later
    FINISHED = "finished"  # these bytes were already processed: at most re-send the notification
    GONE = "gone"  # the image was deleted


@dataclass(frozen=True)
class ImageRecord:
    id: str
    owner: str
    status: Status
    profile: str
    content_type: str  # as declared by the client
    input_bucket: str
    input_key: str
    created_at: str
    updated_at: str
    version: int = 1  # set by the store: the number of writes so far
    filename: str | None = None
    declared_size: int | None = None
    # The S3 multipart upload started into the slot (POST /s3/multipart): the only one its routes reach.
    upload_id: str | None = None
    expires_at: int | None = None  # DynamoDB TTL (epoch seconds): unused slots and tombstones
    # The upload being (or last) processed, and the attempt working on it.
    source_etag: str | None = None
    object_size: int | None = None
    claim_token: str | None = None
    lease_until: float | None = None  # epoch seconds; a claim past it belongs to a dead worker
    # The Lambda invocation holding the lease. Lambda retries an event under the same request id
    # only once the previous attempt has ended, so a lease held by it is dead to its own retries.
    claim_request: str | None = None
    attempts: int = 0  # claims of the current upload; the stage's last one always ends the image
    claimed_at: str | None = None
    redriven_at: str | None = None  # the sweeper re-sent a missing S3 event once
    # The outcome, once final.
    completed_at: str | None = None
    notified: bool = False
    original: OriginalInfo | None = None
    outputs: Mapping[str, OutputInfo] = field(default_factory=dict)
    sha256: str | None = None
    type_mismatch: bool = False
    placeholders: Mapping[str, str] | None = None
    deduplicated_from: str | None = None
    animation: str | None = None
    error: Failure | None = None
    deleted_at: str | None = None  # a tombstone: gone for readers, kept briefly for late writers
    # Reprocessing: how often the outputs were rendered again, the request that did it last (and
    # the backfill that asked for it), and the request under way or last failed, if any.
    generation: int = 0
    reprocessed_by: str | None = None
    backfill: str | None = None
    reprocess: Reprocess | None = None

    @classmethod
    def pending(
        cls,
        image_id: str,
        *,
        owner: str,
        profile: str,
        content_type: str,
        input_bucket: str,
        input_key: str,
        now: datetime,
        filename: str | None = None,
        declared_size: int | None = None,
        upload_id: str | None = None,
    ) -> ImageRecord:
        stamp = iso(now)
        return cls(
            id=image_id,
            owner=owner,
            status=Status.PENDING,
            profile=profile,
            content_type=content_type,
            input_bucket=input_bucket,
            input_key=input_key,
            created_at=stamp,
            updated_at=stamp,
            filename=filename,
            declared_size=declared_size,
            upload_id=upload_id,
            expires_at=int(now.timestamp()) + PENDING_TTL_SECONDS,
        )

    def upload_limit(self, max_upload_bytes: int) -> int:
        """The most bytes this slot accepts: the size the client declared, when it declared one (the
        presigned POST's range, the parts' sizes, the handler's check), else the stage's maximum."""
        return self.declared_size or max_upload_bytes

    @property
    def is_final(self) -> bool:
        return self.status in FINAL

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def open_status(self) -> Status | None:
        """The open status the sweeper finds the record under: pending, processing (an upload's
        claim, or a claimed reprocess of a final image), or None. A merely queued reprocess is not
        the sweeper's: the queue retries it, and a backfill may queue millions."""
        if self.is_deleted:
            return None
        if self.is_reprocessing:
            return Status.PROCESSING
        return None if self.is_final else self.status

    @property
    def open_since(self) -> str | None:
        """When the record entered its open status (None once final or deleted)."""
        status = self.open_status
        if status is None:
            return None
        return self.claimed_at if status == Status.PROCESSING else self.created_at

    @property
    def outputs_revision(self) -> str | None:
        """The revision segment of the current outputs' keys (`<prefix><id>/<revision>/<variant>.<ext>`):
        it changes whenever the outputs are rendered again, and names the on-demand variants made
        from them (None without outputs)."""
        keys = sorted(output.key for output in self.outputs.values())
        if not keys:
            return None
        parts = keys[0].rsplit("/", 2)
        return parts[-2] if len(parts) == 3 else None

    def lease_live(self, epoch: float) -> bool:
        return self.lease_until is not None and self.lease_until > epoch

    def held_by_another(self, epoch: float, request_id: str | None) -> bool:
        """A live lease, not left behind by an earlier attempt of the invocation `request_id`."""
        return self.lease_live(epoch) and (request_id is None or self.claim_request != request_id)

    def decide(self, etag: str, epoch: float, request_id: str | None = None) -> Decision:
        """The idempotency rule for an upload whose current bytes have `etag`.

        The bytes last uploaded to the slot always win: a newer upload takes over even a live
        claim on older bytes (the older worker's writes then fail their version check).
        """
        if self.is_deleted:
            return Decision.GONE
        if self.status == Status.PENDING:
            return Decision.CLAIM
        if self.source_etag != etag:
            return Decision.CLAIM
        if self.is_final:
            return Decision.FINISHED
        return Decision.BUSY if self.held_by_another(epoch, request_id) else Decision.CLAIM

    def _next(self, now: datetime, **changes: Any) -> ImageRecord:
        return replace(self, updated_at=iso(now), **changes)

    def claimed(
        self, token: str, etag: str, size: int, lease_until: float, now: datetime, request_id: str | None = None
    ) -> ImageRecord:
        """processing, for the holder of `token`. Attempts count per upload: new bytes start at 1."""
        attempts = self.attempts + 1 if etag == self.source_etag else 1
        # New bytes take over an open reprocess request: its profile is the owner's latest wish.
        pending = self.reprocess if self.reprocess is not None and self.reprocess.is_open else None
        return self._next(
            now,
            status=Status.PROCESSING,
            profile=pending.profile if pending else self.profile,
            reprocess=None,
            claim_token=token,
            lease_until=lease_until,
            claim_request=request_id,
            claimed_at=iso(now),
            source_etag=etag,
            object_size=size,
            attempts=attempts,
            expires_at=None,
            notified=False,
        )

    def released(self, now: datetime) -> ImageRecord:
        """Give the claim back after a transient fault so the retry can take it at once."""
        return self._next(now, lease_until=0.0)

    def leased(self, lease_until: float, now: datetime, request_id: str | None = None) -> ImageRecord:
        """Take a lease without a new claim: to send a final record's missing notification, or to
        end an abandoned record, without anyone else doing the same meanwhile."""
        return self._next(now, lease_until=lease_until, claim_request=request_id)

    @property
    def is_reprocessing(self) -> bool:
        """The claim this record is under renders a final image again (not a new upload)."""
        return self.reprocess is not None and self.reprocess.status is ReprocessStatus.PROCESSING

    @property
    def target_profile(self) -> str:
        """The profile the current claim renders with."""
        return self.reprocess.profile if self.is_reprocessing and self.reprocess else self.profile

    def completed(self, outcome: Outcome, now: datetime) -> ImageRecord:
        """done with `outcome`'s outputs; a reprocess claim also moves to its profile and generation."""
        done = self._finished(Status.DONE, outcome, None, now)
        if not self.is_reprocessing or self.reprocess is None:
            return done
        request = self.reprocess
        return replace(
            done,
            profile=request.profile,
            generation=self.generation + 1,
            reprocessed_by=request.id,
            backfill=request.backfill,
            reprocess=None,
        )

    def failed(self, failure: Failure, outcome: Outcome, now: datetime) -> ImageRecord:
        """failed; for a reprocess claim only the request fails: status and outputs stay as they were."""
        if self.is_reprocessing and self.reprocess is not None:
            request = replace(self.reprocess, status=ReprocessStatus.FAILED, error=failure)
            return self._next(now, reprocess=request, notified=False)
        failed = replace(outcome, outputs={}, placeholders=None, animation=None)
        return self._finished(Status.FAILED, failed, failure, now)

    # -- reprocessing ---------------------------------------------------------------------------

    def reprocess_requested(self, request: Reprocess, now: datetime) -> ImageRecord:
        """Record a new request. It replaces an open one: that one's claim (if any) is fenced off by
        this write's version, so its lease is dropped and the new request can be claimed at once."""
        lease = None if self.reprocess is not None and self.reprocess.is_open else self.lease_until
        return self._next(now, reprocess=request, lease_until=lease)

    def decide_reprocess(self, request_id: str, epoch: float, holder: str | None = None) -> ReprocessDecision:
        """The idempotency rule for a queue message naming request `request_id` (`holder`: the
        message's id, the same on every redelivery of it)."""
        if self.is_deleted:
            return ReprocessDecision.STALE
        request = self.reprocess
        if request is None or request.id != request_id:
            return ReprocessDecision.FINISHED if self.reprocessed_by == request_id else ReprocessDecision.STALE
        if not request.is_open:
            return ReprocessDecision.FINISHED
        return ReprocessDecision.BUSY if self.held_by_another(epoch, holder) else ReprocessDecision.CLAIM

    def reprocess_claimed(
        self, token: str, lease_until: float, now: datetime, holder: str | None = None
    ) -> ImageRecord:
        """The open request, claimed by the holder of `token`. Status and outputs stay: readers
        keep getting the previous outputs until the new ones replace them in one write."""
        assert self.reprocess is not None
        request = replace(self.reprocess, status=ReprocessStatus.PROCESSING, attempts=self.reprocess.attempts + 1)
        return self._next(
            now,
            reprocess=request,
            claim_token=token,
            lease_until=lease_until,
            claim_request=holder,
            claimed_at=iso(now),
        )

    def _finished(self, status: Status, outcome: Outcome, failure: Failure | None, now: datetime) -> ImageRecord:
        return self._next(
            now,
            status=status,
            completed_at=iso(now),
            notified=False,
            error=failure,
            original=outcome.original,
            outputs=dict(outcome.outputs),
            sha256=outcome.sha256,
            type_mismatch=outcome.type_mismatch,
            placeholders=outcome.placeholders,
            deduplicated_from=outcome.deduplicated_from,
            animation=outcome.animation,
        )

    def marked_notified(self, now: datetime) -> ImageRecord:
        """The outcome is published: the lease held since the claim ends here."""
        return self._next(now, notified=True, lease_until=None)

    def marked_redriven(self, now: datetime) -> ImageRecord:
        return self._next(now, redriven_at=iso(now))

    def tombstone(self, now: datetime) -> ImageRecord:
        """Deleted: invisible to readers, stripped of what described the image; kept until its TTL
        so late events and in-flight writers find it (their version checks fail) and clean up."""
        return self._next(
            now,
            deleted_at=iso(now),
            expires_at=int(now.timestamp()) + TOMBSTONE_TTL_SECONDS,
            lease_until=None,
            filename=None,
            original=None,
            outputs={},
            sha256=None,
            placeholders=None,
            animation=None,
            error=None,
            reprocess=None,
        )


def output_revision(claim_token: str) -> str:
    """The path segment that versions one attempt's outputs: a stale or superseded worker can
    never overwrite another attempt's files, and a CDN never serves old bytes under a new record."""
    return claim_token[:12]
