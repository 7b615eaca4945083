"""devstack/ledger.py: what each request is, whose image it concerns, what a DynamoDB write weighs, and the sums."""

from __future__ import annotations

import io
import json
from typing import Any

from devstack.cost_vector import IndexShape, TableShape
from devstack.ledger import Entry, Item, Ledger, LedgerMiddleware


def test_sums_leave_plumbing_and_idle_polls_apart_and_know_owners() -> None:
    ledger = Ledger()
    ledger.learn_owner("a" * 32, "alice")
    ledger.add(Entry(0, "dynamodb", "PutItem", 200, "a" * 32, write_units=1, index_writes={"i": {"alice": 1}}))
    ledger.add(Entry(0, "sqs", "ReceiveMessage", 200, plumbing=True))
    ledger.add(Entry(0, "sqs", "ReceiveMessage", 200, idle=True))
    report = ledger.report()
    assert report["next"] == 3
    assert report["totals"]["requests"] == {"dynamodb:PutItem": 1}
    assert report["totals"]["dynamodb_write_units"] == 2
    assert report["totals"]["dynamodb_partition_write_units"] == {"i": {"alice": 1}}
    assert report["totals"]["plumbing"] == {"sqs:ReceiveMessage": 1}
    assert report["totals"]["idle"] == {"sqs:ReceiveMessage": 1}
    assert list(report["by_owner"]) == ["alice"]
    assert ledger.report(1)["entries"] == report["entries"][1:]
    assert ledger.report(0, image="b" * 32)["entries"] == []


def test_a_long_running_stack_keeps_the_latest_entries_and_counts_on() -> None:
    ledger = Ledger(keep=4)
    for _ in range(6):
        ledger.add(Entry(0, "s3", "GetObject", 200))
    report = ledger.report(0)
    assert report["next"] == 6 and [e["seq"] for e in report["entries"]] == [3, 4, 5, 6]
    assert [e["seq"] for e in ledger.report(5)["entries"]] == [6]


def call(middleware: LedgerMiddleware, method: str, path: str, body: bytes = b"", **headers: str) -> None:
    query = path.split("?", 1)[1] if "?" in path else ""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path.split("?", 1)[0],
        "QUERY_STRING": query,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        **{"HTTP_" + name.upper(): value for name, value in headers.items()},
    }
    list(middleware(environ, lambda status, headers, *_: None))


def answering(body: bytes = b"{}") -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [body]

    return app


IMAGE = "0123456789abcdef0123456789abcdef"


class DictTables:
    """One table kept in a dict, standing in for moto's (tests/devstack/test_moto_internals.py)."""

    def __init__(self, name: str, shape: TableShape) -> None:
        self.name, self.table = name, shape
        self.items: dict[str, Item] = {}

    def shape(self, region: str, table: str) -> TableShape | None:
        return self.table if table == self.name else None

    def item(self, region: str, table: str, key: Item) -> Item | None:
        return self.items.get(key["id"]["S"]) if table == self.name else None


NO_TABLES = DictTables("", TableShape(("id",)))


def storing(tables: DictTables, status: str) -> Any:
    """A DynamoDB stand-in that stores each PutItem's item when it answers 200."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        item = json.loads(environ["wsgi.input"].read())["Item"]
        if status.startswith("200"):
            tables.items[item["id"]["S"]] = item
        start_response(status, [])
        return [b"{}"]

    return app


def put_item(middleware: LedgerMiddleware, table: str, **attributes: str) -> None:
    item = {name: {"S": value} for name, value in {"id": IMAGE, **attributes}.items()}
    body = json.dumps({"TableName": table, "Item": item}).encode()
    call(middleware, "POST", "/", body, x_amz_target="DynamoDB_20120810.PutItem")


def test_a_dynamodb_write_is_weighed_from_the_item_before_and_after_it() -> None:
    ledger = Ledger()
    by_status = IndexShape("by-status", ("status",), ())
    tables = DictTables("images", TableShape(("id",), (by_status,)))
    put_item(LedgerMiddleware(storing(tables, "200 OK"), ledger, tables), "images", owner="alice", status="pending")
    put_item(LedgerMiddleware(storing(tables, "200 OK"), ledger, tables), "images", owner="alice", status="done")
    put_item(LedgerMiddleware(storing(tables, "400 Bad Request"), ledger, tables), "images", blob="x" * 2000)
    put_item(LedgerMiddleware(storing(tables, "200 OK"), ledger, tables), "elsewhere", status="done")
    entries = ledger.report()["entries"]
    assert [(e["write_units"], e["index_writes"]) for e in entries] == [
        (1, {"by-status": {"pending": 1}}),
        (1, {"by-status": {"pending": 1, "done": 1}}),  # the entry moved from one partition to another
        (1, {}),  # its condition failed: it costs the stored item, which it did not change
        (0, {}),  # a table the stand-in does not have: moto answers the error
    ]
    assert [e["image"] for e in entries] == [IMAGE] * 4 and entries[0]["owner"] == "alice"


def test_s3_operations_are_named_from_method_query_and_headers() -> None:
    ledger = Ledger()
    middleware = LedgerMiddleware(answering(), ledger, NO_TABLES)
    form = f'--b\r\nContent-Disposition: form-data; name="key"\r\n\r\nuploads/{IMAGE}\r\n--b--'.encode()
    call(middleware, "POST", "/in-bucket", form)
    call(middleware, "GET", f"/in-bucket/uploads/{IMAGE}")
    call(middleware, "HEAD", f"/in-bucket/uploads/{IMAGE}")
    call(middleware, "PUT", f"/out/processed/{IMAGE}/r/web.webp")
    call(middleware, "PUT", f"/out/processed/{IMAGE}/s/web.webp", x_amz_copy_source="out/x")
    call(
        middleware,
        "POST",
        "/out?delete",
        f"<Delete><Object><Key>processed/{IMAGE}/r/web.webp</Key></Object></Delete>".encode(),
    )
    call(middleware, "PUT", f"/in-bucket/uploads/{IMAGE}?partNumber=1&uploadId=u")
    call(middleware, "GET", "/out?list-type=2")
    entries = ledger.report()["entries"]
    assert [e["operation"] for e in entries] == [
        "PostObject",
        "GetObject",
        "HeadObject",
        "PutObject",
        "CopyObject",
        "DeleteObjects",
        "UploadPart",
        "ListObjects",
    ]
    assert [e["image"] for e in entries] == [IMAGE] * 7 + [None]


def test_sns_and_sqs_requests_find_their_image_and_plumbing_is_marked() -> None:
    ledger = Ledger()
    received = {"Messages": [{"Body": f'{{"image_id":"{IMAGE}"}}', "ReceiptHandle": "r1"}]}
    middleware = LedgerMiddleware(answering(json.dumps(received).encode()), ledger, NO_TABLES)
    message = f'{{"id":"{IMAGE}","status":"done"}}'
    call(middleware, "POST", "/", f"Action=Publish&Message={message}".encode())
    target = {"x_amz_target": "AmazonSQS.ReceiveMessage"}
    call(middleware, "POST", "/", json.dumps({"QueueUrl": "http://h/1/imgpress-local-reprocess"}).encode(), **target)
    delete = {"QueueUrl": "http://h/1/imgpress-local-reprocess", "Entries": [{"Id": "1", "ReceiptHandle": "r1"}]}
    call(middleware, "POST", "/", json.dumps(delete).encode(), x_amz_target="AmazonSQS.DeleteMessageBatch")
    call(middleware, "POST", "/", json.dumps({"QueueUrl": "http://h/1/x-s3-events"}).encode(), **target)
    entries = ledger.report()["entries"]
    assert [(e["service"], e["operation"], e["image"]) for e in entries[:3]] == [
        ("sns", "Publish", IMAGE),
        ("sqs", "ReceiveMessage", IMAGE),
        ("sqs", "DeleteMessageBatch", IMAGE),  # known from the receipt
    ]
    assert entries[3]["plumbing"] and not entries[0]["plumbing"]


def test_the_ledger_answers_on_its_path() -> None:
    ledger = Ledger()
    ledger.add(Entry(0, "s3", "GetObject", 200, IMAGE))
    seen: list[str] = []
    body = b"".join(
        LedgerMiddleware(answering(), ledger, NO_TABLES)(
            {"PATH_INFO": "/_ledger", "QUERY_STRING": f"since=0&image={IMAGE}"},
            lambda status, headers: seen.append(status),
        )
    )
    assert seen == ["200 OK"] and json.loads(body)["totals"]["requests"] == {"s3:GetObject": 1}
