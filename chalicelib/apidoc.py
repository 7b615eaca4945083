"""GET /openapi.json and GET /docs: the API's OpenAPI 3.1 description and its rendered reference.

chalicelib/openapi.json is the one description of the API, written by hand; tests validate the
app's real answers against it (tests/openapi.py) and Schemathesis fuzzes the local stack with
it. It is read on the first request for it, not at import: cold starts do not pay for it.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

STATIC = Path(__file__).resolve().parent / "static"
DOCUMENT = Path(__file__).resolve().parent / "openapi.json"
REDOC = STATIC / "vendor" / "redoc.standalone.js"
# API_AUTH mode -> the security scheme (components.securitySchemes) its protected routes require.
SCHEME_OF_MODE = {"jwt": "bearerJwt", "cognito": "cognitoIdToken", "api_key": "apiKey", "iam": "sigv4"}


@lru_cache(maxsize=1)
def _source() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DOCUMENT.read_text(encoding="utf-8"))
    return document


@lru_cache(maxsize=8)
def document(mode: str) -> dict[str, Any]:
    """The description for a stage whose API_AUTH is `mode`: its protected operations require that
    mode's scheme (none at all when the mode is `none`); public ones say `security: []` themselves."""
    described = copy.deepcopy(_source())
    scheme = SCHEME_OF_MODE.get(mode)
    described["security"] = [{scheme: []}] if scheme else []
    if scheme:
        described["components"]["securitySchemes"] = {scheme: described["components"]["securitySchemes"][scheme]}
    else:
        del described["components"]["securitySchemes"]
    return described


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
<style>body { margin: 0; }</style>
</head>
<body>
<redoc spec-url="openapi.json" hide-download-button="false"></redoc>
<script src="docs/redoc.standalone.js"></script>
</body>
</html>
"""


def reference_page() -> str:
    """Relative links: the page works under a stage path (/api/docs) as well as at /docs."""
    return REFERENCE_PAGE


@lru_cache(maxsize=1)
def redoc_script() -> str:
    return REDOC.read_text(encoding="utf-8")
