"""chalicelib/logs.py: every line one JSON object naming its stage, function and request; and what
must never be in one: a caller's token, a presigned URL's signature, an owner as it is."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from chalice.test import Client

from chalicelib import logs
from tests import images
from tests.conftest import Aws
from tests.loglines import captured, parsed
from tests.test_handler import deliver

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2VjcmV0LXNpZ25hdHVyZQ"


@pytest.fixture
def sink() -> Iterator[io.StringIO]:
    with captured("DEBUG") as lines:
        yield lines


def test_a_line_is_one_json_object_with_where_it_comes_from_and_its_exception(sink: io.StringIO) -> None:
    logs.begin("sweep", "request-7")
    try:
        raise ValueError("two\nlines")
    except ValueError:
        logging.getLogger("imgpress.pipeline").exception("could not release %s", "abc")
    logs.outcome("claimed", "f" * 32, attempt=2)
    (failure, claimed) = parsed(sink)
    assert (failure["level"], failure["function"], failure["request_id"]) == ("ERROR", "sweep", "request-7")
    assert failure["message"] == "could not release abc" and "ValueError: two\nlines" in failure["exception"]
    assert claimed["outcome"] == "claimed" and claimed["image_id"] == "f" * 32 and claimed["attempt"] == 2
    assert claimed["stage"] == "local" and claimed["timestamp"].endswith("Z")


def test_a_request_with_a_token_and_a_view_with_presigned_urls_log_neither(
    client: Client, aws: Aws, sink: io.StringIO
) -> None:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    body = json.dumps({"content_type": "image/jpeg", "filename": "alice.jpg"}).encode()
    slot = json.loads(client.http.post("/uploads", headers=headers, body=body).body)
    deliver(client, aws, slot["id"], images.jpeg(320, 240))
    view = json.loads(client.http.get(f"/images/{slot['id']}", headers=headers).body)
    assert view["status"] == "done"
    secrets = {TOKEN, slot["upload"]["fields"]["policy"], slot["upload"]["fields"]["x-amz-signature"]}
    for output in view["outputs"].values():
        secrets.update(parse_qs(urlsplit(output["url"]).query)["X-Amz-Signature"])
    text = sink.getvalue()
    lines = parsed(sink)
    assert {"slot_opened", "claimed", "done", "notified"} <= {line.get("outcome") for line in lines}
    assert all(secret not in text for secret in secrets)
    assert "Signature" not in text and "anonymous" not in text  # the owner is a hash in every line
