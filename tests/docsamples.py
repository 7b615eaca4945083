"""The code samples of the docs: every fenced block of README.md and docs/, and how it is checked.

The convention (docs: testing, "Code samples in the docs"): a block's language says what the tests
do with it — `bash` and `python` run against a local stack (tests/test_docs_samples_e2e.py), `ts`
is compiled by tsc, `json` is validated against the schema an HTML comment before it names
(`<!-- schema: Image -->`), `html` is parsed, `text` is shown output and never run. A block that
cannot run here says why in the comment before it: `<!-- not-run: needs an AWS account -->`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,})(?P<info>[^`]*)$")
MARKER = re.compile(r"^<!--\s*(?P<kind>not-run|schema):\s*(?P<value>.*?)\s*-->$")
RUN = frozenset({"bash", "python"})
LANGUAGES = RUN | {"ts", "json", "html", "text"}


@dataclass(frozen=True)
class Sample:
    page: str  # relative to the repository: README.md, docs/api.md
    line: int  # the opening fence's
    language: str
    code: str
    not_run: str | None  # the reason, from `<!-- not-run: ... -->`
    schema: str | None  # from `<!-- schema: ... -->`

    def __str__(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.language in RUN and self.not_run is None


def doc_pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def samples_of(path: Path) -> list[Sample]:
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Sample] = []
    previous = ""  # the last non-blank line outside a block
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            previous = lines[index].strip() or previous
            index += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        end = index + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        code = "\n".join(line.removeprefix(indent) for line in lines[index + 1 : end])
        marker = MARKER.match(previous)
        kind, value = (marker["kind"], marker["value"]) if marker else (None, None)
        found.append(
            Sample(
                page=str(path.relative_to(ROOT)),
                line=index + 1,
                language=opening["info"].strip().split(" ")[0],
                code=code + "\n",
                not_run=value if kind == "not-run" else None,
                schema=value if kind == "schema" else None,
            )
        )
        previous = ""
        index = end + 1
    return found


def all_samples() -> list[Sample]:
    return [sample for page in doc_pages() for sample in samples_of(page)]


def convention_problems(sample: Sample) -> list[str]:
    """What keeps a block from being checked: an unknown language, a marker that does not fit it."""
    where = f"{sample} (```{sample.language})"
    if sample.language not in LANGUAGES:
        return [f"{where}: use one of {', '.join(sorted(LANGUAGES))}; shown output is `text`"]
    problems = []
    if sample.not_run is not None and (sample.language in ("text", "json", "html") or not sample.not_run):
        problems.append(f"{where}: not-run needs a reason, and only for code that would run or compile")
    if sample.language == "json" and not sample.schema:
        problems.append(f"{where}: name its schema in `<!-- schema: NAME -->` before the block")
    if sample.schema and sample.language != "json":
        problems.append(f"{where}: a schema marker belongs before a json block")
    return problems
