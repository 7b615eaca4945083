"""The docs site (mkdocs.yml, docs/) builds strictly and works offline; the README stays short; every
code sample follows the convention (tests/docsamples.py), its JSON matches its schema, its HTML is
well formed and its TypeScript compiles. The bash and Python samples run in test_docs_samples_e2e.py.

A strict build fails on a broken link or anchor, a nav entry without a page, a page missing from
the nav, and a README section or bench report that a page includes but that no longer exists.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from chalicelib.errors import ConfigError
from chalicelib.imaging.profiles import parse_profiles
from chalicelib.settings import Settings
from infra.stages import check_deployable
from tests.docsamples import ROOT, Sample, all_samples, convention_problems
from tests.npm_packages import PACKAGES, bin_of, npm_ci
from tests.openapi import document, schema_validator

pytestmark = pytest.mark.integration

README_MAX_LINES = 200
MAX_PAGES = 35
EVENT_SCHEMA = ROOT / "docs" / "schemas" / "image-event.schema.json"
VOID_ELEMENTS = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"})
TEMPLATE_FIELD = re.compile(r"\{([a-z_]+(?:\.[a-z0-9_]+)+)\}")
README_DOC_LINK = re.compile(r"\]\(docs/([^)#]+)\.md(?:#([^)]+))?\)")
DOC_PATH = re.compile(r"\bdocs/[\w/.-]+?\.md\b")
# Where code and tools name a page of the docs by its path.
NAMING_PAGES = ("app.py", "Makefile", "chalicelib", "devstack", "infra", "cli", "bench", "tests", "examples", "tools")
SOURCE_SUFFIXES = (".py", ".json", ".html", ".sh", ".md", ".toml", "Makefile")
# What tsc checks the samples with: each sample is a module of its own, in a browser.
TSCONFIG = {
    "strict": True,
    "noEmit": True,
    "target": "es2022",
    "module": "esnext",
    "moduleResolution": "bundler",
    "moduleDetection": "force",
    "lib": ["es2022", "dom", "dom.iterable"],
    "skipLibCheck": True,
    "types": [],
}
# What a browser would fetch by itself when showing a page: scripts, stylesheets, fonts, images.
EXTERNAL_ASSET = re.compile(
    r"""<(?:script|img|iframe)\b[^>]*\bsrc=["']?(?:https?:)?//|<link\b[^>]*\bhref=["']?(?:https?:)?//"""
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs") / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_the_site_builds_strictly(site: Path) -> None:
    assert (site / "index.html").is_file()
    assert (site / "decisions" / "index.html").is_file()


def test_no_page_fetches_anything_from_the_network(site: Path) -> None:
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 20
    offenders = {str(page.relative_to(site)): EXTERNAL_ASSET.findall(page.read_text()) for page in pages}
    assert not {page: found for page, found in offenders.items() if found}
    assert not any('class="mermaid"' in page.read_text() for page in pages), "mermaid loads from a CDN"


def test_the_readme_stays_short_and_names_the_ci_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= README_MAX_LINES, "move detail into docs/, link to it from the README"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci and "`make test`" in readme


def test_the_site_has_at_most_35_pages() -> None:
    pages = sorted((ROOT / "docs").rglob("*.md"))
    assert len(pages) <= MAX_PAGES, f"{len(pages)} pages: merge a topic into the page that owns it"


def test_the_readme_links_reach_pages_and_anchors(site: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    broken = []
    for page, anchor in README_DOC_LINK.findall(readme):
        built = site / f"{page}.html"
        if not built.is_file() or (anchor and f'id="{anchor}"' not in built.read_text()):
            broken.append(f"docs/{page}.md#{anchor}")
    assert not broken


def test_every_code_sample_is_run_or_checked() -> None:
    samples = all_samples()
    assert len(samples) > 40
    problems = [problem for sample in samples for problem in convention_problems(sample)]
    assert not problems, "\n".join(problems)


def _json_samples() -> list[Sample]:
    return [sample for sample in all_samples() if sample.language == "json"]


@pytest.mark.parametrize("sample", _json_samples(), ids=str)
def test_json_samples_match_their_schema(sample: Sample) -> None:
    data = json.loads(sample.code)
    name, *path = (sample.schema or "").split(".")
    check = SCHEMA_CHECKS.get(name)
    if check is None:
        schema = _openapi_schema(name, path)
        errors = [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in schema_validator(schema).iter_errors(data)
        ]
    else:
        errors = check(data, path)
    assert not errors, f"{sample}: " + "; ".join(errors[:5])


def _openapi_schema(name: str, path: list[str]) -> dict[str, Any]:
    schemas = document()["components"]["schemas"]
    assert name in schemas, f"no schema {name!r}: one of image-event, profiles, stage-environment, {', '.join(schemas)}"
    schema: dict[str, Any] = {"$ref": f"#/components/schemas/{name}"}
    return _walk(schema, path)


def _walk(schema: dict[str, Any], path: list[str], root: dict[str, Any] | None = None) -> dict[str, Any]:
    """The schema of a field path below `schema`: through $ref, anyOf alternatives, properties and maps."""
    root = root or document()
    for part in path:
        node = _resolve(schema, root)
        candidates = [_resolve(option, root) for option in node.get("anyOf", [node])]
        for candidate in candidates:
            if part in candidate.get("properties", {}):
                schema = candidate["properties"][part]
                break
            if isinstance(candidate.get("additionalProperties"), dict):
                schema = candidate["additionalProperties"]
                break
        else:
            raise AssertionError(f"{part!r} is no field here")
    return schema


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        schema = target
    return schema


def _image_event(data: Any, path: list[str]) -> list[str]:
    event = json.loads(EVENT_SCHEMA.read_text())
    schema = {**_walk(event, path, event), "$defs": event.get("$defs", {})}
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)]


def _profiles(data: Any, path: list[str]) -> list[str]:
    try:
        parse_profiles(json.dumps(data))
    except ConfigError as error:
        return [str(error)]
    return []


def _stage_environment(data: Any, path: list[str]) -> list[str]:
    """A stage's environment_variables as the `dev` stage would have them: deployable, and read at cold start."""
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    stage = config["stages"]["dev"]
    stage["environment_variables"] = {**stage.get("environment_variables", {}), **data}
    env = {**config.get("environment_variables", {}), **stage["environment_variables"]}
    try:
        check_deployable(config, "dev")
        Settings.from_env(env)
    except (ConfigError, SystemExit) as error:
        return [str(error)]
    return []


SCHEMA_CHECKS: dict[str, Callable[[Any, list[str]], list[str]]] = {
    "image-event": _image_event,
    "profiles": _profiles,
    "stage-environment": _stage_environment,
}


class _WellFormed(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID_ELEMENTS:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.open[-1] if self.open else 'nothing'}")
        else:
            self.open.pop()


@pytest.mark.parametrize("sample", [s for s in all_samples() if s.language == "html"], ids=str)
def test_html_samples_are_well_formed_and_name_real_fields(sample: Sample) -> None:
    parser = _WellFormed()
    parser.feed(sample.code)
    parser.close()
    assert not parser.problems and not parser.open, f"{sample}: {parser.problems} unclosed: {parser.open}"
    image = {"$ref": "#/components/schemas/Image"}
    for field in TEMPLATE_FIELD.findall(sample.code):
        _walk(image, field.split("."))


def test_typescript_samples_compile() -> None:
    """Against the npm packages they import, the types openapi-typescript makes of the API's document,
    and the TypeScript modules of examples/ (compiled too; samples import them as `./<name>`)."""
    samples = [sample for sample in all_samples() if sample.language == "ts" and sample.not_run is None]
    assert samples
    npm_ci()
    with tempfile.TemporaryDirectory(dir=PACKAGES, prefix=".docs-samples-") as scratch:
        directory = Path(scratch)
        generated = subprocess.run(
            [bin_of("openapi-typescript"), ROOT / "chalicelib" / "openapi.json", "-o", directory / "imgpress.d.ts"],
            capture_output=True,
            text=True,
        )
        assert generated.returncode == 0, generated.stderr
        files = {f"sample{index:03}.ts": sample for index, sample in enumerate(samples)}
        for name, sample in files.items():
            (directory / name).write_text(sample.code)
        examples = sorted((ROOT / "examples").rglob("*.ts"))
        for example in examples:
            shutil.copy(example, directory / example.name)
        compiled_files = [*files, *(example.name for example in examples)]
        (directory / "tsconfig.json").write_text(json.dumps({"compilerOptions": TSCONFIG, "files": compiled_files}))
        compiled = subprocess.run(
            [bin_of("tsc"), "-p", "tsconfig.json", "--pretty", "false"], cwd=directory, capture_output=True, text=True
        )
    report = compiled.stdout
    for name, sample in files.items():
        report = report.replace(name, f"{sample}, sample line ")
    assert compiled.returncode == 0, report


def test_pages_named_in_the_code_exist() -> None:
    """A comment, message or link that names docs/<page>.md names a page that is there."""
    named: dict[str, set[str]] = {}
    for top in NAMING_PAGES:
        for path in [ROOT / top] if (ROOT / top).is_file() else (ROOT / top).rglob("*"):
            if path.is_file() and path.name.endswith(SOURCE_SUFFIXES) and "node_modules" not in path.parts:
                for page in DOC_PATH.findall(path.read_text(encoding="utf-8", errors="replace")):
                    named.setdefault(page, set()).add(str(path.relative_to(ROOT)))
    assert named
    missing = {page: sorted(where) for page, where in named.items() if not (ROOT / page).is_file()}
    assert not missing
