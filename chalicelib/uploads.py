"""Upload slots: validate the request, mint an id, record the image as pending, presign the upload.

POST /uploads and Uppy's GET /s3/params get a presigned POST; POST /s3/multipart (multipart.py)
an S3 multipart upload. All three open the slot through `open_slot`.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chalicelib.auth.principal import Principal
from chalicelib.domain import ImageRecord, iso, new_image_id, parse_iso, utc_now
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
    data = json_object(body)
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


def json_object(body: bytes | str | None) -> dict[str, Any]:
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
    return data


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
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON has one number type: 463.0 is the integer 463 (found by Schemathesis)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest("size must be a positive integer number of bytes.", "invalid_field")
    if value > settings.imaging.max_upload_bytes:
        raise TooLarge(f"size {value} exceeds the maximum of {settings.imaging.max_upload_bytes} bytes.")
    return value


def upload_limit(declared_size: int | None, settings: Settings) -> int:
    """The most bytes S3 accepts for a slot. Where bytes are counted per day, the declared size:
    what was counted is all that may be sent."""
    if settings.quotas.bytes_per_day and declared_size is not None:
        return declared_size
    return settings.imaging.max_upload_bytes


def open_slot(
    request: UploadRequest,
    caller: Principal,
    settings: Settings,
    records: RecordStore,
    quotas: Quotas | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> ImageRecord:
    """The one way an upload slot is opened, whatever the client then uploads with (a presigned
    POST, Uppy's /s3/params, or S3 multipart): take the caller's quotas, mint an id, record the
    image as pending. The slot is counted at the very instant its record is created at, which its
    release reads."""
    now = clock()
    if quotas is not None:
        quotas.take(caller, request.size, now)
    image_id = new_image_id()
    record = ImageRecord.pending(
        image_id,
        owner=caller.owner,
        profile=request.profile,
        content_type=request.content_type,
        input_bucket=settings.input_bucket,
        input_key=settings.upload_key(image_id),
        now=now,
        filename=request.filename,
        declared_size=request.size,
    )
    records.create(record)
    return record


def slot_expires_at(record: ImageRecord, settings: Settings) -> datetime:
    """Uploads into a slot may start until then (UPLOAD_URL_TTL_SECONDS after it was opened)."""
    return parse_iso(record.created_at) + timedelta(seconds=settings.upload_url_ttl)


def presign_post(record: ImageRecord, settings: Settings, s3: Any) -> dict[str, Any]:
    """The browser form for the slot: exactly its key, its declared type, 1 byte to its size limit."""
    presigned: dict[str, Any] = s3.generate_presigned_post(
        Bucket=settings.input_bucket,
        Key=record.input_key,
        Fields={"Content-Type": record.content_type},
        Conditions=[
            {"Content-Type": record.content_type},
            ["content-length-range", 1, upload_limit(record.declared_size, settings)],
        ],
        ExpiresIn=settings.upload_url_ttl,
    )
    return presigned


def create_upload(
    request: UploadRequest,
    caller: Principal,
    settings: Settings,
    records: RecordStore,
    s3: Any,
    quotas: Quotas | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> dict[str, Any]:
    """POST /uploads: a slot and the presigned POST that fills it."""
    record = open_slot(request, caller, settings, records, quotas, clock)
    presigned = presign_post(record, settings, s3)
    return {
        "id": record.id,
        "status": "pending",
        "profile": request.profile,
        "upload": {
            "method": "POST",
            "url": presigned["url"],
            "fields": presigned["fields"],
            "expires_at": iso(slot_expires_at(record, settings)),
            "max_bytes": upload_limit(record.declared_size, settings),
        },
        "links": {"self": f"/images/{record.id}"},
    }


# -- Uppy's @uppy/aws-s3 (companionEndpoint): the same slot, asked for in Uppy's words ----------

_UPPY_FIELDS = {"filename", "type", "metadata", "size", "profile"}
MAX_METADATA_ENTRIES = 50


def parse_uppy_request(data: Mapping[str, Any], settings: Settings) -> UploadRequest:
    """`{filename, type, metadata}` as Uppy sends it (POST /s3/multipart, GET /s3/params).

    `profile` and `size` may come at the top level or inside `metadata` (Uppy sends a file's
    meta fields there, as strings from /s3/params); other metadata is ignored.
    """
    unknown = sorted(set(data) - _UPPY_FIELDS)
    if unknown:
        raise BadRequest(
            f"Unknown field(s): {', '.join(unknown)}. Allowed: {', '.join(sorted(_UPPY_FIELDS))}.", "unknown_field"
        )
    metadata = data.get("metadata")
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, Mapping):
        raise BadRequest("metadata must be an object.", "invalid_field")
    if len(metadata) > MAX_METADATA_ENTRIES:
        raise BadRequest(f"metadata may have at most {MAX_METADATA_ENTRIES} entries.", "invalid_field")
    size = data.get("size", metadata.get("size"))
    if isinstance(size, str):
        size = int(size) if size.isdigit() and len(size) <= 20 else size
    if data.get("type") is None:
        raise BadRequest('type is required, for example "image/jpeg".', "missing_field")
    return UploadRequest(
        content_type=_content_type(data.get("type"), settings),
        profile=_profile(data.get("profile", metadata.get("profile")), settings),
        filename=_filename(data.get("filename")),
        size=_size(size, settings),
    )


def parse_uppy_json(body: bytes | str | None, settings: Settings) -> UploadRequest:
    return parse_uppy_request(json_object(body), settings)


def parse_uppy_query(params: Mapping[str, str] | None, settings: Settings) -> UploadRequest:
    """GET /s3/params?filename=&type=&metadata[name]=value"""
    data: dict[str, Any] = {}
    metadata: dict[str, str] = {}
    for name, value in (params or {}).items():
        if name.startswith("metadata[") and name.endswith("]"):
            metadata[name[len("metadata[") : -1]] = value
        else:
            data[name] = value
    if metadata:
        data["metadata"] = metadata
    return parse_uppy_request(data, settings)


def uppy_params(
    request: UploadRequest,
    caller: Principal,
    settings: Settings,
    records: RecordStore,
    s3: Any,
    quotas: Quotas | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> dict[str, Any]:
    """GET /s3/params: Uppy's `{method, url, fields}` for a one-request upload; the image id too."""
    record = open_slot(request, caller, settings, records, quotas, clock)
    presigned = presign_post(record, settings, s3)
    return {
        "method": "POST",
        "url": presigned["url"],
        "fields": presigned["fields"],
        "headers": {},
        "id": record.id,
        "key": record.input_key,
        "expires_at": iso(slot_expires_at(record, settings)),
        "links": {"self": f"/images/{record.id}"},
    }
