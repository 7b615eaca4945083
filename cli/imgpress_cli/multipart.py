"""A multipart/form-data body streamed from disk, so uploads of any size show real progress.

S3's POST upload needs a Content-Length (no chunked encoding), so the body knows its length
up front: the form fields first, the file part last, exactly as a browser's FormData sends it.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

ProgressCallback = Callable[[int, int], None]


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")


class MultipartFile:
    """A read()-able body for requests: `requests.post(url, data=body, headers={"Content-Type": body.content_type})`.

    `on_progress(sent, total)` is called after every chunk the HTTP library reads.
    """

    def __init__(
        self, fields: Mapping[str, str], path: Path, content_type: str, on_progress: ProgressCallback | None = None
    ) -> None:
        self._boundary = f"imgpress-{uuid.uuid4().hex}"
        head = io.BytesIO()
        for name, value in fields.items():
            head.write(f'--{self._boundary}\r\nContent-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'.encode())
            head.write(str(value).encode() + b"\r\n")
        head.write(
            f'--{self._boundary}\r\nContent-Disposition: form-data; name="file"; filename="{_quote(path.name)}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n".encode()
        )
        tail = f"\r\n--{self._boundary}--\r\n".encode()
        self._file: BinaryIO = path.open("rb")
        self._parts: list[BinaryIO] = [io.BytesIO(head.getvalue()), self._file, io.BytesIO(tail)]
        self._length = len(head.getvalue()) + path.stat().st_size + len(tail)
        self._sent = 0
        self._on_progress = on_progress

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self._boundary}"

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        chunks: list[bytes] = []
        wanted = self._length if size is None or size < 0 else size
        while self._parts and wanted > 0:
            chunk = self._parts[0].read(wanted)
            if not chunk:
                self._parts.pop(0)
                continue
            chunks.append(chunk)
            wanted -= len(chunk)
        data = b"".join(chunks)
        self._sent += len(data)
        if self._on_progress is not None and data:
            self._on_progress(self._sent, self._length)
        return data

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> MultipartFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
