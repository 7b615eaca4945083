"""GET / serves the upload page itself: one HTML file, no build step, nothing fetched from elsewhere."""

from __future__ import annotations

import re

from chalice.test import Client

from chalicelib import webpage


def test_root_serves_the_upload_page_as_html(client: Client) -> None:
    response = client.http.get("/")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.body.decode() == (webpage.STATIC / "index.html").read_text(encoding="utf-8")


def test_the_page_is_self_contained() -> None:
    """No script, stylesheet or font from another host: it must work offline against `make run`."""
    html = webpage.upload_page()
    assert re.findall(r'(?:src|href)="(?:https?:)?//', html) == []
    assert "<script>" in html and "XMLHttpRequest" in html and 'type="file" multiple' in html
