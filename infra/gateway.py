"""API Gateway's own error answers (no token, a denied request) in imgpress's `{"error": {code, message}}` shape.

Put on the REST API with the API Gateway API rather than as CloudFormation resources: `chalice deploy`
re-imports the API definition (put_rest_api, mode overwrite), which drops gateway responses made
beside it (the same happens to SAM, aws/serverless-application-model#390), and a gateway response
only takes effect in a new deployment of the stage. So `attach` puts them after every `chalice
deploy` and redeploys the stage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESPONSES_FILE = Path(__file__).resolve().parent / "gateway_responses.json"


def definitions() -> dict[str, Any]:
    return dict(json.loads(RESPONSES_FILE.read_text()))


def error_body(response: dict[str, str]) -> str:
    return json.dumps({"error": {"code": response["Code"], "message": response["Message"]}})


def put_responses(apigateway: Any, rest_api_id: str, stage: str) -> list[str]:
    """Put every response type of gateway_responses.json, then redeploy `stage`. Returns the types."""
    document = definitions()
    parameters = {f"gatewayresponse.header.{name}": value for name, value in document["Headers"].items()}
    for kind, response in document["Responses"].items():
        apigateway.put_gateway_response(
            restApiId=rest_api_id,
            responseType=kind,
            statusCode=response["StatusCode"],
            responseParameters=parameters,
            responseTemplates={"application/json": error_body(response)},
        )
    apigateway.create_deployment(restApiId=rest_api_id, stageName=stage, description="imgpress gateway responses")
    return list(document["Responses"])
