"""The HTTP API through Chalice's test client, against moto."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from chalice.test import Client

from chalicelib import services
from chalicelib.domain import Failure, OriginalInfo, Outcome, utc_now
from tests.conftest import ENV, Aws


def post_upload(client: Client, body: Any, raw: bytes | None = None) -> Any:
    payload = raw if raw is not None else json.dumps(body).encode()
    return client.http.post("/uploads", headers={"Content-Type": "application/json"}, body=payload)


def body(response: Any) -> Any:
    return json.loads(response.body) if response.body else None


def test_health(client: Client) -> None:
    response = client.http.get("/health")
    assert response.status_code == 200 and body(response) == {"status": "ok"}


def test_create_upload_returns_a_presigned_post_and_records_pending(client: Client, aws: Aws) -> None:
    response = post_upload(client, {"filename": "holiday.jpg", "content_type": "image/jpeg", "size": 1234})
    assert response.status_code == 201
    created = body(response)
    image_id = created["id"]
    assert len(image_id) == 32 and created["status"] == "pending"
    assert created["links"] == {"self": f"/images/{image_id}"}
    upload = created["upload"]
    assert upload["method"] == "POST" and upload["max_bytes"] == 1234  # the size declared: S3 takes no more
    assert upload["fields"]["key"] == f"uploads/{image_id}"
    policy = json.loads(base64.b64decode(upload["fields"]["policy"]))
    conditions = policy["conditions"]
    assert {"key": f"uploads/{image_id}"} in conditions
    assert {"Content-Type": "image/jpeg"} in conditions
    assert ["content-length-range", 1, 1234] in conditions
    assert {"bucket": ENV["INPUT_BUCKET"]} in conditions
    record = aws.table.get_item(Key={"id": image_id})["Item"]
    assert record["status"] == "pending" and record["filename"] == "holiday.jpg"

    fetched = body(client.http.get(f"/images/{image_id}"))
    assert fetched["status"] == "pending" and fetched["outputs"] == {} and fetched["error"] is None
    assert fetched["content_type"] == "image/jpeg" and fetched["filename"] == "holiday.jpg"


def test_ids_are_unique_and_filenames_never_reach_keys(client: Client) -> None:
    ids = set()
    for name in ("../../etc/passwd", "a/b\\c.jpg", "ünïcødé 写真.jpg", "x\x00y.jpg"):
        created = body(post_upload(client, {"filename": name, "content_type": "image/png"}))
        assert created["upload"]["fields"]["key"] == f"uploads/{created['id']}"
        ids.add(created["id"])
        stored = body(client.http.get(f"/images/{created['id']}"))["filename"]
        assert "/" not in stored and "\\" not in stored and "\x00" not in stored
    assert len(ids) == 4


@pytest.mark.parametrize(
    "payload, raw, status, code",
    [
        ({"content_type": "image/svg+xml"}, None, 415, "unsupported_type"),
        ({"content_type": "image/tiff"}, None, 415, "unsupported_type"),
        ({"content_type": "image/jpeg", "size": 26 * 1024 * 1024}, None, 413, "too_large"),
        (None, b"{not json", 400, "invalid_json"),
        (None, b"[1, 2]", 400, "invalid_json"),
        (None, b"", 400, "invalid_json"),
        ({}, None, 400, "missing_field"),
        ({"content_type": 5}, None, 400, "invalid_field"),
        ({"content_type": "image/jpeg", "size": "big"}, None, 400, "invalid_field"),
        ({"content_type": "image/jpeg", "size": -1}, None, 400, "invalid_field"),
        ({"content_type": "image/jpeg", "size": True}, None, 400, "invalid_field"),
        ({"content_type": "image/jpeg", "filename": ["a"]}, None, 400, "invalid_field"),
        ({"content_type": "image/jpeg", "key": "uploads/mine"}, None, 400, "unknown_field"),
        (None, b'{"content_type": "image/jpeg", "filename": "' + b"a" * 20000 + b'"}', 413, "body_too_large"),
        (None, b'{"content_type": "image/jpeg", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, "invalid_json"),
        ({"content_type": "image/jpeg", "size": "\u00b2"}, None, 400, "invalid_field"),
        ({"content_type": "image/jpeg", "filename": "/" * 300 + "a.jpg"}, None, 400, "invalid_field"),
    ],
)
def test_bad_upload_requests_get_json_errors(
    client: Client, aws: Aws, payload: Any, raw: bytes | None, status: int, code: str
) -> None:
    response = post_upload(client, payload, raw)
    assert response.status_code == status
    error = body(response)["error"]
    assert error["code"] == code and error["message"]
    assert aws.table.scan()["Count"] == 0


@pytest.mark.parametrize("bad_id", ["nope", "A" * 32, "0" * 31, "0" * 31 + "g", "..%2F..%2Fsecret", "0" * 33])
def test_malformed_ids_are_400(client: Client, bad_id: str) -> None:
    response = client.http.get(f"/images/{bad_id}")
    assert response.status_code == 400 and body(response)["error"]["code"] == "invalid_id"


@pytest.mark.parametrize("wait", ["%C2%B2", "%D9%A1", "-1", "26", "1.5"])
def test_a_wait_that_is_not_ascii_digits_within_range_is_400(client: Client, wait: str) -> None:
    image_id = body(post_upload(client, {"content_type": "image/jpeg"}))["id"]
    response = client.http.get(f"/images/{image_id}?wait={wait}")
    assert response.status_code == 400 and body(response)["error"]["code"] == "invalid_field"


@pytest.mark.parametrize("query", ["type=image/jpeg&metadata[size]=%C2%B2", "type=image/jpeg&size=%D9%A1"])
def test_uppy_sizes_that_are_not_ascii_digits_are_400(client: Client, query: str) -> None:
    response = client.http.get(f"/s3/params?{query}")
    assert response.status_code == 400 and body(response)["error"]["code"] == "invalid_field"


def test_unknown_id_is_404(client: Client) -> None:
    for method in (client.http.get, client.http.delete):
        response = method("/images/" + "0" * 32)
        assert response.status_code == 404 and body(response)["error"]["code"] == "not_found"


def test_list_is_newest_first_paginated_and_filterable(client: Client, aws: Aws) -> None:
    ids = [body(post_upload(client, {"content_type": "image/jpeg"}))["id"] for _ in range(5)]
    records = services.records()
    pending = records.get(ids[1])
    records.save(pending.failed(Failure("corrupt", "bad"), Outcome(OriginalInfo(1)), utc_now()))
    seen: list[str] = []
    cursor = None
    while True:
        query = "/images?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = body(client.http.get(query))
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    failed = body(client.http.get("/images?status=failed"))
    assert [item["id"] for item in failed["items"]] == [ids[1]]


@pytest.mark.parametrize(
    "query, code",
    [
        ("status=bogus", "invalid_field"),
        ("limit=0", "invalid_field"),
        ("limit=1000", "invalid_field"),
        ("limit=ten", "invalid_field"),
        ("limit=%C2%B2", "invalid_field"),  # ², which str.isdigit takes for a digit
        ("limit=%D9%A1", "invalid_field"),  # ١, which int() reads as 1
        ("cursor=%21%21notacursor", "invalid_cursor"),
        ("cursor=eyJmb28iOiAxfQ", "invalid_cursor"),
        ("colour=red", "unknown_field"),
    ],
)
def test_bad_list_queries_are_400(client: Client, query: str, code: str) -> None:
    response = client.http.get(f"/images?{query}")
    assert response.status_code == 400 and body(response)["error"]["code"] == code


def test_an_owner_is_for_admins_to_ask_for_and_an_empty_one_is_absent(client: Client) -> None:
    refused = client.http.get("/images?owner=someone")
    assert refused.status_code == 403 and body(refused)["error"]["code"] == "admin_only"
    assert client.http.get("/images?owner=&cursor=").status_code == 200


def test_delete_removes_original_outputs_and_record(client: Client, aws: Aws) -> None:
    image_id = body(post_upload(client, {"content_type": "image/jpeg"}))["id"]
    aws.s3.put_object(Bucket=ENV["INPUT_BUCKET"], Key=f"uploads/{image_id}", Body=b"x")
    for name in ("web.webp", "thumb.webp"):
        aws.s3.put_object(Bucket=ENV["OUTPUT_BUCKET"], Key=f"processed/{image_id}/{name}", Body=b"x")
    aws.s3.put_object(Bucket=ENV["OUTPUT_BUCKET"], Key="processed/other/web.webp", Body=b"x")
    response = client.http.delete(f"/images/{image_id}")
    assert response.status_code == 204
    assert aws.output_keys() == ["processed/other/web.webp"]
    assert "Contents" not in aws.s3.list_objects_v2(Bucket=ENV["INPUT_BUCKET"])
    assert client.http.get(f"/images/{image_id}").status_code == 404


def test_upload_with_a_profile_records_it(client: Client, aws: Aws) -> None:
    created = body(post_upload(client, {"content_type": "image/png", "profile": "thumbnail200"}))
    assert created["profile"] == "thumbnail200"
    assert body(client.http.get(f"/images/{created['id']}"))["profile"] == "thumbnail200"
    default = body(post_upload(client, {"content_type": "image/png"}))
    assert default["profile"] == "default"


@pytest.mark.parametrize("profile", ["nope", 7, "", "DEFAULT"])
def test_unknown_profile_is_400_listing_the_valid_ones(client: Client, profile: Any) -> None:
    response = post_upload(client, {"content_type": "image/png", "profile": profile})
    assert response.status_code == 400
    error = body(response)["error"]
    assert error["code"] == "unknown_profile" and "thumbnail200" in error["message"] and "web800" in error["message"]
