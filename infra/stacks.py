"""CloudFormation through boto3: create or update a stack and wait, read outputs, delete.

boto3 rather than the AWS CLI, so deploying needs nothing beyond `make install`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError, WaiterError

_WAIT = {"Delay": 5, "MaxAttempts": 360}  # up to 30 minutes (a CloudFront-free stack takes 1-3)


def _exists(cfn: Any, name: str) -> bool:
    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as error:
        if "does not exist" in str(error):
            return False
        raise
    return bool(stacks) and stacks[0]["StackStatus"] != "DELETE_COMPLETE"


def outputs(cfn: Any, name: str) -> dict[str, str]:
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return {item["OutputKey"]: item["OutputValue"] for item in stack.get("Outputs", [])}


def parameters(cfn: Any, name: str) -> dict[str, str]:
    """The parameter values the stack was last deployed with."""
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return {item["ParameterKey"]: item.get("ParameterValue", "") for item in stack.get("Parameters", [])}


def deploy(
    cfn: Any, name: str, template: Path, parameters: Mapping[str, str], tags: Mapping[str, str]
) -> dict[str, str]:
    """Create the stack, or update it in place; returns its outputs. A no-op update is fine."""
    request = {
        "StackName": name,
        "TemplateBody": template.read_text(),
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
    }
    if not _exists(cfn, name):
        cfn.create_stack(**request, OnFailure="DELETE")
        _wait(cfn, "stack_create_complete", name)
        return outputs(cfn, name)
    try:
        cfn.update_stack(**request)
    except ClientError as error:
        if "No updates are to be performed" not in str(error):
            raise
        return outputs(cfn, name)
    _wait(cfn, "stack_update_complete", name)
    return outputs(cfn, name)


def delete(cfn: Any, name: str) -> None:
    if not _exists(cfn, name):
        return
    cfn.delete_stack(StackName=name)
    _wait(cfn, "stack_delete_complete", name)


def _wait(cfn: Any, waiter: str, name: str) -> None:
    try:
        cfn.get_waiter(waiter).wait(StackName=name, WaiterConfig=_WAIT)
    except WaiterError as error:
        raise SystemExit(f"stack {name} did not reach {waiter}:\n{failure_reasons(cfn, name)}") from error


def failure_reasons(cfn: Any, name: str) -> str:
    """The stack events that explain a failed deployment, oldest first."""
    try:
        events = cfn.describe_stack_events(StackName=name)["StackEvents"]
    except ClientError as error:
        return str(error)
    failed = [e for e in reversed(events) if e["ResourceStatus"].endswith("FAILED")]
    return "\n".join(
        f"  {e['LogicalResourceId']}: {e.get('ResourceStatusReason', e['ResourceStatus'])}" for e in failed
    )


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object (and version) so CloudFormation can delete the bucket. Returns the count."""
    deleted = 0
    try:
        pages = list(s3.get_paginator("list_object_versions").paginate(Bucket=bucket))
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "NoSuchBucket":
            return 0
        raise
    for page in pages:
        keys = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        for start in range(0, len(keys), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys[start : start + 1000], "Quiet": True})
            deleted += len(keys[start : start + 1000])
    return deleted
