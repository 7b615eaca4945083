"""The CloudFormation templates: cfn-lint clean, and the properties the issue asks for, read from the JSON.

(moto applies only part of a bucket's properties, so these are checked on the template itself;
tests/infra/test_stacks.py deploys it.)
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devstack.resources import TABLE_DEFINITION
from infra import stages

RESOURCES = json.loads((stages.TEMPLATES / "resources.json").read_text())["Resources"]
HANDLER = json.loads((stages.TEMPLATES / "handler.json").read_text())["Resources"]


def of_type(resources: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: body["Properties"] for name, body in resources.items() if body["Type"] == kind}


@pytest.mark.parametrize("template", ["resources.json", "handler.json"])
def test_cfn_lint_passes(template: str) -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run([str(cfn_lint), str(stages.TEMPLATES / template)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_table_matches_the_local_stand_in() -> None:
    """devstack builds moto's table from TABLE_DEFINITION; AWS must get the very same layout."""
    table = RESOURCES["ImagesTable"]["Properties"]
    assert {key: table[key] for key in TABLE_DEFINITION} == TABLE_DEFINITION
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


@pytest.mark.parametrize("bucket", ["InputBucket", "OutputBucket"])
def test_buckets_are_private_encrypted_and_drop_abandoned_uploads(bucket: str) -> None:
    properties = RESOURCES[bucket]["Properties"]
    block = properties["PublicAccessBlockConfiguration"]
    assert set(block) == {"BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"}
    assert all(value is True for value in block.values())
    assert properties["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    encryption = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    rules = properties["LifecycleConfiguration"]["Rules"]
    assert {"Id": "abort-abandoned-uploads", "Status": "Enabled",
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}} in rules
    policy = of_type(RESOURCES, "AWS::S3::BucketPolicy")
    assert any(p["Bucket"] == {"Ref": bucket} for p in policy.values()), "plain-HTTP access is not denied"


def test_only_the_input_bucket_takes_browser_posts_from_the_stage_origin() -> None:
    assert RESOURCES["InputBucket"]["Properties"]["CorsConfiguration"]["CorsRules"] == [{
        "AllowedMethods": ["POST"],
        "AllowedOrigins": [{"Ref": "CorsAllowOrigin"}],
        "AllowedHeaders": ["*"],
        "ExposedHeaders": ["ETag", "Location"],
        "MaxAge": 3600,
    }]
    assert "CorsConfiguration" not in RESOURCES["OutputBucket"]["Properties"]


def test_log_groups_are_the_ones_chalice_functions_write_to() -> None:
    config = stages.load_config(stages.PROJECT)
    names = {p["LogGroupName"]["Fn::Sub"] for p in of_type(RESOURCES, "AWS::Logs::LogGroup").values()}
    expected = {stages.function_name(config, "STAGE"), stages.function_name(config, "STAGE", "handle_upload")}
    assert {name.replace("${Stage}", "STAGE") for name in names} == {f"/aws/lambda/{n}" for n in expected}


def test_the_s3_handler_gets_async_retries_and_an_on_failure_queue() -> None:
    config = stages.load_config(stages.PROJECT)
    invoke = HANDLER["UploadHandlerInvokeConfig"]["Properties"]
    assert invoke["FunctionName"]["Fn::Sub"].replace("${Stage}", "STAGE") == stages.function_name(config, "STAGE", "handle_upload")
    assert invoke["Qualifier"] == "$LATEST"
    assert invoke["DestinationConfig"] == {"OnFailure": {"Destination": {"Ref": "UploadFailureQueueArn"}}}
    assert {"MaximumRetryAttempts", "MaximumEventAgeInSeconds"} <= set(invoke)


def test_stage_knobs_are_template_parameters_and_never_derived_ones() -> None:
    """infra/stages.json sets cost and safety knobs; names, auth and CORS come from the stage config."""
    derived = {"Stage", "ApiAuth", "CorsAllowOrigin", "UploadPrefix", "UploadFailureQueueArn", "RestApiId",
               "ApiGatewayStage"}
    knobs = json.loads(stages.STAGE_PARAMETERS.read_text())
    for template in ("resources", "handler"):
        parameters = json.loads((stages.TEMPLATES / f"{template}.json").read_text())["Parameters"]
        for stage, kinds in knobs.items():
            names = set(kinds.get(template, {}))
            assert names <= set(parameters) - derived, (stage, template, names - set(parameters))
