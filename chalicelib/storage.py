"""S3: read originals, write and delete outputs, presign downloads. Takes a boto3 S3 client."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from botocore.exceptions import ClientError

_GONE = {"NoSuchKey", "404", "NotFound", "PreconditionFailed", "412"}


class ObjectStore:
    """Outputs are written encrypted (SSE-S3 by default, SSE-KMS when a key is given) and tagged."""

    def __init__(
        self, s3: Any, output_bucket: str, cache_control: str, sse: str = "AES256", kms_key_id: str | None = None
    ) -> None:
        self._s3 = s3
        self._output_bucket = output_bucket
        self._cache_control = cache_control
        self._encryption: dict[str, str] = {"ServerSideEncryption": sse}
        if sse == "aws:kms" and kms_key_id:
            self._encryption["SSEKMSKeyId"] = kms_key_id

    @property
    def output_bucket(self) -> str:
        return self._output_bucket

    def fetch_original(self, bucket: str, key: str, etag: str | None) -> bytes | None:
        """The uploaded bytes, or None if the object is gone or was overwritten after this event.

        If-Match on the event's ETag makes a stale event (for an object since replaced) a no-op.
        """
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if etag:
            kwargs["IfMatch"] = etag if etag.startswith('"') else f'"{etag}"'
        try:
            response = self._s3.get_object(**kwargs)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _GONE:
                return None
            raise
        return bytes(response["Body"].read())

    def put_output(self, key: str, data: bytes, content_type: str, tags: dict[str, str]) -> None:
        self._s3.put_object(
            Bucket=self._output_bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            CacheControl=self._cache_control,
            Tagging=urlencode(tags),
            **self._encryption,
        )

    def copy_output(self, source_key: str, key: str, tags: dict[str, str]) -> None:
        """Server-side copy of an existing output (dedupe): no bytes pass through Lambda."""
        self._s3.copy_object(
            Bucket=self._output_bucket,
            Key=key,
            CopySource={"Bucket": self._output_bucket, "Key": source_key},
            MetadataDirective="COPY",
            TaggingDirective="REPLACE",
            Tagging=urlencode(tags),
            **self._encryption,
        )

    def delete_objects(self, bucket: str, keys: list[str]) -> None:
        if keys:
            self._s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return keys

    def presign_get(self, bucket: str, key: str, ttl_seconds: int) -> str:
        return str(
            self._s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=ttl_seconds)
        )
