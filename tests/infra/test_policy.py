"""The stage policies grant exactly what the code calls: derived from the source, then checked at run time.

Two independent derivations of "what the code calls":
- statically, every boto3 call on an AWS handle in chalicelib/ (handles are named after their
  service: `s3`, `table`, `sns`), mapped to the IAM action AWS authorizes it with;
- at run time, every AWS request the app makes while a whole image lifecycle runs through the
  API and the S3 handler (moto, dev stage names), each checked against the policy's resources.
"""

from __future__ import annotations

import ast
import fnmatch
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore import xform_name
from chalice.test import Client
from moto import mock_aws

from chalicelib import services
from infra import stages
from tests import images
from tests.conftest import invoke, use_fake_account

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
HANDLE_SERVICES = {"s3": "s3", "table": "dynamodb", "dynamodb": "dynamodb", "sns": "sns"}
# Operations AWS authorizes under another action name.
IAM_ACTION_OF = {
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "DeleteObjects"): "s3:DeleteObject",
    ("s3", "HeadObject"): "s3:GetObject",
    # A copy is authorized as PutObject on the target (+ GetObject on the source, see below).
    ("s3", "CopyObject"): "s3:PutObject",
    # Multipart uploads are authorized as PutObject, but for listing and aborting them.
    ("s3", "CreateMultipartUpload"): "s3:PutObject",
    ("s3", "UploadPart"): "s3:PutObject",
    ("s3", "CompleteMultipartUpload"): "s3:PutObject",
    ("s3", "ListParts"): "s3:ListMultipartUploadParts",
}
# Granted although no line of our code calls them, each for a reason the policy file states.
PLATFORM_ACTIONS = {
    "logs:CreateLogStream": "Lambda writes the functions' logs with their role",
    "logs:PutLogEvents": "Lambda writes the functions' logs with their role",
    "sqs:SendMessage": "Lambda sends failed S3 events to the on-failure queue with the function's role",
}
DEPLOY_STAGES = ("dev", "prod")


def _operations(service: str) -> dict[str, str]:
    model = botocore.session.get_session().get_service_model(service)
    return {xform_name(name): name for name in model.operation_names}


def _handle_service(receiver: ast.expr) -> str | None:
    """`self._s3`, `s3`, `services.s3()` -> "s3"; anything else is not an AWS handle."""
    if isinstance(receiver, ast.Call):
        receiver = receiver.func
    name = receiver.attr if isinstance(receiver, ast.Attribute) else getattr(receiver, "id", "")
    return HANDLE_SERVICES.get(name.lstrip("_"))


def _operation_of(service: str, call: ast.Call) -> str:
    assert isinstance(call.func, ast.Attribute)
    method = call.func.attr
    if method == "generate_presigned_post":
        return "PutObject"  # the browser's POST is authorized as this role's PutObject
    if method in ("generate_presigned_url", "get_paginator"):
        first = call.args[0]
        assert isinstance(first, ast.Constant), f"{method} with a computed operation: the scan cannot follow it"
        method = str(first.value)
    operations = _operations(service)
    assert method in operations, f"{service} handle calls {method!r}, which is no {service} operation"
    return operations[method]


def code_calls() -> set[tuple[str, str]]:
    """(service, operation) of every boto3 call on an AWS handle anywhere in chalicelib/."""
    calls: set[tuple[str, str]] = set()
    for path in sorted((ROOT / "chalicelib").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                service = _handle_service(node.func.value)
                if service is not None:
                    operation = _operation_of(service, node)
                    calls.add((service, operation))
                    if operation in ("PutObject", "CopyObject") and any(k.arg == "Tagging" for k in node.keywords):
                        calls.add((service, "PutObjectTagging"))  # tags on a write need their own grant
                    if operation == "CopyObject":
                        calls.add((service, "GetObject"))  # reading the copy's source
    return calls


def iam_action(service: str, operation: str) -> str:
    return IAM_ACTION_OF.get((service, operation), f"{service}:{operation}")


def policy(stage: str) -> dict[str, Any]:
    body = stages.stage_config(stages.load_config(ROOT), stage)
    return dict(json.loads((ROOT / ".chalice" / body["iam_policy_file"]).read_text()))


def granted_actions(document: dict[str, Any]) -> set[str]:
    return {action for statement in document["Statement"] for action in statement["Action"]}


def test_the_scan_finds_the_calls_the_code_is_known_to_make() -> None:
    calls = code_calls()
    assert {("s3", "GetObject"), ("s3", "PutObject"), ("dynamodb", "PutItem"), ("sns", "Publish")} <= calls
    assert ("s3", "ListObjectsV2") in calls  # through get_paginator("list_objects_v2")


@pytest.mark.parametrize("stage", DEPLOY_STAGES)
def test_policy_grants_every_called_action_and_nothing_more(stage: str) -> None:
    needed = {iam_action(*call) for call in code_calls()}
    granted = granted_actions(policy(stage))
    assert needed - granted == set(), "the code calls these but the policy does not allow them"
    assert granted - needed == set(PLATFORM_ACTIONS), "the policy grants actions no code needs"


@pytest.mark.parametrize("stage", DEPLOY_STAGES)
def test_policy_names_only_the_stage_resources(stage: str) -> None:
    document = policy(stage)
    env = stages.stage_environment(stages.load_config(ROOT), stage)
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        for resource in statement["Resource"]:
            assert resource != "*" and f"imgpress-{stage}" in resource, resource
            assert resource.count("*") <= 1 and (resource.endswith("*") or "*" not in resource), resource
    s3_objects = {r for s in document["Statement"] for r in s["Resource"] if r.startswith("arn:aws:s3:::") and "/" in r}
    assert s3_objects == {
        f"arn:aws:s3:::{env['INPUT_BUCKET']}/{env.get('UPLOAD_PREFIX', 'uploads/')}*",
        f"arn:aws:s3:::{env['OUTPUT_BUCKET']}/{env.get('OUTPUT_PREFIX', 'processed/')}*",
    }
    listing = next(s for s in document["Statement"] if "s3:ListBucket" in s["Action"])
    assert listing["Condition"] == {"StringLike": {"s3:prefix": [f"{env.get('OUTPUT_PREFIX', 'processed/')}*"]}}


# --- at run time --------------------------------------------------------------------------------


def _request_resources(service: str, operation: str, params: dict[str, Any]) -> list[str]:
    """The ARNs IAM evaluates for one request (account and region: moto's, as in the policy)."""
    if service == "s3":
        if operation == "ListObjectsV2":
            return [f"arn:aws:s3:::{params['Bucket']}"]
        keys = [o["Key"] for o in params["Delete"]["Objects"]] if operation == "DeleteObjects" else [params["Key"]]
        return [f"arn:aws:s3:::{params['Bucket']}/{key}" for key in keys]
    if service == "dynamodb":
        if operation == "BatchGetItem":
            return [f"arn:aws:dynamodb:us-east-1:123456789012:table/{name}" for name in params["RequestItems"]]
        table = f"arn:aws:dynamodb:us-east-1:123456789012:table/{params['TableName']}"
        return [f"{table}/index/{params['IndexName']}" if "IndexName" in params else table]
    assert service == "sns", service
    return [params["TopicArn"]]


def _presigned_post_as_put(call: tuple[str, str, dict[str, Any]], ids: list[str]) -> tuple[str, str, dict[str, Any]]:
    """botocore builds a presigned POST on CreateBucket's model; S3 authorizes the upload it allows
    (to the key the POST policy pins, uploads/<id>) as PutObject."""
    service, operation, params = call
    if (service, operation) != ("s3", "CreateBucket"):
        return call
    return service, "PutObject", {"Bucket": params["Bucket"], "Key": f"uploads/{ids[0]}"}


def allows(document: dict[str, Any], action: str, resource: str, params: dict[str, Any]) -> bool:
    for statement in document["Statement"]:
        if action not in statement["Action"]:
            continue
        if not any(fnmatch.fnmatchcase(resource, pattern) for pattern in statement["Resource"]):
            continue
        prefixes = statement.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
        if prefixes and not any(fnmatch.fnmatchcase(params.get("Prefix", ""), p) for p in prefixes):
            continue
        return True
    return False


@pytest.fixture
def dev_stage(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The dev stage's own names, created in moto (whose account and region the policy names)."""
    env = stages.stage_environment(stages.load_config(ROOT), "dev")
    # The AWS calls are the subject here, not auth: the routes run as on an open local stack.
    use_fake_account(monkeypatch, {k: v for k, v in env.items() if k != "API_AUTH"})
    with mock_aws():
        from devstack.resources import create_resources

        create_resources(env)
        services.reset()
        yield env
    services.reset()


def test_every_request_of_an_image_lifecycle_is_allowed_by_the_policy(dev_stage: dict[str, str]) -> None:
    made: list[tuple[str, str, dict[str, Any]]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        made.append((model.service_model.service_name, model.name, dict(params)))

    boto3._get_default_session().events.register("provide-client-params", record)
    arrange = boto3.session.Session()  # the test's own uploads are not the app's requests
    from app import app

    with Client(app, stage_name="dev") as client:
        ids = []
        for data in (images.jpeg(1600, 1200), b"not an image at all"):
            created = client.http.post(
                "/uploads",
                headers={"Content-Type": "application/json"},
                body=json.dumps({"content_type": "image/jpeg"}).encode(),
            )
            image_id = json.loads(created.body)["id"]
            key = f"uploads/{image_id}"
            etag = arrange.client("s3").put_object(Bucket=dev_stage["INPUT_BUCKET"], Key=key, Body=data)["ETag"]
            event = client.events.generate_s3_event(bucket=dev_stage["INPUT_BUCKET"], key=key)
            event["Records"][0]["s3"]["object"].update(eTag=etag.strip('"'), size=len(data))
            invoke(client, "handle_upload", event)
            ids.append(image_id)
        assert json.loads(client.http.get(f"/images/{ids[0]}").body)["status"] == "done"
        assert json.loads(client.http.get(f"/images/{ids[1]}").body)["status"] == "failed"
        assert client.http.get("/images").status_code == 200
        assert client.http.get("/images?status=done").status_code == 200
        assert client.http.delete(f"/images/{ids[0]}").status_code == 204

    document = policy("dev")
    made = [_presigned_post_as_put(call, ids) for call in made]
    assert {(service, operation) for service, operation, _ in made} <= code_calls(), "a call the scan missed"
    for service, operation, params in made:
        for resource in _request_resources(service, operation, params):
            assert allows(document, iam_action(service, operation), resource, params), (operation, resource)


def test_kms_encrypted_outputs_add_exactly_the_key_grants() -> None:
    from infra.policy import lambda_policy

    outputs = {
        "ImagesTableArn": "arn:aws:dynamodb:us-east-1:123456789012:table/t",
        "InputBucket": "in-b",
        "OutputBucket": "out-b",
        "EventsTopic": "arn:aws:sns:us-east-1:123456789012:e",
        "UploadFailureQueueArn": "arn:aws:sqs:us-east-1:123456789012:f",
        "ApiLogGroupArn": "arn:aws:logs:us-east-1:123456789012:log-group:a",
        "UploadHandlerLogGroupArn": "arn:aws:logs:us-east-1:123456789012:log-group:h",
    }
    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    plain_sids = {s["Sid"] for s in lambda_policy({}, outputs)["Statement"]}
    with_kms = lambda_policy({"OUTPUT_SSE": "aws:kms", "KMS_KEY_ID": key}, outputs)["Statement"]
    [extra] = [s for s in with_kms if s["Sid"] not in plain_sids]
    assert extra["Action"] == ["kms:GenerateDataKey", "kms:Decrypt"] and extra["Resource"] == [key]
