"""The request ledger: every request that reaches the AWS stand-in, by service and operation.

The moto server runs in the stack's own process, so one WSGI layer in front of it sees every
request of every sandbox, the API and the browser alike. Each entry names the image it concerns
(from the S3 key, the DynamoDB key, the SNS message or the SQS body) and, for DynamoDB, the
capacity units AWS would bill: moto reports fixed numbers, so they are weighed by AWS's rules
(devstack/cost_vector.py) from the items before and after each write, which the ledger reads
through `Tables` (moto's, devstack/moto_internals.py).

`GET /_ledger?since=N&image=ID` on the stand-in's port answers the entries after sequence number N
(about image ID only, if given) and their sums (docs: local-stack). Requests that are the stand-in's own plumbing (the queues that
carry S3 events to the local runtime, the test subscriber of the topic) are marked so, not hidden.
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote

from devstack.cost_vector import TableShape, failed_write_units, item_size, read_units, write_units
from devstack.wsgi import Environ, StartResponse, WsgiApp, json_answer

log = logging.getLogger("devstack.ledger")
LEDGER_PATH = "/_ledger"
# Queues that exist only because the stand-in cannot invoke Lambda, or because tests listen.
PLUMBING_QUEUE_SUFFIXES = ("-s3-events", "-notifications")
_IMAGE_ID = re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")
_DYNAMODB_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}
_DYNAMODB_READS = {"GetItem", "Query", "Scan", "BatchGetItem"}

Item = dict[str, Any]  # DynamoDB JSON


class Tables(Protocol):
    """The stand-in's DynamoDB tables, read around each write to weigh it."""

    def shape(self, region: str, table: str) -> TableShape | None:
        """None for a table the stand-in does not have."""

    def item(self, region: str, table: str, key: Item) -> Item | None:
        """The stored item under `key`, None if there is none (or the key is malformed)."""


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

    def __init__(self, app: WsgiApp, ledger: Ledger, tables: Tables) -> None:
        self.app = app
        self.ledger = ledger
        self._tables = tables
        self._write_lock = threading.Lock()  # item versions before and after a write, without races

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == LEDGER_PATH:
            query = parse_qs(environ.get("QUERY_STRING", ""))
            report = self.ledger.report(int(query.get("since", ["0"])[0]), query.get("image", [None])[0])
            return json_answer(start_response, "200 OK", report)
        if str(environ.get("PATH_INFO", "")).startswith("/moto-api"):
            return self.app(environ, start_response)
        request = _read_request(environ)
        target = request.target()
        if target.startswith("DynamoDB_") and target.split(".")[-1] in _DYNAMODB_WRITES:
            region, name = _region(request), str(request.json().get("TableName", ""))
            with self._write_lock:
                table = self._tables.shape(region, name)
                key = _item_key(request, table)
                before = self._tables.item(region, name, key) if key else None
                status, chunks = self._call(environ, start_response)
                after = self._tables.item(region, name, key) if key else None
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
        self, request: _Request, status: int, table: TableShape | None, before: Item | None, after: Item | None
    ) -> None:
        operation = request.target().split(".")[-1]
        entry = Entry(0, "dynamodb", operation, status)
        key_item = after or before or request.json().get("Item") or request.json().get("Key") or {}
        entry.image = _image_in(str(key_item.get("id", {}).get("S", "")))
        if table is not None:
            if status == 200:
                entry.write_units, entry.index_writes = write_units(before, after, table)
            else:
                entry.write_units = failed_write_units(before)
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


def _item_key(request: _Request, table: TableShape | None) -> Item | None:
    """The key of the item a write names: its `Key`, or the key attributes of its `Item`."""
    if table is None:
        return None
    body = request.json()
    if "Key" in body:
        return body["Key"] if isinstance(body["Key"], dict) else None
    item = body.get("Item", {})
    return {name: item[name] for name in table.keys if name in item} or None


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
