"""The Uploads contract: S3Uploads (moto) and InMemoryUploads behave alike."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.config import Config

from chalicelib.aws.storage import S3Uploads
from chalicelib.ports import InvalidPart, NoSuchUpload, UploadedPart
from tests.conftest import ENV
from tests.fakes import InMemoryUploads

KEY = "uploads/" + "a" * 32
MIB = 1024 * 1024


def put_part(uploads: Any, upload_id: str, number: int, data: bytes) -> str:
    """What a client's PUT to the part URL does; returns the ETag, unquoted."""
    if isinstance(uploads, InMemoryUploads):
        return uploads.put_part(KEY, upload_id, number, data)
    response = boto3.client("s3").upload_part(
        Bucket=ENV["INPUT_BUCKET"], Key=KEY, UploadId=upload_id, PartNumber=number, Body=data
    )
    return str(response["ETag"]).strip('"')


def read_object(uploads: Any) -> bytes:
    if isinstance(uploads, InMemoryUploads):
        return uploads.objects[KEY]
    return bytes(boto3.client("s3").get_object(Bucket=ENV["INPUT_BUCKET"], Key=KEY)["Body"].read())


def test_parts_are_listed_with_sizes_and_completed_into_one_object(uploads: Any) -> None:
    upload_id = uploads.start(KEY, "image/jpeg")
    assert uploads.parts(KEY, upload_id) == []
    first, second = b"a" * (5 * MIB), b"tail"
    etags = [put_part(uploads, upload_id, 1, first), put_part(uploads, upload_id, 2, second)]
    held = uploads.parts(KEY, upload_id)
    assert held == [UploadedPart(1, etags[0], len(first)), UploadedPart(2, etags[1], len(second))]
    assert isinstance(uploads.presign_part(KEY, upload_id, 3, 10, 60), str)
    assert uploads.complete(KEY, upload_id, held)
    assert read_object(uploads) == first + second
    with pytest.raises(NoSuchUpload):
        uploads.parts(KEY, upload_id)


def test_a_part_reuploaded_replaces_the_earlier_one(uploads: Any) -> None:
    upload_id = uploads.start(KEY, "image/png")
    put_part(uploads, upload_id, 1, b"old")
    etag = put_part(uploads, upload_id, 1, b"newer")
    assert uploads.parts(KEY, upload_id) == [UploadedPart(1, etag, 5)]


def test_completing_with_a_part_not_held_is_invalid_and_aborting_ends_the_upload(uploads: Any) -> None:
    upload_id = uploads.start(KEY, "image/png")
    put_part(uploads, upload_id, 1, b"bytes")
    with pytest.raises(InvalidPart):
        uploads.complete(KEY, upload_id, [UploadedPart(1, "0" * 32, 5)])
    uploads.abort(KEY, upload_id)
    uploads.abort(KEY, upload_id)  # already gone: not an error
    with pytest.raises(NoSuchUpload):
        uploads.parts(KEY, upload_id)
    with pytest.raises(NoSuchUpload):
        uploads.parts(KEY, "never-started")


def test_s3_signs_the_part_length_only_when_given(aws: Any) -> None:
    with pytest.raises(ValueError, match="s3v4"):  # boto3's default presigns with SigV2
        S3Uploads(aws.s3, ENV["INPUT_BUCKET"]).presign_part(KEY, "u", 1, 123, 60)
    uploads = S3Uploads(boto3.client("s3", config=Config(signature_version="s3v4")), ENV["INPUT_BUCKET"])
    upload_id = uploads.start(KEY, "image/png")
    assert "X-Amz-SignedHeaders=content-length%3Bhost" in uploads.presign_part(KEY, upload_id, 1, 123, 60)
    assert "X-Amz-SignedHeaders=host" in uploads.presign_part(KEY, upload_id, 1, None, 60)
