"""One upload event, top to bottom: check, claim, fetch, render, store, record, notify.

Idempotency: the record's state machine (records.py) decides whether an event is new work,
a duplicate, or stale. User-data problems end as `failed` and return normally; AWS faults
raise so Lambda retries, after the claim is released for that retry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.errors import ImageRejected
from chalicelib.formats import declared_type_matches
from chalicelib.imaging.specs import VariantSpec
from chalicelib.notify import Notifier
from chalicelib.records import DONE, FAILED, PROCESSING, ImageRecords
from chalicelib.settings import Settings
from chalicelib.storage import ObjectStore

log = logging.getLogger("imgpress.pipeline")
_ID = re.compile(r"^[0-9a-f]{32}$")

Renderer = Callable[[bytes, Sequence[VariantSpec], Settings], Any]


class ClaimHeld(Exception):
    """Another delivery holds a live claim on this image. Raised so Lambda retries later."""


@dataclass(frozen=True)
class UploadEvent:
    bucket: str
    key: str  # already URL-decoded, exactly once
    etag: str
    size: int


def _render_with_pillow(data: bytes, variants: Sequence[VariantSpec], settings: Settings) -> Any:
    # Imported here, not at module level: Pillow is only paid for by the S3 handler.
    from chalicelib.imaging.render import render_variants

    return render_variants(data, variants, settings.decode_limits(), settings.blurhash_components)


def _unread(size: int) -> dict[str, Any]:
    """The original's metadata when its pixels were never read (or could not be)."""
    return {"bytes": size, "format": None, "width": None, "height": None}


def _tags(variant: str, profile: str, source_format: str) -> dict[str, str]:
    return {"imgpress:variant": variant, "imgpress:profile": profile, "imgpress:source-format": source_format}


def _log(outcome: str, event: UploadEvent, **fields: Any) -> None:
    log.info(json.dumps({"outcome": outcome, "bucket": event.bucket, "key": event.key, **fields}))


class UploadProcessor:
    def __init__(
        self,
        settings: Settings,
        records: ImageRecords,
        store: ObjectStore,
        notifier: Notifier,
        render: Renderer = _render_with_pillow,
    ) -> None:
        self._settings = settings
        self._records = records
        self._store = store
        self._notifier = notifier
        self._render = render

    def image_id_for(self, event: UploadEvent) -> str | None:
        """The image id if this is an imgpress upload key in the input bucket, else None."""
        prefix = self._settings.upload_prefix
        if event.bucket != self._settings.input_bucket or not event.key.startswith(prefix):
            return None
        candidate = event.key[len(prefix) :]
        return candidate if _ID.match(candidate) else None

    def process(self, event: UploadEvent) -> str:
        """Handle one ObjectCreated event; returns the outcome name (for logs and tests)."""
        image_id = self.image_id_for(event)
        if image_id is None:
            _log("ignored_foreign_key", event)
            return "ignored"
        record = self._records.get(image_id)
        if record is None:
            _log("ignored_no_record", event, id=image_id)
            return "ignored"
        if record["status"] in (DONE, FAILED) and record.get("source_etag") == event.etag:
            return self._finish_duplicate(record, event)
        if event.size > self._settings.max_upload_bytes:
            # Too large to be ours: fail it from the event alone, without downloading a byte.
            rejected = ImageRejected(
                f"The upload is {event.size} bytes; at most {self._settings.max_upload_bytes} are accepted.",
                "too_large",
            )
            return self._while_claimed(
                image_id, event, lambda token: self._fail(image_id, token, rejected, _unread(event.size), event)
            )
        data = self._store.fetch_original(event.bucket, event.key, event.etag)
        if data is None:
            _log("ignored_stale", event, id=image_id)
            return "stale"
        return self._while_claimed(
            image_id, event, lambda token: self._process_claimed(image_id, token, data, record, event)
        )

    def _while_claimed(self, image_id: str, event: UploadEvent, work: Callable[[str], str]) -> str:
        """Run `work` holding the claim; on any fault give the claim back so Lambda's retry can take it."""
        token = self._claim(image_id, event)
        if token is None:
            return "duplicate"
        try:
            return work(token)
        except Exception:
            self._release_quietly(image_id, token)
            raise

    def _claim(self, image_id: str, event: UploadEvent) -> str | None:
        token = self._records.claim(image_id, event.etag, event.size, self._settings.processing_lease_seconds)
        if token is not None:
            return token
        current = self._records.get(image_id)
        if current is not None and current["status"] == PROCESSING and current.get("source_etag") == event.etag:
            raise ClaimHeld(f"image {image_id} is being processed by another delivery")
        _log("ignored_duplicate", event, id=image_id, status=current and current["status"])
        return None

    def _process_claimed(
        self, image_id: str, token: str, data: bytes, record: dict[str, Any], event: UploadEvent
    ) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        unknown = _unread(len(data))
        profile = self._settings.profiles.get(record.get("profile"))
        if profile is None:
            rejected = ImageRejected(
                f"The profile {record.get('profile')!r} is no longer configured.", "unknown_profile"
            )
            return self._fail(image_id, token, rejected, unknown, event, sha256)
        if self._settings.dedupe:
            twin = self._records.find_done_twin(sha256, profile.name, image_id)
            if twin is not None:
                return self._complete_from_twin(image_id, token, twin, sha256, record, event)
        try:
            rendering = self._render(data, profile.variants, self._settings)
        except ImageRejected as rejected:
            return self._fail(image_id, token, rejected, unknown, event, sha256)
        source = rendering.source
        outputs: dict[str, Any] = {}
        for variant in rendering.variants:
            key = self._settings.output_key(image_id, variant.name, variant.extension)
            self._store.put_output(
                key, variant.data, variant.content_type, _tags(variant.name, profile.name, source.format)
            )
            outputs[variant.name] = {
                "format": variant.format,
                "content_type": variant.content_type,
                "width": variant.width,
                "height": variant.height,
                "bytes": len(variant.data),
                "bucket": self._store.output_bucket,
                "key": key,
                "method": variant.method,
                **({"quality": variant.quality, "ssim": variant.ssim} if variant.ssim is not None else {}),
            }
        original = {"format": source.format, "width": source.width, "height": source.height, "bytes": source.bytes}
        details = {
            "sha256": sha256,
            "type_mismatch": not declared_type_matches(record.get("content_type"), source.format),
            "placeholders": rendering.placeholders,
        }
        return self._complete(image_id, token, original, outputs, details, event)

    def _complete_from_twin(
        self, image_id: str, token: str, twin: dict[str, Any], sha256: str, record: dict[str, Any], event: UploadEvent
    ) -> str:
        """Same bytes, same profile, already done: copy its outputs inside S3; no decode, no encode."""
        outputs: dict[str, Any] = {}
        source_format = twin["original"]["format"]
        for name, output in twin["outputs"].items():
            extension = output["key"].rsplit(".", 1)[-1]
            key = self._settings.output_key(image_id, name, extension)
            self._store.copy_output(output["key"], key, _tags(name, twin["profile"], source_format))
            outputs[name] = {**output, "key": key, "bucket": self._store.output_bucket}
        details = {
            "sha256": sha256,
            "deduplicated_from": twin["id"],
            "placeholders": twin.get("placeholders"),
            "type_mismatch": not declared_type_matches(record.get("content_type"), source_format),
        }
        return self._complete(image_id, token, twin["original"], outputs, details, event)

    def _complete(
        self,
        image_id: str,
        token: str,
        original: dict[str, Any],
        outputs: dict[str, Any],
        details: dict[str, Any],
        event: UploadEvent,
    ) -> str:
        if not self._records.complete(image_id, token, original, outputs, details):
            return self._lost_claim(image_id, [o["key"] for o in outputs.values()], event)
        self._notify(image_id, token)
        _log(
            "done",
            event,
            id=image_id,
            outputs={n: o["bytes"] for n, o in outputs.items()},
            deduplicated_from=details.get("deduplicated_from"),
        )
        return "done"

    def _fail(
        self,
        image_id: str,
        token: str,
        rejected: ImageRejected,
        original: dict[str, Any] | None,
        event: UploadEvent,
        sha256: str | None = None,
    ) -> str:
        if not self._records.fail(image_id, token, rejected.to_dict(), original, sha256):
            return self._lost_claim(image_id, [], event)
        self._notify(image_id, token)
        _log("failed", event, id=image_id, code=rejected.code)
        return "failed"

    def _notify(self, image_id: str, token: str) -> None:
        record = self._records.get(image_id)
        if record is None:
            return
        self._notifier.publish_result(record)
        self._records.mark_notified(image_id, token)

    def _finish_duplicate(self, record: dict[str, Any], event: UploadEvent) -> str:
        """A repeat of an event already handled. Publish only if the first attempt could not."""
        if not record.get("notified"):
            self._notifier.publish_result(record)
            self._records.mark_notified(record["id"], record["claim_token"])
            _log("notified_on_retry", event, id=record["id"])
            return "notified"
        _log("ignored_duplicate", event, id=record["id"])
        return "duplicate"

    def _lost_claim(self, image_id: str, written_keys: list[str], event: UploadEvent) -> str:
        """Our lease expired and someone else finished, or the image was deleted meanwhile."""
        if self._records.get(image_id) is None:
            self._store.delete_objects(self._store.output_bucket, written_keys)
        _log("claim_lost", event, id=image_id)
        return "duplicate"

    def _release_quietly(self, image_id: str, token: str) -> None:
        try:
            self._records.release(image_id, token)
        except Exception:  # The lease expires by itself; the original fault is what matters.
            log.warning("could not release claim on %s", image_id, exc_info=True)
