"""The interfaces the pipeline and the API need from AWS. Adapters: records.py (DynamoDB),
storage.py (S3), notify.py (SNS); in-memory fakes with the same contract live in tests/fakes.py,
and tests/contract/ runs one suite against both."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from chalicelib.domain import ImageRecord, Status


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

    def open_records(self, updated_before: str) -> Sequence[ImageRecord]:
        """Pending and processing records last changed before the ISO time (for the sweeper)."""


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
class UploadedPart:
    """One part of a multipart upload as S3 lists it: the ETag unquoted, the size in bytes."""

    number: int
    etag: str
    size: int


class NoSuchUpload(Exception):
    """The multipart upload does not exist (never did, completed, or aborted)."""


class InvalidPart(Exception):
    """Completing named a part S3 does not have with that ETag."""


class PartUploads(Protocol):
    """S3 multipart uploads into the input bucket (the slot's key only; callers check the key)."""

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
