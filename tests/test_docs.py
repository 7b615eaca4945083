"""The docs site (mkdocs.yml, docs/) builds strictly and works offline; the README stays short.

A strict build fails on a broken link or anchor, a nav entry without a page, a page missing from
the nav, and a README section or bench report that a page includes but that no longer exists.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.live_stack import ROOT

pytestmark = pytest.mark.integration

README_MAX_LINES = 200
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
