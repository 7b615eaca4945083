"""The imgpress HTTP API as a client uses it: JSON calls, the presigned S3 upload, polling."""

from __future__ import annotations

import math
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from imgpress_cli.multipart import MultipartFile, ProgressCallback

FINAL_STATUSES = ("done", "failed")
MAX_WAIT_SECONDS = 25  # the API's limit for GET /images/<id>?wait=


class ApiError(Exception):
    """What went wrong, with the API's error code when it sent one (`not_found`, `unsupported_type`…)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class ImgpressApi:
    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._http = requests.Session()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        url = f"{self.base_url}{path}"
        try:
            response = self._http.request(method, url, timeout=self._timeout, **kwargs)
        except requests.RequestException as exc:
            raise ApiError("unreachable", f"cannot reach the imgpress API at {self.base_url} ({exc})") from exc
        if response.status_code >= 400:
            raise _api_error(response)
        return response.json() if response.content else None

    def create_upload(self, filename: str, content_type: str, size: int, profile: str | None = None) -> dict[str, Any]:
        """POST /uploads: an image id and the presigned POST to send the file to."""
        body: dict[str, Any] = {"filename": filename, "content_type": content_type, "size": size}
        if profile is not None:
            body["profile"] = profile
        return dict(self._call("POST", "/uploads", json=body))

    def send_file(
        self, upload: dict[str, Any], path: Path, content_type: str, on_progress: ProgressCallback | None = None
    ) -> None:
        """Upload straight to S3 with the presigned POST: its fields first, the file last."""
        with MultipartFile(upload["fields"], path, content_type, on_progress) as body:
            try:
                response = requests.post(
                    upload["url"], data=body, headers={"Content-Type": body.content_type}, timeout=self._timeout
                )
            except requests.RequestException as exc:
                raise ApiError("upload_failed", f"cannot reach the upload URL {upload['url']} ({exc})") from exc
        if response.status_code >= 300:
            raise ApiError(
                "upload_rejected", f"S3 refused the upload ({response.status_code}): {_s3_reason(response.text)}"
            )

    def start_multipart(
        self, filename: str, content_type: str, size: int, profile: str | None = None
    ) -> dict[str, Any]:
        """POST /s3/multipart: a slot and an S3 multipart upload into it (uploadId, key, part_bytes)."""
        body: dict[str, Any] = {"filename": filename, "type": content_type, "size": size}
        if profile is not None:
            body["profile"] = profile
        return dict(self._call("POST", "/s3/multipart", json=body))

    def sign_part(self, upload_id: str, number: int, key: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/s3/multipart/{quote(upload_id, safe='')}/{number}", params={"key": key}))

    def list_parts(self, upload_id: str, key: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/s3/multipart/{quote(upload_id, safe='')}", params={"key": key}))

    def complete_multipart(self, upload_id: str, key: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
        path = f"/s3/multipart/{quote(upload_id, safe='')}/complete"
        return dict(self._call("POST", path, params={"key": key}, json={"parts": parts}))

    def image(self, image_id: str, wait: int = 0) -> dict[str, Any]:
        """GET /images/<id>; with `wait`, the API answers as soon as the image is final (at most `wait` s)."""
        return dict(self._call("GET", f"/images/{image_id}", params={"wait": wait} if wait else None))

    def list_images(
        self, status: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        params = {key: value for key, value in (("status", status), ("limit", limit), ("cursor", cursor)) if value}
        return dict(self._call("GET", "/images", params=params))

    def delete(self, image_id: str) -> None:
        self._call("DELETE", f"/images/{image_id}")

    def reprocess(self, image_id: str, profile: str | None = None) -> dict[str, Any]:
        """POST /images/<id>/reprocess: render again from the original (202; the image stays as it is meanwhile)."""
        return dict(self._call("POST", f"/images/{image_id}/reprocess", json={"profile": profile} if profile else {}))

    def enqueue_backfill_page(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /backfills: one page of a backfill selected and queued."""
        return dict(self._call("POST", "/backfills", json=body))

    def backfill(self, backfill_id: str) -> dict[str, Any]:
        """GET /backfills/<id>: its counters and the reprocess queue's depth."""
        return dict(self._call("GET", f"/backfills/{backfill_id}"))

    def wait(
        self,
        image_id: str,
        timeout: float = 120.0,
        on_poll: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """GET /images/<id>?wait=N until it is done or failed: the API holds each request until the
        outcome (or N s), so there is no polling. ApiError(`timeout`) past `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            image = self.image(image_id, wait=max(1, min(MAX_WAIT_SECONDS, math.ceil(left))))
            if on_poll is not None:
                on_poll(image)
            if image["status"] in FINAL_STATUSES:
                return image
            if time.monotonic() >= deadline:
                raise ApiError("timeout", f"image {image_id} is still {image['status']} after {timeout:g}s")

    def wait_for_reprocess(self, image_id: str, request_id: str, timeout: float = 300.0) -> dict[str, Any]:
        """Poll until request `request_id` of the image ended: replaced (done) or failed."""
        deadline = time.monotonic() + timeout
        while True:
            image = self.image(image_id)
            request = image.get("reprocess")
            if request is None or request["id"] != request_id or request["status"] == "failed":
                return image
            if time.monotonic() >= deadline:
                raise ApiError("timeout", f"reprocess of {image_id} is still {request['status']} after {timeout:g}s")
            time.sleep(0.5)


def _api_error(response: requests.Response) -> ApiError:
    try:
        error = response.json()["error"]
        return ApiError(str(error["code"]), str(error["message"]))
    except (ValueError, KeyError, TypeError):
        return ApiError(f"http_{response.status_code}", response.text.strip()[:200] or response.reason)


def _s3_reason(body: str) -> str:
    """S3 answers errors in XML: `<Error><Code>EntityTooLarge</Code><Message>…</Message></Error>`."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return body.strip()[:200] or "no details"
    code, message = root.findtext("Code") or "", root.findtext("Message") or ""
    return f"{code} {message}".strip() or "no details"
