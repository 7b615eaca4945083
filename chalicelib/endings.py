"""How an image's story ends, whoever ends it: an attempt, the failure queue's consumer, the
sweeper, a DELETE.

- An outcome is published once: under the lease the record holds, then marked notified
  (`publish`); a final record whose message never went out gets it from whoever finds it first
  (`renotify`).
- An abandoned record is failed for good under a lease of its own (`end_for_good`).
- A deleted image's objects are removed, original and every output of every attempt
  (`remove_objects`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from chalicelib import logs, metrics
from chalicelib.domain import Failure, ImageRecord, OriginalInfo, Outcome, utc_now
from chalicelib.ports import Notifier, ObjectStore, RecordStore
from chalicelib.settings import Settings

log = logging.getLogger("imgpress.pipeline")
NOTIFY_LEASE_SECONDS = 30.0  # long enough to publish once and mark the record


class Endings:
    def __init__(self, records: RecordStore, notifier: Notifier, clock: Callable[[], datetime] = utc_now) -> None:
        self._records = records
        self._notifier = notifier
        self._clock = clock

    def publish(self, record: ImageRecord) -> None:
        """Publish under the lease the record holds, then mark it notified (ending the lease).

        If the publish fails, the lease is given back first, so the retry that follows may send it.
        """
        try:
            self._notifier.publish(record)
            logs.outcome("notified", record.id, status=record.status)
        except Exception:
            try:
                self._records.save(record.released(self._clock()))
            except Exception:  # the lease runs out by itself
                log.warning("could not release %s after a failed publish", record.id, exc_info=True)
            raise
        try:
            if self._records.save(record.marked_notified(self._clock())) is None:
                logs.outcome("notified_but_record_moved_on", record.id)
        except Exception:  # The message is out; raising would only get it sent twice.
            log.warning("published %s but could not mark it notified", record.id, exc_info=True)

    def renotify(self, record: ImageRecord, request_id: str | None) -> str:
        """These bytes were already processed. Publish only if that attempt could not."""
        if record.notified:
            logs.outcome("ignored_duplicate", record.id)
            return "duplicate"
        epoch = self._clock().timestamp()
        if record.held_by_another(epoch, request_id):
            logs.outcome("ignored_duplicate_being_notified", record.id)
            return "duplicate"
        leased = self._records.save(record.leased(epoch + NOTIFY_LEASE_SECONDS, self._clock(), request_id))
        if leased is None:
            logs.outcome("ignored_duplicate_record_moved_on", record.id)
            return "duplicate"
        self.publish(leased)
        logs.outcome("notified_on_retry", record.id)
        return "notified"

    def end_for_good(
        self,
        record: ImageRecord,
        failure: Failure,
        ended_by: str | None = None,
        uploaded_at: datetime | None = None,
    ) -> str:
        """Fail an abandoned record under a lease of our own, so its notification is sent once.

        `ended_by` (failure_queue, sweeper: recovery from a fault) and the upload's time, when known, go
        into its metrics; an upload its client gave up on (aborted, abandoned) is ended by nobody."""
        now = self._clock()
        outcome = Outcome(OriginalInfo(record.object_size) if record.object_size is not None else None)
        leased = record.leased(now.timestamp() + NOTIFY_LEASE_SECONDS, now)
        saved = self._records.save(leased.failed(failure, outcome, now))
        if saved is None:
            logs.outcome("end_skipped_record_moved_on", record.id)
            return "skipped"
        timing = metrics.Timing(uploaded_at, now) if uploaded_at is not None else None
        if record.is_reprocessing:
            metrics.reprocess_failed(saved, failure.code, None, ended_by)
        else:
            metrics.upload_failed(saved, failure.code, timing, now, ended_by)
        self.publish(saved)
        return "failed"


def remove_objects(record: ImageRecord, store: ObjectStore, settings: Settings) -> None:
    """An image's original and every output of every attempt (they all share one prefix)."""
    store.delete_keys(record.input_bucket, [record.input_key])
    prefix = settings.output_prefix_of(record.id)
    store.delete_keys(store.output_bucket, store.list_keys(store.output_bucket, prefix))
