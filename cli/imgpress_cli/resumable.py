"""Large files go up as S3 multipart uploads through the API's /s3/multipart routes, resumably.

The upload's id, key and the ETag of every part S3 confirmed are kept in a small JSON file
under ~/.cache/imgpress/uploads/ (or $XDG_CACHE_HOME/imgpress/uploads/), named after the API and
the file (path, size, modification time). Running `imgpress upload` again on the same file
asks the API which parts S3 holds and sends only the others; a file that changed, or an
upload the API no longer knows (completed, aborted, expired), starts over.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import requests

from imgpress_cli.api import ApiError, ImgpressApi

ProgressCallback = Callable[[int, int], None]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "imgpress" / "uploads"


@dataclass
class UploadState:
    """What a re-run needs to resume: the upload, and the parts S3 confirmed (number -> ETag)."""

    api: str
    path: str
    size: int
    mtime_ns: int
    image_id: str
    key: str
    upload_id: str
    part_bytes: int
    parts: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def file_for(api: str, path: Path) -> Path:
        stat = path.stat()
        identity = json.dumps([api, str(path.resolve()), stat.st_size, stat.st_mtime_ns])
        return cache_dir() / f"{hashlib.sha256(identity.encode()).hexdigest()[:32]}.json"

    @classmethod
    def load(cls, api: str, path: Path) -> UploadState | None:
        try:
            return cls(**json.loads(cls.file_for(api, path).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def save(self, path: Path) -> None:
        target = self.file_for(self.api, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self)))
        temporary.replace(target)  # a crash mid-write never leaves a half file

    def forget(self, path: Path) -> None:
        self.file_for(self.api, path).unlink(missing_ok=True)


def upload_in_parts(
    api: ImgpressApi,
    path: Path,
    content_type: str,
    profile: str | None = None,
    on_progress: ProgressCallback | None = None,
) -> str:
    """Send `path` (resuming an earlier run's upload if there is one) and complete it; returns the image id."""
    size = path.stat().st_size
    state = _resume(api, path)
    if state is None:
        started = api.start_multipart(path.name, content_type, size, profile)
        stat = path.stat()
        state = UploadState(
            api.base_url,
            str(path.resolve()),
            size,
            stat.st_mtime_ns,
            started["id"],
            started["key"],
            started["uploadId"],
            int(started["part_bytes"]),
        )
        state.save(path)
    count = max(1, -(-size // state.part_bytes))
    done = sum(_part_size(size, state.part_bytes, int(n)) for n in state.parts)
    if on_progress is not None:
        on_progress(done, size)
    with path.open("rb") as source:
        for number in range(1, count + 1):
            if str(number) in state.parts:
                continue
            source.seek((number - 1) * state.part_bytes)
            data = source.read(state.part_bytes)
            state.parts[str(number)] = _put_part(api, state, number, data)
            state.save(path)
            done += len(data)
            if on_progress is not None:
                on_progress(done, size)
    parts = [{"PartNumber": int(n), "ETag": etag} for n, etag in sorted(state.parts.items(), key=lambda p: int(p[0]))]
    api.complete_multipart(state.upload_id, state.key, parts)
    state.forget(path)
    return state.image_id


def _resume(api: ImgpressApi, path: Path) -> UploadState | None:
    """An earlier run's upload of this very file, with the parts S3 really holds; None to start over."""
    state = UploadState.load(api.base_url, path)
    if state is None:
        return None
    try:
        held = api.list_parts(state.upload_id, state.key)
    except ApiError as error:
        if error.code in ("not_found", "gone", "upload_expired"):
            state.forget(path)
            return None
        raise
    sizes = {str(part["PartNumber"]): (part["ETag"].strip('"'), int(part["Size"])) for part in held}
    state.parts = {
        n: etag
        for n, etag in state.parts.items()
        if sizes.get(n) == (etag.strip('"'), _part_size(state.size, state.part_bytes, int(n)))
    }
    return state


def _part_size(size: int, part_bytes: int, number: int) -> int:
    return max(0, min(part_bytes, size - (number - 1) * part_bytes))


def _put_part(api: ImgpressApi, state: UploadState, number: int, data: bytes) -> str:
    signed = api.sign_part(state.upload_id, number, state.key)
    try:
        response = requests.put(signed["url"], data=data, headers=signed.get("headers") or {}, timeout=120)
    except requests.RequestException as exc:
        raise ApiError("upload_failed", f"part {number}: cannot reach the upload URL ({exc})") from exc
    etag = response.headers.get("ETag")
    if response.status_code != 200 or not etag:
        raise ApiError("upload_rejected", f"S3 refused part {number} ({response.status_code}): {response.text[:200]}")
    return str(etag).strip('"')
