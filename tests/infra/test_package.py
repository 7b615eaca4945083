"""`chalice package` of the real project, offline but for PyPI: what would reach Lambda and API Gateway.

Slow-ish (a few seconds per stage; the first run downloads Pillow's Linux wheel), so each stage
is packaged once per module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from infra import stages

pytestmark = pytest.mark.integration

ROOT = stages.PROJECT
CONFIG = stages.load_config(ROOT)
# A fresh machine: no AWS variables, no ~/.aws. Packaging needs neither (the stage names its region).
PACKAGE_ENV = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "HOME"}


def chalice(*args: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).with_name("chalice")), *args]
    env = {**PACKAGE_ENV, "AWS_DEFAULT_REGION": "us-east-1"}  # chalice alone wants a region even to package
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=600)


@pytest.fixture(scope="module", params=["dev", "prod"])
def package(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """What `make package STAGE=<stage>` runs, on a machine with no AWS configuration at all."""
    stage = str(request.param)
    out = tmp_path_factory.mktemp(f"terraform-{stage}")
    env = {**PACKAGE_ENV, "HOME": str(tmp_path_factory.mktemp("home"))}
    command = [sys.executable, "-m", "infra", "package", "--stage", stage, "--dir", str(out)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return stage, out


def terraform(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "chalice.tf.json").read_text()))


def test_the_zip_carries_native_code_built_for_the_lambda_runtime(package: tuple[str, Path]) -> None:
    """Chalice silently compiles an sdist when no wheel fits; that zip would not import on Lambda.

    Pillow, pi-heif, cryptography (abi3: one build for every CPython 3) and cffi all carry native code."""
    _stage, out = package
    runtimes = {f["runtime"] for f in terraform(out)["resource"]["aws_lambda_function"].values()}
    assert runtimes == {f"python{sys.version_info.major}.{sys.version_info.minor}"}
    cp = f"cp{sys.version_info.major}{sys.version_info.minor}"
    with zipfile.ZipFile(out / "deployment.zip") as bundle:
        names = bundle.namelist()
        for distribution, abi in (("pillow-", cp), ("pi_heif-", cp), ("cryptography-", "abi3"), ("cffi-", cp)):
            wheel = next(n for n in names if n.startswith(distribution) and n.endswith(".dist-info/WHEEL"))
            tags = [
                line.split(": ", 1)[1] for line in bundle.read(wheel).decode().splitlines() if line.startswith("Tag: ")
            ]
            assert tags and all(tag.startswith(f"{cp}-{abi}-manylinux") and tag.endswith("_x86_64") for tag in tags), (
                distribution,
                tags,
            )
        # Powertools (chalicelib/metrics.py) and what it imports: pure Python wheels, no native code.
        for distribution in ("aws_lambda_powertools-", "jmespath-", "typing_extensions-"):
            wheel = next(n for n in names if n.startswith(distribution) and n.endswith(".dist-info/WHEEL"))
            assert "Tag: py3-none-any" in bundle.read(wheel).decode(), distribution
    assert any(n.startswith("PIL/_imaging.") and n.endswith("-x86_64-linux-gnu.so") for n in names)
    assert any(n.startswith("pillow.libs/libwebp") for n in names), "the wheel's bundled codecs are missing"
    assert any(n.startswith("pi_heif.libs/libheif") for n in names), "pi-heif's libheif is missing"
    assert "cryptography/hazmat/bindings/_rust.abi3.so" in names and "jwt/jwks_client.py" in names
    assert "aws_lambda_powertools/metrics/provider/cloudwatch_emf/cloudwatch.py" in names
    assert "app.py" in names and "chalicelib/pipeline.py" in names and "chalicelib/access.py" in names
    assert not any(n.split("/")[0] in ("devstack", "infra", "tests") for n in names), "dev tooling shipped"


def test_functions_get_the_stage_sizes_names_and_policy(package: tuple[str, Path]) -> None:
    stage, out = package
    resources = terraform(out)["resource"]
    functions = resources["aws_lambda_function"]
    stage_body = CONFIG["stages"][stage]
    env = stages.stage_environment(CONFIG, stage)
    handlers = [("api_handler", stages.function_name(CONFIG, stage))] + [
        (handler, stages.function_name(CONFIG, stage, handler))
        for handler in ("handle_upload", "end_abandoned_uploads", "reprocess_images", "sweep", "jwt_authorizer")
        if handler != "jwt_authorizer" or env["API_AUTH"] == "jwt"
    ]
    assert set(functions) == {handler for handler, _name in handlers}  # no authorizer function but on jwt stages
    for handler, name in handlers:
        function = functions[handler]
        sizes = stage_body["lambda_functions"][handler]
        assert function["function_name"] == name
        assert (function["memory_size"], function["timeout"]) == (sizes["lambda_memory_size"], sizes["lambda_timeout"])
        assert function["environment"]["variables"] == env
    (notification,) = resources["aws_s3_bucket_notification"].values()
    assert notification["bucket"] == env["INPUT_BUCKET"]
    assert notification["lambda_function"][0]["filter_prefix"] == env["UPLOAD_PREFIX"]


def test_each_function_has_its_own_role_with_its_own_policy(package: tuple[str, Path]) -> None:
    stage, out = package
    resources = terraform(out)["resource"]
    functions = CONFIG["stages"][stage]["lambda_functions"]
    roles = {name: function["role"] for name, function in resources["aws_lambda_function"].items()}
    assert len(set(roles.values())) == len(roles), "two functions share a role"
    for name, role in roles.items():
        role_resource = role.removeprefix("${aws_iam_role.").removesuffix(".arn}")
        assert resources["aws_iam_role"][role_resource]["name"] == stages.function_name(CONFIG, stage, name)
        (role_policy,) = [
            p for p in resources["aws_iam_role_policy"].values() if p["role"] == f"${{aws_iam_role.{role_resource}.id}}"
        ]
        committed = json.loads((ROOT / ".chalice" / functions[name]["iam_policy_file"]).read_text())
        assert json.loads(role_policy["policy"]) == committed, name
    assert len(resources["aws_iam_role_policy"]) == len(roles)


def test_queues_hide_a_message_for_longer_than_its_consumer_runs(package: tuple[str, Path]) -> None:
    """Lambda refuses an SQS event source whose queue's VisibilityTimeout is below the function's
    timeout (a message would reappear while still being handled). The queues are the resources
    stack's; the consumer's policy names the same queue."""
    stage, out = package
    resources = terraform(out)["resource"]
    template = json.loads((stages.TEMPLATES / "resources.json").read_text())["Resources"]
    queues = {
        body["Properties"]["QueueName"]["Fn::Sub"].replace("${Stage}", stage): body["Properties"]
        for body in template.values()
        if body["Type"] == "AWS::SQS::Queue"
    }
    mappings = [
        m for m in resources.get("aws_lambda_event_source_mapping", {}).values() if ":sqs:" in m["event_source_arn"]
    ]
    assert mappings, "the failure-queue consumer has no SQS event source"
    for mapping in mappings:
        function = mapping["function_name"].removeprefix("${aws_lambda_function.").removesuffix(".arn}")
        queue = mapping["event_source_arn"].rsplit(":", 1)[1]
        timeout = resources["aws_lambda_function"][function]["timeout"]
        variable = {"end_abandoned_uploads": "UPLOAD_FAILURE_QUEUE", "reprocess_images": "REPROCESS_QUEUE"}[function]
        assert queue == stages.stage_environment(CONFIG, stage)[variable]
        assert queues[queue]["VisibilityTimeout"] >= timeout, (function, queue)
        policy = json.loads(
            (ROOT / ".chalice" / CONFIG["stages"][stage]["lambda_functions"][function]["iam_policy_file"]).read_text()
        )
        (consume,) = [s for s in policy["Statement"] if "sqs:ReceiveMessage" in s["Action"]]
        assert [arn.rsplit(":", 1)[1] for arn in consume["Resource"]] == [queue]


def test_the_api_has_the_stage_auth_and_answers_preflights_itself(package: tuple[str, Path]) -> None:
    stage, out = package
    swagger = json.loads(terraform(out)["locals"]["chalice_api_swagger"])
    env = stages.stage_environment(CONFIG, stage)
    secured = swagger["paths"]["/images"]["get"].get("security")
    assert "security" not in swagger["paths"]["/health"]["get"]
    ((name, definition),) = swagger["securityDefinitions"].items()
    assert secured == [{name: []}]
    authorizer = definition["x-amazon-apigateway-authorizer"]
    if env["API_AUTH"] == "cognito":
        assert authorizer["providerARNs"] == [env["COGNITO_USER_POOL_ARN"]]
    else:
        assert env["API_AUTH"] == "jwt" and name == "jwt_authorizer"
        assert (definition["name"], authorizer["type"]) == ("Authorization", "token")
        assert authorizer["authorizerUri"] == "${aws_lambda_function.jwt_authorizer.invoke_arn}"
        assert authorizer["authorizerResultTtlInSeconds"] == 300
    # Several origins: no static Access-Control-Allow-Origin in API Gateway; the app echoes the Origin.
    for path, methods in swagger["paths"].items():
        options = methods["options"]
        assert "security" not in options, path  # browsers send no token with a preflight
        assert options["x-amazon-apigateway-integration"]["type"] == "aws_proxy", path
        assert "Access-Control-Allow-Origin" not in json.dumps(methods), path


def test_cloudformation_packaging_cannot_express_the_s3_trigger(tmp_path: Path) -> None:
    """Why the README offers terraform: chalice's SAM output refuses on_s3_event on an existing bucket."""
    result = chalice("package", "--stage", "dev", str(tmp_path / "sam"))
    assert result.returncode != 0
    assert "on_s3_event" in result.stderr and "CloudFormation does not support" in result.stderr


def test_make_package_adds_report_batch_item_failures_to_the_reprocess_mapping(package: tuple[str, Path]) -> None:
    """Chalice's Terraform leaves it out (AWS would ignore batchItemFailures); `make package` adds it, once."""
    from infra.__main__ import patch_terraform_dir

    stage, out = package
    patch_terraform_dir(out)  # a second time changes nothing
    mappings = terraform(out)["resource"]["aws_lambda_event_source_mapping"]
    [mapping] = [m for m in mappings.values() if m["function_name"] == "${aws_lambda_function.reprocess_images.arn}"]
    assert mapping["function_response_types"] == ["ReportBatchItemFailures"]
    concurrency = stages.stage_environment(CONFIG, stage)["REPROCESS_MAX_CONCURRENCY"]
    assert mapping["scaling_config"] == {"maximum_concurrency": int(concurrency)}
