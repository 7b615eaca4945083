"""The completion contract on the local stack: real SNS messages against the JSON Schema,
stable CDN-style URLs, dedupe, and a webhook subscribed to the topic."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from jsonschema import Draft202012Validator

from devstack.stack import free_port, stage_environment
from examples.sns_webhook import SignatureVerifier, fetch_from, make_server
from tests import images
from tests.live_stack import ROOT, StackClient, running_stack

pytestmark = pytest.mark.e2e

SCHEMA = json.loads((ROOT / "docs" / "schemas" / "image-event.schema.json").read_text())
TOPIC_ARN = stage_environment("local")["TOPIC_ARN"]


@pytest.fixture(scope="module")
def contract_stack() -> Iterator[StackClient]:
    with running_stack({"STABLE_URLS": "1", "DEDUPE": "true"}) as live:
        yield StackClient(live.api, live.aws)


def upload(live: StackClient, data: bytes, content_type: str) -> dict[str, Any]:
    return live.wait(live.upload(data, content_type, "x"))


def test_schema_is_valid_and_real_messages_match_it(contract_stack: StackClient) -> None:
    Draft202012Validator.check_schema(SCHEMA)
    photo = images.jpeg(1600, 1000)
    done = upload(contract_stack, photo, "image/jpeg")
    duplicate = upload(contract_stack, photo, "image/jpeg")
    mismatched = upload(contract_stack, images.png(300, 200), "image/jpeg")
    failed = upload(contract_stack, b"<html><script>alert(1)</script></html>", "image/png")
    assert duplicate["deduplicated_from"] == done["id"] and mismatched["type_mismatch"] is True
    assert failed["error"]["code"] == "unsupported_format"
    messages = {m["id"]: m for m in contract_stack.notifications()}
    assert set(messages) >= {done["id"], duplicate["id"], mismatched["id"], failed["id"]}
    validator = Draft202012Validator(SCHEMA)
    for message in messages.values():
        errors = [e.message for e in validator.iter_errors(message)]
        assert errors == [], (message, errors)
    assert messages[failed["id"]]["type"] == "image.failed" and messages[failed["id"]]["placeholders"] is None
    assert messages[done["id"]]["placeholders"]["dominant_color"].startswith("#")
    broken = {**messages[done["id"]], "error": {"code": "corrupt", "message": "x"}}  # done with an error: invalid
    assert list(validator.iter_errors(broken))


def test_stable_urls_are_the_same_on_every_request_and_cacheable_forever(contract_stack: StackClient) -> None:
    record = upload(contract_stack, images.jpeg(2400, 1600), "image/jpeg")
    again = requests.get(f"{contract_stack.api}/images/{record['id']}", timeout=10).json()
    for name, output in record["outputs"].items():
        assert output["url"] == again["outputs"][name]["url"]
        assert "X-Amz-Signature" not in output["url"] and output["url"].endswith(output["key"])
        fetched = requests.get(output["url"], timeout=10)
        assert fetched.status_code == 200 and fetched.headers["Content-Type"] == output["content_type"]
        assert fetched.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    srcset = record["markup"]["srcset"]["webp"]
    assert srcset == f"{record['outputs']['thumb']['url']} 320w, {record['outputs']['web']['url']} 2048w"


def test_a_webhook_subscribed_to_the_topic_gets_each_event_once(contract_stack: StackClient, tmp_path: Path) -> None:
    received: list[dict[str, Any]] = []
    port = free_port()
    endpoint = contract_stack.sqs.meta.endpoint_url
    # moto signs every message with its own certificate, which it serves at the SigningCertURL's path.
    verifier = SignatureVerifier(fetch_from(endpoint))
    server = make_server("127.0.0.1", port, TOPIC_ARN, received.append, verifier)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        sns = boto3.client(
            "sns",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="imgpress-local",
            aws_secret_access_key="imgpress-local",
        )
        sns.subscribe(TopicArn=TOPIC_ARN, Protocol="http", Endpoint=f"http://127.0.0.1:{port}/")
        record = upload(contract_stack, images.jpeg(800, 600), "image/jpeg")
        deadline = time.monotonic() + 20
        while not any(e["id"] == record["id"] for e in received) and time.monotonic() < deadline:
            time.sleep(0.2)
        mine = [e for e in received if e["id"] == record["id"]]
        assert len(mine) == 1 and mine[0]["status"] == "done"
        assert not list(Draft202012Validator(SCHEMA).iter_errors(mine[0]))
        assert verifier.verified >= 1 and verifier.refused == 0
    finally:
        server.shutdown()
