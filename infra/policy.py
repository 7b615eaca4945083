"""The Lambda execution policy of a stage: only the actions imgpress's code performs, each on its own ARNs.

Written to .chalice/policy-<stage>.json (autogen_policy is off: `chalice gen-policy` cannot see
boto3 calls made inside chalicelib/). tests/infra/test_policy.py derives the calls from the code
and checks this document grants exactly those.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RESOURCES_TEMPLATE = Path(__file__).resolve().parent / "resources.json"
# One log group per Lambda function; the JWT authorizer's exists only on API_AUTH=jwt stages.
LOG_GROUP_OUTPUTS = ("ApiLogGroupArn", "UploadHandlerLogGroupArn", "AuthorizerLogGroupArn")


def table_index_names() -> list[str]:
    """The table's secondary indexes, as the template defines them (Query only ever uses these)."""
    template = json.loads(RESOURCES_TEMPLATE.read_text())
    indexes = template["Resources"]["ImagesTable"]["Properties"]["GlobalSecondaryIndexes"]
    return [index["IndexName"] for index in indexes]


def _statement(sid: str, actions: list[str], resources: list[str], **extra: Any) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources, **extra}


def _log_streams(log_group_arn: str) -> str:
    """`<group arn>:*`, which covers the group's streams (GetAtt Arn may or may not end in `:*`)."""
    return log_group_arn.removesuffix(":*") + ":*"


def lambda_policy(env: Mapping[str, str], outputs: Mapping[str, str]) -> dict[str, Any]:
    """Every function of a stage shares this role. `env` is the stage's environment (prefixes)."""
    partition = outputs["ImagesTableArn"].split(":")[1]
    s3 = f"arn:{partition}:s3:::"
    upload_prefix = env.get("UPLOAD_PREFIX", "uploads/")
    output_prefix = env.get("OUTPUT_PREFIX", "processed/")
    table = outputs["ImagesTableArn"]
    return {
        "Version": "2012-10-17",
        "Statement": [
            # The log groups exist already (the resources stack sets their retention).
            _statement(
                "WriteLogs",
                ["logs:CreateLogStream", "logs:PutLogEvents"],
                [_log_streams(outputs[name]) for name in LOG_GROUP_OUTPUTS if name in outputs],
            ),
            # PutObject: the presigned POST and the multipart upload (create, part URLs, complete) are
            # signed with this role. GetObject: the handler reads the original. DeleteObject: DELETE
            # /images/{id}. ListMultipartUploadParts, AbortMultipartUpload: the /s3/multipart routes.
            _statement(
                "Originals",
                [
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:DeleteObject",
                    "s3:ListMultipartUploadParts",
                    "s3:AbortMultipartUpload",
                ],
                [f"{s3}{outputs['InputBucket']}/{upload_prefix}*"],
            ),
            # PutObject(+Tagging): the handler writes tagged variants. GetObject: presigned download
            # links. DeleteObject: DELETE /images/{id} and outputs of a claim lost mid-way.
            _statement(
                "Outputs",
                ["s3:GetObject", "s3:PutObject", "s3:PutObjectTagging", "s3:DeleteObject"],
                [f"{s3}{outputs['OutputBucket']}/{output_prefix}*"],
            ),
            # ListObjectsV2 of processed/<id>/ when an image is deleted.
            _statement(
                "ListOutputs",
                ["s3:ListBucket"],
                [f"{s3}{outputs['OutputBucket']}"],
                Condition={"StringLike": {"s3:prefix": [f"{output_prefix}*"]}},
            ),
            _statement(
                "Records",
                ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:BatchGetItem"],
                [table],
            ),
            _statement("ListRecords", ["dynamodb:Query"], [f"{table}/index/{name}" for name in table_index_names()]),
            _statement("PublishResults", ["sns:Publish"], [outputs["EventsTopic"]]),
            # Not a call in our code: Lambda sends failed S3 events to the on-failure destination
            # with the function's own role (infra/handler.json).
            _statement("UploadFailureDestination", ["sqs:SendMessage"], [outputs["UploadFailureQueueArn"]]),
            *_kms_statements(env),
        ],
    }


def _kms_statements(env: Mapping[str, str]) -> list[dict[str, Any]]:
    """With OUTPUT_SSE=aws:kms, writing outputs needs a data key and presigned reads need Decrypt."""
    key = env.get("KMS_KEY_ID", "")
    if env.get("OUTPUT_SSE") != "aws:kms" or not key:
        return []
    return [_statement("OutputEncryptionKey", ["kms:GenerateDataKey", "kms:Decrypt"], [key])]
