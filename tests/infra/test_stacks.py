"""`python -m infra` against moto's CloudFormation: the committed stage config is exactly what it writes.

moto's account (123456789012) and region (us-east-1) are the ones the committed dev and prod
values name, so deploying the real template here must reproduce them byte for byte.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.aws.records import INDEX_KEYS, DynamoRecordStore
from chalicelib.domain import ImageRecord, Status, utc_now
from chalicelib.ports import ListQuery
from infra import stacks, stages
from infra.__main__ import Deployment, main
from tests.conftest import use_fake_account

ROOT = Path(__file__).resolve().parents[2]
# moto's CloudFormation skips resource types it does not model (bucket policies, Lambda invoke configs).
pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")]


COMMITTED = stages.load_config(ROOT)


def deploy_without_what_moto_lacks(real_deploy: Any) -> Any:
    """stacks.deploy with the user pool and the CDN switched off for moto, and their outputs supplied
    from the committed stage config, so every other part of `python -m infra` runs for real."""

    def deploy(cfn: Any, name: str, template: Path, parameters: dict[str, str], tags: dict[str, str]) -> Any:
        if template.name != "resources.json":
            return real_deploy(cfn, name, template, parameters, tags)
        pool = parameters.get("ApiAuth") == "cognito" or parameters.get("CreateUserPool") == "true"
        jwt_pool = pool and parameters.get("ApiAuth") == "jwt"
        cdn = parameters.get("Cdn") == "true"
        moto_parameters = {
            **parameters,
            "ApiAuth": "none" if parameters.get("ApiAuth") == "cognito" else parameters.get("ApiAuth", "none"),
            "CreateUserPool": "false",
            "Cdn": "false",
        }
        outputs = dict(real_deploy(cfn, name, template, moto_parameters, tags))
        env = stages.stage_environment(COMMITTED, parameters["Stage"])
        if pool:
            outputs.update(UserPoolArn=env["COGNITO_USER_POOL_ARN"], UserPoolClientId=env["OIDC_CLIENT_ID"])
        if jwt_pool:
            outputs.update(UserPoolIssuer=env["OIDC_ISSUER"], UserPoolAudience=env["OIDC_AUDIENCE"])
        if cdn:
            outputs["OutputBaseUrl"] = env["OUTPUT_BASE_URL"]
        return outputs

    return deploy


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    use_fake_account(monkeypatch)
    monkeypatch.setattr(stacks, "deploy", deploy_without_what_moto_lacks(stacks.deploy))
    with mock_aws():
        yield


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's stage configuration, for the commands to rewrite."""
    shutil.copytree(ROOT / ".chalice", tmp_path / ".chalice", ignore=shutil.ignore_patterns("deploy*"))
    return tmp_path


def read(path: Path) -> Any:
    return json.loads(path.read_text())


def policy_files(project: Path, stage: str) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted((project / ".chalice").glob(f"policy-{stage}-*.json"))}


def test_resources_writes_the_committed_dev_config_and_policies(account: None, project: Path) -> None:
    main(["resources", "--stage", "dev", "--project", str(project)])
    assert (project / ".chalice" / "config.json").read_text() == (ROOT / ".chalice" / "config.json").read_text()
    assert policy_files(project, "dev") == policy_files(ROOT, "dev")
    # the API, the S3 handler, the failure consumer, the sweeper, the reprocess consumer, the authorizer
    assert len(policy_files(ROOT, "dev")) == 6
    main(["resources", "--stage", "dev", "--project", str(project)])  # nothing changed: a no-op update


def test_committed_prod_config_is_what_its_stack_outputs_give(account: None, project: Path) -> None:
    """moto's CloudFormation has neither Cognito nor CloudFront (it fails on the distribution's
    GetAtt): the pool and CDN outputs come by hand (deploy_without_what_moto_lacks)."""
    main(["resources", "--stage", "prod", "--project", str(project)])
    assert (project / ".chalice" / "config.json").read_text() == (ROOT / ".chalice" / "config.json").read_text()
    assert policy_files(project, "prod") == policy_files(ROOT, "prod")
    assert len(policy_files(ROOT, "prod")) == 5  # no authorizer function: API Gateway checks Cognito tokens


def test_a_stage_leaving_jwt_loses_its_authorizer_policy(account: None, project: Path) -> None:
    config = read(project / ".chalice" / "config.json")
    config["stages"]["dev"]["environment_variables"]["API_AUTH"] = "cognito"
    stages.save_json(project / ".chalice" / "config.json", config)
    main(["resources", "--stage", "dev", "--project", str(project)])
    functions = read(project / ".chalice" / "config.json")["stages"]["dev"]["lambda_functions"]
    assert "iam_policy_file" not in functions["jwt_authorizer"]
    assert not (project / ".chalice" / "policy-dev-jwt_authorizer.json").exists()
    assert {name for name, body in functions.items() if "iam_policy_file" in body} == {
        "api_handler",
        "handle_upload",
        "end_abandoned_uploads",
        "sweep",
        "reprocess_images",
    }


def test_the_cdn_url_is_recorded_and_the_api_stops_presigning(account: None, project: Path) -> None:
    """The mapping from the CDN's stack output to OUTPUT_BASE_URL, on dev's real moto outputs; with
    it, download links are plain URLs, so the API's role loses GetObject on outputs and nothing else changes."""
    main(["resources", "--stage", "dev", "--project", str(project)])
    outputs = stacks.outputs(boto3.client("cloudformation"), "imgpress-dev-resources")
    assert "OutputBaseUrl" not in outputs
    stages.record_outputs(
        project,
        "dev",
        {**outputs, "OutputBaseUrl": "https://d2abcdefghijkl.cloudfront.net", "OutputDistributionId": "E2QWRUHAPOMQZL"},
    )
    env = read(project / ".chalice" / "config.json")["stages"]["dev"]["environment_variables"]
    assert env["OUTPUT_BASE_URL"] == "https://d2abcdefghijkl.cloudfront.net"
    assert "E2QWRUHAPOMQZL" not in json.dumps(env)  # only outputs named in OUTPUT_VARIABLES are recorded
    written, committed = policy_files(project, "dev"), policy_files(ROOT, "dev")
    api = "policy-dev-api_handler.json"
    assert {name: text for name, text in written.items() if name != api} == {
        name: text for name, text in committed.items() if name != api
    }
    (outputs_grant,) = [s for s in json.loads(written[api])["Statement"] if s["Sid"] == "Outputs"]
    assert outputs_grant["Action"] == ["s3:DeleteObject"]


def test_resources_removes_the_cdn_url_of_a_stage_without_the_cdn(account: None, project: Path) -> None:
    """Switching the CDN off deletes the distribution; the app must go back to presigned links."""
    config = read(project / ".chalice" / "config.json")
    config["stages"]["dev"]["environment_variables"]["OUTPUT_BASE_URL"] = "https://d2abcdefghijkl.cloudfront.net"
    stages.save_json(project / ".chalice" / "config.json", config)
    main(["resources", "--stage", "dev", "--project", str(project)])
    assert (project / ".chalice" / "config.json").read_text() == (ROOT / ".chalice" / "config.json").read_text()


def test_the_deployed_buckets_are_encrypted_and_the_table_is_on_demand(account: None, project: Path) -> None:
    """What moto's CloudFormation applies; public access, CORS, lifecycle, TTL: tests/infra/test_templates.py."""
    main(["resources", "--stage", "dev", "--project", str(project)])
    env = stages.stage_environment(read(project / ".chalice" / "config.json"), "dev")
    s3 = boto3.client("s3")
    for bucket in (env["INPUT_BUCKET"], env["OUTPUT_BUCKET"]):
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    table = boto3.client("dynamodb").describe_table(TableName=env["TABLE_NAME"])["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert sorted(index["IndexName"] for index in table["GlobalSecondaryIndexes"]) == sorted(INDEX_KEYS)


def test_the_records_code_works_on_the_deployed_table(account: None, project: Path) -> None:
    main(["resources", "--stage", "dev", "--project", str(project)])
    env = stages.stage_environment(read(project / ".chalice" / "config.json"), "dev")
    records = DynamoRecordStore(boto3.resource("dynamodb").Table(env["TABLE_NAME"]))
    for image_id in ("a" * 32, "b" * 32):
        records.create(
            ImageRecord.pending(
                image_id,
                owner="alice",
                profile="default",
                content_type="image/jpeg",
                input_bucket=env["INPUT_BUCKET"],
                input_key=f"uploads/{image_id}",
                now=utc_now(),
            )
        )
    mine = records.list_page(ListQuery("alice", 10)).items
    pending = records.list_page(ListQuery("alice", 10, status=Status.PENDING)).items
    everyone = records.list_page(ListQuery(None, 10)).items
    assert {r.id for r in mine} == {r.id for r in pending} == {r.id for r in everyone} == {"a" * 32, "b" * 32}


def test_attach_gives_the_handler_stack_the_failure_queue(account: None, project: Path) -> None:
    main(["resources", "--stage", "dev", "--project", str(project)])
    main(["attach", "--stage", "dev", "--project", str(project)])
    cfn = boto3.client("cloudformation")
    resources = stacks.outputs(cfn, "imgpress-dev-resources")
    handler = cfn.describe_stacks(StackName="imgpress-dev-handler")["Stacks"][0]
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in handler["Parameters"]}
    assert parameters["UploadFailureQueueArn"] == resources["UploadFailureQueueArn"]
    assert parameters["Stage"] == "dev"
    assert parameters["RestApiId"] == "" and parameters["MaximumEventAgeInSeconds"] == "3600"


def test_api_key_stages_attach_only_after_the_api_exists(account: None, project: Path) -> None:
    config = read(project / ".chalice" / "config.json")
    config["stages"]["dev"]["environment_variables"]["API_AUTH"] = "api_key"
    stages.save_json(project / ".chalice" / "config.json", config)
    main(["resources", "--stage", "dev", "--project", str(project)])
    with pytest.raises(SystemExit, match="run `chalice deploy --stage dev` first"):
        main(["attach", "--stage", "dev", "--project", str(project)])


def test_teardown_asks_first_then_removes_stacks_and_images(account: None, project: Path) -> None:
    main(["resources", "--stage", "dev", "--project", str(project)])
    main(["attach", "--stage", "dev", "--project", str(project)])
    env = stages.stage_environment(read(project / ".chalice" / "config.json"), "dev")
    s3 = boto3.client("s3")
    s3.put_object(Bucket=env["INPUT_BUCKET"], Key="uploads/" + "c" * 32, Body=b"original")
    s3.put_object(Bucket=env["OUTPUT_BUCKET"], Key="processed/" + "c" * 32 + "/web.webp", Body=b"variant")
    with pytest.raises(SystemExit, match="--yes"):
        main(["teardown", "--stage", "dev", "--project", str(project)])
    main(["teardown", "--stage", "dev", "--project", str(project), "--yes"])
    names = {
        s["StackName"]
        for s in boto3.client("cloudformation").list_stacks()["StackSummaries"]
        if s["StackStatus"] != "DELETE_COMPLETE"
    }
    assert names == set()
    assert env["INPUT_BUCKET"] not in {b["Name"] for b in s3.list_buckets()["Buckets"]}


def test_unknown_and_local_stages_are_refused(account: None, project: Path) -> None:
    for stage in ("local", "staging"):
        with pytest.raises(SystemExit, match="not a deployable stage"):
            main(["resources", "--stage", stage, "--project", str(project)])


def deploy_an_api(project: Path, stage: str) -> str:
    """What `chalice deploy` leaves behind: a REST API, and its id and URL in .chalice/deployed/<stage>.json."""
    apigateway = boto3.client("apigateway")
    api_id = apigateway.create_rest_api(name="imgpress")["id"]
    root = apigateway.get_resources(restApiId=api_id)["items"][0]["id"]
    apigateway.put_method(restApiId=api_id, resourceId=root, httpMethod="GET", authorizationType="NONE")
    apigateway.put_integration(restApiId=api_id, resourceId=root, httpMethod="GET", type="MOCK")
    deployed = project / ".chalice" / "deployed"
    deployed.mkdir(exist_ok=True)
    url = f"https://{api_id}.execute-api.us-east-1.amazonaws.com/api/"
    api = {"resource_type": "rest_api", "name": "rest_api", "rest_api_id": api_id, "rest_api_url": url}
    (deployed / f"{stage}.json").write_text(json.dumps({"resources": [api], "schema_version": "2.0"}))
    return api_id


def test_attach_gives_a_deployed_api_our_json_401_and_redeploys_it(account: None, project: Path) -> None:
    """`chalice deploy` re-imports the API and drops gateway responses: attach puts them back each time."""
    apigateway = boto3.client("apigateway")
    api_id = deploy_an_api(project, "dev")
    main(["resources", "--stage", "dev", "--project", str(project)])
    main(["attach", "--stage", "dev", "--project", str(project)])
    response = apigateway.get_gateway_response(restApiId=api_id, responseType="UNAUTHORIZED")
    assert json.loads(response["responseTemplates"]["application/json"])["error"]["code"] == "unauthorized"
    assert len(apigateway.get_deployments(restApiId=api_id)["items"]) == 1


def test_an_issuer_set_by_hand_survives_a_stack_without_a_user_pool(account: None, project: Path) -> None:
    """CreateUserPool=false with Auth0 (say): OIDC_* are the stage's own, the pool ARN is gone."""
    main(["resources", "--stage", "dev", "--project", str(project)])
    config = read(project / ".chalice" / "config.json")
    config["stages"]["dev"]["environment_variables"].update(
        OIDC_ISSUER="https://tenant.eu.auth0.com/",
        OIDC_AUDIENCE="https://api.images.example.com",
        OIDC_CLIENT_ID="auth0pageclient",
    )
    stages.save_json(project / ".chalice" / "config.json", config)
    outputs = stacks.outputs(boto3.client("cloudformation"), "imgpress-dev-resources")
    stages.record_outputs(project, "dev", {k: v for k, v in outputs.items() if not k.startswith("UserPool")})
    env = read(project / ".chalice" / "config.json")["stages"]["dev"]["environment_variables"]
    assert env["OIDC_ISSUER"] == "https://tenant.eu.auth0.com/" and "COGNITO_USER_POOL_ARN" not in env
    assert env["OIDC_CLIENT_ID"] == "auth0pageclient"


# --- the upload page's callback URL, known only after `chalice deploy` --------------------------


@pytest.fixture
def deploys(account: None, project: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """`python -m infra deploy` with `chalice deploy` replaced by deploy_an_api (the first time); records
    each `chalice` command and the PageUrls of each deployment of the resources stack."""
    seen: dict[str, list[str]] = {"chalice": [], "PageUrls": []}
    real_deploy = stacks.deploy

    def deploy(cfn: Any, name: str, template: Path, parameters: dict[str, str], tags: dict[str, str]) -> Any:
        if template.name == "resources.json":
            seen["PageUrls"].append(parameters["PageUrls"])
        return real_deploy(cfn, name, template, parameters, tags)

    def chalice(self: Deployment, command: str) -> None:
        seen["chalice"].append(command)
        if not stages.deployed_api_url(self.project, self.stage):
            deploy_an_api(self.project, self.stage)

    monkeypatch.setattr(stacks, "deploy", deploy)
    monkeypatch.setattr(Deployment, "chalice", chalice)
    return seen


def page_urls_of_the_stack(stage: str) -> str:
    return stacks.parameters(boto3.client("cloudformation"), f"imgpress-{stage}-resources")["PageUrls"]


@pytest.mark.parametrize("stage", ["dev", "prod"])  # API_AUTH=jwt against the stack's pool; API_AUTH=cognito
def test_the_first_deploy_registers_the_new_apis_url_with_a_second_update(
    deploys: dict[str, list[str]], project: Path, stage: str
) -> None:
    main(["deploy", "--stage", stage, "--project", str(project)])
    api_url = stages.deployed_api_url(project, stage)
    assert api_url.endswith(".execute-api.us-east-1.amazonaws.com/api/")
    assert deploys["PageUrls"] == ["", api_url]  # no URL to register before the API exists
    assert page_urls_of_the_stack(stage) == api_url
    assert deploys["chalice"] == ["deploy"]  # the second update changed no variable: no second chalice deploy
    env = stages.stage_environment(read(project / ".chalice" / "config.json"), stage)
    assert env["OIDC_CLIENT_ID"] == "EXAMPLEappclientid"  # the stack's client, recorded before chalice deploy
    assert (project / ".chalice" / "config.json").read_text() == (ROOT / ".chalice" / "config.json").read_text()


def test_later_deploys_find_the_url_registered_and_update_the_stack_once(
    deploys: dict[str, list[str]], project: Path
) -> None:
    main(["deploy", "--stage", "prod", "--project", str(project)])
    api_url = stages.deployed_api_url(project, "prod")
    main(["deploy", "--stage", "prod", "--project", str(project)])
    main(["resources", "--stage", "prod", "--project", str(project)])  # on its own, it keeps the URL too
    assert deploys["PageUrls"] == ["", api_url, api_url, api_url]
    assert deploys["chalice"] == ["deploy", "deploy"]
    assert page_urls_of_the_stack("prod") == api_url


def test_the_stages_own_page_urls_are_registered_from_the_first_update(
    deploys: dict[str, list[str]], project: Path
) -> None:
    config = read(project / ".chalice" / "config.json")
    config["stages"]["prod"]["environment_variables"]["PAGE_URLS"] = "https://images.example.com"
    stages.save_json(project / ".chalice" / "config.json", config)
    main(["deploy", "--stage", "prod", "--project", str(project)])
    api_url = stages.deployed_api_url(project, "prod")
    assert deploys["PageUrls"] == ["https://images.example.com/", f"{api_url},https://images.example.com/"]
    assert page_urls_of_the_stack("prod") == f"{api_url},https://images.example.com/"


def test_a_new_client_id_after_the_second_update_is_deployed_to_the_functions(
    deploys: dict[str, list[str]], project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not expected (a callback URL is changed in place), but the functions must never keep a stale id."""
    real_deploy = stacks.deploy
    clients = iter(["EXAMPLEappclientid", "replacedclientid"])

    def deploy(cfn: Any, name: str, template: Path, parameters: dict[str, str], tags: dict[str, str]) -> Any:
        outputs = dict(real_deploy(cfn, name, template, parameters, tags))
        return {**outputs, "UserPoolClientId": next(clients)} if template.name == "resources.json" else outputs

    monkeypatch.setattr(stacks, "deploy", deploy)
    main(["deploy", "--stage", "prod", "--project", str(project)])
    assert deploys["chalice"] == ["deploy", "deploy"]
    env = stages.stage_environment(read(project / ".chalice" / "config.json"), "prod")
    assert env["OIDC_CLIENT_ID"] == "replacedclientid"
