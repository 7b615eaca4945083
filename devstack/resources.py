"""Create imgpress's buckets, table and topic in whatever AWS endpoint boto3 points at.

Used by the local stack (moto's server) and by the tests (moto in-process). The table
is the one infra/resources.json defines.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3

RESOURCES_TEMPLATE = Path(__file__).resolve().parent.parent / "infra" / "resources.json"


def table_definition() -> dict[str, Any]:
    """The images table exactly as infra/resources.json defines it (keys, indexes, projections)."""
    template = json.loads(RESOURCES_TEMPLATE.read_text())
    properties = template["Resources"]["ImagesTable"]["Properties"]
    return {
        "KeySchema": properties["KeySchema"],
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "GlobalSecondaryIndexes": properties["GlobalSecondaryIndexes"],
        "BillingMode": properties["BillingMode"],
    }


def create_resources(env: Mapping[str, str]) -> None:
    """Idempotent-enough for a fresh stand-in: creates what the settings in `env` name."""
    s3 = boto3.client("s3")
    for bucket in {env["INPUT_BUCKET"], env["OUTPUT_BUCKET"]}:
        s3.create_bucket(Bucket=bucket)
    boto3.client("dynamodb").create_table(TableName=env["TABLE_NAME"], **table_definition())
    topic_name = env["TOPIC_ARN"].rsplit(":", 1)[-1]
    arn = boto3.client("sns").create_topic(Name=topic_name)["TopicArn"]
    if arn != env["TOPIC_ARN"]:
        raise RuntimeError(f"TOPIC_ARN {env['TOPIC_ARN']} does not match the created topic {arn}")


def queue_arn(sqs: Any, queue_url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


def wire_upload_events(env: Mapping[str, str], queue_name: str) -> str:
    """S3 ObjectCreated under the upload prefix -> an SQS queue (as a Lambda trigger would). Returns its URL."""
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=queue_name, Attributes={"VisibilityTimeout": "5"})["QueueUrl"]
    boto3.client("s3").put_bucket_notification_configuration(
        Bucket=env["INPUT_BUCKET"],
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": queue_arn(sqs, url),
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {
                        "Key": {"FilterRules": [{"Name": "prefix", "Value": env.get("UPLOAD_PREFIX", "uploads/")}]}
                    },
                }
            ]
        },
    )
    return str(url)


def subscribe_queue(env: Mapping[str, str], queue_name: str) -> str:
    """An SQS queue subscribed to the topic, so notifications can be read locally. Returns its URL."""
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    boto3.client("sns").subscribe(
        TopicArn=env["TOPIC_ARN"],
        Protocol="sqs",
        Endpoint=queue_arn(sqs, url),
        Attributes={"RawMessageDelivery": "true"},
    )
    return str(url)


def allow_public_reads(env: Mapping[str, str]) -> None:
    """Stable-URL mode locally: anyone may GET outputs, as they may through a CDN in front of S3."""
    bucket, prefix = env["OUTPUT_BUCKET"], env.get("OUTPUT_PREFIX", "processed/")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PublicOutputs",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/{prefix}*",
            }
        ],
    }
    boto3.client("s3").put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
