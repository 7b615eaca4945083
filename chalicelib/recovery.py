"""Ending what an upload's own attempts could not: the failure queue's consumer and the sweeper.

- `end_abandoned`: Lambda's on-failure destination delivers an S3 event whose every attempt
  failed (a killed process, an AWS fault on the last try); its image ends `failed` unless it
  finished after all or another invocation's live worker still has it.
- `sweep`: on a schedule, ends records stuck past their lease and retries, re-sends the S3
  events that never came for uploads that exist, and ends multipart slots nobody completed
  (`upload_abandoned`, their S3 upload aborted).

Every action is a version-checked write (ports.RecordStore.save), so these race safely with the
attempts, DELETEs and each other (docs: guarantees).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from chalicelib import logs, metrics
from chalicelib.deadline import Deadline
from chalicelib.domain import Failure, ImageRecord, Status, iso, parse_iso, utc_now
from chalicelib.endings import Endings, remove_objects
from chalicelib.ports import ObjectStore, RecordStore, Uploads
from chalicelib.settings import Settings

SWEEP_LOOKBACK = timedelta(days=7)  # processing records older than this are the sweeper's too (it was down)


class Recovery:
    def __init__(
        self,
        settings: Settings,
        records: RecordStore,
        store: ObjectStore,
        uploads: Uploads,
        endings: Endings,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._settings = settings
        self._records = records
        self._store = store
        self._uploads = uploads
        self._endings = endings
        self._clock = clock

    def end_abandoned(
        self,
        bucket: str,
        key: str,
        reason: str,
        request_id: str | None = None,
        uploaded_at: datetime | None = None,
    ) -> str:
        """An event whose every attempt failed (from Lambda's on-failure queue, `request_id` being
        the failed invocation's, `uploaded_at` the S3 event's time). Ends the image `failed` unless
        it finished after all or another invocation's live worker still has it."""
        image_id = self._settings.upload_image_id(bucket, key)
        record = self._records.get(image_id) if image_id is not None else None
        if record is None:
            return "ignored"
        if record.is_deleted:
            remove_objects(record, self._store, self._settings)  # a late upload or attempt
            logs.outcome("ignored_deleted", record.id)
            return "ignored"
        if record.held_by_another(self._clock().timestamp(), request_id):
            logs.outcome("abandoned_event_but_lease_live", record.id)
            return "in_progress"  # the caller has the event redelivered later
        if record.is_final:
            return self._endings.renotify(record, request_id)
        failure = Failure("processing_error", f"Every attempt failed ({reason}).")
        return self._endings.end_for_good(record, failure, "failure_queue", uploaded_at)

    def sweep(self, deadline: Deadline) -> dict[str, int]:
        """Ends records stuck past their lease and retries, and re-sends S3 events that never came.

        Runs on a schedule; every action is a version-checked write, so overlapping runs are safe.
        Each run reads a bounded slice: records in `processing` (few: they are in flight), and the
        `pending` slots created in a few windows of their life (`_pending_checkpoints`), so a slot
        nobody uses costs a handful of HEADs in all, not one per run.
        """
        now = self._clock()
        counts = {"checked": 0, "failed": 0, "redriven": 0, "abandoned": 0}
        stuck = iso(now - timedelta(seconds=self._settings.stuck_after_seconds))
        candidates = list(self._records.open_records(Status.PROCESSING, iso(now - SWEEP_LOOKBACK), stuck))
        width = timedelta(seconds=2 * self._settings.sweep_interval_seconds)  # runs may be late or overlap
        for age in self._pending_checkpoints():
            newest = now - timedelta(seconds=age)
            candidates.extend(self._records.open_records(Status.PENDING, iso(newest - width), iso(newest)))
        for record in {r.id: r for r in candidates}.values():
            if deadline.remaining() <= 0:
                break
            counts["checked"] += 1
            action = self._sweep_one(record, now)
            if action:
                counts[action] += 1
        logs.outcome("swept", None, **counts)
        return counts

    def _pending_checkpoints(self) -> list[int]:
        """Ages (seconds since the slot was created) at which a pending slot is looked at: when its
        event should long have come; when a re-sent one should have; and the same once its upload
        URL has expired (the last moment anyone could have uploaded)."""
        redrive, stuck, expiry = (
            self._settings.redrive_after_seconds,
            self._settings.stuck_after_seconds,
            self._settings.upload_url_ttl,
        )
        return sorted({redrive, redrive + stuck, expiry + redrive, expiry + redrive + stuck})

    def _end_if_abandoned(self, record: ImageRecord, now: datetime) -> str | None:
        """A slot nobody uploaded to expires by itself; one whose multipart upload was started and
        not completed STUCK_AFTER_SECONDS after the slot expired (its part URLs with it) is ended:
        S3 drops the parts, the image is `failed` with `upload_abandoned`, one message says so."""
        expired_at = parse_iso(record.created_at) + timedelta(seconds=self._settings.upload_url_ttl)
        if record.upload_id is None or (now - expired_at).total_seconds() < self._settings.stuck_after_seconds:
            return None
        self._uploads.abort(record.input_key, record.upload_id)
        failure = Failure("upload_abandoned", "The multipart upload was started and never completed.")
        return "abandoned" if self._endings.end_for_good(record, failure) == "failed" else None

    def _sweep_one(self, record: ImageRecord, now: datetime) -> str | None:
        stuck_after = self._settings.stuck_after_seconds
        if record.open_status == Status.PROCESSING:  # an upload's claim, or a reprocess's
            if record.lease_live(now.timestamp()) or now.timestamp() - (record.lease_until or 0) < stuck_after:
                return None
            failure = Failure("processing_error", "The attempt stopped and no retry finished it.")
            self._endings.end_for_good(record, failure, "sweeper")
            return "failed"
        if record.is_final:
            return None
        if self._store.head_original(record.input_bucket, record.input_key) is None:
            return self._end_if_abandoned(record, now)
        if record.redriven_at is None:
            saved = self._records.save(record.marked_redriven(now))
            if saved is None:
                return None
            self._store.redrive(record.input_bucket, record.input_key)
            metrics.redriven(saved)
            return "redriven"
        if (now - parse_iso(record.redriven_at)).total_seconds() < stuck_after:
            return None
        self._endings.end_for_good(
            record, Failure("processing_error", "No S3 event arrived for the upload."), "sweeper"
        )
        return "failed"
