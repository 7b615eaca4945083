"""Resumable uploads (the /s3/... routes Uppy calls) and ?wait, through Chalice's test client against moto.

Parts go to S3 the way a browser sends them: an HTTP PUT to the presigned URL (moto intercepts it).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests
from chalice.test import Client

from chalicelib.domain import iso, utc_now
from chalicelib.multipart import PART_BYTES
from chalicelib.settings import get_settings
from tests import images
from tests.conftest import ENV, Aws

MIB = 1024 * 1024


def body(response: Any) -> Any:
    return json.loads(response.body) if response.body else None


def start(client: Client, **fields: Any) -> dict[str, Any]:
    payload = {"filename": "big.jpg", "type": "image/jpeg", "metadata": {"name": "big.jpg", "type": "image/jpeg"}}
    response = client.http.post(
        "/s3/multipart", headers={"Content-Type": "application/json"}, body=json.dumps({**payload, **fields}).encode()
    )
    assert response.status_code == 201, response.body
    return dict(body(response))


def sign(client: Client, started: dict[str, Any], number: int, key: str | None = None) -> Any:
    query = f"?key={quote(key or started['key'], safe='')}"
    return client.http.get(f"/s3/multipart/{started['uploadId']}/{number}{query}")


def put_part(client: Client, started: dict[str, Any], number: int, data: bytes) -> str:
    signed = sign(client, started, number)
    assert signed.status_code == 200, signed.body
    sent = requests.put(body(signed)["url"], data=data, timeout=30)
    assert sent.status_code == 200, sent.text
    return sent.headers["ETag"]


def parts_of(client: Client, started: dict[str, Any], key: str | None = None) -> Any:
    return client.http.get(f"/s3/multipart/{started['uploadId']}?key={quote(key or started['key'], safe='')}")


def complete(client: Client, started: dict[str, Any], parts: list[dict[str, Any]], key: str | None = None) -> Any:
    return client.http.post(
        f"/s3/multipart/{started['uploadId']}/complete?key={quote(key or started['key'], safe='')}",
        headers={"Content-Type": "application/json"},
        body=json.dumps({"parts": parts}).encode(),
    )


def test_uppy_flow_resumes_from_listed_parts_and_completes_into_the_slot(client: Client, aws: Aws) -> None:
    data = images.jpeg(3000, 2000) + b"\0" * (PART_BYTES + 1000)  # two parts; trailing bytes after EOI are allowed
    started = start(client)
    image_id = started["id"]
    assert started["key"] == f"uploads/{image_id}" and started["part_bytes"] == PART_BYTES
    assert started["max_parts"] == 5  # 25 MiB in 5 MiB parts
    assert aws.table.get_item(Key={"id": image_id})["Item"]["status"] == "pending"

    first = put_part(client, started, 1, data[:PART_BYTES])
    listed = body(parts_of(client, started))  # what Uppy asks after a reload
    assert listed == [{"PartNumber": 1, "ETag": first.strip('"'), "Size": PART_BYTES}]
    second = put_part(client, started, 2, data[PART_BYTES:])
    done = complete(client, started, [{"PartNumber": 1, "ETag": first}, {"PartNumber": 2, "ETag": second}])
    assert done.status_code == 200, done.body
    result = body(done)
    assert result["key"] == started["key"] and result["bucket"] == ENV["INPUT_BUCKET"] and result["id"] == image_id
    stored = aws.s3.get_object(Bucket=ENV["INPUT_BUCKET"], Key=started["key"])
    assert stored["Body"].read() == data and stored["ContentType"] == "image/jpeg"
    # Nothing left to sign or complete: the slot has its object.
    assert complete(client, started, [{"PartNumber": 1, "ETag": first}]).status_code == 404


def test_a_declared_size_signs_each_parts_exact_length(client: Client) -> None:
    started = start(client, size=PART_BYTES * 2 + 10)
    assert started["max_parts"] == 3
    for number, size in ((1, PART_BYTES), (2, PART_BYTES), (3, 10)):
        signed = body(sign(client, started, number))
        assert signed["size"] == size
        query = parse_qs(urlsplit(signed["url"]).query)
        assert query["X-Amz-SignedHeaders"] == ["content-length;host"]  # SigV4: S3 refuses any other length
    refused = sign(client, started, 4)
    assert refused.status_code == 400 and body(refused)["error"]["code"] == "invalid_part"


def test_without_a_declared_size_parts_are_capped_by_number_and_checked_at_completion(client: Client) -> None:
    started = start(client)
    signed = body(sign(client, started, 5))
    assert (
        signed["size"] is None
        and "content-length" not in parse_qs(urlsplit(signed["url"]).query)["X-Amz-SignedHeaders"][0]
    )
    assert body(sign(client, started, 6))["error"]["code"] == "invalid_part"
    for bad in ("0", "x", "99999999"):
        assert sign(client, started, bad).status_code == 400  # type: ignore[arg-type]


def test_an_oversized_part_is_refused_and_the_upload_aborted(client: Client) -> None:
    started = start(client)
    etag = put_part(client, started, 1, b"x" * (PART_BYTES + 1))  # an unsigned length: S3 took it
    refused = complete(client, started, [{"PartNumber": 1, "ETag": etag}])
    assert refused.status_code == 413 and body(refused)["error"]["code"] == "part_too_large"
    listed = parts_of(client, started)  # aborted (S3 dropped the parts) and its image ended
    assert listed.status_code == 410 and body(listed)["error"]["code"] == "upload_ended"
    image = body(client.http.get(f"/images/{started['id']}"))
    assert image["status"] == "failed" and image["error"]["code"] == "too_large"


def test_a_total_over_the_limit_is_refused(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    # The test client sets the stage's env on every request: replace the settings the routes read instead.
    settings = get_settings()
    smaller = replace(settings, imaging=replace(settings.imaging, max_upload_bytes=6 * MIB))
    monkeypatch.setattr("app.get_settings", lambda: smaller)
    started = start(client)
    assert started["max_parts"] == 2
    parts = [
        {"PartNumber": 1, "ETag": put_part(client, started, 1, b"a" * PART_BYTES)},
        {"PartNumber": 2, "ETag": put_part(client, started, 2, b"b" * (2 * MIB))},
    ]
    refused = complete(client, started, parts)
    assert refused.status_code == 413 and body(refused)["error"]["code"] == "too_large"


def test_the_declared_size_must_be_what_arrived(client: Client) -> None:
    started = start(client, size=1000)
    signed = body(sign(client, started, 1))
    sent = requests.put(signed["url"], data=b"x" * 999, timeout=30)  # moto does not check the signed length
    refused = complete(client, started, [{"PartNumber": 1, "ETag": sent.headers["ETag"]}])
    assert refused.status_code == 400 and body(refused)["error"]["code"] == "size_mismatch"


@pytest.mark.parametrize(
    "parts, code",
    [
        ([], "invalid_field"),
        ([{"PartNumber": 1}], "invalid_field"),
        ([{"PartNumber": "1", "ETag": "x"}], "invalid_field"),
        ([{"PartNumber": 1, "ETag": "a"}, {"PartNumber": 1, "ETag": "a"}], "invalid_field"),
        ([{"PartNumber": 1, "ETag": "not-the-etag"}], "invalid_part"),
        ([{"PartNumber": 2, "ETag": "x"}], "invalid_part"),
    ],
)
def test_completing_with_parts_s3_does_not_hold_is_400(client: Client, parts: Any, code: str) -> None:
    started = start(client)
    put_part(client, started, 1, b"x" * 100)
    refused = complete(client, started, parts)
    assert refused.status_code == 400 and body(refused)["error"]["code"] == code


def test_other_owners_and_other_keys_get_404(client: Client, aws: Aws) -> None:
    started = start(client)
    other = start(client)
    # Someone else's upload: the key is valid, the caller is not its owner.
    aws.table.update_item(
        Key={"id": other["id"]},
        UpdateExpression="SET #o = :o",
        ExpressionAttributeNames={"#o": "owner"},
        ExpressionAttributeValues={":o": "mallory"},
    )
    theirs = {**other}
    for key in (other["key"], "uploads/" + "0" * 32, "processed/x", "uploads/../" + started["id"]):
        assert sign(client, started, 1, key).status_code == 404, key
        assert parts_of(client, started, key).status_code == 404, key
        assert complete(client, started, [{"PartNumber": 1, "ETag": "x"}], key).status_code == 404, key
        assert client.http.delete(f"/s3/multipart/{started['uploadId']}?key={quote(key, safe='')}").status_code == 404
    assert sign(client, theirs, 1).status_code == 404
    missing = client.http.get(f"/s3/multipart/{started['uploadId']}/1")
    assert missing.status_code == 400 and body(missing)["error"]["code"] == "missing_field"


def test_an_expired_slot_signs_no_more_parts(client: Client, aws: Aws) -> None:
    started = start(client)
    long_ago = iso(utc_now() - timedelta(seconds=int(ENV["UPLOAD_URL_TTL_SECONDS"]) + 1))
    aws.table.update_item(
        Key={"id": started["id"]}, UpdateExpression="SET created_at = :c", ExpressionAttributeValues={":c": long_ago}
    )
    refused = sign(client, started, 1)
    assert refused.status_code == 410 and body(refused)["error"]["code"] == "upload_expired"


def test_abort_drops_the_parts(client: Client) -> None:
    started = start(client)
    put_part(client, started, 1, b"x" * 100)
    aborted = client.http.delete(f"/s3/multipart/{started['uploadId']}?key={quote(started['key'], safe='')}")
    assert aborted.status_code == 204
    assert parts_of(client, started).status_code == 410
    assert body(client.http.get(f"/images/{started['id']}"))["error"]["code"] == "upload_aborted"


@pytest.mark.parametrize(
    "payload, status, code",
    [
        ({"filename": "a.svg", "type": "image/svg+xml"}, 415, "unsupported_type"),
        ({"filename": "a.jpg"}, 400, "missing_field"),
        ({"type": "image/jpeg", "size": 26 * MIB}, 413, "too_large"),
        ({"type": "image/jpeg", "metadata": {"size": str(26 * MIB)}}, 413, "too_large"),
        ({"type": "image/jpeg", "metadata": {"profile": "nope"}}, 400, "unknown_profile"),
        ({"type": "image/jpeg", "metadata": []}, 400, "invalid_field"),
        ({"type": "image/jpeg", "bucket": "x"}, 400, "unknown_field"),
    ],
)
def test_starting_checks_type_size_and_profile_as_post_uploads_does(
    client: Client, aws: Aws, payload: Any, status: int, code: str
) -> None:
    response = client.http.post(
        "/s3/multipart", headers={"Content-Type": "application/json"}, body=json.dumps(payload).encode()
    )
    assert response.status_code == status and body(response)["error"]["code"] == code
    assert aws.table.scan()["Count"] == 0


def test_a_profile_in_uppy_metadata_is_used(client: Client, aws: Aws) -> None:
    started = start(client, metadata={"name": "a.jpg", "profile": "compress", "relativePath": None})
    assert aws.table.get_item(Key={"id": started["id"]})["Item"]["profile"] == "compress"


def test_s3_params_opens_a_slot_with_a_presigned_post(client: Client, aws: Aws) -> None:
    response = client.http.get(
        "/s3/params?filename=a.png&type=image%2Fpng&metadata%5Bname%5D=a.png&metadata%5Bprofile%5D=compress"
    )
    assert response.status_code == 200, response.body
    params = body(response)
    assert params["method"] == "POST" and params["fields"]["key"] == params["key"] == f"uploads/{params['id']}"
    item = aws.table.get_item(Key={"id": params["id"]})["Item"]
    assert (item["status"], item["profile"], item["content_type"], item["filename"]) == (
        "pending",
        "compress",
        "image/png",
        "a.png",
    )
    assert client.http.get("/s3/params?filename=a.svg&type=image%2Fsvg%2Bxml").status_code == 415


def test_wait_answers_at_once_for_a_final_image_and_at_the_deadline_otherwise(client: Client, aws: Aws) -> None:
    started = start(client)
    import time

    began = time.monotonic()
    pending = client.http.get(f"/images/{started['id']}?wait=1")
    assert body(pending)["status"] == "pending" and 0.9 < time.monotonic() - began < 3
    for bad in ("26", "-1", "x", "1.5"):
        refused = client.http.get(f"/images/{started['id']}?wait={bad}")
        assert refused.status_code == 400 and body(refused)["error"]["code"] == "invalid_field"
    assert client.http.get(f"/images/{'0' * 32}?wait=5").status_code == 404  # at once, not after 5 s


def test_every_kind_of_upload_opens_its_slot_through_one_function(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POST /uploads, GET /s3/params and POST /s3/multipart all go through uploads.open_slot, so
    whatever it enforces (quotas) holds for every kind of upload."""
    from chalicelib import uploads
    from chalicelib.errors import TooLarge

    def refuse(*_: Any, **__: Any) -> Any:
        raise TooLarge("refused by open_slot", "too_large")

    monkeypatch.setattr(uploads, "open_slot", refuse)
    json_body = {"headers": {"Content-Type": "application/json"}}
    answers = [
        client.http.post("/uploads", body=b'{"content_type": "image/jpeg"}', **json_body),
        client.http.get("/s3/params?filename=a.jpg&type=image%2Fjpeg"),
        client.http.post("/s3/multipart", body=b'{"type": "image/jpeg"}', **json_body),
    ]
    assert [(a.status_code, body(a)["error"]["message"]) for a in answers] == [(413, "refused by open_slot")] * 3


def test_json_numbers_with_an_integral_value_are_integers(client: Client, aws: Aws) -> None:
    """JSON has one number type; JSON Schema's integer includes 463.0 (found by Schemathesis)."""
    slot = client.http.post(
        "/uploads", headers={"Content-Type": "application/json"}, body=b'{"content_type": "image/jpeg", "size": 463.0}'
    )
    assert slot.status_code == 201 and aws.table.get_item(Key={"id": body(slot)["id"]})["Item"]["declared_size"] == 463
    started = start(client, size=100.0, profile=None, filename=None, metadata=None)
    etag = put_part(client, started, 1, b"x" * 100)
    assert complete(client, started, [{"PartNumber": 1.0, "ETag": etag}]).status_code == 200


def test_the_upload_limits_are_public_and_the_ones_enforced(client: Client) -> None:
    answer = client.http.get("/upload-limits")
    limits = body(answer)
    settings = get_settings()
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "public, max-age=300"
    assert limits == {
        "max_upload_bytes": settings.imaging.max_upload_bytes,
        "content_types": list(settings.imaging.allowed_content_types),
        "part_bytes": PART_BYTES,
    }
    over = start_refused(client, size=limits["max_upload_bytes"] + 1)
    assert over.status_code == 413


def start_refused(client: Client, **fields: Any) -> Any:
    request = {"filename": "a.jpg", "type": "image/jpeg", **fields}
    return client.http.post("/s3/multipart", headers={"Content-Type": "application/json"}, body=json.dumps(request))
