"""In-memory stand-ins for the ports (chalicelib/ports.py): the same contract as the AWS adapters,
proven by tests/contract/, at the speed of a dict. The pipeline's state-machine tests run on them.

Each fake can be told to fail an operation once (`fail_next`), the way AWS fails after its retries.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from chalicelib.domain import ImageRecord, Status, utc_now
from chalicelib.endings import Endings
from chalicelib.errors import BadRequest, StorageError
from chalicelib.ports import (
    BackfillProgress,
    Claim,
    Counter,
    InvalidPart,
    ListQuery,
    NoSuchUpload,
    Page,
    PresignedPost,
    QueueDepth,
    RecordExists,
    ReprocessMessage,
    StoredObject,
    TransformEntry,
    TransformLimits,
    TransformState,
    UploadedPart,
)
from chalicelib.quota import QuotaLimits, Quotas
from chalicelib.signing import SigningKeys


class InjectedFault(Exception):
    """What a fake raises when told to fail: an AWS error after the SDK's own retries."""


class _Faults:
    def __init__(self) -> None:
        self._pending: dict[str, list[int]] = {}
        self.calls: dict[str, int] = {}

    def fail_next(self, operation: str, skip: int = 0) -> None:
        """Make the (skip + 1)-th next call of `operation` raise InjectedFault."""
        self._pending.setdefault(operation, []).append(self.calls.get(operation, 0) + skip + 1)

    def call(self, operation: str) -> None:
        self.calls[operation] = self.calls.get(operation, 0) + 1
        due = self._pending.get(operation, [])
        if self.calls[operation] in due:
            due.remove(self.calls[operation])
            raise InjectedFault(f"injected failure of {operation}")


def _invalid_cursor() -> BadRequest:
    return BadRequest("cursor is not a next_cursor value issued for this query", "invalid_cursor")


class InMemoryRecordStore(_Faults):
    def __init__(self) -> None:
        super().__init__()
        self._records: dict[str, ImageRecord] = {}
        self._lock = threading.Lock()  # each write is atomic, as a DynamoDB conditional write is

    def create(self, record: ImageRecord) -> None:
        self.call("create")
        with self._lock:
            if record.id in self._records:
                raise RecordExists(record.id)
            self._records[record.id] = record

    def get(self, image_id: str) -> ImageRecord | None:
        self.call("get")
        return self._records.get(image_id)

    def save(self, record: ImageRecord) -> ImageRecord | None:
        self.call("save")
        with self._lock:
            current = self._records.get(record.id)
            if current is None or current.version != record.version:
                return None
            saved = replace(record, version=record.version + 1)
            self._records[record.id] = saved
            return saved

    def list_page(self, query: ListQuery) -> Page:
        self.call("list_page")
        scope = json.dumps([query.owner, query.status, query.sha256])
        matching = sorted(
            (
                r
                for r in self._records.values()
                if not r.is_deleted
                and (query.owner is None or r.owner == query.owner)
                and (query.status is None or r.status == query.status)
                and (query.sha256 is None or r.sha256 == query.sha256)
            ),
            key=lambda r: (r.created_at, r.id),
            reverse=True,
        )
        if query.cursor is not None:
            after = self._decode(query.cursor, scope)
            matching = [r for r in matching if (r.created_at, r.id) < after]
        page = matching[: query.limit]
        more = len(matching) > query.limit
        cursor = self._encode(scope, (page[-1].created_at, page[-1].id)) if more else None
        return Page(page, cursor)

    @staticmethod
    def _encode(scope: str, position: tuple[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps([scope, *position]).encode()).decode()

    @staticmethod
    def _decode(cursor: str, scope: str) -> tuple[str, str]:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        except (binascii.Error, ValueError) as exc:
            raise _invalid_cursor() from exc
        if not isinstance(decoded, list) or len(decoded) != 3 or decoded[0] != scope:
            raise _invalid_cursor()
        if not all(isinstance(part, str) for part in decoded[1:]):
            raise _invalid_cursor()
        return decoded[1], decoded[2]

    def find_done_twin(self, owner: str, sha256: str, profile: str, exclude_id: str) -> ImageRecord | None:
        self.call("find_done_twin")
        twins = [
            r
            for r in self._records.values()
            if r.owner == owner
            and r.sha256 == sha256
            and r.profile == profile
            and r.status == Status.DONE
            and r.id != exclude_id
            and not r.is_deleted
        ]
        return max(twins, key=lambda r: r.created_at, default=None)

    def open_records(self, status: Status, since: str, before: str) -> list[ImageRecord]:
        self.call("open_records")
        return [
            r
            for r in self._records.values()
            if r.open_status == status and r.open_since is not None and since <= r.open_since < before
        ]


class InMemoryQuotaStore(_Faults):
    """Counters as a dict keyed (owner, window, attribute); `apply` is atomic under one lock."""

    def __init__(self) -> None:
        super().__init__()
        self.counters: dict[tuple[str, str, str], int] = {}
        self._lock = threading.Lock()

    def apply(
        self, owner: str, changes: Sequence[Counter], expired: Sequence[tuple[str, str]] = ()
    ) -> dict[tuple[str, str], int] | None:
        self.call("apply")
        with self._lock:
            before = {c.key: self.counters.get((owner, *c.key), 0) for c in changes}
            refused = {c.window for c in changes if not c.allows(before[c.key])}
            if refused:
                return {key: value for key, value in before.items() if key[0] in refused}
            written = {c.window for c in changes}
            for window, attribute in expired:
                if window in written:
                    self.counters.pop((owner, window, attribute), None)
            for change in changes:
                self.counters[(owner, *change.key)] = before[change.key] + change.amount
            return None


@dataclass
class _Object:
    data: bytes
    etag: str
    content_type: str
    tags: dict[str, str] = field(default_factory=dict)


class InMemoryObjectStore(_Faults):
    """Buckets as dicts. `redriven` records what the sweeper asked S3 to announce again;
    `keep` makes delete_keys fail for those keys (as DeleteObjects reports per-key errors)."""

    def __init__(self, output_bucket: str = "output") -> None:
        super().__init__()
        self._output_bucket = output_bucket
        self.objects: dict[tuple[str, str], _Object] = {}
        self.bytes_read = 0
        self.redriven: list[tuple[str, str]] = []
        self.keep: set[str] = set()
        self.on_redrive: Callable[[str, str], None] | None = None

    @property
    def output_bucket(self) -> str:
        return self._output_bucket

    def put_original(self, bucket: str, key: str, data: bytes, content_type: str = "image/jpeg") -> str:
        """What a client's presigned POST does; returns the ETag S3 would give a one-part upload."""
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
        self.objects[(bucket, key)] = _Object(data, etag, content_type)
        return etag

    def read_original(self, bucket: str, key: str, max_bytes: int) -> StoredObject | None:
        self.call("read_original")
        obj = self.objects.get((bucket, key))
        if obj is None:
            return None
        if len(obj.data) > max_bytes:
            return StoredObject(obj.etag, len(obj.data), None)
        self.bytes_read += len(obj.data)
        return StoredObject(obj.etag, len(obj.data), obj.data)

    def head_original(self, bucket: str, key: str) -> StoredObject | None:
        self.call("head_original")
        obj = self.objects.get((bucket, key))
        return None if obj is None else StoredObject(obj.etag, len(obj.data), None)

    def redrive(self, bucket: str, key: str) -> None:
        self.call("redrive")
        self.redriven.append((bucket, key))
        if self.on_redrive is not None:
            self.on_redrive(bucket, key)

    def put_output(self, key: str, data: bytes, content_type: str, tags: dict[str, str]) -> None:
        self.call("put_output")
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
        self.objects[(self._output_bucket, key)] = _Object(data, etag, content_type, dict(tags))

    def copy_output(self, source_key: str, key: str, tags: dict[str, str]) -> None:
        self.call("copy_output")
        source = self.objects[(self._output_bucket, source_key)]
        self.objects[(self._output_bucket, key)] = replace(source, tags=dict(tags))

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        self.call("list_keys")
        return sorted(k for b, k in self.objects if b == bucket and k.startswith(prefix))

    def delete_keys(self, bucket: str, keys: Sequence[str]) -> None:
        self.call("delete_keys")
        kept = [k for k in keys if k in self.keep]
        for key in keys:
            if key not in self.keep:
                self.objects.pop((bucket, key), None)
        if kept:
            raise StorageError(f"{len(kept)} object(s) could not be deleted: {', '.join(kept[:5])}")

    def presign_get(self, bucket: str, key: str, ttl_seconds: int) -> str:
        return f"https://{bucket}.example/{key}?expires={ttl_seconds}"

    def keys(self, bucket: str) -> list[str]:
        return sorted(k for b, k in self.objects if b == bucket)


class InMemoryUploads(_Faults):
    """Presigned POSTs as S3 would enforce them, and multipart uploads as S3 keeps them: parts by number until completed (into `objects`) or aborted.

    `put_part` is what a client's PUT to a part URL does; the URL itself only records what was signed."""

    def __init__(self) -> None:
        super().__init__()
        self._uploads: dict[tuple[str, str], dict[int, bytes]] = {}
        self.objects: dict[str, bytes] = {}
        self.signed: list[tuple[str, int, int | None]] = []  # (upload id, part number, signed length)
        self.posts: list[tuple[str, str, int, int]] = []  # (key, content type, max bytes, ttl) of each form
        self._next = 0

    def presign_post(self, key: str, content_type: str, max_bytes: int, ttl_seconds: int) -> PresignedPost:
        """The form names what S3 would enforce; `posts` keeps each for tests to read."""
        self.call("presign_post")
        self.posts.append((key, content_type, max_bytes, ttl_seconds))
        return PresignedPost("https://input.s3.example/", {"key": key, "Content-Type": content_type})

    def start(self, key: str, content_type: str) -> str:
        self.call("start")
        self._next += 1
        upload_id = f"upload{self._next}"
        self._uploads[(key, upload_id)] = {}
        return upload_id

    def presign_part(self, key: str, upload_id: str, number: int, size: int | None, ttl_seconds: int) -> str:
        self.call("presign_part")
        self.signed.append((upload_id, number, size))
        return f"https://s3.example/{key}?uploadId={upload_id}&partNumber={number}"

    def put_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        self._held(key, upload_id)[number] = data
        return _etag(data)

    def parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        self.call("parts")
        held = self._held(key, upload_id)
        return [UploadedPart(n, _etag(data), len(data)) for n, data in sorted(held.items())]

    def complete(self, key: str, upload_id: str, parts: Sequence[UploadedPart]) -> str:
        self.call("complete")
        held = self._held(key, upload_id)
        if any(held.get(p.number) is None or _etag(held[p.number]) != p.etag for p in parts):
            raise InvalidPart("a part is not held with that ETag")
        self.objects[key] = b"".join(held[p.number] for p in parts)
        del self._uploads[(key, upload_id)]
        return f"https://s3.example/{key}"

    def abort(self, key: str, upload_id: str) -> None:
        self.call("abort")
        self._uploads.pop((key, upload_id), None)

    def _held(self, key: str, upload_id: str) -> dict[int, bytes]:
        held = self._uploads.get((key, upload_id))
        if held is None:
            raise NoSuchUpload(upload_id)
        return held


def _etag(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class RecordingNotifier(_Faults):
    def __init__(self) -> None:
        super().__init__()
        self.published: list[ImageRecord] = []

    def publish(self, record: ImageRecord) -> str:
        self.call("publish")
        self.published.append(record)
        return f"message-{len(self.published)}"

    def messages_for(self, image_id: str) -> list[ImageRecord]:
        return [r for r in self.published if r.id == image_id]


class InMemoryReprocessQueue(_Faults):
    """A list of sent messages; `drain()` takes them off as a consumer would. `refuse` makes send
    report those image ids as unsent (as SendMessageBatch reports failed entries)."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[ReprocessMessage] = []
        self.refuse: set[str] = set()
        self.in_flight = 0
        self.dead_letters = 0

    def send(self, messages: Sequence[ReprocessMessage]) -> list[ReprocessMessage]:
        self.call("send")
        unsent = [m for m in messages if m.image_id in self.refuse]
        self.messages.extend(m for m in messages if m.image_id not in self.refuse)
        return unsent

    def depth(self) -> QueueDepth:
        self.call("depth")
        return QueueDepth(len(self.messages), self.in_flight, self.dead_letters)

    def drain(self) -> list[ReprocessMessage]:
        taken, self.messages = self.messages, []
        return taken


class InMemoryBackfillLog(_Faults):
    def __init__(self) -> None:
        super().__init__()
        self._items: dict[str, BackfillProgress] = {}
        self._lock = threading.Lock()

    def start(self, backfill: BackfillProgress) -> bool:
        self.call("start")
        with self._lock:
            if backfill.id in self._items:
                return False
            self._items[backfill.id] = backfill
            return True

    def get(self, backfill_id: str) -> BackfillProgress | None:
        self.call("get")
        return self._items.get(backfill_id)

    def count(self, backfill_id: str, counter: str, amount: int = 1) -> None:
        self.call("count")
        if counter not in ("queued", "done", "failed"):
            raise ValueError(f"no backfill counter {counter!r}")
        with self._lock:
            current = self._items.get(backfill_id)
            if current is None:
                raise KeyError(backfill_id)  # DynamoDB: the condition attribute_exists(id) fails
            self._items[backfill_id] = replace(current, **{counter: getattr(current, counter) + amount})


class InMemoryTransformLedger(_Faults):
    """Entries by object key and counters by name, changed together under one lock (as one transaction)."""

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[str, TransformEntry] = {}
        self.counters: dict[str, int] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> TransformEntry | None:
        self.call("get")
        return self.entries.get(key)

    def claim(
        self, key: str, counted_as: str, day: str, lease_until: float, now: float, limits: TransformLimits
    ) -> tuple[Claim, TransformEntry | None]:
        self.call("claim")
        with self._lock:
            rendering = TransformEntry(TransformState.RENDERING, lease_until)
            found = self.entries.get(key)
            if found is not None:
                if found.live(now):
                    return Claim.TAKEN, found
                self.entries[key] = rendering
                return Claim.CLAIMED, rendering
            image, stage = f"count#{counted_as}", f"day#{day}"
            if limits.per_image and self.counters.get(image, 0) >= limits.per_image:
                return Claim.IMAGE_FULL, None
            if limits.per_day and self.counters.get(stage, 0) >= limits.per_day:
                return Claim.STAGE_FULL, None
            self.counters[image] = self.counters.get(image, 0) + 1
            self.counters[stage] = self.counters.get(stage, 0) + 1
            self.entries[key] = rendering
            return Claim.CLAIMED, rendering

    def finish(self, key: str, entry: TransformEntry, keep_seconds: int, now: float) -> None:
        self.call("finish")
        with self._lock:
            self.entries[key] = replace(entry, lease_until=0.0, expires_at=now + keep_seconds if keep_seconds else None)


def no_faults(*fakes: Any) -> None:
    """Assert nothing scheduled to fail was left unused (a test that set a fault must trigger it)."""
    for fake in fakes:
        assert not any(fake._pending.values()), fake._pending


@dataclass
class FakePorts:
    """ports.Ports on the in-memory fakes, for calling request handlers directly."""

    records: InMemoryRecordStore = field(default_factory=InMemoryRecordStore)
    store: InMemoryObjectStore = field(default_factory=InMemoryObjectStore)
    uploads: InMemoryUploads = field(default_factory=InMemoryUploads)
    quotas: Quotas = field(default_factory=lambda: Quotas(QuotaLimits(), InMemoryQuotaStore()))
    reprocess_queue: InMemoryReprocessQueue = field(default_factory=InMemoryReprocessQueue)
    backfills: InMemoryBackfillLog = field(default_factory=InMemoryBackfillLog)
    notifier: RecordingNotifier = field(default_factory=RecordingNotifier)
    transforms: InMemoryTransformLedger = field(default_factory=InMemoryTransformLedger)
    signing_keys: SigningKeys | None = None
    clock: Callable[[], datetime] = utc_now

    @property
    def endings(self) -> Endings:
        return Endings(self.records, self.notifier, self.now)

    def now(self) -> datetime:
        return self.clock()
