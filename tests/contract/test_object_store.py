"""The ObjectStore contract: S3ObjectStore (moto) and InMemoryObjectStore behave alike."""

from __future__ import annotations

import hashlib
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from chalicelib.aws.storage import S3ObjectStore
from chalicelib.errors import StorageError
from tests.conftest import ENV
from tests.fakes import InMemoryObjectStore

INPUT = ENV["INPUT_BUCKET"]


def put_original(store: Any, key: str, data: bytes) -> str:
    """An upload as a client makes it; returns the ETag."""
    if isinstance(store, InMemoryObjectStore):
        return store.put_original(INPUT, key, data)
    return str(boto3.client("s3").put_object(Bucket=INPUT, Key=key, Body=data)["ETag"]).strip('"')


def test_originals_are_read_as_they_are_now(object_store: Any) -> None:
    assert object_store.read_original(INPUT, "uploads/missing", 100) is None
    assert object_store.head_original(INPUT, "uploads/missing") is None
    etag = put_original(object_store, "uploads/a", b"first bytes")
    assert etag == hashlib.md5(b"first bytes", usedforsecurity=False).hexdigest()
    read = object_store.read_original(INPUT, "uploads/a", 100)
    assert (read.etag, read.size, read.data) == (etag, 11, b"first bytes")
    newer = put_original(object_store, "uploads/a", b"second, longer bytes")
    assert object_store.read_original(INPUT, "uploads/a", 100).etag == newer
    head = object_store.head_original(INPUT, "uploads/a")
    assert (head.etag, head.size, head.data) == (newer, 20, None)


def test_an_original_over_the_limit_is_measured_but_not_read(object_store: Any) -> None:
    etag = put_original(object_store, "uploads/big", b"x" * 5000)
    read = object_store.read_original(INPUT, "uploads/big", 4999)
    assert (read.etag, read.size, read.data) == (etag, 5000, None)


def test_outputs_are_written_copied_listed_and_deleted(object_store: Any) -> None:
    out = object_store.output_bucket
    object_store.put_output("processed/i/r1/web.webp", b"webp bytes", "image/webp", {"imgpress:variant": "web"})
    object_store.copy_output("processed/i/r1/web.webp", "processed/j/r2/web.webp", {"imgpress:variant": "web"})
    object_store.put_output("processed/i/r1/thumb.webp", b"thumb", "image/webp", {})
    assert object_store.list_keys(out, "processed/i/") == ["processed/i/r1/thumb.webp", "processed/i/r1/web.webp"]
    object_store.delete_keys(out, ["processed/i/r1/web.webp", "processed/i/never-written"])
    object_store.delete_keys(out, [])
    assert object_store.list_keys(out, "processed/i/") == ["processed/i/r1/thumb.webp"]
    assert object_store.list_keys(out, "processed/j/") == ["processed/j/r2/web.webp"]


def test_a_redrive_keeps_the_bytes(object_store: Any) -> None:
    put_original(object_store, "uploads/r", b"the same bytes")
    object_store.redrive(INPUT, "uploads/r")
    assert object_store.read_original(INPUT, "uploads/r", 100).data == b"the same bytes"


def test_keys_s3_refuses_to_delete_raise_instead_of_passing_silently(aws: Any) -> None:
    """DeleteObjects answers 200 and lists per-key failures in Errors; the adapter must read them."""
    store = S3ObjectStore(aws.s3, ENV["OUTPUT_BUCKET"], "no-cache")
    with Stubber(aws.s3) as stub:
        stub.add_response(
            "delete_objects",
            {"Deleted": [{"Key": "a"}], "Errors": [{"Key": "b", "Code": "AccessDenied", "Message": "denied"}]},
        )
        with pytest.raises(StorageError, match="b \\(AccessDenied\\)"):
            store.delete_keys(ENV["OUTPUT_BUCKET"], ["a", "b"])
    fake = InMemoryObjectStore()
    fake.put_output("b", b"x", "image/webp", {})
    fake.keep.add("b")
    with pytest.raises(StorageError):
        fake.delete_keys(fake.output_bucket, ["a", "b"])
