"""Configuration has one owner: chalicelib/settings.py reads the functions' environment, every variable
any of our programs reads is declared once, and every one is documented in docs/configuration.md."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.settings import VARIABLES, Environment

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = ["app.py", "chalicelib", "devstack", "infra", "cli", "bench", "examples", "tools"]
# Methods and functions whose first argument, when it is a literal, names an environment variable.
READERS = {"get", "getenv", "text", "integer", "flag", "items", "required", "is_set"}
VARIABLE_NAME = re.compile(r"^[A-Z][A-Z0-9_]{2,}$")
ENVIRONMENT_OBJECTS = {"environ", "env", "environment", "read"}
# A WSGI request's `environ` (the local stack's request ledger and S3 rules read it): request fields, not configuration.
WSGI_KEYS = {
    "REQUEST_METHOD",
    "PATH_INFO",
    "RAW_URI",
    "REQUEST_URI",
    "QUERY_STRING",
    "CONTENT_LENGTH",
    "CONTENT_TYPE",
    "HTTP_ORIGIN",
}


def _sources() -> Iterator[Path]:
    for place in PROGRAMS:
        path = ROOT / place
        yield from [path] if path.is_file() else sorted(path.rglob("*.py"))


def _receiver(node: ast.expr) -> str:
    """`os.environ` -> "environ", `self._env` -> "env", `read` -> "read"."""
    if isinstance(node, ast.Attribute):
        return node.attr.lstrip("_")
    return node.id if isinstance(node, ast.Name) else ""


def _is_read_of_a_literal_key(node: ast.Subscript) -> bool:
    """`os.environ["X"]` read (not assigned), on an environment mapping."""
    return (
        isinstance(node.slice, ast.Constant)
        and isinstance(node.ctx, ast.Load)
        and _receiver(node.value) in ENVIRONMENT_OBJECTS
    )


def variables_read(path: Path) -> set[str]:
    """Names passed literally to an environment reader, or used as a key of an environment mapping."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            function = node.func
            name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
            receiver = _receiver(function.value) if isinstance(function, ast.Attribute) else ""
            if name in READERS and (receiver in ENVIRONMENT_OBJECTS or name == "getenv"):
                found.add(str(node.args[0].value))
        elif isinstance(node, ast.Subscript) and _is_read_of_a_literal_key(node):
            found.add(str(node.slice.value))  # type: ignore[attr-defined]
    return {name for name in found if VARIABLE_NAME.match(name) and name not in WSGI_KEYS}


def test_only_the_settings_module_reads_the_functions_environment() -> None:
    readers = sorted(
        str(path.relative_to(ROOT))
        for path in [ROOT / "app.py", *sorted((ROOT / "chalicelib").rglob("*.py"))]
        if re.search(r"os\.environ|getenv\(", path.read_text()) and path.name != "settings.py"
    )
    assert readers == []


def test_every_variable_read_anywhere_is_declared_or_a_tools_own_and_documented() -> None:
    documented = (ROOT / "docs" / "configuration.md").read_text()
    read = {name: str(path.relative_to(ROOT)) for path in _sources() for name in variables_read(path)}
    assert read, "the scan found no reads: it no longer sees how the code reads variables"
    undocumented = sorted(f"{name} ({where})" for name, where in read.items() if f"`{name}`" not in documented)
    undocumented += sorted(f"{name} (settings.VARIABLES)" for name in VARIABLES if f"`{name}`" not in documented)
    assert undocumented == []


def test_the_functions_read_only_declared_variables() -> None:
    read = {name for path in [ROOT / "app.py", *(ROOT / "chalicelib").rglob("*.py")] for name in variables_read(path)}
    assert read <= set(VARIABLES)


def test_an_undeclared_variable_cannot_be_read() -> None:
    with pytest.raises(KeyError):
        Environment({"SOMETHING_NEW": "1"}).text("SOMETHING_NEW")
