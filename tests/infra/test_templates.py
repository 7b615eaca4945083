"""The CloudFormation templates: cfn-lint clean, and the properties the issue asks for, read from the JSON.

(moto applies only part of a bucket's properties, so these are checked on the template itself;
tests/infra/test_stacks.py deploys it.)
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from chalicelib.aws.records import INDEX_KEYS
from chalicelib.settings import API_AUTH_MODES, page_settings
from devstack.resources import table_definition
from infra import stages
from infra.policy import LOG_GROUP_OUTPUTS

pytestmark = pytest.mark.integration

RESOURCES = json.loads((stages.TEMPLATES / "resources.json").read_text())["Resources"]
HANDLER = json.loads((stages.TEMPLATES / "handler.json").read_text())["Resources"]


def of_type(resources: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: body["Properties"] for name, body in resources.items() if body["Type"] == kind}


@pytest.mark.parametrize("template", ["resources.json", "handler.json", "monitoring.json"])
def test_cfn_lint_passes(template: str) -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run(
        [str(cfn_lint), str(stages.TEMPLATES / template)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_table_has_exactly_the_indexes_the_adapter_queries() -> None:
    """records.INDEX_KEYS is what the code queries; the template (and so moto's table, built from
    it by devstack) must define those indexes with those keys, and no unused one."""
    table = RESOURCES["ImagesTable"]["Properties"]
    defined = {
        index["IndexName"]: tuple(key["AttributeName"] for key in index["KeySchema"])
        for index in table["GlobalSecondaryIndexes"]
    }
    assert defined == INDEX_KEYS
    assert all(index["Projection"]["ProjectionType"] != "ALL" for index in table["GlobalSecondaryIndexes"])
    assert table_definition()["GlobalSecondaryIndexes"] == table["GlobalSecondaryIndexes"]
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
    assert {
        "Id": "abort-abandoned-uploads",
        "Status": "Enabled",
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
    } in rules
    policy = of_type(RESOURCES, "AWS::S3::BucketPolicy")
    assert any(p["Bucket"] == {"Ref": bucket} for p in policy.values()), "plain-HTTP access is not denied"


def test_only_the_input_bucket_takes_browser_uploads_from_the_stage_origins() -> None:
    """POST: presigned forms. PUT: multipart parts, whose ETag header the browser must be able to read."""
    assert RESOURCES["InputBucket"]["Properties"]["CorsConfiguration"]["Fn::If"][1]["CorsRules"] == [
        {
            "AllowedMethods": ["POST", "PUT"],
            "AllowedOrigins": {"Fn::Split": [",", {"Ref": "CorsAllowOrigins"}]},
            "AllowedHeaders": ["*"],
            "ExposedHeaders": ["ETag", "Location"],
            "MaxAge": 3600,
        }
    ]
    assert "CorsConfiguration" not in RESOURCES["OutputBucket"]["Properties"]


def test_the_bucket_cors_origins_are_the_stage_list_and_none_without_one() -> None:
    """The same origins the API echoes (CORS_ALLOW_ORIGINS); never `*` unless a stage says so."""
    config = stages.load_config(stages.PROJECT)
    for stage in ("dev", "prod"):
        origins = stages.stage_environment(config, stage)["CORS_ALLOW_ORIGINS"]
        assert stages.resources_parameters(config, stage)["CorsAllowOrigins"] == origins.replace(" ", "")
        assert "*" not in origins
        assert "CorsConfiguration" in deployed(stage)["Resources"]["InputBucket"]["Properties"]
    config["stages"]["dev"]["environment_variables"].pop("CORS_ALLOW_ORIGINS")
    assert stages.resources_parameters(config, "dev")["CorsAllowOrigins"] == ""
    assert TEMPLATE["Parameters"]["CorsAllowOrigins"]["Default"] == ""
    assert TEMPLATE["Conditions"]["HasCors"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "CorsAllowOrigins"}, ""]}]}


def test_every_api_auth_mode_is_a_template_value() -> None:
    assert set(TEMPLATE["Parameters"]["ApiAuth"]["AllowedValues"]) == set(API_AUTH_MODES)


def test_jwt_stages_get_the_authorizer_log_group_and_the_pool_issuer() -> None:
    dev, prod = deployed("dev"), deployed("prod")
    assert dev["Resources"]["AuthorizerLogGroup"]["Properties"]["LogGroupName"] == {
        "Fn::Sub": "/aws/lambda/imgpress-${Stage}-jwt_authorizer"
    }
    assert {"AuthorizerLogGroupArn", "UserPoolArn", "UserPoolIssuer", "UserPoolAudience"} <= set(dev["Outputs"])
    assert dev["Outputs"]["UserPoolIssuer"]["Value"] == {"Fn::Sub": "https://${UserPool.ProviderURL}"}
    assert "AuthorizerLogGroup" not in prod["Resources"]  # prod: API Gateway's own Cognito authorizer
    assert "UserPoolArn" in prod["Outputs"] and "UserPoolIssuer" not in prod["Outputs"]


def test_every_function_has_the_log_group_chalice_names_and_its_policy_reads() -> None:
    """One group per function (the authorizer's on API_AUTH=jwt stages only), each an output that
    infra/policy.py names in that function's WriteLogs grant alone."""
    config = stages.load_config(stages.PROJECT)
    outputs = TEMPLATE["Outputs"]
    for function, output in LOG_GROUP_OUTPUTS.items():
        (group,) = outputs[output]["Value"]["Fn::GetAtt"][:1]
        name = RESOURCES[group]["Properties"]["LogGroupName"]["Fn::Sub"].replace("${Stage}", "STAGE")
        assert name == "/aws/lambda/" + stages.function_name(
            config, "STAGE", None if function == "api_handler" else function
        )
        assert (
            RESOURCES[group].get("Condition")
            == outputs[output].get("Condition")
            == ("UseJwt" if function == "jwt_authorizer" else None)
        )
    assert len(of_type(RESOURCES, "AWS::Logs::LogGroup")) == len(LOG_GROUP_OUTPUTS)


def test_the_s3_handler_gets_async_retries_and_an_on_failure_queue() -> None:
    config = stages.load_config(stages.PROJECT)
    invoke = HANDLER["UploadHandlerInvokeConfig"]["Properties"]
    assert invoke["FunctionName"]["Fn::Sub"].replace("${Stage}", "STAGE") == stages.function_name(
        config, "STAGE", "handle_upload"
    )
    assert invoke["Qualifier"] == "$LATEST"
    assert invoke["DestinationConfig"] == {"OnFailure": {"Destination": {"Ref": "UploadFailureQueueArn"}}}
    assert {"MaximumRetryAttempts", "MaximumEventAgeInSeconds"} <= set(invoke)


def test_stage_knobs_are_template_parameters_and_never_derived_ones() -> None:
    """infra/stages.json sets cost and safety knobs; names, auth and CORS come from the stage config."""
    derived = {
        "Stage",
        "ApiAuth",
        "CorsAllowOrigins",
        "UploadPrefix",
        "OutputPrefix",
        "PageUrls",
        "ApiDomain",
        "UploadFailureQueueArn",
        "RestApiId",
        "ApiGatewayStage",
    }
    knobs = json.loads(stages.STAGE_PARAMETERS.read_text())
    for template in ("resources", "handler"):
        parameters = json.loads((stages.TEMPLATES / f"{template}.json").read_text())["Parameters"]
        for stage, kinds in knobs.items():
            names = set(kinds.get(template, {}))
            assert names <= set(parameters) - derived, (stage, template, names - set(parameters))


# --- the CDN in front of the output bucket ------------------------------------------------------

TEMPLATE = json.loads((stages.TEMPLATES / "resources.json").read_text())
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"  # AWS's managed cache policy, same id in every account
CDN_TYPES = {"AWS::CloudFront::Distribution", "AWS::CloudFront::OriginAccessControl"}


def _condition(expression: Any, parameters: dict[str, str]) -> bool:
    """The few condition functions the template uses, evaluated as CloudFormation would."""
    ((function, arguments),) = expression.items()
    if function == "Condition":
        return _condition(TEMPLATE["Conditions"][arguments], parameters)
    if function == "Fn::Not":
        return not _condition(arguments[0], parameters)
    if function in ("Fn::And", "Fn::Or"):
        results = [_condition(argument, parameters) for argument in arguments]
        return all(results) if function == "Fn::And" else any(results)
    assert function == "Fn::Equals", function
    values = [str(parameters[a["Ref"]]) if isinstance(a, dict) else str(a) for a in arguments]
    return values[0] == values[1]


def _resolve_ifs(node: Any, conditions: dict[str, bool]) -> Any:
    """The template with every Fn::If decided and AWS::NoValue dropped."""
    if isinstance(node, list):
        items = [_resolve_ifs(item, conditions) for item in node]
        return [item for item in items if item != {"Ref": "AWS::NoValue"}]
    if isinstance(node, dict):
        if set(node) == {"Fn::If"}:
            name, when_true, when_false = node["Fn::If"]
            return _resolve_ifs(when_true if conditions[name] else when_false, conditions)
        resolved = {key: _resolve_ifs(value, conditions) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value != {"Ref": "AWS::NoValue"}}
    return node


def deployed(stage: str, api_url: str = "", config: dict[str, Any] | None = None, **knobs: str) -> dict[str, Any]:
    """What CloudFormation would create from infra/resources.json with the stage's parameters."""
    given = {**stages.resources_parameters(config or stages.load_config(stages.PROJECT), stage, api_url), **knobs}
    parameters = {name: given.get(name, body.get("Default")) for name, body in TEMPLATE["Parameters"].items()}
    conditions = {name: _condition(expression, parameters) for name, expression in TEMPLATE["Conditions"].items()}
    kept = {
        section: {
            name: body
            for name, body in TEMPLATE[section].items()
            if "Condition" not in body or conditions[body["Condition"]]
        }
        for section in ("Resources", "Outputs")
    }
    return dict(_resolve_ifs(kept, conditions))


def _sub(template: str, names: dict[str, str]) -> str:
    for name, value in names.items():
        template = template.replace("${" + name + "}", value)
    assert "${" not in template, template
    return template


def test_the_cdn_is_a_per_stage_switch_prod_on_dev_off() -> None:
    prod, dev = deployed("prod"), deployed("dev")
    assert {body["Type"] for body in prod["Resources"].values()} >= CDN_TYPES
    assert {"OutputBaseUrl", "OutputDistributionId"} <= set(prod["Outputs"])
    assert not {body["Type"] for body in dev["Resources"].values()} & CDN_TYPES
    assert not {"OutputBaseUrl", "OutputDistributionId"} & set(dev["Outputs"])
    (dev_statement,) = dev["Resources"]["OutputBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert dev_statement["Sid"] == "DenyPlainHttp"
    allowed = TEMPLATE["Parameters"]["Cdn"]["AllowedValues"]
    knobs = json.loads(stages.STAGE_PARAMETERS.read_text())
    assert all(kinds["resources"].get("Cdn", "false") in allowed for kinds in knobs.values())


def test_every_cdn_resource_and_output_is_conditional() -> None:
    """A stage without the CDN must get none of it, whatever the other parameters."""
    for name, body in TEMPLATE["Resources"].items():
        assert (body["Type"] in CDN_TYPES) == (body.get("Condition") == "UseCdn"), name
    for name in ("OutputBaseUrl", "OutputDistributionId"):
        assert TEMPLATE["Outputs"][name]["Condition"] == "UseCdn"


def test_cloudfront_reads_the_bucket_through_origin_access_control_not_an_oai() -> None:
    resources = deployed("prod")["Resources"]
    (control,) = of_type(resources, "AWS::CloudFront::OriginAccessControl").values()
    config = control["OriginAccessControlConfig"]
    assert (config["OriginAccessControlOriginType"], config["SigningBehavior"], config["SigningProtocol"]) == (
        "s3",
        "always",
        "sigv4",
    )
    assert not of_type(TEMPLATE["Resources"], "AWS::CloudFront::CloudFrontOriginAccessIdentity")
    (distribution,) = of_type(resources, "AWS::CloudFront::Distribution").values()
    (origin,) = distribution["DistributionConfig"]["Origins"]
    assert origin["DomainName"] == {"Fn::GetAtt": ["OutputBucket", "RegionalDomainName"]}
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": ["OutputOriginAccessControl", "Id"]}
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}  # empty: no legacy identity
    assert "OriginPath" not in origin  # URL paths are the object keys, prefix included


def test_viewers_get_https_only_cached_and_compressed() -> None:
    (distribution,) = of_type(deployed("prod")["Resources"], "AWS::CloudFront::Distribution").values()
    config = distribution["DistributionConfig"]
    behaviour = config["DefaultCacheBehavior"]
    assert behaviour["TargetOriginId"] == config["Origins"][0]["Id"]
    assert behaviour["ViewerProtocolPolicy"] == "redirect-to-https"
    assert behaviour["CachePolicyId"] == CACHING_OPTIMIZED
    assert behaviour["Compress"] is True
    assert behaviour["AllowedMethods"] == ["GET", "HEAD"]  # read-only: no PUT/DELETE through the edge
    assert config["Enabled"] is True and config["PriceClass"] == {"Ref": "CdnPriceClass"}
    assert set(TEMPLATE["Parameters"]["CdnPriceClass"]["AllowedValues"]) == {
        "PriceClass_100",
        "PriceClass_200",
        "PriceClass_All",
    }


def test_the_output_bucket_stays_private_with_the_cdn() -> None:
    bucket = deployed("prod")["Resources"]["OutputBucket"]["Properties"]
    assert all(
        bucket["PublicAccessBlockConfiguration"][flag] is True
        for flag in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
    )
    assert "WebsiteConfiguration" not in bucket


def test_only_this_distribution_may_read_and_only_outputs() -> None:
    """The policy statement with its names filled in, then asked about requests like IAM would be."""
    document = deployed("prod")["Resources"]["OutputBucketPolicy"]["Properties"]["PolicyDocument"]
    names = {
        "OutputBucket.Arn": "arn:aws:s3:::out",
        "OutputPrefix": "processed/",
        "AWS::Partition": "aws",
        "AWS::AccountId": "123456789012",
        "OutputDistribution": "E2QWRUHAPOMQZL",
    }
    (grant,) = [s for s in document["Statement"] if s["Effect"] == "Allow"]
    assert grant["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert grant["Action"] == "s3:GetObject"
    resource = _sub(grant["Resource"]["Fn::Sub"], names)
    ((operator, condition),) = grant["Condition"].items()
    ((key, source),) = condition.items()
    assert (operator, key) == ("StringEquals", "AWS:SourceArn")
    source_arn = _sub(source["Fn::Sub"], names)
    assert source_arn == "arn:aws:cloudfront::123456789012:distribution/E2QWRUHAPOMQZL"

    def allowed(key: str, distribution: str) -> bool:
        calling = f"arn:aws:cloudfront::123456789012:distribution/{distribution}"
        return fnmatch.fnmatchcase(f"arn:aws:s3:::out/{key}", resource) and calling == source_arn

    assert allowed("processed/" + "a" * 32 + "/web.webp", "E2QWRUHAPOMQZL")
    assert not allowed("processed/" + "a" * 32 + "/web.webp", "EOTHERDISTRIB")
    assert not allowed("uploads/" + "a" * 32, "E2QWRUHAPOMQZL")
    assert not allowed("secrets.txt", "E2QWRUHAPOMQZL")


def test_the_stack_output_is_the_base_url_the_app_reads() -> None:
    output = TEMPLATE["Outputs"]["OutputBaseUrl"]
    assert output["Value"] == {"Fn::Sub": "https://${OutputDistribution.DomainName}"}  # no trailing slash
    variables = {
        name: body["Description"] for name, body in TEMPLATE["Outputs"].items() if body.get("Description", "").isupper()
    }
    assert variables == stages.OUTPUT_VARIABLES, "every variable-named output is recorded, and only those"


def test_the_readable_prefix_follows_the_stage_output_prefix() -> None:
    config = stages.load_config(stages.PROJECT)
    assert stages.resources_parameters(config, "prod")["OutputPrefix"] == "processed/"
    config["stages"]["prod"]["environment_variables"]["OUTPUT_PREFIX"] = "variants/"
    assert stages.resources_parameters(config, "prod")["OutputPrefix"] == "variants/"


def test_the_apps_last_attempt_is_lambdas_last_retry() -> None:
    """MAX_ATTEMPTS must be 1 + the handler's MaximumRetryAttempts: a smaller value would end images
    while Lambda still retries; a larger one would never make an attempt the last."""
    handler = json.loads((stages.TEMPLATES / "handler.json").read_text())
    default_retries = handler["Parameters"]["MaximumRetryAttempts"]["Default"]
    config = stages.load_config(stages.PROJECT)
    for stage in ("local", "dev", "prod"):
        env = {**config.get("environment_variables", {}), **config["stages"][stage].get("environment_variables", {})}
        retries = int(stages.extra_parameters(stage, "handler").get("MaximumRetryAttempts", default_retries))
        assert int(env.get("MAX_ATTEMPTS", "3")) == 1 + retries, stage


# --- the upload page signs in through the user pool's Hosted UI --------------------------------

API_URL = "https://abc123defg.execute-api.us-east-1.amazonaws.com/api/"  # as Chalice records rest_api_url


def _client(stage: str, api_url: str = "", config: dict[str, Any] | None = None) -> dict[str, Any]:
    return dict(deployed(stage, api_url, config)["Resources"]["UserPoolClient"]["Properties"])


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_once_the_api_exists_the_client_runs_the_code_flow_back_to_the_page(stage: str) -> None:
    """dev: API_AUTH=jwt against the stack's pool (JwtFromUserPool); prod: API_AUTH=cognito."""
    client = _client(stage, API_URL)
    assert client["AllowedOAuthFlowsUserPoolClient"] is True
    assert client["AllowedOAuthFlows"] == ["code"]  # no implicit flow: tokens never ride in a URL
    assert client["AllowedOAuthScopes"] == ["openid", "email", "profile"]
    assert client["SupportedIdentityProviders"] == ["COGNITO"]
    assert client["GenerateSecret"] is False  # a public client: the page holds no secret, PKCE protects the code
    page_urls = {"Fn::Split": [",", {"Ref": "PageUrls"}]}
    assert client["CallbackURLs"] == client["LogoutURLs"] == page_urls
    given = stages.resources_parameters(stages.load_config(stages.PROJECT), stage, API_URL)
    assert given["PageUrls"].split(",") == [API_URL]
    # the CLI's password sign-in (docs/security.md) keeps working beside it
    assert "ALLOW_USER_PASSWORD_AUTH" in client["ExplicitAuthFlows"]


def test_before_the_api_exists_the_client_has_no_code_flow_and_no_placeholder_url() -> None:
    """Cognito refuses the code flow without a callback URL; the first deploy registers it after
    `chalice deploy` (infra/__main__.py register_page)."""
    client = _client("prod")
    assert client["AllowedOAuthFlowsUserPoolClient"] is False
    assert not {"AllowedOAuthFlows", "AllowedOAuthScopes", "CallbackURLs", "LogoutURLs"} & set(client)
    assert stages.resources_parameters(stages.load_config(stages.PROJECT), "prod")["PageUrls"] == ""
    assert TEMPLATE["Parameters"]["PageUrls"]["Default"] == ""


def test_every_page_the_stage_lists_is_a_callback_url_too() -> None:
    config = stages.load_config(stages.PROJECT)
    config["stages"]["prod"]["environment_variables"]["PAGE_URLS"] = (
        "https://images.example.com, https://cdn.example.com/upload/index.html,http://localhost:5173"
    )
    assert stages.resources_parameters(config, "prod", API_URL)["PageUrls"].split(",") == [
        API_URL,
        "https://images.example.com/",
        "https://cdn.example.com/upload/",
        "http://localhost:5173/",
    ]
    assert _client("prod", config=config)["AllowedOAuthFlowsUserPoolClient"] is True  # even before the API


def test_a_stage_without_a_user_pool_gets_no_page_urls_parameter() -> None:
    config = stages.load_config(stages.PROJECT)
    config["stages"]["prod"]["environment_variables"]["API_AUTH"] = "jwt"  # an issuer of its own (no pool on prod)
    config["stages"]["prod"]["environment_variables"]["PAGE_URLS"] = "https://images.example.com"
    parameters = stages.resources_parameters(config, "prod", API_URL)
    assert "PageUrls" not in parameters  # so no second update of the stack after `chalice deploy`
    assert "UserPoolClient" not in deployed("prod", API_URL, config)["Resources"]


def test_the_pool_gets_a_hosted_ui_domain_unique_per_account_and_stage() -> None:
    """With a domain, the pool's discovery document names the Hosted UI's authorize and token endpoints."""
    for stage in ("dev", "prod"):
        (domain,) = of_type(deployed(stage)["Resources"], "AWS::Cognito::UserPoolDomain").values()
        assert domain["UserPoolId"] == {"Ref": "UserPool"}
        assert domain["Domain"] == {"Fn::Sub": "imgpress-${Stage}-${AWS::AccountId}"}
        assert domain["ManagedLoginVersion"] == 1  # the classic Hosted UI: version 2 needs a branding style
        prefix = _sub(domain["Domain"]["Fn::Sub"], {"Stage": stage, "AWS::AccountId": "123456789012"})
        assert len(prefix) <= 63 and not any(word in prefix for word in ("aws", "amazon", "cognito"))
    assert TEMPLATE["Resources"]["UserPoolDomain"]["Condition"] == "UseCognito"
    chosen = deployed("prod", HostedUiDomain="login-images-example")["Resources"]["UserPoolDomain"]
    assert chosen["Properties"]["Domain"] == {"Ref": "HostedUiDomain"}  # when the default prefix is taken
    assert TEMPLATE["Outputs"]["HostedUiUrl"]["Value"] == {
        "Fn::Sub": "https://${UserPoolDomain}.auth.${AWS::Region}.amazoncognito.com"
    }


def test_the_client_id_becomes_the_pages_oidc_client_id() -> None:
    output = TEMPLATE["Outputs"]["UserPoolClientId"]
    assert (output["Value"], output["Description"], output["Condition"]) == (
        {"Ref": "UserPoolClient"},
        "OIDC_CLIENT_ID",
        "UseCognito",
    )
    assert "OIDC_CLIENT_ID" in stages.HAND_SET_WITHOUT_OUTPUT  # a page client of Auth0 (say) survives


def test_the_scopes_the_page_asks_for_are_ones_the_client_allows() -> None:
    config = stages.load_config(stages.PROJECT)
    allowed = set(_client("prod", API_URL)["AllowedOAuthScopes"])
    for stage in ("dev", "prod"):
        assert set(page_settings(stages.stage_environment(config, stage)).scopes.split()) <= allowed


def _page_redirect_uri(href: str) -> str:
    """index.html's HOME and redirectUri(), in Python: what the page sends as redirect_uri."""
    parts = urlsplit(href)
    home = re.sub(r"/+$", "", re.sub(r"/index\.html$", "", f"{parts.scheme}://{parts.netloc}{parts.path}"))
    return f"{home}/"


def test_the_registered_urls_are_the_redirect_uri_the_page_sends() -> None:
    page = (stages.PROJECT / "chalicelib" / "static" / "index.html").read_text()
    assert 'const HOME = location.protocol === "file:" ? "http://127.0.0.1:8000"' in page
    assert '(location.origin + location.pathname).replace(/\\/index\\.html$/, "").replace(/\\/+$/, "");' in page
    assert "function redirectUri() { return `${HOME}/`; }" in page
    assert "redirect_uri: redirectUri()," in page
    api = API_URL.rstrip("/")
    for opened in (api, api + "/", api + "/index.html", api + "/?api=x#y"):
        assert stages.page_urls({}, API_URL) == [_page_redirect_uri(opened)]
    for listed, opened in (
        ("https://images.example.com", "https://images.example.com/"),
        ("https://cdn.example.com/upload/index.html", "https://cdn.example.com/upload/"),
        ("https://cdn.example.com/upload", "https://cdn.example.com/upload/index.html?x=1"),
    ):
        assert stages.page_urls({"PAGE_URLS": listed}, "") == [_page_redirect_uri(opened)]


@pytest.mark.parametrize(
    "value",
    [
        "http://images.example.com/",  # Cognito: https only, but for localhost
        "https://images.example.com/?a=1",
        "https://images.example.com/#top",
        "https://Images.example.com/",
        "images.example.com",
    ],
)
def test_a_page_url_cognito_would_refuse_stops_the_deploy_before_aws(value: str) -> None:
    config = stages.load_config(stages.PROJECT)
    config["stages"]["prod"]["environment_variables"]["PAGE_URLS"] = value
    with pytest.raises(SystemExit, match="PAGE_URLS"):
        stages.check_deployable(config, "prod")


def test_a_stage_whose_name_cognito_refuses_in_a_domain_must_name_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    config = stages.load_config(stages.PROJECT)
    config["stages"]["awsome"] = config["stages"]["prod"]
    monkeypatch.setattr(stages, "extra_parameters", lambda stage, kind: {})
    monkeypatch.setattr(stages, "region", lambda stage: "us-east-1")
    with pytest.raises(SystemExit, match="set HostedUiDomain under awsome"):
        stages.check_deployable(config, "awsome")
    monkeypatch.setattr(stages, "extra_parameters", lambda stage, kind: {"HostedUiDomain": "images-login"})
    stages.check_deployable(config, "awsome")


def test_a_stage_whose_arns_name_another_region_than_its_own_is_refused() -> None:
    """The stage's region (infra/stages.json) is where `make deploy` and `make package` put it."""
    config = stages.load_config(stages.PROJECT)
    config["stages"]["dev"]["environment_variables"]["TOPIC_ARN"] = "arn:aws:sns:eu-west-1:123456789012:t"
    with pytest.raises(SystemExit, match=r"is in us-east-1 .*TOPIC_ARN is in eu-west-1"):
        stages.check_deployable(config, "dev")
    assert stages.region("prod") == "us-east-1"


# --- on-demand variants: the keys' secret, and behind the CDN an origin group and an Accept function --

ACCEPT_FUNCTION = stages.TEMPLATES / "cloudfront" / "accept_class.js"
VARIANT_TYPES = {"AWS::CloudFront::Function", "AWS::CloudFront::CachePolicy", "AWS::CloudFront::OriginRequestPolicy"}
API = "https://abc123.execute-api.us-east-1.amazonaws.com/api/"


def test_on_demand_variants_are_a_per_stage_switch_off_by_default() -> None:
    for stage in ("dev", "prod"):
        resources = deployed(stage)["Resources"]
        assert not of_type(resources, "AWS::SecretsManager::Secret") and not VARIANT_TYPES & {
            body["Type"] for body in resources.values()
        }
    dev = deployed("dev", Transforms="true")
    (secret,) = of_type(dev["Resources"], "AWS::SecretsManager::Secret").values()
    assert secret["GenerateSecretString"] == {"PasswordLength": 48, "ExcludePunctuation": True}  # no one sees it
    assert "TransformKeysSecretArn" in dev["Outputs"] and "TransformBaseUrl" not in dev["Outputs"]  # no CDN


def test_behind_the_cdn_stored_variants_come_from_s3_and_new_ones_from_the_api() -> None:
    before_the_api = deployed("prod", Transforms="true")
    assert not VARIANT_TYPES & {body["Type"] for body in before_the_api["Resources"].values()}
    resources = deployed("prod", Transforms="true", ApiDomain=urlsplit(API).hostname or "")["Resources"]
    config = resources["OutputDistribution"]["Properties"]["DistributionConfig"]
    origins = {origin["Id"]: origin for origin in config["Origins"]}
    assert origins["api"]["DomainName"] == {"Ref": "ApiDomain"} and origins["api"]["OriginPath"] == "/api"
    assert origins["api"]["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    (group,) = config["OriginGroups"]["Items"]
    assert [m["OriginId"] for m in group["Members"]["Items"]] == ["output-bucket", "api"]  # S3 first
    assert group["FailoverCriteria"]["StatusCodes"]["Items"] == [403, 404]  # OAC: a missing key is a 403
    (behaviour,) = config["CacheBehaviors"]
    assert _sub(behaviour["PathPattern"]["Fn::Sub"], {"OutputPrefix": "processed/"}) == "processed/*/od/*"
    assert behaviour["TargetOriginId"] == group["Id"] and behaviour["AllowedMethods"] == ["GET", "HEAD"]
    (association,) = behaviour["FunctionAssociations"]
    assert association["EventType"] == "viewer-request"
    cache = resources["VariantCachePolicy"]["Properties"]["CachePolicyConfig"][
        "ParametersInCacheKeyAndForwardedToOrigin"
    ]
    assert cache["HeadersConfig"] == {"HeaderBehavior": "whitelist", "Headers": ["Accept"]}  # the class only
    assert cache["QueryStringsConfig"] == {"QueryStringBehavior": "none"}  # the signature is not in the key
    forwarded = resources["VariantOriginRequestPolicy"]["Properties"]["OriginRequestPolicyConfig"]
    assert forwarded["QueryStringsConfig"] == {"QueryStringBehavior": "all"}  # but reaches the API
    assert config["DefaultCacheBehavior"]["TargetOriginId"] == "output-bucket"  # outputs as before
    assert resources["AcceptClassFunction"]["Properties"]["FunctionCode"] == ACCEPT_FUNCTION.read_text()


def test_the_api_domain_is_derived_from_the_deployed_api_on_transform_stages_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = stages.load_config(stages.PROJECT)
    assert "ApiDomain" not in stages.resources_parameters(config, "prod", API)
    knobs = {**stages.extra_parameters("prod", "resources"), "Transforms": "true"}
    monkeypatch.setattr(stages, "extra_parameters", lambda stage, kind: knobs if kind == "resources" else {})
    assert stages.resources_parameters(config, "prod", API)["ApiDomain"] == urlsplit(API).hostname
    assert stages.resources_parameters(config, "prod", "")["ApiDomain"] == ""  # before the API exists


ACCEPTS = {
    "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8": "avif",  # Chrome
    "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5": "webp",  # Safari 15
    "image/avif;q=0, image/webp": "webp",
    "IMAGE/WEBP": "webp",
    "image/webp;q=0.0": "jpeg",
    "image/png,image/*;q=0.8,*/*;q=0.5": "jpeg",
    "*/*": "jpeg",
    "": "jpeg",
}


def test_the_cloudfront_function_classes_accept_as_the_api_negotiates_and_rewrites_auto() -> None:
    from chalicelib.transforms import negotiate

    cases = [
        {"accept": accept, "uri": uri}
        for accept in ACCEPTS
        for uri in ("/processed/x/od/r/320.auto", "/processed/x/od/r/320.jpeg")
    ]
    cases.append({"accept": None, "uri": "/processed/x/od/r/320.auto"})
    script = (
        ACCEPT_FUNCTION.read_text()
        + """
const cases = JSON.parse(process.argv[1]);
console.log(JSON.stringify(cases.map((c) => {
  const headers = c.accept === null ? {} : { accept: { value: c.accept } };
  const request = handler({ request: { uri: c.uri, headers } });
  return [request.headers.accept.value, request.uri];
})));
"""
    )
    result = subprocess.run(["node", "-e", script, json.dumps(cases)], capture_output=True, text=True, check=True)
    answers = json.loads(result.stdout)
    for case, (accept, uri) in zip(cases, answers):
        kind = negotiate(case["accept"], "JPEG")
        assert accept == f"image/{kind}", case
        rewritten = case["uri"].endswith(".auto") and kind != "jpeg"
        assert uri == (case["uri"].replace(".auto", f".{kind}") if rewritten else case["uri"]), case
