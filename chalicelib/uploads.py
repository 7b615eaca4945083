"""POST /uploads: validate the request, mint an id, presign the S3 upload, record it as pending."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chalicelib.auth.principal import Principal
from chalicelib.domain import ImageRecord, iso, new_image_id, utc_now
from chalicelib.errors import BadRequest, TooLarge, UnsupportedType
from chalicelib.ports import RecordStore
from chalicelib.quota import Quotas
from chalicelib.settings import Settings

MAX_FILENAME_CHARS = 255
MAX_BODY_BYTES = 16 * 1024
_FIELDS = {"filename", "content_type", "size", "profile"}


@dataclass(frozen=True)
class UploadRequest:
    content_type: str
    profile: str
    filename: str | None = None
    size: int | None = None


def parse_upload_request(body: bytes | str | None, settings: Settings) -> UploadRequest:
    """Validate the JSON body. Errors say which field is wrong and why."""
    if not body:
        raise BadRequest("The request body must be a JSON object.", "invalid_json")
    if len(body) > MAX_BODY_BYTES:
        raise TooLarge(f"The request body exceeds {MAX_BODY_BYTES} bytes.", "body_too_large")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("The request body is not valid JSON.", "invalid_json") from exc
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.", "invalid_json")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise BadRequest(
            f"Unknown field(s): {', '.join(unknown)}. Allowed: {', '.join(sorted(_FIELDS))}.", "unknown_field"
        )
    return UploadRequest(
        content_type=_content_type(data.get("content_type"), settings),
        profile=_profile(data.get("profile"), settings),
        filename=_filename(data.get("filename")),
        size=_size(data.get("size"), settings),
    )


def _content_type(value: Any, settings: Settings) -> str:
    if value is None:
        raise BadRequest('content_type is required, for example "image/jpeg".', "missing_field")
    if not isinstance(value, str):
        raise BadRequest("content_type must be a string.", "invalid_field")
    content_type = value.split(";")[0].strip().lower()
    if content_type not in settings.imaging.allowed_content_types:
        raise UnsupportedType(
            f"{content_type or 'empty content type'} is not accepted; allowed: {', '.join(settings.imaging.allowed_content_types)}."
        )
    return content_type


def _profile(value: Any, settings: Settings) -> str:
    if value is None:
        return settings.imaging.profiles.default
    if not isinstance(value, str) or value not in settings.imaging.profiles.profiles:
        raise BadRequest(
            f"Unknown profile {value!r}; valid profiles: {', '.join(settings.imaging.profiles.names)}.",
            "unknown_profile",
        )
    return value


def _filename(value: Any) -> str | None:
    """Keep the client's filename as display metadata only; it never reaches an S3 key."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest("filename must be a string.", "invalid_field")
    name = value.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in unicodedata.normalize("NFC", name) if unicodedata.category(ch)[0] != "C").strip()
    if len(name) > MAX_FILENAME_CHARS:
        raise BadRequest(f"filename may be at most {MAX_FILENAME_CHARS} characters.", "invalid_field")
    return name or None


def _size(value: Any, settings: Settings) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest("size must be a positive integer number of bytes.", "invalid_field")
    if value > settings.imaging.max_upload_bytes:
        raise TooLarge(f"size {value} exceeds the maximum of {settings.imaging.max_upload_bytes} bytes.")
    return value


def upload_limit(request: UploadRequest, settings: Settings) -> int:
    """The most bytes S3 accepts for the slot. Where bytes are counted per day, the declared size:
    what was counted is all that may be sent."""
    if settings.quotas.bytes_per_day and request.size is not None:
        return request.size
    return settings.imaging.max_upload_bytes


def create_upload(
    request: UploadRequest,
    caller: Principal,
    settings: Settings,
    records: RecordStore,
    s3: Any,
    quotas: Quotas | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> dict[str, Any]:
    """Take the caller's quotas, presign (local, cannot half-fail), then record the pending image.

    The slot is counted at the very instant its record is created at, which its release reads.
    """
    now = clock()
    if quotas is not None:
        quotas.take(caller, request.size, now)
    image_id = new_image_id()
    key = settings.upload_key(image_id)
    limit = upload_limit(request, settings)
    presigned = s3.generate_presigned_post(
        Bucket=settings.input_bucket,
        Key=key,
        Fields={"Content-Type": request.content_type},
        Conditions=[{"Content-Type": request.content_type}, ["content-length-range", 1, limit]],
        ExpiresIn=settings.upload_url_ttl,
    )
    records.create(
        ImageRecord.pending(
            image_id,
            owner=caller.owner,
            profile=request.profile,
            content_type=request.content_type,
            input_bucket=settings.input_bucket,
            input_key=key,
            now=now,
            filename=request.filename,
            declared_size=request.size,
        )
    )
    return {
        "id": image_id,
        "status": "pending",
        "profile": request.profile,
        "upload": {
            "method": "POST",
            "url": presigned["url"],
            "fields": presigned["fields"],
            "expires_at": iso(now + timedelta(seconds=settings.upload_url_ttl)),
            "max_bytes": limit,
        },
        "links": {"self": f"/images/{image_id}"},
    }
