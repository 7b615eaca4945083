"""ReportBatchItemFailures, which Chalice leaves off its SQS mappings: turned on by `infra attach`
(moto's Lambda), written into the Terraform `make package` produces."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra import eventsources
from tests.conftest import use_fake_account

pytestmark = pytest.mark.integration

FUNCTION = "imgpress-dev-reprocess_images"


@pytest.fixture
def aws_lambda(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    """A function with an SQS mapping as `chalice deploy` creates it (no FunctionResponseTypes)."""
    use_fake_account(monkeypatch)
    with mock_aws():
        role = boto3.client("iam").create_role(RoleName="imgpress-dev", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as bundle:
            bundle.writestr("app.py", "def handler(event, context):\n    return None\n")
        client = boto3.client("lambda")
        for name in (FUNCTION, "imgpress-dev-sweep"):
            client.create_function(
                FunctionName=name,
                Runtime="python3.11",
                Role=role,
                Handler="app.handler",
                Code={"ZipFile": code.getvalue()},
            )
        sqs = boto3.client("sqs")
        url = sqs.create_queue(QueueName="imgpress-dev-reprocess")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        mapping = client.create_event_source_mapping(
            EventSourceArn=arn, FunctionName=FUNCTION, BatchSize=5, ScalingConfig={"MaximumConcurrency": 20}
        )
        assert "ReportBatchItemFailures" not in (mapping.get("FunctionResponseTypes") or [])
        yield client, str(mapping["UUID"])


def test_attach_turns_it_on_once_and_keeps_the_concurrency_bound(aws_lambda: tuple[Any, str]) -> None:
    client, uuid = aws_lambda
    assert eventsources.report_batch_item_failures(client, [FUNCTION, "imgpress-dev-sweep"]) == [uuid]
    mapping = client.get_event_source_mapping(UUID=uuid)
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 20} and mapping["BatchSize"] == 5
    assert eventsources.report_batch_item_failures(client, [FUNCTION]) == []  # already on: no call


def test_the_terraform_mapping_of_each_partial_batch_consumer_gets_it() -> None:
    document = {
        "resource": {
            "aws_lambda_function": {"reprocess_images": {}, "end_abandoned_uploads": {}},
            "aws_lambda_event_source_mapping": {
                "reprocess_images-sqs-event-source": {
                    "function_name": "${aws_lambda_function.reprocess_images.arn}",
                    "batch_size": 5,
                    "scaling_config": {"maximum_concurrency": 20},
                },
                "end_abandoned_uploads-sqs-event-source": {
                    "function_name": "${aws_lambda_function.end_abandoned_uploads.arn}",
                    "batch_size": 1,
                },
            },
        }
    }
    patched = eventsources.patch_terraform(document)
    mappings = patched["resource"]["aws_lambda_event_source_mapping"]
    assert mappings["reprocess_images-sqs-event-source"]["function_response_types"] == ["ReportBatchItemFailures"]
    assert mappings["reprocess_images-sqs-event-source"]["scaling_config"] == {"maximum_concurrency": 20}
    assert "function_response_types" not in mappings["end_abandoned_uploads-sqs-event-source"]
    assert (
        "function_response_types"
        not in document["resource"]["aws_lambda_event_source_mapping"]["reprocess_images-sqs-event-source"]
    )  # the input is left as it was


def test_every_sqs_consumer_that_takes_batches_is_listed() -> None:
    """A consumer given more than one message per batch must report partial failures (and be listed here)."""
    from chalice.app import SQSEventConfig

    from app import app

    batched = {s.name for s in app.event_sources if isinstance(s, SQSEventConfig) and s.batch_size > 1}
    assert batched == set(eventsources.PARTIAL_BATCH_CONSUMERS)
