"""Resumable uploads: S3 multipart into an upload slot, in the routes and shapes of Uppy's
`@uppy/aws-s3` with `companionEndpoint` (docs: resumable uploads).

The client never talks to S3 except to PUT parts to URLs signed here. The server fixes the part
size (`PART_BYTES`), signs each part's exact Content-Length when the slot's size was declared,
and before completing reads S3's own list of parts (ListParts) and checks every size and the
total against the slot: what the client says about its parts is never trusted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib import parsing
from chalicelib import uploads as slots
from chalicelib.auth.principal import Principal
from chalicelib.domain import Failure, ImageRecord, Status, is_image_id, iso
from chalicelib.errors import BadRequest, Gone, NotFound, TooLarge
from chalicelib.images import Viewer
from chalicelib.ports import InvalidPart, NoSuchUpload, Ports, RecordStore, UploadedPart, Uploads
from chalicelib.settings import Settings
from chalicelib.uploads import UploadRequest, slot_expires_at

# S3's minimum for every part but the last, and what Uppy 6 cuts a file into up to 48 GiB.
PART_BYTES = 5 * 1024 * 1024
# What S3 upload ids are made of (URL-safe; real ones also use `.`, `_` and `-`).
_UPLOAD_ID = re.compile(r"^[A-Za-z0-9._~=+-]{1,1024}$")


@dataclass(frozen=True)
class PartPlan:
    """How a slot's bytes are cut: fixed-size parts, the last one shorter; sizes exact when declared."""

    part_bytes: int
    limit: int  # the declared size, else MAX_UPLOAD_BYTES
    declared_size: int | None

    @classmethod
    def of(cls, record: ImageRecord, settings: Settings) -> PartPlan:
        return cls(PART_BYTES, record.upload_limit(settings.imaging.max_upload_bytes), record.declared_size)

    @property
    def max_parts(self) -> int:
        return max(1, math.ceil(self.limit / self.part_bytes))

    def size_of(self, number: int) -> int | None:
        """Part `number`'s exact size when the total was declared (signed into its URL), else None."""
        if self.declared_size is None:
            return None
        return min(self.part_bytes, self.declared_size - (number - 1) * self.part_bytes)

    def check(self, parts: list[UploadedPart]) -> None:
        """S3's sizes against the slot: each part at most a part, the sum within the limit (TooLarge),
        and exactly the declared size when there was one (BadRequest)."""
        for part in parts:
            if part.size > self.part_bytes:
                raise TooLarge(
                    f"Part {part.number} is {part.size} bytes; parts are at most {self.part_bytes}.", "part_too_large"
                )
        total = sum(part.size for part in parts)
        if total > self.limit:
            raise TooLarge(f"The parts add up to {total} bytes; this upload may have at most {self.limit}.")
        if self.declared_size is not None and total != self.declared_size:
            raise BadRequest(
                f"The parts add up to {total} bytes, not the {self.declared_size} declared.", "size_mismatch"
            )


def upload_limits(settings: Settings) -> dict[str, Any]:
    """GET /upload-limits: the limits every upload route enforces, for a client to check first."""
    imaging = settings.imaging
    return {
        "max_upload_bytes": imaging.max_upload_bytes,
        "content_types": list(imaging.allowed_content_types),
        "part_bytes": PART_BYTES,
    }


def start(request: UploadRequest, caller: Principal, settings: Settings, ports: Ports) -> dict[str, Any]:
    """POST /s3/multipart: a slot (as POST /uploads opens it: quotas included) and an S3 multipart upload into it."""
    record = slots.open_slot(request, caller, settings, ports, multipart=True)
    plan = PartPlan.of(record, settings)
    return {
        "uploadId": record.upload_id,
        "key": record.input_key,
        "id": record.id,
        "part_bytes": plan.part_bytes,
        "max_parts": plan.max_parts,
        "expires_at": iso(slot_expires_at(record, settings)),
        "links": {"self": f"/images/{record.id}"},
    }


def sign_part(
    upload_id: str, part_number: str, params: Mapping[str, str] | None, viewer: Viewer, settings: Settings, ports: Ports
) -> dict[str, Any]:
    """GET /s3/multipart/{uploadId}/{partNumber}?key=: the URL to PUT one part to, until the slot expires."""
    record = _slot(upload_id, params, viewer, ports.records, settings)
    plan = PartPlan.of(record, settings)
    number = _part_number(part_number, plan)
    remaining = int((slot_expires_at(record, settings) - ports.now()).total_seconds())
    if remaining < 1:
        raise Gone("This upload slot has expired; start a new upload.", "upload_expired")
    size = plan.size_of(number)
    url = ports.uploads.presign_part(record.input_key, upload_id, number, size, remaining)
    return {"url": url, "headers": {}, "size": size, "expires_at": iso(slot_expires_at(record, settings))}


def list_parts(
    upload_id: str, params: Mapping[str, str] | None, viewer: Viewer, settings: Settings, ports: Ports
) -> list[dict[str, Any]]:
    """GET /s3/multipart/{uploadId}?key=: the parts S3 holds, for a client resuming."""
    record = _slot(upload_id, params, viewer, ports.records, settings)
    return [
        {"PartNumber": part.number, "ETag": part.etag, "Size": part.size}
        for part in _parts(ports.uploads, record.input_key, upload_id)
    ]


def complete(
    upload_id: str, params: Mapping[str, str] | None, body: Any, viewer: Viewer, settings: Settings, ports: Ports
) -> dict[str, Any]:
    """POST /s3/multipart/{uploadId}/complete?key=: check S3's parts against the slot, then complete.

    The parts named must be ones S3 holds with those ETags. A part or a total over the slot's
    limit can never become acceptable, so the upload is aborted as well as refused.
    """
    record = _slot(upload_id, params, viewer, ports.records, settings)
    uploads = ports.uploads
    plan = PartPlan.of(record, settings)
    wanted = _requested_parts(body, plan)
    held = {part.number: part for part in _parts(uploads, record.input_key, upload_id)}
    chosen: list[UploadedPart] = []
    for number, etag in wanted:
        part = held.get(number)
        if part is None or part.etag != etag:
            raise BadRequest(f"Part {number} with ETag {etag} was not uploaded.", "invalid_part")
        chosen.append(part)
    try:
        plan.check(chosen)
    except TooLarge as refused:
        _give_up(record, upload_id, ports, Failure("too_large", refused.message))
        raise
    try:
        location = uploads.complete(record.input_key, upload_id, chosen)
    except NoSuchUpload as error:
        raise NotFound("No multipart upload with that id for this key.") from error
    except InvalidPart as error:
        raise BadRequest(f"S3 refused the parts: {error}", "invalid_part") from error
    return {
        "location": location,
        "bucket": record.input_bucket,
        "key": record.input_key,
        "id": record.id,
        "links": {"self": f"/images/{record.id}"},
    }


def abort(upload_id: str, params: Mapping[str, str] | None, viewer: Viewer, settings: Settings, ports: Ports) -> None:
    """DELETE /s3/multipart/{uploadId}?key=: S3 drops the parts, and the image ends `failed` with
    `upload_aborted` (one SNS message, the open slot given back), unless its object arrived after all."""
    record = _slot(upload_id, params, viewer, ports.records, settings)
    _give_up(record, upload_id, ports, Failure("upload_aborted", "The multipart upload was aborted by the client."))


def _give_up(record: ImageRecord, upload_id: str, ports: Ports, failure: Failure) -> None:
    """Abort the slot's S3 upload and end the image `failed` (one SNS message, the open slot given
    back), unless its object arrived after all: then it is processed like any upload."""
    ports.uploads.abort(record.input_key, upload_id)
    if ports.store.head_original(record.input_bucket, record.input_key) is not None:
        return
    if ports.endings.end_for_good(record, failure) == "failed":
        ports.quotas.release_slot(record.owner, record.created_at, ports.now())


def _slot(
    upload_id: str, params: Mapping[str, str] | None, viewer: Viewer, records: RecordStore, settings: Settings
) -> ImageRecord:
    """The caller's pending image whose upload key is `key` and whose multipart upload is
    `upload_id`. Anyone else's, or another upload id, is answered as missing before S3 is asked;
    the caller's own upload whose image has ended (completed, aborted, deleted) as gone."""
    if not _UPLOAD_ID.match(upload_id or ""):
        raise BadRequest("uploadId is not an S3 upload id.", "invalid_field")
    key = (params or {}).get("key")
    if not key:
        raise BadRequest("key is required: the key POST /s3/multipart returned.", "missing_field")
    image_id = settings.image_id_of(key)
    record = records.get(image_id) if is_image_id(image_id) else None
    if record is None or record.owner != viewer.owner or record.input_key != key or record.upload_id != upload_id:
        raise NotFound("No upload in progress for that key.")
    if record.is_deleted or record.status != Status.PENDING:
        raise Gone(f"This upload has ended: its image is {record.status}.", "upload_ended")
    return record


def _part_number(raw: str, plan: PartPlan) -> int:
    return parsing.integer(raw, "partNumber", 1, plan.max_parts, text=True, code="invalid_part")


def _parts(uploads: Uploads, key: str, upload_id: str) -> list[UploadedPart]:
    try:
        return uploads.parts(key, upload_id)
    except NoSuchUpload as error:
        raise NotFound("No multipart upload with that id for this key.") from error


def _requested_parts(body: Any, plan: PartPlan) -> list[tuple[int, str]]:
    """`{"parts": [{"PartNumber": 1, "ETag": "..."}]}`, in ascending order, each number once."""
    parts = body.get("parts") if isinstance(body, dict) else None
    if not isinstance(parts, list) or not parts or len(parts) > plan.max_parts:
        raise BadRequest(
            f'The body must be {{"parts": [{{"PartNumber", "ETag"}}, …]}} with 1 to {plan.max_parts} parts.',
            "invalid_field",
        )
    wanted: dict[int, str] = {}
    for part in parts:
        number = part.get("PartNumber") if isinstance(part, dict) else None
        etag = part.get("ETag") if isinstance(part, dict) else None
        if isinstance(number, str) or not isinstance(etag, str):  # a body's numbers are JSON numbers
            raise BadRequest("Each part needs a distinct integer PartNumber and a string ETag.", "invalid_field")
        number = parsing.integer(number, "PartNumber", 1, plan.max_parts)
        if number in wanted:
            raise BadRequest("Each part needs a distinct integer PartNumber and a string ETag.", "invalid_field")
        wanted[number] = etag.strip('"')
    return sorted(wanted.items())
