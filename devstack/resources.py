"""Create imgpress's buckets, table and topic in whatever AWS endpoint boto3 points at.

Used by the local stack (moto's server) and by the tests (moto in-process). The table
is the one infra/resources.json defines, and so are the SQS queues.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
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


@dataclass(frozen=True)
class QueueNotification:
    """S3 events of a bucket, filtered by key, sent to an SQS queue (what a Lambda trigger would receive)."""

    queue_name: str
    events: list[str]
    prefix: str | None = None
    suffix: str | None = None


def notify_queues(bucket: str, notifications: list[QueueNotification]) -> dict[str, str]:
    """Creates each queue and points the bucket's notifications at them (replacing any). Returns name -> URL."""
    sqs = boto3.client("sqs")
    urls: dict[str, str] = {}
    configurations = []
    for notification in notifications:
        url = urls[notification.queue_name] = str(sqs.create_queue(QueueName=notification.queue_name)["QueueUrl"])
        rules = [{"Name": "prefix", "Value": notification.prefix}] if notification.prefix else []
        rules += [{"Name": "suffix", "Value": notification.suffix}] if notification.suffix else []
        configuration: dict[str, Any] = {"QueueArn": queue_arn(sqs, url), "Events": notification.events}
        if rules:
            configuration["Filter"] = {"Key": {"FilterRules": rules}}
        configurations.append(configuration)
    boto3.client("s3").put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"QueueConfigurations": configurations}
    )
    return urls


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


def allow_browser_uploads(env: Mapping[str, str], origins: str, template: Path = RESOURCES_TEMPLATE) -> None:
    """The input bucket's CORS rule exactly as infra/resources.json gives it, for `origins`
    (CORS_ALLOW_ORIGINS): browsers may POST forms and PUT multipart parts, and read the ETag."""
    properties = json.loads(template.read_text())["Resources"]["InputBucket"]["Properties"]
    rules = properties["CorsConfiguration"]["Fn::If"][1]["CorsRules"]
    allowed = [origin.strip() for origin in origins.split(",") if origin.strip()]
    local_rules = [
        {
            "AllowedMethods": rule["AllowedMethods"],
            "AllowedOrigins": allowed,
            "AllowedHeaders": rule["AllowedHeaders"],
            "ExposeHeaders": rule["ExposedHeaders"],
            "MaxAgeSeconds": rule["MaxAge"],
        }
        for rule in rules
    ]
    boto3.client("s3").put_bucket_cors(Bucket=env["INPUT_BUCKET"], CORSConfiguration={"CORSRules": local_rules})


# The queue properties a local queue takes from the template; encryption and tags mean nothing to moto.
QUEUE_ATTRIBUTES = (
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds",
    "MaximumMessageSize",
    "FifoQueue",
    "ContentBasedDeduplication",
)
QUEUE_PROPERTIES_IGNORED = {"QueueName", "RedrivePolicy", "SqsManagedSseEnabled", "KmsMasterKeyId", "Tags"}


def create_queues(template_path: Path, stage: str, account: str, region: str) -> list[str]:
    """The SQS queues a CloudFormation template defines (infra/resources.json), created for `stage`.

    Dead-letter queues first, so each RedrivePolicy can name its target. Only the template's plain
    forms are understood (literals, Ref to a parameter default, Fn::Sub, Fn::GetAtt of a queue's Arn);
    anything else fails loudly, naming the queue, rather than creating something different from AWS.
    """
    template = json.loads(template_path.read_text())
    queues = {
        rid: body.get("Properties", {})
        for rid, body in template["Resources"].items()
        if body["Type"] == "AWS::SQS::Queue"
    }
    resolve = _Resolver(template, stage, account, region)
    sqs = boto3.client("sqs")
    arns: dict[str, str] = {}
    names: list[str] = []
    while pending := [rid for rid in queues if rid not in arns]:
        ready = [rid for rid in pending if _dead_letter_target(queues[rid]) in (None, *arns)]
        if not ready:
            raise ValueError(
                f"{template_path.name}: queues {pending} have a RedrivePolicy naming no queue of the template"
            )
        for rid in ready:
            properties = queues[rid]
            unknown = set(properties) - set(QUEUE_ATTRIBUTES) - QUEUE_PROPERTIES_IGNORED
            if unknown:
                raise ValueError(
                    f"{template_path.name}: queue {rid} has properties the local stack ignores: {sorted(unknown)}"
                )
            attributes = {
                key: _attribute_text(resolve(properties[key], rid)) for key in QUEUE_ATTRIBUTES if key in properties
            }
            if "RedrivePolicy" in properties:
                policy = properties["RedrivePolicy"]
                attributes["RedrivePolicy"] = json.dumps(
                    {
                        "deadLetterTargetArn": arns[str(_dead_letter_target(properties))],
                        "maxReceiveCount": int(resolve(policy["maxReceiveCount"], rid)),
                    }
                )
            name = str(resolve(properties.get("QueueName", rid), rid))
            arns[rid] = queue_arn(sqs, sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])
            names.append(name)
    return names


def _dead_letter_target(properties: Mapping[str, Any]) -> str | None:
    target = properties.get("RedrivePolicy", {}).get("deadLetterTargetArn")
    if target is None:
        return None
    if isinstance(target, dict) and list(target) == ["Fn::GetAtt"] and target["Fn::GetAtt"][1] == "Arn":
        return str(target["Fn::GetAtt"][0])
    raise ValueError(f"a RedrivePolicy's deadLetterTargetArn must be Fn::GetAtt [<queue>, Arn], not {target!r}")


def _attribute_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


class _Resolver:
    """The template's intrinsic functions, as far as queue properties use them."""

    def __init__(self, template: Mapping[str, Any], stage: str, account: str, region: str) -> None:
        defaults = {name: body.get("Default") for name, body in template.get("Parameters", {}).items()}
        self.values = {**defaults, "Stage": stage, "AWS::AccountId": account, "AWS::Region": region}

    def __call__(self, value: Any, where: str) -> Any:
        if not isinstance(value, dict):
            return value
        if list(value) == ["Ref"] and self.values.get(value["Ref"]) is not None:
            return self.values[value["Ref"]]
        if list(value) == ["Fn::Sub"] and isinstance(value["Fn::Sub"], str):
            return re.sub(r"\$\{([^}]+)\}", lambda match: str(self._value(match.group(1), where)), value["Fn::Sub"])
        raise ValueError(f"queue {where}: the local stack cannot resolve {value!r}")

    def _value(self, name: str, where: str) -> Any:
        if self.values.get(name) is None:
            raise ValueError(f"queue {where}: the local stack cannot resolve ${{{name}}}")
        return self.values[name]


def missing_queues(env: Mapping[str, str]) -> list[str]:
    """Stage variables named *_QUEUE whose queue does not exist: the app would fail on them."""
    sqs = boto3.client("sqs")
    missing = []
    for variable, name in sorted(env.items()):
        if variable.endswith("_QUEUE"):
            try:
                sqs.get_queue_url(QueueName=name)
            except sqs.exceptions.QueueDoesNotExist:
                missing.append(f"{variable}={name}")
    return missing
