"""The streamed multipart body, parsed back by a real form parser (werkzeug's, which moto's server uses)."""

from __future__ import annotations

import io
from pathlib import Path

from werkzeug.formparser import parse_form_data

from imgpress_cli.multipart import MultipartFile
from tests import images


def parse(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, tuple[str, str, bytes]]]:
    environ = {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    _stream, form, files = parse_form_data(environ)
    return dict(form), {name: (f.filename or "", f.mimetype, f.read()) for name, f in files.items()}


def test_fields_first_file_last_with_the_exact_length(tmp_path: Path) -> None:
    data = images.jpeg(800, 600)
    path = tmp_path / 'odd "name".jpg'
    path.write_bytes(data)
    fields = {"key": "uploads/abc", "Content-Type": "image/jpeg", "policy": "eyJ4Ijo…", "x-amz-signature": "f00d"}
    with MultipartFile(fields, path, "image/jpeg") as body:
        sent = body.read()
        assert len(sent) == len(body) and body.read() == b""
    form, files = parse(sent, body.content_type)
    assert form == fields
    assert files == {"file": ('odd "name".jpg', "image/jpeg", data)}
    assert sent.index(b'name="x-amz-signature"') < sent.index(b'name="file"')


def test_progress_is_reported_per_chunk_up_to_the_total(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(images.png(640, 480))
    seen: list[tuple[int, int]] = []
    with MultipartFile({"key": "k"}, path, "image/png", lambda done, total: seen.append((done, total))) as body:
        while body.read(8192):
            pass
    assert len(seen) > 10
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert seen[-1] == (len(body), len(body))
