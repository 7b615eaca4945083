"""Shared fixtures: moto-backed AWS resources built once per test, and the Chalice test client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from chalice.test import Client
from moto import mock_aws

from chalicelib import services
from devstack.stack import stage_environment
from tests.live_stack import StackClient, running_stack

# The `local` stage of .chalice/config.json: chalice.test.Client applies a stage's env too.
ENV = stage_environment("local")
STAGE = "local"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def use_fake_account(monkeypatch: pytest.MonkeyPatch, env: dict[str, str] | None = None) -> None:
    """Point boto3 at moto's fake account (with `env` set too), never at a real one or a profile."""
    for name, value in {**(env or {}), **FAKE_CREDENTIALS}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)


@dataclass
class Aws:
    """Handles on the mocked account, for arranging and asserting."""

    s3: Any
    sqs: Any
    table: Any
    notifications_queue: str
    calls: dict[str, int] = field(default_factory=dict)

    def notifications(self) -> list[dict[str, Any]]:
        """Drain and return the SNS messages published so far."""
        messages: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.notifications_queue, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not batch:
                return messages
            for message in batch:
                messages.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.notifications_queue, ReceiptHandle=message["ReceiptHandle"])

    def output_keys(self) -> list[str]:
        listing = self.s3.list_objects_v2(Bucket=ENV["OUTPUT_BUCKET"])
        return sorted(obj["Key"] for obj in listing.get("Contents", []))

    def upload(self, key: str, data: bytes, content_type: str = "image/jpeg") -> dict[str, Any]:
        """Put an object as the presigned POST would; returns what an S3 event would carry."""
        etag = self.s3.put_object(Bucket=ENV["INPUT_BUCKET"], Key=key, Body=data, ContentType=content_type)["ETag"]
        return {"etag": etag.strip('"'), "size": len(data)}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    use_fake_account(monkeypatch, ENV)
    with mock_aws():
        from devstack.resources import create_resources, subscribe_queue

        create_resources(ENV)
        queue = subscribe_queue(ENV, "imgpress-test-notifications")
        services.reset()
        yield Aws(
            s3=boto3.client("s3"),
            sqs=boto3.client("sqs"),
            table=boto3.resource("dynamodb").Table(ENV["TABLE_NAME"]),
            notifications_queue=queue,
        )
    services.reset()


@pytest.fixture(scope="module")
def stack() -> Iterator[StackClient]:
    """The local stack as `make run` starts it, shared by a module's tests (e2e tier)."""
    with running_stack() as live:
        yield StackClient(live.api, live.aws)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium under Playwright, one per module (tests/browser.py says why not `playwright install`)."""
    from tests.browser import chromium

    with chromium() as launched:
        yield launched


@pytest.fixture
def client(aws: Aws) -> Iterator[Client]:
    """Chalice's test client; every answer it gets is checked against the OpenAPI document."""
    from app import app

    with Client(app, stage_name=STAGE) as test_client:
        conform_to_openapi(test_client)
        yield test_client


def conform_to_openapi(test_client: Client) -> None:
    """Check each answer (preflights aside) with tests/openapi.py before the test sees it."""
    from tests.openapi import check_response

    http = test_client.http
    send = http.request

    def checked(method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> Any:
        response = send(method, path, headers=headers, body=body)
        if method != "OPTIONS":
            check_response(method, path, response.status_code, response.headers, response.body)
        return response

    http.request = checked  # type: ignore[method-assign]


def count_calls(client: Any, operation: str, counter: dict[str, int]) -> None:
    """Count real boto3 calls (e.g. PutObject) made through `client`."""
    service = client.meta.service_model.service_name

    def bump(**_: Any) -> None:
        counter[operation] = counter.get(operation, 0) + 1

    client.meta.events.register(f"before-call.{service}.{operation}", bump)


def invoke(_client: Client, function: str, event: dict[str, Any], timeout_seconds: int = 60) -> Any:
    """Invoke a Lambda handler as Lambda does, with a context whose remaining time counts down from
    the stage's timeout (chalice's test client always gives 3 s, Lambda's default, not the stage's)."""
    from chalice.local import LambdaContext

    from app import app

    handler = app.handler_map[function]
    return handler(event, LambdaContext(function, memory_size=1769, max_runtime_ms=timeout_seconds * 1000))


TIERS = ("unit", "integration", "e2e", "reference", "slow")
_MOTO_FIXTURES = {"aws", "client"}
_AWS_ADAPTERS = {"dynamodb", "s3", "sns", "sqs"}  # the adapter side of tests/contract/


# The longest modules (docs/testing.md names them), run first: `make test` hands whole modules to
# pytest-xdist's workers in this order (--dist loadfile --no-loadscope-reorder), so the long poles
# start at once and the short modules fill in around them.
LONG_POLES = (
    "tests/test_schemathesis_e2e.py",
    "tests/infra/test_policy.py",
    "tests/test_guarantees_e2e.py",
    "tests/test_uppy_e2e.py",
    "tests/test_docs_samples_e2e.py",
    "tests/test_backfill_e2e.py",
    "tests/test_browser.py",
    "tests/contract/test_record_store.py",
    "tests/infra/test_package.py",
    "tests/test_static_checks.py",
    "tests/test_load.py",
)
# Then the other modules by tier, the slower tiers first.
_TIER_ORDER = ("slow", "reference", "e2e", "integration", "unit")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give every test exactly one tier: its module's mark, else integration if it uses moto, else unit.
    Then order modules longest first (a module's own order is kept)."""
    for item in items:
        if any(item.get_closest_marker(tier) for tier in TIERS):
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        uses_moto = _MOTO_FIXTURES & set(item.fixturenames) or _AWS_ADAPTERS & set(map(str, params.values()))
        item.add_marker(pytest.mark.integration if uses_moto else pytest.mark.unit)
    slowest_tier: dict[str, int] = {}
    for item in items:
        module = item.nodeid.split("::")[0]
        tier = min(_TIER_ORDER.index(t) for t in TIERS if item.get_closest_marker(t))
        slowest_tier[module] = min(slowest_tier.get(module, len(_TIER_ORDER)), tier)

    def cost_rank(item: pytest.Item) -> tuple[int, int]:
        module = item.nodeid.split("::")[0]
        pole = LONG_POLES.index(module) if module in LONG_POLES else len(LONG_POLES)
        return pole, slowest_tier[module]

    items.sort(key=cost_rank)  # stable: modules stay whole, in their own order
