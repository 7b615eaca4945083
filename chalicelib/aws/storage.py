"""S3: read originals, write, copy and delete outputs, presign downloads. Takes a boto3 S3 client."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from chalicelib.errors import StorageError
from chalicelib.ports import InvalidPart, NoSuchUpload, PresignedPost, StoredObject, UploadedPart

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.literals import ServerSideEncryptionType
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, CopyObjectRequestTypeDef, PutObjectRequestTypeDef

_GONE = {"NoSuchKey", "404", "NotFound"}
_DELETE_BATCH = 1000  # DeleteObjects takes at most this many keys


def _error_code(error: Exception) -> str:
    return str((getattr(error, "response", None) or {}).get("Error", {}).get("Code", ""))


class S3ObjectStore:
    """Outputs are written encrypted (SSE-S3 by default, SSE-KMS when a key is given) and tagged."""

    def __init__(
        self,
        s3: S3Client,
        output_bucket: str,
        cache_control: str,
        sse: ServerSideEncryptionType = "AES256",
        kms_key_id: str | None = None,
    ) -> None:
        self._s3 = s3
        self._output_bucket = output_bucket
        self._cache_control = cache_control
        self._sse = sse
        self._kms_key_id = kms_key_id if sse == "aws:kms" else None

    @property
    def output_bucket(self) -> str:
        return self._output_bucket

    def read_original(self, bucket: str, key: str, max_bytes: int) -> StoredObject | None:
        """One GET: the body is read only when ContentLength is within `max_bytes`."""
        from botocore.exceptions import ClientError

        try:
            response = self._s3.get_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if _error_code(error) in _GONE:
                return None
            raise
        body, size = response["Body"], int(response["ContentLength"])
        etag = str(response["ETag"]).strip('"')
        if size > max_bytes:
            body.close()
            return StoredObject(etag, size, None)
        return StoredObject(etag, size, bytes(body.read()))

    def head_original(self, bucket: str, key: str) -> StoredObject | None:
        from botocore.exceptions import ClientError

        try:
            response = self._s3.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if _error_code(error) in _GONE:
                return None
            raise
        return StoredObject(str(response["ETag"]).strip('"'), int(response["ContentLength"]), None)

    def redrive(self, bucket: str, key: str) -> None:
        """Copy the object onto itself: S3 emits ObjectCreated:Copy and the handler runs as usual.

        S3 refuses a copy onto itself that changes nothing, so the metadata is replaced (same
        Content-Type, plus a marker saying why the object was touched).
        """
        head = self._s3.head_object(Bucket=bucket, Key=key)
        self._s3.copy_object(
            Bucket=bucket,
            Key=key,
            CopySource={"Bucket": bucket, "Key": key},
            MetadataDirective="REPLACE",
            ContentType=head.get("ContentType", "application/octet-stream"),
            Metadata={**head.get("Metadata", {}), "imgpress-redrive": "1"},
        )

    def put_output(self, key: str, data: bytes, content_type: str, tags: dict[str, str]) -> None:
        request: PutObjectRequestTypeDef = {
            "Bucket": self._output_bucket,
            "Key": key,
            "Body": data,
            "ContentType": content_type,
            "CacheControl": self._cache_control,
            "Tagging": urlencode(tags),
            "ServerSideEncryption": self._sse,
        }
        if self._kms_key_id:
            request["SSEKMSKeyId"] = self._kms_key_id
        self._s3.put_object(**request)

    def copy_output(self, source_key: str, key: str, tags: dict[str, str]) -> None:
        """Server-side copy of an existing output (dedupe): no bytes pass through Lambda."""
        request: CopyObjectRequestTypeDef = {
            "Bucket": self._output_bucket,
            "Key": key,
            "CopySource": {"Bucket": self._output_bucket, "Key": source_key},
            "MetadataDirective": "COPY",
            "TaggingDirective": "REPLACE",
            "Tagging": urlencode(tags),
            "ServerSideEncryption": self._sse,
        }
        if self._kms_key_id:
            request["SSEKMSKeyId"] = self._kms_key_id
        self._s3.copy_object(**request)

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return keys

    def delete_keys(self, bucket: str, keys: Sequence[str]) -> None:
        """DeleteObjects answers 200 even when single keys fail: read its Errors, raise if any."""
        failed: list[str] = []
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            response = self._s3.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
            )
            failed.extend(f"{e.get('Key')} ({e.get('Code')})" for e in response.get("Errors", []))
        if failed:
            raise StorageError(f"{len(failed)} object(s) could not be deleted: {', '.join(failed[:5])}")

    def presign_get(self, bucket: str, key: str, ttl_seconds: int) -> str:
        return str(
            self._s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=ttl_seconds)
        )


class S3Uploads:
    """Uploads into the input bucket. The client (boto3, `signature_version="s3v4"`) signs part URLs
    with SigV4, the only signature S3 checks a signed Content-Length with."""

    def __init__(self, s3: S3Client, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket

    def presign_post(self, key: str, content_type: str, max_bytes: int, ttl_seconds: int) -> PresignedPost:
        presigned = self._s3.generate_presigned_post(
            Bucket=self._bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],
            ExpiresIn=ttl_seconds,
        )
        return PresignedPost(str(presigned["url"]), {str(k): str(v) for k, v in presigned["fields"].items()})

    def start(self, key: str, content_type: str) -> str:
        response = self._s3.create_multipart_upload(Bucket=self._bucket, Key=key, ContentType=content_type)
        return str(response["UploadId"])

    def presign_part(self, key: str, upload_id: str, number: int, size: int | None, ttl_seconds: int) -> str:
        params: dict[str, Any] = {"Bucket": self._bucket, "Key": key, "UploadId": upload_id, "PartNumber": number}
        if size is not None:
            params["ContentLength"] = size
        url = str(self._s3.generate_presigned_url("upload_part", Params=params, ExpiresIn=ttl_seconds))
        # boto3 presigns S3 with SigV2 unless the client asks for SigV4, and SigV2 cannot sign a length.
        if "X-Amz-Algorithm=AWS4-HMAC-SHA256" not in url:
            raise ValueError('S3Uploads needs an S3 client made with Config(signature_version="s3v4")')
        return url

    def parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        found: list[UploadedPart] = []
        with _multipart_errors():
            for page in self._s3.get_paginator("list_parts").paginate(Bucket=self._bucket, Key=key, UploadId=upload_id):
                found.extend(
                    UploadedPart(int(p["PartNumber"]), str(p["ETag"]).strip('"'), int(p["Size"]))
                    for p in page.get("Parts", [])
                )
        return sorted(found, key=lambda part: part.number)

    def complete(self, key: str, upload_id: str, parts: Sequence[UploadedPart]) -> str:
        listed: list[CompletedPartTypeDef] = [{"PartNumber": p.number, "ETag": f'"{p.etag}"'} for p in parts]
        with _multipart_errors():
            response = self._s3.complete_multipart_upload(
                Bucket=self._bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": listed}
            )
        return str(response.get("Location") or f"s3://{self._bucket}/{key}")

    def abort(self, key: str, upload_id: str) -> None:
        try:
            with _multipart_errors():
                self._s3.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)
        except NoSuchUpload:
            pass


@contextmanager
def _multipart_errors() -> Iterator[None]:
    """S3's answers that mean something to a client, as the port's exceptions; others as they are."""
    from botocore.exceptions import ClientError

    try:
        yield
    except ClientError as error:
        code = _error_code(error)
        if code == "NoSuchUpload":
            raise NoSuchUpload(str(error)) from error
        if code in ("InvalidPart", "InvalidPartOrder", "EntityTooSmall"):
            raise InvalidPart(f"{code}: {error}") from error
        raise
