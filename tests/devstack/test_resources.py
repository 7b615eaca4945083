"""The queues a resources template defines, created in moto for the local stage."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devstack.functions import ROOT
from devstack.resources import create_queues, missing_queues
from devstack.stack import stage_environment
from tests.conftest import use_fake_account

pytestmark = pytest.mark.integration

SAMPLE_TEMPLATE = Path(__file__).parent / "resources.json"


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    use_fake_account(monkeypatch)
    with mock_aws():
        yield boto3.client("sqs")


def attributes(sqs: Any, name: str) -> dict[str, str]:
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    return dict(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"])


def test_the_stages_queues_are_the_ones_infra_defines(sqs: Any) -> None:
    assert sorted(create_queues(ROOT / "infra" / "resources.json", "local", "123456789012", "us-east-1")) == [
        "imgpress-local-reprocess",
        "imgpress-local-reprocess-dead-letters",
        "imgpress-local-upload-failures",
    ]
    assert attributes(sqs, "imgpress-local-upload-failures")["MessageRetentionPeriod"] == "1209600"
    redrive = json.loads(attributes(sqs, "imgpress-local-reprocess")["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(":imgpress-local-reprocess-dead-letters")
    assert int(redrive["maxReceiveCount"]) > int(stage_environment("local").get("REPROCESS_MAX_ATTEMPTS", "3"))
    assert missing_queues({"UPLOAD_FAILURE_QUEUE": "imgpress-local-upload-failures", "TABLE_NAME": "x"}) == []
    assert missing_queues({"BACKFILL_QUEUE": "imgpress-local-backfill"}) == ["BACKFILL_QUEUE=imgpress-local-backfill"]


def test_a_redrive_policy_points_at_its_dead_letter_queue(sqs: Any) -> None:
    names = create_queues(SAMPLE_TEMPLATE, "local", "123456789012", "us-east-1")
    assert names.index("sample-local-batch-dlq") < names.index("sample-local-batch")
    batch = attributes(sqs, "sample-local-batch")
    assert batch["VisibilityTimeout"] == "2"
    assert json.loads(batch["RedrivePolicy"]) == {
        "deadLetterTargetArn": "arn:aws:sqs:us-east-1:123456789012:sample-local-batch-dlq",
        "maxReceiveCount": 2,
    }


@pytest.mark.parametrize(
    "properties, complaint",
    [
        ({"QueueName": {"Fn::Join": ["-", ["a", "b"]]}}, "cannot resolve"),
        ({"QueueName": {"Fn::Sub": "q-${Unknown}"}}, "cannot resolve ${Unknown}"),
        ({"QueueName": "q", "FifoThroughputLimit": "perQueue"}, "ignores: ['FifoThroughputLimit']"),
    ],
)
def test_what_the_local_stack_cannot_mirror_fails_naming_the_queue(
    sqs: Any, tmp_path: Path, properties: dict[str, Any], complaint: str
) -> None:
    template = tmp_path / "template.json"
    template.write_text(json.dumps({"Resources": {"Odd": {"Type": "AWS::SQS::Queue", "Properties": properties}}}))
    with pytest.raises(ValueError, match="Odd") as raised:
        create_queues(template, "local", "123456789012", "us-east-1")
    assert complaint in str(raised.value)
