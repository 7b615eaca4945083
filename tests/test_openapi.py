"""chalicelib/openapi.json: valid OpenAPI 3.1, one operation per route, and served per stage.

That the routes' real answers match it is checked on every integration test's answer
(tests/openapi.py through the `client` fixture) and by Schemathesis over HTTP (e2e).
"""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from chalicelib import apidoc
from tests.openapi import document

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = {
    ("GET", "/"),
    ("GET", "/health"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/redoc.standalone.js"),
    ("GET", "/page-config"),
    ("GET", "/vendor/oidc-client-ts.min.js"),
    ("GET", "/upload-limits"),
    ("GET", "/processed/{image_id}/od/{revision}/{name}"),  # the link's signature is the credential
}
STAGE = apidoc.StageFacts("jwt", ("image/jpeg", "image/png"), ("default", "compress"), 26214400)


def operations() -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document()["paths"].items() for method in item}


def test_the_document_is_valid_openapi_3_1_as_written_and_as_served() -> None:
    validate(copy.deepcopy(document()))
    for mode in ("none", *apidoc.SCHEME_OF_MODE):
        validate(copy.deepcopy(apidoc.document(dataclasses.replace(STAGE, auth_mode=mode))))


def test_every_route_is_described_and_nothing_else() -> None:
    from app import app

    routes = {(method, path) for path, methods in app.routes.items() for method in methods if method != "OPTIONS"}
    assert operations() == routes


def test_protected_operations_document_auth_failures_and_public_ones_need_none() -> None:
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            if (method.upper(), path) in PUBLIC:
                assert operation["security"] == [], (method, path)
            else:
                assert "security" not in operation and {"401", "403"} <= set(operation["responses"]), (method, path)
                assert re.fullmatch(r"[a-z][A-Za-z]+", operation["operationId"])


@pytest.mark.parametrize(("mode", "scheme"), [("none", None), *apidoc.SCHEME_OF_MODE.items()])
def test_the_served_document_requires_the_stage_s_scheme_only(mode: str, scheme: str | None) -> None:
    served = apidoc.document(dataclasses.replace(STAGE, auth_mode=mode))
    if scheme is None:
        assert served["security"] == [] and "securitySchemes" not in served["components"]
    else:
        assert served["security"] == [{scheme: []}] and list(served["components"]["securitySchemes"]) == [scheme]
    request = served["components"]["schemas"]["UploadRequest"]["properties"]
    assert request["content_type"]["enum"] == ["image/jpeg", "image/png"] and request["size"]["maximum"] == 26214400
    assert request["profile"]["enum"] == ["default", "compress", None]  # null: the default profile
    assert "enum" not in document()["components"]["schemas"]["UploadRequest"]["properties"]["content_type"]


def test_the_reference_page_uses_the_vendored_redoc_only() -> None:
    page = apidoc.reference_page()
    assert 'spec-url="openapi.json"' in page and 'src="docs/redoc.standalone.js"' in page
    assert "http://" not in page and "https://" not in page  # nothing from a CDN
    version = (ROOT / "chalicelib" / "static" / "vendor" / "REDOC_VERSION").read_text().split()[1]
    assert f'"{version}"' in apidoc.redoc_script()
    assert version in (ROOT / "tools" / "vendor_redoc.sh").read_text()


def test_the_served_transform_route_follows_the_stage_output_prefix() -> None:
    served = apidoc.document(dataclasses.replace(STAGE, output_prefix="variants/v1/"))
    assert "/variants/v1/{image_id}/od/{revision}/{name}" in served["paths"]
    assert apidoc.TRANSFORM_PATH not in served["paths"]
    validate(copy.deepcopy(served))
