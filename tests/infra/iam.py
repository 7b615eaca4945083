"""What IAM authorizes for each AWS request the app makes, recorded per Lambda function, and an
evaluator of imgpress's policy documents (Allow statements, exact or `*` resources, StringLike).

A request becomes the (action, resource, condition keys) triples AWS checks for it, following the
service authorization reference: a HeadObject is checked as s3:GetObject; a CopyObject as
s3:PutObject on the target and s3:GetObject on the source; a write with `Tagging` also as
s3:PutObjectTagging; an SSE-KMS write as kms:GenerateDataKey, and a read of (or copy from) an
SSE-KMS object, presigned links included, as kms:Decrypt on the object's key.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

# moto's account and region, which the committed dev and prod names use.
ACCOUNT = "123456789012"
REGION = "us-east-1"


@dataclass(frozen=True)
class Need:
    """One authorization a function's request needs."""

    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)  # condition keys, e.g. s3:prefix


Head = Callable[[str, str], Mapping[str, Any]]  # (bucket, key) -> HeadObject response


def _s3(bucket: str, key: str | None = None) -> str:
    return f"arn:aws:s3:::{bucket}" + (f"/{key}" if key is not None else "")


def _decrypt(head: Head, bucket: str, key: str) -> list[Need]:
    """Reading an SSE-KMS object needs kms:Decrypt on its key (S3 calls KMS as the caller)."""
    stored = head(bucket, key)
    if stored.get("ServerSideEncryption") != "aws:kms":
        return []
    return [Need("kms:Decrypt", str(stored["SSEKMSKeyId"]))]


def _write_extras(params: Mapping[str, Any], target: str) -> list[Need]:
    needs = [Need("s3:PutObjectTagging", target)] if "Tagging" in params else []
    if params.get("ServerSideEncryption") == "aws:kms":
        needs.append(Need("kms:GenerateDataKey", str(params["SSEKMSKeyId"])))
    return needs


def s3_needs(operation: str, params: Mapping[str, Any], head: Head) -> list[Need]:
    bucket = params["Bucket"]
    if operation == "ListObjectsV2":
        return [Need("s3:ListBucket", _s3(bucket), {"s3:prefix": params.get("Prefix", "")})]
    if operation == "DeleteObjects":
        return [Need("s3:DeleteObject", _s3(bucket, o["Key"])) for o in params["Delete"]["Objects"]]
    key = params["Key"]
    if operation == "HeadObject":
        return [Need("s3:GetObject", _s3(bucket, key))]
    if operation == "GetObject":
        return [Need("s3:GetObject", _s3(bucket, key)), *_decrypt(head, bucket, key)]
    if operation == "PutObject":
        return [Need("s3:PutObject", _s3(bucket, key)), *_write_extras(params, _s3(bucket, key))]
    if operation == "CopyObject":
        source = params["CopySource"]
        return [
            Need("s3:PutObject", _s3(bucket, key)),
            Need("s3:GetObject", _s3(source["Bucket"], source["Key"])),
            *_decrypt(head, source["Bucket"], source["Key"]),
            *_write_extras(params, _s3(bucket, key)),
        ]
    if operation in ("CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"):
        return [Need("s3:PutObject", _s3(bucket, key))]  # a multipart upload is authorized as PutObject
    if operation == "ListParts":
        return [Need("s3:ListMultipartUploadParts", _s3(bucket, key))]
    if operation == "AbortMultipartUpload":
        return [Need("s3:AbortMultipartUpload", _s3(bucket, key))]
    raise AssertionError(f"s3 {operation}: this test does not know how IAM authorizes it")


def dynamodb_needs(operation: str, params: Mapping[str, Any]) -> list[Need]:
    action = f"dynamodb:{operation}"
    if operation == "BatchGetItem":
        return [Need(action, f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}") for name in params["RequestItems"]]
    if operation == "TransactWriteItems":  # authorized as the writes it is made of (updates, puts)
        return [
            Need(
                f"dynamodb:{kind}Item",
                f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{request['TableName']}",
                {"dynamodb:LeadingKeys": str((request.get("Key") or request["Item"])["id"])},
            )
            for item in params["TransactItems"]
            for kind, request in item.items()
        ]
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{params['TableName']}"
    if operation == "UpdateItem":
        return [Need(action, table, {"dynamodb:LeadingKeys": str(params["Key"]["id"])})]
    return [Need(action, f"{table}/index/{params['IndexName']}" if "IndexName" in params else table)]


def sqs_needs(operation: str, params: Mapping[str, Any]) -> list[Need]:
    """SendMessageBatch is authorized as sqs:SendMessage; GetQueueUrl on the queue it names."""
    name = params["QueueName"] if "QueueName" in params else str(params["QueueUrl"]).rsplit("/", 1)[-1]
    action = "sqs:SendMessage" if operation == "SendMessageBatch" else f"sqs:{operation}"
    return [Need(action, f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}")]


class Recorder:
    """Registered on boto3's default session (the app's clients), attributes every request to
    the function `running` names. Requests made outside any function fail the test."""

    def __init__(self, head: Head) -> None:
        self._head = head
        self.function: str | None = None
        self.needs: dict[str, list[Need]] = {}
        self.calls: set[tuple[str, str]] = set()  # (service, operation), as the code made them
        self._posts: list[Need] = []

    @contextmanager
    def running(self, function: str) -> Iterator[None]:
        self.function = function
        try:
            yield
        finally:
            self.function = None

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        service, operation = model.service_model.service_name, model.name
        assert self.function is not None, f"{service} {operation} made outside any function"
        if (service, operation) == ("s3", "CreateBucket"):
            # botocore builds a presigned POST on CreateBucket's model; S3 authorizes the upload it
            # allows as PutObject of the key its policy pins (`posted` fills it in).
            self.calls.add(("s3", "PutObject"))
            self._posts.append(Need("s3:PutObject", _s3(params["Bucket"])))
            return
        self.calls.add((service, operation))
        if service == "s3":
            needs = s3_needs(operation, params, self._head)
        elif service == "dynamodb":
            needs = dynamodb_needs(operation, params)
        elif service == "sqs":
            needs = sqs_needs(operation, params)
        elif service == "secretsmanager":
            assert operation == "GetSecretValue", operation
            needs = [Need("secretsmanager:GetSecretValue", params["SecretId"])]
        else:
            assert (service, operation) == ("sns", "Publish"), (service, operation)
            needs = [Need("sns:Publish", params["TopicArn"])]
        self.add(self.function, needs)

    def posted(self, key: str) -> None:
        """The key the last presigned POST allows (read from the API's answer)."""
        unsigned = self._posts.pop()
        assert self.function is not None and not self._posts
        self.add(self.function, [Need(unsigned.action, f"{unsigned.resource}/{key}")])

    def add(self, function: str, needs: list[Need]) -> None:
        self.needs.setdefault(function, []).extend(needs)


def _conditions_hold(statement: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    for operator, keys in statement.get("Condition", {}).items():
        # One value per key in our requests, so ForAllValues:StringLike reads like StringLike.
        assert operator in ("StringLike", "ForAllValues:StringLike"), f"this evaluator does not know {operator}"
        for key, patterns in keys.items():
            if key not in context or not any(fnmatch.fnmatchcase(context[key], p) for p in patterns):
                return False
    return True


def grants(statement: Mapping[str, Any], need: Need, resource_pattern: str | None = None) -> bool:
    """Whether `statement` (or only its `resource_pattern`) allows `need`."""
    assert statement["Effect"] == "Allow"
    patterns = [resource_pattern] if resource_pattern else statement["Resource"]
    return (
        need.action in statement["Action"]
        and any(fnmatch.fnmatchcase(need.resource, pattern) for pattern in patterns)
        and _conditions_hold(statement, need.context)
    )


def allows(document: Mapping[str, Any], need: Need) -> bool:
    return any(grants(statement, need) for statement in document["Statement"])


def unused_grants(document: Mapping[str, Any], needs: list[Need]) -> list[tuple[str, str, str]]:
    """(Sid, action, resource) of every grant no need used: what the function could do but never asks to."""
    return [
        (statement["Sid"], action, pattern)
        for statement in document["Statement"]
        for action in statement["Action"]
        for pattern in statement["Resource"]
        if not any(need.action == action and grants(statement, need, pattern) for need in needs)
    ]
