"""GET /openapi.json and GET /docs: the API's OpenAPI 3.1 description and its rendered reference.

chalicelib/openapi.json is the one description of the API, written by hand; tests validate the
app's real answers against it (tests/openapi.py) and Schemathesis fuzzes the local stack with
it. It is read on the first request for it, not at import: cold starts do not pay for it.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from chalicelib.multipart import PART_BYTES

STATIC = Path(__file__).resolve().parent / "static"
DOCUMENT = Path(__file__).resolve().parent / "openapi.json"
REDOC = STATIC / "vendor" / "redoc.standalone.js"
TRANSFORM_PATH = "/processed/{image_id}/od/{revision}/{name}"  # as written, for OUTPUT_PREFIX=processed/
# API_AUTH mode -> the security scheme (components.securitySchemes) its protected routes require.
SCHEME_OF_MODE = {"jwt": "bearerJwt", "cognito": "cognitoIdToken", "api_key": "apiKey", "iam": "sigv4"}


@lru_cache(maxsize=1)
def _source() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DOCUMENT.read_text(encoding="utf-8"))
    return document


@dataclass(frozen=True)
class StageFacts:
    """What a stage's configuration decides about requests: the document states it exactly."""

    auth_mode: str
    content_types: tuple[str, ...]
    profiles: tuple[str, ...]
    max_upload_bytes: int
    output_prefix: str = "processed/"  # the transform route's path mirrors the output keys


@lru_cache(maxsize=8)
def document(stage: StageFacts) -> dict[str, Any]:
    """The description for this stage: its protected operations require the scheme of its API_AUTH
    mode (none at all for `none`; public ones say `security: []` themselves), and the accepted
    content types, profile names and size limit are the stage's, and so is the transform route's
    output prefix."""
    described = copy.deepcopy(_source())
    _security(described, stage.auth_mode)
    schemas = described["components"]["schemas"]
    types = {"enum": list(stage.content_types)}
    profiles = {"enum": [*stage.profiles, None]}  # null: the default profile
    schemas["UploadRequest"]["properties"]["content_type"].update(types)
    schemas["MultipartRequest"]["properties"]["type"].update(types)
    for request in ("UploadRequest", "MultipartRequest"):
        schemas[request]["properties"]["profile"].update(profiles)
        schemas[request]["properties"]["size"]["maximum"] = stage.max_upload_bytes
    reprocess = described["paths"]["/images/{image_id}/reprocess"]["post"]["requestBody"]
    for body in (reprocess["content"]["application/json"]["schema"], schemas["BackfillPageRequest"]):
        body["properties"]["profile"]["enum"] = list(stage.profiles)
    for parameter in described["paths"]["/s3/multipart/{upload_id}/{part_number}"]["get"]["parameters"]:
        if parameter["name"] == "part_number":  # no upload of this stage has more parts
            parameter["schema"]["maximum"] = max(1, -(-stage.max_upload_bytes // PART_BYTES))
    for parameter in described["paths"]["/s3/params"]["get"]["parameters"]:
        if parameter["name"] == "type":
            parameter["schema"].update(types)
        elif parameter["name"] == "profile":
            parameter["schema"]["enum"] = list(stage.profiles)
        elif parameter["name"] == "size":
            parameter["schema"]["maximum"] = stage.max_upload_bytes
    paths = described["paths"]
    paths[f"/{stage.output_prefix}{{image_id}}/od/{{revision}}/{{name}}"] = paths.pop(TRANSFORM_PATH)
    return described


def _security(described: dict[str, Any], mode: str) -> None:
    scheme = SCHEME_OF_MODE.get(mode)
    described["security"] = [{scheme: []}] if scheme else []
    if scheme:
        described["components"]["securitySchemes"] = {scheme: described["components"]["securitySchemes"][scheme]}
    else:
        del described["components"]["securitySchemes"]


def schemas() -> dict[str, Any]:
    """The named schemas (the image object, the list page, the upload slot, the error…)."""
    found: dict[str, Any] = _source()["components"]["schemas"]
    return found


REFERENCE_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>imgpress API reference</title>
<style>body { margin: 0; } a[href*="redocly.com"] { display: none; }</style>
</head>
<body>
<redoc spec-url="openapi.json" hide-download-button="false"></redoc>
<script src="docs/redoc.standalone.js"></script>
</body>
</html>
"""


# Everything the page loads comes from this API: Redoc's own "powered by" logo on its CDN is refused.
REFERENCE_PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)


def reference_page() -> str:
    """Relative links: the page works under a stage path (/api/docs) as well as at /docs."""
    return REFERENCE_PAGE


@lru_cache(maxsize=1)
def redoc_script() -> str:
    return REDOC.read_text(encoding="utf-8")
