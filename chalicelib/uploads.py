"""Upload slots: validate the request, mint an id, record the image as pending, presign the upload.

POST /uploads and Uppy's GET /s3/params get a presigned POST; POST /s3/multipart (multipart.py)
an S3 multipart upload. All three open the slot through `open_slot`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chalicelib import logs, parsing
from chalicelib.auth.principal import Principal
from chalicelib.domain import ImageRecord, iso, new_image_id, parse_iso
from chalicelib.errors import BadRequest, TooLarge, UnsupportedType
from chalicelib.ports import Ports, PresignedPost
from chalicelib.settings import Settings

_FIELDS = {"filename", "content_type", "size", "profile"}


@dataclass(frozen=True)
class UploadRequest:
    content_type: str
    profile: str
    filename: str | None = None
    size: int | None = None


def parse_upload_request(body: bytes | str | None, settings: Settings) -> UploadRequest:
    """Validate the JSON body. Errors say which field is wrong and why."""
    data = parsing.json_object(body)
    parsing.known_fields(data, _FIELDS)
    return UploadRequest(
        content_type=_content_type(data.get("content_type"), settings),
        profile=_profile(data.get("profile"), settings),
        filename=parsing.filename(data.get("filename")),
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
    profiles = settings.imaging.profiles
    return parsing.profile(value, profiles.profiles, default=profiles.default)


def _size(value: Any, settings: Settings, text: bool = False) -> int | None:
    """The file's size in bytes as the client declares it: a JSON number, or with `text` digits too
    (Uppy sends a file's meta fields as strings)."""
    if value is None:
        return None
    limit = settings.imaging.max_upload_bytes
    size = parsing.integer(value, "size", 1, text=text)
    if size > limit:
        raise TooLarge(f"size {size} exceeds the maximum of {limit} bytes.")
    return size


def open_slot(
    request: UploadRequest, caller: Principal, settings: Settings, ports: Ports, *, multipart: bool = False
) -> ImageRecord:
    """The one way an upload slot is opened, whatever the client then uploads with (a presigned
    POST, Uppy's /s3/params, or S3 multipart): take the caller's quotas, mint an id, record the
    image as pending. The slot is counted at the very instant its record is created at, which its
    release reads. With `multipart`, the S3 multipart upload is started first and its id recorded
    with the slot in the same write: the slot's routes reach that upload and no other."""
    now = ports.now()
    ports.quotas.take(caller, request.size, now)
    image_id = new_image_id()
    key = settings.upload_key(image_id)
    record = ImageRecord.pending(
        image_id,
        owner=caller.owner,
        profile=request.profile,
        content_type=request.content_type,
        input_bucket=settings.input_bucket,
        input_key=key,
        now=now,
        filename=request.filename,
        declared_size=request.size,
        upload_id=ports.uploads.start(key, request.content_type) if multipart else None,
    )
    ports.records.create(record)
    logs.outcome("slot_opened", record.id, owner=logs.owner_hash(record.owner), profile=record.profile)
    return record


def slot_expires_at(record: ImageRecord, settings: Settings) -> datetime:
    """Uploads into a slot may start until then (UPLOAD_URL_TTL_SECONDS after it was opened)."""
    return parse_iso(record.created_at) + timedelta(seconds=settings.upload_url_ttl)


def presign_post(record: ImageRecord, settings: Settings, ports: Ports) -> PresignedPost:
    """The browser form for the slot: exactly its key, its declared type, 1 byte to its size limit."""
    limit = record.upload_limit(settings.imaging.max_upload_bytes)
    return ports.uploads.presign_post(record.input_key, record.content_type, limit, settings.upload_url_ttl)


def create_upload(request: UploadRequest, caller: Principal, settings: Settings, ports: Ports) -> dict[str, Any]:
    """POST /uploads: a slot and the presigned POST that fills it."""
    record = open_slot(request, caller, settings, ports)
    presigned = presign_post(record, settings, ports)
    return {
        "id": record.id,
        "status": "pending",
        "profile": request.profile,
        "upload": {
            "method": "POST",
            "url": presigned.url,
            "fields": presigned.fields,
            "expires_at": iso(slot_expires_at(record, settings)),
            "max_bytes": record.upload_limit(settings.imaging.max_upload_bytes),
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
    parsing.known_fields(data, _UPPY_FIELDS)
    metadata = data.get("metadata")
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, Mapping):
        raise BadRequest("metadata must be an object.", "invalid_field")
    if len(metadata) > MAX_METADATA_ENTRIES:
        raise BadRequest(f"metadata may have at most {MAX_METADATA_ENTRIES} entries.", "invalid_field")
    if data.get("type") is None:
        raise BadRequest('type is required, for example "image/jpeg".', "missing_field")
    return UploadRequest(
        content_type=_content_type(data.get("type"), settings),
        profile=_profile(data.get("profile", metadata.get("profile")), settings),
        filename=parsing.filename(data.get("filename")),
        size=_size(data.get("size", metadata.get("size")), settings, text=True),
    )


def parse_uppy_json(body: bytes | str | None, settings: Settings) -> UploadRequest:
    return parse_uppy_request(parsing.json_object(body), settings)


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


def uppy_params(request: UploadRequest, caller: Principal, settings: Settings, ports: Ports) -> dict[str, Any]:
    """GET /s3/params: Uppy's `{method, url, fields}` for a one-request upload; the image id too."""
    record = open_slot(request, caller, settings, ports)
    presigned = presign_post(record, settings, ports)
    return {
        "method": "POST",
        "url": presigned.url,
        "fields": presigned.fields,
        "headers": {},
        "id": record.id,
        "key": record.input_key,
        "expires_at": iso(slot_expires_at(record, settings)),
        "links": {"self": f"/images/{record.id}"},
    }
