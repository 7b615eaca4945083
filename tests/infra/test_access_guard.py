"""No deployable open stage, and API Gateway's own 401/403 in our JSON shape, on AWS and locally alike."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.settings import PUBLIC_API_CONSENT, PUBLIC_API_OPT_IN
from devstack.gateway import gateway_response
from infra import gateway, stages
from infra.__main__ import main
from tests.conftest import use_fake_account

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / ".chalice", tmp_path / ".chalice", ignore=shutil.ignore_patterns("deploy*"))
    return tmp_path


def set_env(project: Path, stage: str, **changes: str | None) -> dict[str, Any]:
    config = stages.load_config(project)
    env = config["stages"][stage]["environment_variables"]
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    stages.save_json(stages.config_path(project), config)
    return config


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_committed_stages_are_deployable_with_auth_and_listed_origins(stage: str) -> None:
    config = stages.load_config(ROOT)
    stages.check_deployable(config, stage)
    env = stages.stage_environment(config, stage)
    assert env["API_AUTH"] in ("jwt", "cognito") and "*" not in env["CORS_ALLOW_ORIGINS"]
    assert PUBLIC_API_OPT_IN not in env


@pytest.mark.parametrize(
    "changes, says",
    [
        ({"API_AUTH": "none"}, PUBLIC_API_OPT_IN),
        ({"API_AUTH": None}, PUBLIC_API_OPT_IN),
        ({"API_AUTH": "none", PUBLIC_API_OPT_IN: "yes"}, PUBLIC_API_CONSENT),
        ({"CORS_ALLOW_ORIGINS": "*"}, r"CORS_ALLOW_ORIGINS=\*"),
        ({"OIDC_AUDIENCE": ""}, "OIDC_AUDIENCE"),
        ({"OIDC_ISSUER": "http://issuer.example.com"}, "OIDC_ISSUER"),
    ],
)
def test_open_or_broken_stages_are_refused_before_anything_reaches_aws(
    project: Path, changes: dict[str, str | None], says: str
) -> None:
    config = set_env(project, "dev", **changes)
    with pytest.raises(SystemExit, match=says):
        stages.check_deployable(config, "dev")
    for command in ("resources", "deploy", "attach", "check"):
        with pytest.raises(SystemExit, match=says):
            main([command, "--stage", "dev", "--project", str(project)])


def test_the_loud_opt_in_allows_an_open_stage(project: Path) -> None:
    config = set_env(project, "dev", API_AUTH="none", CORS_ALLOW_ORIGINS="*", **{PUBLIC_API_OPT_IN: PUBLIC_API_CONSENT})
    stages.check_deployable(config, "dev")
    main(["check", "--stage", "dev", "--project", str(project)])


def test_teardown_of_an_open_stage_is_not_refused(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(project, "dev", API_AUTH="none")
    use_fake_account(monkeypatch)
    with mock_aws(), pytest.raises(SystemExit, match="--yes"):  # asks for confirmation, no refusal
        main(["teardown", "--stage", "dev", "--project", str(project)])


def test_packaging_refuses_an_open_stage_before_anything_is_built(project: Path, tmp_path: Path) -> None:
    """`make package` is `python -m infra package`: the stage is checked first, as for a deploy."""
    set_env(project, "dev", API_AUTH="none")
    out = tmp_path / "terraform-dev"
    command = [sys.executable, "-m", "infra", "package", "--stage", "dev", "--project", str(project), "--dir", str(out)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode != 0 and PUBLIC_API_OPT_IN in result.stderr
    assert not out.exists()


def test_infra_check_exits_non_zero_for_an_open_stage(project: Path) -> None:
    set_env(project, "dev", API_AUTH="none")
    command = [sys.executable, "-m", "infra", "check", "--stage", "dev", "--project", str(project)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode != 0 and PUBLIC_API_OPT_IN in result.stderr


# --- gateway responses ------------------------------------------------------------------------


@pytest.fixture
def rest_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    use_fake_account(monkeypatch)
    with mock_aws():
        client = boto3.client("apigateway")
        api_id = client.create_rest_api(name="imgpress-dev")["id"]
        root = client.get_resources(restApiId=api_id)["items"][0]["id"]
        client.put_method(restApiId=api_id, resourceId=root, httpMethod="GET", authorizationType="NONE")
        client.put_integration(restApiId=api_id, resourceId=root, httpMethod="GET", type="MOCK")
        yield client, api_id


def test_attach_puts_json_gateway_responses_and_redeploys(rest_api: tuple[Any, str]) -> None:
    client, api_id = rest_api
    assert gateway.put_responses(client, api_id, "api") == [
        "UNAUTHORIZED",
        "ACCESS_DENIED",
        "THROTTLED",
        "QUOTA_EXCEEDED",
    ]
    unauthorized = client.get_gateway_response(restApiId=api_id, responseType="UNAUTHORIZED")
    assert unauthorized["statusCode"] == "401"
    body = json.loads(unauthorized["responseTemplates"]["application/json"])
    assert set(body) == {"error"} and body["error"]["code"] == "unauthorized"
    assert unauthorized["responseParameters"] == {
        "gatewayresponse.header.Access-Control-Allow-Origin": "method.request.header.Origin",
        "gatewayresponse.header.Vary": "'Origin'",
    }
    assert client.get_gateway_response(restApiId=api_id, responseType="ACCESS_DENIED")["statusCode"] == "403"
    for usage_plan_limit in ("THROTTLED", "QUOTA_EXCEEDED"):  # API keys: the usage plan is the outer limit
        assert client.get_gateway_response(restApiId=api_id, responseType=usage_plan_limit)["statusCode"] == "429"
    assert [d["description"] for d in client.get_deployments(restApiId=api_id)["items"]] == [
        "imgpress gateway responses"
    ]


def test_the_local_gateway_answers_exactly_what_aws_is_configured_to(rest_api: tuple[Any, str]) -> None:
    client, api_id = rest_api
    gateway.put_responses(client, api_id, "api")
    for kind, status, error_type in (
        ("UNAUTHORIZED", 401, "UnauthorizedException"),
        ("ACCESS_DENIED", 403, "AccessDeniedException"),
    ):
        on_aws = client.get_gateway_response(restApiId=api_id, responseType=kind)
        local = gateway_response(status, error_type, {"origin": "https://app.example.com"})
        assert local is not None
        local_status, headers, body = local
        assert str(local_status) == on_aws["statusCode"]
        assert json.loads(body) == json.loads(on_aws["responseTemplates"]["application/json"])
        assert headers["Access-Control-Allow-Origin"] == "https://app.example.com" and headers["Vary"] == "Origin"
    assert gateway_response(403, "UnauthorizedException", {}) is None  # unknown route: left as chalice answers


def test_gateway_response_templates_need_no_escaping() -> None:
    """The bodies are used as API Gateway mapping templates (VTL): no `$` or `#` to be interpreted."""
    for response in gateway.definitions()["Responses"].values():
        assert not set(gateway.error_body(response)) & {"$", "#"}
