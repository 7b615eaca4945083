"""Real answers checked against chalicelib/openapi.json: the status is documented for the
operation, the Content-Type is the documented one, and a JSON body validates against its schema.

tests/conftest.py's `client` fixture checks every answer the integration tests get this way, so
the document cannot drift from what the routes do.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker

from chalicelib.apidoc import DOCUMENT


@cache
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DOCUMENT.read_text())
    return loaded


@cache
def _templates() -> list[tuple[re.Pattern[str], str]]:
    """Path templates as regular expressions, literal segments before parameters (as routers match)."""
    paths = sorted(document()["paths"], key=lambda p: [(s.startswith("{"), s) for s in p.split("/")])
    return [(re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", p) + "$"), p) for p in paths]


def template_of(path: str) -> str:
    bare = urlsplit(path).path
    for pattern, template in _templates():
        if pattern.match(bare):
            return template
    raise AssertionError(f"{bare} matches no path of the OpenAPI document")


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def schema_validator(schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for one schema of the document, its #/components/... references resolvable."""
    return Draft202012Validator({**schema, "components": document()["components"]}, format_checker=FormatChecker())


def check_response(method: str, path: str, status: int, headers: Any, body: bytes | str | None) -> None:
    """AssertionError naming the operation unless the answer is one the document describes."""
    template = template_of(path)
    operation = document()["paths"][template].get(method.lower())
    assert operation is not None, f"{method} {template} is not in the OpenAPI document"
    described = operation["responses"].get(str(status))
    assert described is not None, (
        f"{method} {path} answered {status}, undocumented (documented: {sorted(operation['responses'])})"
    )
    content = _resolve(described).get("content")
    if not content:
        assert not body, f"{method} {path} {status} is documented without a body but sent one"
        return
    # API Gateway (and chalice local) send application/json when the app names no type.
    content_type = str(_header(headers, "content-type") or "application/json").split(";")[0].strip()
    assert content_type in content, f"{method} {path} {status} sent {content_type!r}, documented {sorted(content)}"
    if content_type == "application/json":
        data = json.loads(body or b"null")
        errors = sorted(schema_validator(content[content_type]["schema"]).iter_errors(data), key=str)
        assert not errors, f"{method} {path} {status}: " + "; ".join(
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5]
        )


def _header(headers: Any, name: str) -> Any:
    for key, value in dict(headers or {}).items():
        if key.lower() == name:
            return value
    return None
