"""The Chalice stage configuration in .chalice/: read it, and record stack outputs into it.

`python -m infra resources` writes the resource names into the stage's environment variables
and one least-privilege policy file per Lambda function, so `chalice deploy` needs no hand edits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from chalicelib.errors import ConfigError
from chalicelib.settings import PUBLIC_API_CONSENT, PUBLIC_API_OPT_IN, Environment, access_settings, parse_origins
from infra.policy import FUNCTIONS, function_policies, policy_file

PROJECT = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().parent
STAGE_PARAMETERS = TEMPLATES / "stages.json"

# Stack output -> the environment variable the app reads it from. From UserPoolArn on they exist only
# on stages whose template conditions create them (a user pool, API_AUTH=jwt against it, the CDN,
# on-demand variants, and those behind the CDN).
OUTPUT_VARIABLES = {
    "InputBucket": "INPUT_BUCKET",
    "OutputBucket": "OUTPUT_BUCKET",
    "ImagesTable": "TABLE_NAME",
    "EventsTopic": "TOPIC_ARN",
    "UserPoolArn": "COGNITO_USER_POOL_ARN",
    "UserPoolClientId": "OIDC_CLIENT_ID",
    "UserPoolIssuer": "OIDC_ISSUER",
    "UserPoolAudience": "OIDC_AUDIENCE",
    "OutputBaseUrl": "OUTPUT_BASE_URL",
    "TransformKeysSecretArn": "TRANSFORM_KEYS_SECRET",
    "TransformBaseUrl": "TRANSFORM_BASE_URL",
}
# Without the stack's user pool these name another issuer (Auth0, Clerk...): set by hand, never removed.
HAND_SET_WITHOUT_OUTPUT = {"OIDC_ISSUER", "OIDC_AUDIENCE", "OIDC_CLIENT_ID"}


def config_path(project: Path) -> Path:
    return project / ".chalice" / "config.json"


def load_config(project: Path) -> dict[str, Any]:
    return dict(json.loads(config_path(project).read_text()))


def save_json(path: Path, document: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def _deployable(stage_body: Mapping[str, Any]) -> bool:
    """A stage whose functions name their policy files (the local stage names none)."""
    return any("iam_policy_file" in function for function in stage_body.get("lambda_functions", {}).values())


def stage_config(config: Mapping[str, Any], stage: str) -> dict[str, Any]:
    stages = config.get("stages", {})
    if stage not in stages or not _deployable(stages[stage]):
        deployable = sorted(name for name, body in stages.items() if _deployable(body))
        raise SystemExit(f"stage {stage!r} is not a deployable stage of .chalice/config.json; try one of {deployable}")
    return dict(stages[stage])


def stage_environment(config: Mapping[str, Any], stage: str) -> dict[str, str]:
    """What the stage's Lambda functions see: the global variables, overridden by the stage's."""
    return {**config.get("environment_variables", {}), **stage_config(config, stage).get("environment_variables", {})}


def check_deployable(config: Mapping[str, Any], stage: str) -> None:
    """Refuse a stage the app would refuse on Lambda (an open API without the opt-in, bad auth or CORS
    settings) and `*` CORS without the same opt-in. Run before anything reaches AWS."""
    env = stage_environment(config, stage)
    try:
        access = access_settings({**env, "AWS_LAMBDA_FUNCTION_NAME": function_name(config, stage)})
        parameters = resources_parameters(config, stage)  # PAGE_URLS: refused here as Cognito would
    except ConfigError as error:
        raise SystemExit(f"stage {stage!r} cannot be deployed: {error}") from error
    check_region(config, stage)
    reserved = [word for word in ("aws", "amazon", "cognito") if word in stage]
    if "PageUrls" in parameters and reserved and not parameters.get("HostedUiDomain"):
        raise SystemExit(
            f"stage {stage!r} cannot be deployed: Cognito refuses a Hosted UI domain containing {reserved[0]!r} "
            f"(imgpress-{stage}-<account>); set HostedUiDomain under {stage}.resources in infra/stages.json"
        )
    if "*" in access.origins and not access.public_allowed:
        raise SystemExit(
            f"stage {stage!r} cannot be deployed: CORS_ALLOW_ORIGINS=* lets every web page call the API; list the "
            f"front-end origins, or set {PUBLIC_API_OPT_IN}={PUBLIC_API_CONSENT} in the stage's environment"
        )


def function_name(config: Mapping[str, Any], stage: str, handler: str | None = None) -> str:
    """Chalice's naming: `<app>-<stage>` for the API handler, `<app>-<stage>-<handler>` for the others."""
    base = f"{config['app_name']}-{stage}"
    return f"{base}-{handler}" if handler else base


def stack_name(config: Mapping[str, Any], stage: str, kind: str) -> str:
    return f"{config['app_name']}-{stage}-{kind}"


def region(stage: str) -> str:
    """The AWS region the stage lives in (infra/stages.json): packaging and deploying need no other
    AWS set-up to know it, and a shell's AWS_REGION cannot send a stage somewhere else."""
    found = json.loads(STAGE_PARAMETERS.read_text()).get(stage, {}).get("region")
    if not isinstance(found, str) or not found:
        raise SystemExit(f'stage {stage!r} names no region: add "region" to its entry in infra/stages.json')
    return found


def check_region(config: Mapping[str, Any], stage: str) -> None:
    """Every regional ARN the stage's functions are given must be in the stage's region."""
    expected = region(stage)
    for name, value in sorted(stage_environment(config, stage).items()):
        parts = str(value).split(":")
        if len(parts) >= 6 and parts[0] == "arn" and parts[3] and parts[3] != expected:
            raise SystemExit(f"stage {stage!r} is in {expected} (infra/stages.json), but {name} is in {parts[3]}")


def extra_parameters(stage: str, kind: str) -> dict[str, str]:
    """Per-stage template parameters (the cost and safety knobs) from infra/stages.json."""
    knobs = json.loads(STAGE_PARAMETERS.read_text())
    return {key: str(value) for key, value in knobs.get(stage, {}).get(kind, {}).items()}


def resources_parameters(config: Mapping[str, Any], stage: str, api_url: str = "") -> dict[str, str]:
    """Parameters of infra/resources.json: the stage's own settings first, then its knobs; on a
    stage with a user pool, the upload page's URLs (`api_url`: the deployed API's, once there is one)."""
    env = stage_environment(config, stage)
    read = Environment(env)
    parameters = {
        "Stage": stage,
        "ApiAuth": read.text("API_AUTH"),
        "CorsAllowOrigins": ",".join(
            parse_origins(read.text("CORS_ALLOW_ORIGINS"), "CORS_ALLOW_ORIGINS", allow_any=True)
        ),
        "UploadPrefix": read.text("UPLOAD_PREFIX"),
        "OutputPrefix": read.text("OUTPUT_PREFIX"),
        **extra_parameters(stage, "resources"),
    }
    if parameters["ApiAuth"] == "cognito" or parameters.get("CreateUserPool") == "true":  # UseCognito
        parameters["PageUrls"] = ",".join(page_urls(env, api_url))
    if parameters.get("Transforms") == "true" and parameters.get("Cdn") == "true":  # the CDN's fallback origin
        parameters["ApiDomain"] = urlsplit(api_url).hostname or ""
    return parameters


def page_urls(env: Mapping[str, str], api_url: str) -> list[str]:
    """Where the upload page lives, each URL as the page sends it as its redirect_uri: its base URL
    with a trailing `/` (`…/index.html` and `…/upload` both become `…/upload/`). First the API's own
    (the app serves the page at its root), then the stage's PAGE_URLS, copies hosted elsewhere.
    Cognito takes only https callback URLs, and http://localhost for testing."""
    urls = [api_url] if api_url else []
    urls += list(Environment(env).items("PAGE_URLS"))
    pages = []
    for url in urls:
        parts = urlsplit(url)
        local = parts.scheme == "http" and parts.hostname == "localhost"
        if not (parts.scheme == "https" or local) or not parts.hostname or parts.query or parts.fragment:
            raise ConfigError(f"PAGE_URLS: {url!r} is not an https:// (or http://localhost) URL of the upload page")
        if parts.netloc != parts.netloc.lower():
            raise ConfigError(f"PAGE_URLS: {url!r} must be lower-case up to its path, as browsers write it")
        path = parts.path.removesuffix("/index.html").rstrip("/")
        pages.append(f"{parts.scheme}://{parts.netloc}{path}/")
    return list(dict.fromkeys(pages))


def monitoring_parameters(config: Mapping[str, Any], stage: str) -> dict[str, str]:
    """Parameters of infra/monitoring.json: the names API Gateway's metrics are filed under, then the
    stage's alarm settings (thresholds, the alarm e-mail, the runbooks' URL) from infra/stages.json."""
    return {
        "Stage": stage,
        "ApiName": str(config["app_name"]),
        "ApiGatewayStage": stage_config(config, stage).get("api_gateway_stage", "api"),
        **extra_parameters(stage, "monitoring"),
    }


def handler_parameters(
    config: Mapping[str, Any], stage: str, outputs: Mapping[str, str], rest_api_id: str
) -> dict[str, str]:
    """Parameters of infra/handler.json; `rest_api_id` is only passed when API_AUTH is api_key."""
    env = stage_environment(config, stage)
    return {
        "Stage": stage,
        "UploadFailureQueueArn": outputs["UploadFailureQueueArn"],
        "RestApiId": rest_api_id if Environment(env).text("API_AUTH") == "api_key" else "",
        "ApiGatewayStage": stage_config(config, stage).get("api_gateway_stage", "api"),
        **extra_parameters(stage, "handler"),
    }


def record_outputs(project: Path, stage: str, outputs: Mapping[str, str]) -> None:
    """Write resource names (and STAGE) into the stage's environment and regenerate each function's
    IAM policy.

    A variable whose output the stack no longer has (the CDN or the user pool was switched off)
    is removed, so the app stops pointing at a resource CloudFormation has just deleted. So is the
    policy of a function the stage no longer has (the JWT authorizer of a stage moved off `jwt`).
    """
    config = load_config(project)
    stage_body = stage_config(config, stage)
    env = stage_body.setdefault("environment_variables", {})
    env["STAGE"] = stage  # the dimension the monitoring stack's alarms read (chalicelib/metrics.py)
    for output, variable in OUTPUT_VARIABLES.items():
        if output in outputs:
            env[variable] = outputs[output]
        elif variable not in HAND_SET_WITHOUT_OUTPUT:
            env.pop(variable, None)
    config["stages"][stage] = stage_body
    policies = function_policies(stage_environment(config, stage), outputs)
    functions = stage_body.setdefault("lambda_functions", {})
    for function in FUNCTIONS:
        if function in policies:
            functions.setdefault(function, {})["iam_policy_file"] = policy_file(stage, function)
        else:
            functions.get(function, {}).pop("iam_policy_file", None)
            (project / ".chalice" / policy_file(stage, function)).unlink(missing_ok=True)
    save_json(config_path(project), config)
    for function, policy in policies.items():
        save_json(project / ".chalice" / policy_file(stage, function), policy)


def _deployed_rest_api(project: Path, stage: str) -> dict[str, Any]:
    """The REST API Chalice recorded in .chalice/deployed/<stage>.json ({} if not deployed)."""
    deployed = project / ".chalice" / "deployed" / f"{stage}.json"
    if not deployed.exists():
        return {}
    for resource in json.loads(deployed.read_text()).get("resources", []):
        if resource.get("resource_type") == "rest_api":
            return dict(resource)
    return {}


def deployed_rest_api_id(project: Path, stage: str) -> str:
    return str(_deployed_rest_api(project, stage).get("rest_api_id", ""))


def deployed_api_url(project: Path, stage: str) -> str:
    """The API's URL as Chalice printed it (`https://<id>.execute-api.<region>.amazonaws.com/api/`), or ""."""
    return str(_deployed_rest_api(project, stage).get("rest_api_url", ""))
