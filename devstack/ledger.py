"""The request ledger: every request that reaches the AWS stand-in, by service and operation.

The moto server runs in the stack's own process, so one WSGI layer in front of it sees every
request of every sandbox, the API and the browser alike. Each entry names the image it concerns
(from the S3 key, the DynamoDB key, the SNS message or the SQS body) and, for DynamoDB, the
capacity units AWS would bill: moto reports fixed numbers, so they are computed from the items
and the table's indexes by AWS's published rules (`write_units`, `read_units`).

`GET /_ledger?since=N&image=ID` on the stand-in's port answers the entries after sequence number N
(about image ID only, if given) and their sums (docs: local-stack). Requests that are the stand-in's own plumbing (the queues that
carry S3 events to the local runtime, the test subscriber of the topic) are marked so, not hidden.
"""

from __future__ import annotations

import io
import json
import logging
import math
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

log = logging.getLogger("imgpress.devstack.ledger")
LEDGER_PATH = "/_ledger"
# Queues that exist only because the stand-in cannot invoke Lambda, or because tests listen.
PLUMBING_QUEUE_SUFFIXES = ("-s3-events", "-notifications")
INDEX_ENTRY_OVERHEAD = 100  # bytes AWS adds to each index entry
_IMAGE_ID = re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")
_DYNAMODB_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}
_DYNAMODB_READS = {"GetItem", "Query", "Scan", "BatchGetItem"}

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]


@dataclass
class Entry:
    seq: int
    service: str
    operation: str
    status: int
    image: str | None = None
    owner: str | None = None
    plumbing: bool = False  # a stand-in's transport or a test's listener, not what AWS would see
    idle: bool = False  # a poll that received nothing (a fixed cost per poller, not per image)
    write_units: float = 0.0
    read_units: float = 0.0
    index_writes: dict[str, dict[str, float]] = field(default_factory=dict)  # index -> partition key -> units

    @property
    def name(self) -> str:
        return f"{self.service}:{self.operation}"


# -- DynamoDB's sizes and units -------------------------------------------------------------------


def value_size(value: Mapping[str, Any]) -> int:
    """Bytes of one attribute value in DynamoDB JSON, by AWS's item size rules."""
    (kind, inner), *_ = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        digits = str(inner).lstrip("-").replace(".", "").strip("0") or "0"
        return 1 + math.ceil(len(digits) / 2) + (1 if str(inner).startswith("-") else 0)
    if kind == "B":
        return len(inner) * 3 // 4  # base64 in JSON
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in inner.items())
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: v}) for v in inner)
    raise ValueError(f"unknown DynamoDB type {kind}")


def item_size(item: Mapping[str, Any] | None) -> int:
    return sum(len(name.encode()) + value_size(value) for name, value in (item or {}).items())


@dataclass(frozen=True)
class IndexShape:
    name: str
    keys: tuple[str, ...]  # partition, then sort if any
    projected: tuple[str, ...] | None  # None: ALL


def index_entry(index: IndexShape, table_keys: tuple[str, ...], item: Mapping[str, Any] | None) -> dict[str, Any]:
    """The item's entry in a sparse index: empty when the item lacks an index key attribute."""
    if not item or any(key not in item for key in index.keys):
        return {}
    names = set(item) if index.projected is None else {*index.keys, *table_keys, *index.projected}
    return {name: item[name] for name in names if name in item}


def write_units(
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    indexes: Iterable[IndexShape],
    table_keys: tuple[str, ...],
) -> tuple[float, dict[str, dict[str, float]]]:
    """Write units of one item write: the larger of its versions per started KB; and per index and
    partition key value, one unit per KB of entry added, removed or changed there (an index key
    change is two writes: the old entry deleted from its partition, the new one put in its own)."""
    table = max(1, math.ceil(max(item_size(before), item_size(after)) / 1024))
    by_index: dict[str, dict[str, float]] = {}
    for index in indexes:
        old, new = index_entry(index, table_keys, before), index_entry(index, table_keys, after)
        if old == new:
            continue
        partitions: dict[str, float] = {}
        moved = bool(old and new and any(old[k] != new[k] for k in index.keys))
        for entry in [old, new] if moved else [new or old]:
            partition = _plain_value(entry[index.keys[0]])
            partitions[partition] = partitions.get(partition, 0) + math.ceil(
                (item_size(entry) + INDEX_ENTRY_OVERHEAD) / 1024
            )
        by_index[index.name] = partitions
    return float(table), by_index


def _plain_value(value: Mapping[str, Any]) -> str:
    (_, inner), *_ = value.items()
    return str(inner)


def read_units(sizes: Iterable[int], consistent: bool, per_item: bool) -> float:
    """A GetItem or BatchGetItem costs per item per started 4 KB; a Query or Scan per started 4 KB
    of everything it read. Eventually consistent reads cost half."""
    sizes = list(sizes)
    units = sum(max(1, math.ceil(s / 4096)) for s in sizes) if per_item else max(1, math.ceil(sum(sizes) / 4096))
    return units if consistent else units / 2


# -- the ledger -----------------------------------------------------------------------------------


class Ledger:
    """Entries in arrival order, and what it learnt on the way: which owner has which image, which
    SQS receipt carries which image. A stack left running keeps the last `keep` entries."""

    def __init__(self, keep: int = 200_000) -> None:
        self._lock = threading.Lock()
        self._entries: list[Entry] = []
        self._dropped = 0  # entries before the first one kept
        self._keep = keep
        self._owners: dict[str, str] = {}
        self._receipts: dict[str, str] = {}

    def add(self, entry: Entry) -> None:
        with self._lock:
            entry.seq = self._dropped + len(self._entries) + 1
            if entry.image and not entry.owner:
                entry.owner = self._owners.get(entry.image)
            self._entries.append(entry)
            if len(self._entries) > self._keep:
                half = len(self._entries) // 2
                self._dropped += half
                del self._entries[:half]

    def learn_owner(self, image_id: str, owner: str) -> None:
        with self._lock:
            self._owners[image_id] = owner

    def learn_receipt(self, receipt: str, image_id: str) -> None:
        with self._lock:
            self._receipts[receipt] = image_id

    def image_of_receipt(self, receipt: str) -> str | None:
        with self._lock:
            return self._receipts.get(receipt)

    def since(self, seq: int) -> tuple[list[Entry], int]:
        """The entries after `seq` still kept, and the sequence number of the last entry."""
        with self._lock:
            entries = self._entries[max(seq - self._dropped, 0) :]
            for entry in entries:  # the owner may have become known after the entry (a late PutItem)
                if entry.image and not entry.owner:
                    entry.owner = self._owners.get(entry.image)
            return list(entries), self._dropped + len(self._entries)

    def report(self, seq: int = 0, image: str | None = None) -> dict[str, Any]:
        """What came after entry `seq`; only what concerns `image`, if given."""
        entries, last = self.since(seq)
        if image is not None:
            entries = [entry for entry in entries if entry.image == image]
        return {
            "next": last,
            "totals": summarize(entries),
            "by_owner": {owner: summarize(group) for owner, group in _grouped(entries, "owner").items()},
            "entries": [asdict(entry) for entry in entries],
        }


def _grouped(entries: Iterable[Entry], attribute: str) -> dict[str, list[Entry]]:
    groups: dict[str, list[Entry]] = {}
    for entry in entries:
        key = getattr(entry, attribute)
        if key is not None:
            groups.setdefault(key, []).append(entry)
    return groups


def summarize(entries: Iterable[Entry]) -> dict[str, Any]:
    """Requests by `service:operation` (plumbing and idle polls apart), and DynamoDB's units."""
    entries = list(entries)
    counted = [e for e in entries if not e.plumbing and not e.idle]
    index_writes: dict[str, float] = {}
    partition_writes: dict[str, dict[str, float]] = {}
    for entry in counted:
        for index, partitions in entry.index_writes.items():
            index_writes[index] = index_writes.get(index, 0) + sum(partitions.values())
            into = partition_writes.setdefault(index, {})
            for partition, units in partitions.items():
                into[partition] = into.get(partition, 0) + units
    return {
        "requests": dict(sorted(Counter(e.name for e in counted).items())),
        "dynamodb_write_units": sum(e.write_units for e in counted) + sum(index_writes.values()),
        "dynamodb_table_write_units": sum(e.write_units for e in counted),
        "dynamodb_index_write_units": dict(sorted(index_writes.items())),
        "dynamodb_partition_write_units": {i: dict(sorted(p.items())) for i, p in sorted(partition_writes.items())},
        "dynamodb_read_units": sum(e.read_units for e in counted),
        "plumbing": dict(sorted(Counter(e.name for e in entries if e.plumbing).items())),
        "idle": dict(sorted(Counter(e.name for e in entries if e.idle and not e.plumbing).items())),
    }


# -- the WSGI layer -------------------------------------------------------------------------------


@dataclass
class _Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def target(self) -> str:
        return self.headers.get("x-amz-target", "")

    def json(self) -> dict[str, Any]:
        try:
            loaded = json.loads(self.body or b"{}")
        except ValueError:
            return {}
        return loaded if isinstance(loaded, dict) else {}


class LedgerMiddleware:
    """Wraps moto's WSGI app: answers `GET /_ledger`, records everything else."""

    def __init__(self, app: WsgiApp, ledger: Ledger, backend: Callable[[str], Any] | None = None) -> None:
        self.app = app
        self.ledger = ledger
        self._backend = backend or _moto_dynamodb_backend
        self._write_lock = threading.Lock()  # item versions before and after a write, without races

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == LEDGER_PATH:
            query = parse_qs(environ.get("QUERY_STRING", ""))
            body = json.dumps(
                self.ledger.report(int(query.get("since", ["0"])[0]), query.get("image", [None])[0])
            ).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if str(environ.get("PATH_INFO", "")).startswith("/moto-api"):
            return self.app(environ, start_response)
        request = _read_request(environ)
        target = request.target()
        if target.startswith("DynamoDB_") and target.split(".")[-1] in _DYNAMODB_WRITES:
            with self._write_lock:
                table, key = _dynamodb_key(request, self._backend(_region(request)))
                before = _stored_item(self._backend(_region(request)), table, key)
                status, chunks = self._call(environ, start_response)
                after = _stored_item(self._backend(_region(request)), table, key)
            self._book(request, status, lambda: self._record_dynamodb_write(request, status, table, before, after))
            return chunks
        status, chunks = self._call(environ, start_response)
        self._book(request, status, lambda: self.ledger.add(self._entry(request, status, b"".join(chunks))))
        return chunks

    def _book(self, request: _Request, status: int, record: Callable[[], None]) -> None:
        """Bookkeeping never fails a request moto has answered (a client told "500" about a message
        it was in fact given would leave that message invisible until its timeout)."""
        try:
            record()
        except Exception:
            log.warning("ledger could not weigh %s %s", request.method, request.path, exc_info=True)
            self.ledger.add(Entry(0, "unknown", request.target() or request.method, status))

    def _call(self, environ: Environ, start_response: StartResponse) -> tuple[int, list[bytes]]:
        seen: list[int] = []

        def recording(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            seen.append(int(status.split()[0]))
            return start_response(status, headers, *args)

        chunks = list(self.app(environ, recording))
        return (seen[0] if seen else 0), chunks

    def _record_dynamodb_write(
        self, request: _Request, status: int, table: Any, before: dict[str, Any] | None, after: dict[str, Any] | None
    ) -> None:
        operation = request.target().split(".")[-1]
        entry = Entry(0, "dynamodb", operation, status)
        key_item = after or before or request.json().get("Item") or request.json().get("Key") or {}
        entry.image = _image_in(str(key_item.get("id", {}).get("S", "")))
        if table is not None:
            shapes, keys = _index_shapes(table), _table_keys(table)
            if status == 200:
                entry.write_units, entry.index_writes = write_units(before, after, shapes, keys)
            else:  # a failed condition still costs the write of the item it was checked against
                entry.write_units = float(max(1, math.ceil(item_size(before) / 1024)))
        owner = (after or {}).get("owner", {}).get("S")
        if entry.image and owner:
            self.ledger.learn_owner(entry.image, owner)
        self.ledger.add(entry)

    def _entry(self, request: _Request, status: int, response: bytes) -> Entry:
        target = request.target()
        if target.startswith("DynamoDB_"):
            return _dynamodb_read(request, status, response)
        if target.startswith("AmazonSQS."):
            return self._sqs(request, status, response)
        action = parse_qs(request.body.decode("utf-8", "replace")).get("Action", [""])[0]
        if "/sns/" in request.headers.get("authorization", "") or action == "Publish":
            return _sns(request, status, action)
        return _s3(request, status)

    def _sqs(self, request: _Request, status: int, response: bytes) -> Entry:
        operation = request.target().split(".")[-1]
        body = request.json()
        queue = str(body.get("QueueUrl", "")).rsplit("/", 1)[-1]
        entry = Entry(0, "sqs", operation, status, plumbing=queue.endswith(PLUMBING_QUEUE_SUFFIXES))
        if operation in ("SendMessage", "SendMessageBatch"):
            bodies = [body.get("MessageBody")] + [e.get("MessageBody") for e in body.get("Entries", [])]
            entry.image = next((i for i in (_image_in(str(b)) for b in bodies if b) if i), None)
        elif operation == "ReceiveMessage":
            messages = _json(response).get("Messages", [])
            entry.idle = not messages
            for message in messages:
                image = _image_in(str(message.get("Body", "")))
                if image:
                    entry.image = entry.image or image
                    self.ledger.learn_receipt(str(message.get("ReceiptHandle")), image)
        elif operation in ("DeleteMessage", "DeleteMessageBatch", "ChangeMessageVisibility"):
            receipts = [body.get("ReceiptHandle")] + [e.get("ReceiptHandle") for e in body.get("Entries", [])]
            images = [self.ledger.image_of_receipt(str(r)) for r in receipts if r]
            entry.image = next((i for i in images if i), None)
        return entry


def _dynamodb_read(request: _Request, status: int, response: bytes) -> Entry:
    operation = request.target().split(".")[-1]
    body, answer = request.json(), _json(response)
    entry = Entry(0, "dynamodb", operation, status)
    consistent = bool(body.get("ConsistentRead"))
    if operation == "GetItem":
        entry.image = _image_in(str(body.get("Key", {}).get("id", {}).get("S", "")))
        entry.read_units = read_units([item_size(answer.get("Item"))], consistent, per_item=True)
    elif operation in ("Query", "Scan"):
        entry.read_units = read_units([item_size(i) for i in answer.get("Items", [])], consistent, per_item=False)
    elif operation == "BatchGetItem":
        items = [i for found in answer.get("Responses", {}).values() for i in found]
        tables = body.get("RequestItems", {}).values()
        consistent = all(t.get("ConsistentRead") for t in tables)
        keys = [k for t in tables for k in t.get("Keys", [])]
        entry.read_units = read_units([item_size(i) for i in items], consistent, per_item=True)
        if len(keys) == 1:
            entry.image = _image_in(str(keys[0].get("id", {}).get("S", "")))
    return entry


def _sns(request: _Request, status: int, action: str) -> Entry:
    form = parse_qs(request.body.decode("utf-8", "replace"))
    entry = Entry(0, "sns", action or "unknown", status)
    if action == "Publish":
        entry.image = _image_in(form.get("Message", [""])[0])
    return entry


def _s3(request: _Request, status: int) -> Entry:
    """S3's operation from the method, the query and the headers (REST has no operation name)."""
    path = request.path
    has_key = path.strip("/").count("/") >= 1 or (request.method == "POST" and "uploads" not in request.query)
    if request.method == "POST" and not path.strip("/").count("/"):
        text = request.body[:65536].decode("utf-8", "replace")
        if "delete" in request.query:
            found = re.search(r"<Key>([^<]*)</Key>", text)
            return Entry(0, "s3", "DeleteObjects", status, image=_image_in(found.group(1)) if found else None)
        found = re.search(r'name="key"\r\n\r\n([^\r]*)', text)
        image = _image_in(found.group(1)) if found else None
        operation = "PostObject"
        return Entry(0, "s3", operation, status, image=image)
    if "uploadId" in request.query or "uploads" in request.query:
        operation = {
            "POST": "CreateMultipartUpload" if "uploads" in request.query else "CompleteMultipartUpload",
            "PUT": "UploadPart",
            "GET": "ListParts",
            "DELETE": "AbortMultipartUpload",
        }.get(request.method, request.method)
    elif not has_key:
        operation = {"GET": "ListObjects", "HEAD": "HeadBucket", "PUT": "PutBucket"}.get(request.method, request.method)
    elif request.method == "PUT" and "x-amz-copy-source" in request.headers:
        operation = "CopyObject"
    else:
        operation = {"GET": "GetObject", "HEAD": "HeadObject", "PUT": "PutObject", "DELETE": "DeleteObject"}.get(
            request.method, request.method
        )
    return Entry(0, "s3", operation, status, image=_image_in(unquote(path)))


def _read_request(environ: Environ) -> _Request:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = b""
    if length:  # a chunked body (no length) is left to moto, unread: nothing here needs one
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
    headers = {k[5:].replace("_", "-").lower(): str(v) for k, v in environ.items() if k.startswith("HTTP_")}
    if "CONTENT_TYPE" in environ:
        headers["content-type"] = str(environ["CONTENT_TYPE"])
    query = parse_qs(str(environ.get("QUERY_STRING", "")), keep_blank_values=True)
    return _Request(str(environ.get("REQUEST_METHOD", "")), str(environ.get("PATH_INFO", "")), query, headers, body)


def _region(request: _Request) -> str:
    found = re.search(r"Credential=[^/]+/\d+/([^/]+)/", request.headers.get("authorization", ""))
    return found.group(1) if found else "us-east-1"


def _json(data: bytes) -> dict[str, Any]:
    try:
        loaded = json.loads(data or b"{}")
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _image_in(text: str) -> str | None:
    """The image id a key, message or body names: its first run of exactly 32 hex digits."""
    try:
        loaded = json.loads(text)
    except ValueError:
        loaded = None
    if isinstance(loaded, dict):
        for name in ("id", "image_id"):
            if isinstance(loaded.get(name), str) and _IMAGE_ID.fullmatch(loaded[name]):
                return str(loaded[name])
    found = _IMAGE_ID.search(text)
    return found.group(0) if found else None


# -- moto's DynamoDB state, read around each write ------------------------------------------------


def _moto_dynamodb_backend(region: str) -> Any:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[DEFAULT_ACCOUNT_ID][region]


def _dynamodb_key(request: _Request, backend: Any) -> tuple[Any, dict[str, Any] | None]:
    body = request.json()
    try:
        table = backend.get_table(body.get("TableName", ""))
    except Exception:  # an unknown table: moto answers the error, nothing to weigh
        return None, None
    if "Key" in body:
        return table, body["Key"]
    item = body.get("Item", {})
    return table, {name: item[name] for name in _table_keys(table) if name in item}


def _stored_item(backend: Any, table: Any, key: dict[str, Any] | None) -> dict[str, Any] | None:
    if table is None or not key:
        return None
    try:
        found = backend.get_item(table.name, key)
    except Exception:  # a malformed key: moto answers the error
        return None
    return dict(found.to_json()["Attributes"]) if found is not None else None


def _table_keys(table: Any) -> tuple[str, ...]:
    return tuple(k for k in (table.hash_key_attr, table.range_key_attr) if k)


def _index_shapes(table: Any) -> list[IndexShape]:
    shapes = []
    for index in table.global_indexes:
        keys = tuple(k["AttributeName"] for k in sorted(index.schema, key=lambda k: k["KeyType"] != "HASH"))
        projection = index.projection or {}
        projected = (
            None
            if projection.get("ProjectionType") == "ALL"
            else tuple(projection.get("NonKeyAttributes", []) if projection.get("ProjectionType") == "INCLUDE" else [])
        )
        shapes.append(IndexShape(index.name, keys, projected))
    return shapes


def recording_moto_server(host: str, port: int, ledger: Ledger) -> Any:
    """moto's ThreadedMotoServer with the ledger in front of its app."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from moto.server import ThreadedMotoServer
    from werkzeug.serving import make_server

    class RecordingMotoServer(ThreadedMotoServer):  # type: ignore[misc]
        def _server_entry(self) -> None:
            app = LedgerMiddleware(DomainDispatcherApplication(create_backend_app), ledger)
            self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
            self._server_ready_event.set()
            self._server.serve_forever()

    return RecordingMotoServer(ip_address=host, port=port, verbose=False)
