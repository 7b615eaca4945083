"""devstack/ledger.py: AWS's item sizes and write units, and the ledger's sums."""

from __future__ import annotations

import io
import json
from typing import Any

from devstack.ledger import Entry, IndexShape, Ledger, LedgerMiddleware, item_size, read_units, write_units

KEYS_ONLY = IndexShape("by-owner-status-shard", ("owner_status_shard", "created_at"), ())
WITH_STATUS = IndexShape("by-created-shard", ("created_shard", "created_at"), ("status",))


def item(status: str, size: int = 10, **extra: str) -> dict[str, dict[str, str]]:
    attributes = {"id": "a" * 32, "status": status, "created_at": "2026-12-05", "blob": "x" * size, **extra}
    return {name: {"S": value} for name, value in attributes.items()}


def test_sizes_follow_the_published_rules() -> None:
    assert item_size({"ab": {"S": "héllo"}}) == 2 + 6  # names and UTF-8 values
    assert item_size({"n": {"N": "12345"}}) == 1 + 1 + 3  # about one byte per two digits, plus one
    assert item_size({"f": {"BOOL": True}, "z": {"NULL": True}}) == 4
    assert item_size({"m": {"M": {"k": {"S": "v"}}}}) == 1 + 3 + 1 + 1 + 1
    assert item_size(None) == 0


def test_a_write_costs_its_larger_version_and_every_index_entry_it_touches() -> None:
    created = item("pending", owner_status_shard="o#pending#5", created_shard="3")
    table, indexes = write_units(None, created, [KEYS_ONLY, WITH_STATUS], ("id",))
    assert table == 1 and indexes == {"by-owner-status-shard": {"o#pending#5": 1}, "by-created-shard": {"3": 1}}

    claimed = item("processing", 1500, owner_status_shard="o#processing#5", created_shard="3")
    table, indexes = write_units(created, claimed, [KEYS_ONLY, WITH_STATUS], ("id",))
    assert table == 2  # over 1 KB now
    # A key change moves the entry: a delete in one partition, a put in another; a projected
    # attribute's change rewrites the entry in place.
    assert indexes == {"by-owner-status-shard": {"o#pending#5": 1, "o#processing#5": 1}, "by-created-shard": {"3": 1}}


def test_unchanged_and_absent_entries_cost_nothing() -> None:
    record = item("done", owner_status_shard="o#done#5")
    same = write_units(record, {**record, "blob": {"S": "y"}}, [KEYS_ONLY, WITH_STATUS], ("id",))
    assert same == (1, {})  # KEYS_ONLY entry unchanged; no created_shard: not in that index at all
    removed = write_units(record, item("done"), [KEYS_ONLY], ("id",))[1]
    assert removed == {"by-owner-status-shard": {"o#done#5": 1}}  # a sparse index's entry removed


def test_reads_cost_per_4_kb_and_half_when_eventually_consistent() -> None:
    assert read_units([100, 5000], consistent=True, per_item=True) == 1 + 2
    assert read_units([100, 5000], consistent=False, per_item=False) == 1  # 5.1 KB in all: 2 units, halved
    assert read_units([], consistent=True, per_item=False) == 1


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


def test_s3_operations_are_named_from_method_query_and_headers() -> None:
    ledger = Ledger()
    middleware = LedgerMiddleware(answering(), ledger)
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
    middleware = LedgerMiddleware(answering(json.dumps(received).encode()), ledger)
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
        LedgerMiddleware(answering(), ledger)(
            {"PATH_INFO": "/_ledger", "QUERY_STRING": f"since=0&image={IMAGE}"},
            lambda status, headers: seen.append(status),
        )
    )
    assert seen == ["200 OK"] and json.loads(body)["totals"]["requests"] == {"s3:GetObject": 1}
