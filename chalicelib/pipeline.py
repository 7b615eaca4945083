"""One upload, top to bottom: decide, claim, fetch, render, store, record, notify. (When an upload's
own attempts cannot end it, the failure queue and the sweeper do: recovery.py.)

The record's lifecycle and the rule that decides what an event means are in domain.py; every
write below is conditional on the version read (ports.RecordStore.save), so whichever worker,
retry, DELETE or sweeper moves a record first wins and the others find out and step back.

Guarantees (docs: guarantees):
- The final record describes the bytes last uploaded to the slot: work is done on the object
  as it is now, and a newer upload takes over a claim on older bytes.
- Every attempt ends before Lambda would kill it (`processing_timeout`), and the stage's last
  attempt ends the image whatever goes wrong (`processing_error`); what still escapes (a killed
  process, a lost event) is ended by the failure-queue consumer and the sweeper.
- One SNS message per outcome: a record is published under a lease, then marked notified.
- Outputs are written under a per-attempt revision, so no attempt overwrites another's files.

Reprocessing (a queue message naming a request on a final record) goes through the same claim,
render, store, record and notify steps; only its claim and its failure differ (domain.py).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from chalicelib import logs, metrics
from chalicelib.deadline import Deadline, DeadlineExceeded
from chalicelib.domain import (
    Decision,
    Failure,
    ImageRecord,
    OriginalInfo,
    Outcome,
    OutputInfo,
    ReprocessDecision,
    Status,
    new_claim_token,
    output_revision,
    utc_now,
)
from chalicelib.endings import Endings, remove_objects
from chalicelib.errors import ImageRejected
from chalicelib.formats import declared_type_matches
from chalicelib.imaging.results import Rendering
from chalicelib.imaging.settings import ImagingSettings
from chalicelib.imaging.specs import VariantSpec
from chalicelib.metrics import Timing
from chalicelib.ports import ObjectStore, RecordStore, ReprocessMessage
from chalicelib.quota import Quotas
from chalicelib.settings import Settings

log = logging.getLogger("imgpress.pipeline")
_CONTENDED_TRIES = 3  # re-reads after losing a version race before handing the event back

Renderer = Callable[[bytes, Sequence[VariantSpec], ImagingSettings], Rendering]


class ClaimHeld(Exception):
    """Another delivery holds a live claim on these very bytes. Raised so Lambda retries later."""


@dataclass(frozen=True)
class UploadEvent:
    bucket: str
    key: str  # already URL-decoded, exactly once
    etag: str
    size: int
    uploaded_at: datetime | None = None  # the S3 event's time: where upload -> final latency starts


def render_with_pillow(
    data: bytes,
    variants: Sequence[VariantSpec],
    settings: ImagingSettings,
    timeout: float | None = None,
    placeholders: bool = True,
) -> Rendering:
    """In a child process (imaging/isolation.py): a decoder's crash or overrun ends the image, not the
    attempt; with `timeout`, the child is killed then (DeadlineExceeded). On-demand variants
    (transforms.py) render here too, without placeholders."""
    # Imported here, not at module level: Pillow is only paid for by the functions that render.
    from chalicelib.imaging.decode import prepare_decoders
    from chalicelib.imaging.isolation import run_isolated
    from chalicelib.imaging.render import render_variants

    limits = settings.decode_limits()
    prepare_decoders(limits.allowed_decoders)
    blurhash = settings.blurhash_components if placeholders else None
    return run_isolated(
        lambda: render_variants(data, variants, limits, blurhash, settings.encode_threads),
        limits.max_render_bytes,
        timeout,
    )


def _tags(variant: str, profile: str, source_format: str) -> dict[str, str]:
    return {"imgpress:variant": variant, "imgpress:profile": profile, "imgpress:source-format": source_format}


class UploadProcessor:
    def __init__(
        self,
        settings: Settings,
        records: RecordStore,
        store: ObjectStore,
        endings: Endings,
        render: Renderer = render_with_pillow,
        clock: Callable[[], datetime] = utc_now,
        quotas: Quotas | None = None,
    ) -> None:
        self._settings = settings
        self._records = records
        self._store = store
        self._endings = endings
        self._render = render
        self._clock = clock
        self._quotas = quotas

    def _epoch(self) -> float:
        return self._clock().timestamp()

    # -- one S3 event ---------------------------------------------------------------------------

    def process(self, event: UploadEvent, deadline: Deadline, request_id: str | None = None) -> str:
        """Handle one ObjectCreated event; returns the outcome name (for logs and tests).

        `request_id` is the Lambda invocation's (the same for its retries). Returns normally when
        the upload is handled (done, failed, or nothing to do); raises (ClaimHeld, AWS faults)
        only when a retry can still do better.
        """
        timing = Timing(event.uploaded_at, self._clock())
        image_id = self._settings.upload_image_id(event.bucket, event.key)
        if image_id is None:
            logs.outcome("ignored_foreign_key", None, bucket=event.bucket, key=event.key)
            return "ignored"
        record = self._records.get(image_id)
        if record is None:
            logs.outcome("ignored_no_record", image_id)
            return "ignored"
        # The record and the event alone settle repeats without reading S3.
        early = record.decide(event.etag, self._epoch(), request_id)
        if early is not Decision.CLAIM:
            return self._settle(record, early, request_id)
        limit = record.upload_limit(self._settings.imaging.max_upload_bytes)
        stored = self._store.read_original(event.bucket, event.key, limit)
        if stored is None:
            logs.outcome("ignored_missing_object", image_id)
            return "ignored"
        claimed = self._claim(record, stored.etag, stored.size, deadline, request_id)
        if not isinstance(claimed, ImageRecord):
            return claimed
        logs.outcome("claimed", image_id, attempt=claimed.attempts, etag=stored.etag)
        if stored.data is None:
            failure = Failure("too_large", f"The upload is {stored.size} bytes; at most {limit} are accepted.")
            return self._end_failed(claimed, failure, Outcome(OriginalInfo(stored.size)), timing)
        return self._attempt(claimed, stored.data, deadline, timing)

    def _settle(self, record: ImageRecord, decision: Decision, request_id: str | None) -> str:
        """An event that brings no new work: busy elsewhere, already finished, or deleted."""
        if decision is Decision.BUSY:
            raise ClaimHeld(f"image {record.id} is being processed by another delivery")
        if decision is Decision.GONE:
            remove_objects(record, self._store, self._settings)  # a late upload or attempt
            logs.outcome("ignored_deleted", record.id)
            return "ignored"
        return self._endings.renotify(record, request_id)

    def _claim(
        self, record: ImageRecord, etag: str, size: int, deadline: Deadline, request_id: str | None
    ) -> ImageRecord | str:
        """The claimed record, or the outcome name if there is nothing (more) to do."""
        for _ in range(_CONTENDED_TRIES):
            decision = record.decide(etag, self._epoch(), request_id)
            if decision is not Decision.CLAIM:
                return self._settle(record, decision, request_id)
            # The claim lasts as long as this attempt can: past it, the worker is surely gone.
            lease_until = self._epoch() + deadline.remaining() + self._settings.deadline_margin_seconds
            claim = record.claimed(new_claim_token(), etag, size, lease_until, self._clock(), request_id)
            saved = self._records.save(claim)
            if saved is not None:
                if record.status == Status.PENDING:
                    self._slot_used(saved)
                return saved
            current = self._records.get(record.id)
            if current is None:
                return "ignored"
            record = current
        raise ClaimHeld(f"image {record.id} changed under {_CONTENDED_TRIES} claims in a row")

    def _slot_used(self, claimed: ImageRecord) -> None:
        """The slot's first upload is claimed (exactly once: from `pending`): no longer an open slot."""
        if self._quotas is None:
            return
        try:
            self._quotas.release_slot(claimed.owner, claimed.created_at, self._clock())
        except Exception:  # It stops counting by itself when its upload URL's bucket ends.
            log.warning("could not release the upload slot of %s", claimed.id, exc_info=True)

    def _attempt(self, claimed: ImageRecord, data: bytes, deadline: Deadline, timing: Timing) -> str:
        """Render and store under the claim, then end the image, unless a retry can do better."""
        written: list[str] = []
        sha256 = hashlib.sha256(data).hexdigest()
        unread = Outcome(OriginalInfo(len(data)), sha256=sha256)
        try:
            result = self._outcome(claimed, data, sha256, deadline, written, timing)
            deadline.check()
        except DeadlineExceeded:
            self._delete_quietly(written)
            margin = self._settings.deadline_margin_seconds
            message = f"Processing did not finish in the time the attempt had (its Lambda timeout less {margin} s)."
            result = Failure("processing_timeout", message)
        except Exception as error:
            self._delete_quietly(written)
            if not self._is_last_attempt(claimed):
                self._release_quietly(claimed)
                raise
            log.exception("last attempt on %s failed", claimed.id)
            result = Failure("processing_error", f"Every attempt failed; the last one with {type(error).__name__}.")
        if isinstance(result, Failure):
            return self._end_failed(claimed, result, unread, timing)
        return self._end_done(claimed, result, written, timing)

    def _is_last_attempt(self, claimed: ImageRecord) -> bool:
        if claimed.is_reprocessing and claimed.reprocess is not None:
            return claimed.reprocess.attempts >= self._settings.reprocess_max_attempts
        return claimed.attempts >= self._settings.max_attempts

    def _outcome(
        self, claimed: ImageRecord, data: bytes, sha256: str, deadline: Deadline, written: list[str], timing: Timing
    ) -> Outcome | Failure:
        profile = self._settings.imaging.profiles.get(claimed.target_profile)
        if profile is None:
            return Failure("unknown_profile", f"The profile {claimed.target_profile!r} is no longer configured.")
        # Not for a reprocess: it exists to render anew (a twin may predate the profile's change).
        if self._settings.dedupe and not claimed.is_reprocessing:
            twin = self._records.find_done_twin(claimed.owner, sha256, profile.name, claimed.id)
            if twin is not None:
                return self._copy_twin(claimed, twin, sha256, deadline, written)
        started = time.perf_counter()
        try:
            with deadline.enforced():
                rendering = self._render(data, profile.variants, self._settings.imaging)
        except ImageRejected as rejected:
            return Failure(rejected.code, rejected.message)
        finally:
            timing.render_ms = (time.perf_counter() - started) * 1000
        source = rendering.source
        revision = output_revision(str(claimed.claim_token))
        outputs: dict[str, OutputInfo] = {}
        for variant in rendering.variants:
            deadline.check()
            key = self._settings.output_key(claimed.id, revision, variant.name, variant.extension)
            self._store.put_output(
                key, variant.data, variant.content_type, _tags(variant.name, profile.name, source.format)
            )
            written.append(key)
            outputs[variant.name] = OutputInfo(
                format=variant.format,
                content_type=variant.content_type,
                width=variant.width,
                height=variant.height,
                bytes=len(variant.data),
                bucket=self._store.output_bucket,
                key=key,
                method=variant.method,
                quality=variant.quality,
                ssim=variant.ssim,
                animation=variant.animation,
                frames=variant.frames if variant.animation is not None else None,
            )
        return Outcome(
            original=OriginalInfo(
                source.bytes,
                source.format,
                source.width,
                source.height,
                source.frames > 1,
                source.frames,
                source.duration_ms,
                source.loop,
            ),
            outputs=outputs,
            sha256=sha256,
            type_mismatch=not declared_type_matches(claimed.content_type, source.format),
            placeholders=rendering.placeholders,
            animation=rendering.animation,
        )

    def _copy_twin(
        self, claimed: ImageRecord, twin: ImageRecord, sha256: str, deadline: Deadline, written: list[str]
    ) -> Outcome:
        """Same bytes, same profile, same owner, already done: copy its outputs inside S3."""
        revision = output_revision(str(claimed.claim_token))
        source_format = twin.original.format if twin.original else None
        outputs: dict[str, OutputInfo] = {}
        for name, output in twin.outputs.items():
            deadline.check()
            key = self._settings.output_key(claimed.id, revision, name, output.key.rsplit(".", 1)[-1])
            self._store.copy_output(output.key, key, _tags(name, twin.profile, str(source_format)))
            written.append(key)
            outputs[name] = replace(output, key=key, bucket=self._store.output_bucket)
        return Outcome(
            original=twin.original,
            outputs=outputs,
            sha256=sha256,
            type_mismatch=not declared_type_matches(claimed.content_type, str(source_format)),
            placeholders=twin.placeholders,
            deduplicated_from=twin.id,
            animation=twin.animation,
        )

    # -- one reprocess request ------------------------------------------------------------------

    def reprocess(self, message: ReprocessMessage, deadline: Deadline, holder: str | None = None) -> str:
        """Render a final image again under the request `message` names; returns the outcome name.

        `holder` is the queue message's id (the same on every redelivery of it). Returns normally
        when the message is handled; raises (ClaimHeld, AWS faults) when it should come back later.
        """
        record = self._records.get(message.image_id)
        if record is None:
            logs.outcome("ignored_no_record", message.image_id)
            return "ignored"
        timing = Timing(None, self._clock())
        decision = record.decide_reprocess(message.request_id, self._epoch(), holder)
        if decision is ReprocessDecision.CLAIM and not record.notified:
            # The outcome standing now was never announced: its message goes first (one per outcome).
            self._endings.renotify(record, holder)
            current = self._records.get(record.id)
            if current is None:
                return "ignored"
            record = current
            decision = record.decide_reprocess(message.request_id, self._epoch(), holder)
        if decision is not ReprocessDecision.CLAIM:
            return self._settle_reprocess(record, decision, holder)
        stored = self._store.read_original(
            record.input_bucket, record.input_key, self._settings.imaging.max_upload_bytes
        )
        if stored is not None and stored.etag != record.source_etag:
            # A newer upload is in the slot: its own S3 event takes the request over (domain.claimed).
            logs.outcome("reprocess_left_to_new_upload", record.id)
            return "stale"
        claimed = self._claim_reprocess(record, message.request_id, deadline, holder)
        if not isinstance(claimed, ImageRecord):
            return claimed
        logs.outcome("claimed_reprocess", record.id, request=message.request_id, profile=claimed.target_profile)
        if stored is None:
            gone = "The original is no longer stored (expired by the retention rule, or removed)."
            return self._end_failed(claimed, Failure("original_gone", gone), Outcome(None), timing)
        if stored.data is None:
            limit = self._settings.imaging.max_upload_bytes
            too_large = Failure("too_large", f"The original is {stored.size} bytes; at most {limit} are accepted.")
            return self._end_failed(claimed, too_large, Outcome(OriginalInfo(stored.size)), timing)
        return self._attempt(claimed, stored.data, deadline, timing)

    def _settle_reprocess(self, record: ImageRecord, decision: ReprocessDecision, holder: str | None) -> str:
        if decision is ReprocessDecision.BUSY:
            raise ClaimHeld(f"image {record.id} is being reprocessed by another delivery")
        if decision is ReprocessDecision.STALE:
            logs.outcome("ignored_stale_reprocess", record.id)
            return "stale"
        return self._endings.renotify(record, holder)

    def _claim_reprocess(
        self, record: ImageRecord, request_id: str, deadline: Deadline, holder: str | None
    ) -> ImageRecord | str:
        for _ in range(_CONTENDED_TRIES):
            decision = record.decide_reprocess(request_id, self._epoch(), holder)
            if decision is not ReprocessDecision.CLAIM:
                return self._settle_reprocess(record, decision, holder)
            lease_until = self._epoch() + deadline.remaining() + self._settings.deadline_margin_seconds
            saved = self._records.save(record.reprocess_claimed(new_claim_token(), lease_until, self._clock(), holder))
            if saved is not None:
                return saved
            current = self._records.get(record.id)
            if current is None:
                return "ignored"
            record = current
        raise ClaimHeld(f"image {record.id} changed under {_CONTENDED_TRIES} claims in a row")

    # -- ending an image ------------------------------------------------------------------------

    def _end_done(self, claimed: ImageRecord, outcome: Outcome, written: list[str], timing: Timing) -> str:
        now = self._clock()
        try:
            saved = self._records.save(claimed.completed(outcome, now))
        except Exception:
            self._delete_quietly(written)  # the retry renders again, under a revision of its own
            self._release_quietly(claimed)
            raise
        if saved is None:
            return self._superseded(claimed, written)
        if claimed.is_reprocessing:  # counted once, when the record became done (a failed publish is retried)
            metrics.reprocess_done(saved, timing)
        else:
            metrics.upload_done(saved, timing, now)
        self._endings.publish(saved)
        replaced = [o.key for o in claimed.outputs.values() if o.key not in set(written)]
        self._delete_quietly(replaced)  # a previous upload's outputs, no longer advertised
        return "done"

    def _end_failed(self, claimed: ImageRecord, failure: Failure, outcome: Outcome, timing: Timing) -> str:
        now = self._clock()
        saved = self._records.save(claimed.failed(failure, outcome, now))
        if saved is None:
            return self._superseded(claimed, [])
        if claimed.is_reprocessing:
            metrics.reprocess_failed(saved, failure.code, timing)
        else:
            metrics.upload_failed(saved, failure.code, timing, now)
        self._endings.publish(saved)
        return "failed"

    def _superseded(self, claimed: ImageRecord, written: list[str]) -> str:
        """Someone moved the record on while this attempt worked (a newer upload, a takeover of an
        expired lease, a DELETE): its outputs are nobody's, and it publishes nothing."""
        self._delete_quietly(written)
        logs.outcome("superseded", claimed.id, attempt=claimed.attempts)
        return "superseded"

    # -- cleanup --------------------------------------------------------------------------------

    def _delete_quietly(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        try:
            self._store.delete_keys(self._store.output_bucket, keys)
        except Exception:  # Orphans under a revision nobody advertises; DELETE of the image removes them.
            log.warning("could not delete %d unadvertised output(s)", len(keys), exc_info=True)

    def _release_quietly(self, claimed: ImageRecord) -> None:
        try:
            self._records.save(claimed.released(self._clock()))
        except Exception:  # The lease expires by itself; the original fault is what matters.
            log.warning("could not release the claim on %s", claimed.id, exc_info=True)
