"""The hostile benchmark measures a render in a fresh process and reports what the docs include."""

from __future__ import annotations

from pathlib import Path

from bench import hostile
from bench.hostile import Case, Measured
from tests import images
from tests.crafted import ATTACKS, PROBES

ROOT = Path(__file__).resolve().parents[2]


def test_a_render_is_measured_in_its_own_process() -> None:
    accepted = hostile.measure(images.jpeg(400, 300), ROOT, timeout=60)
    assert accepted.outcome == "ok" and accepted.pixels == 400 * 300
    assert accepted.cpu > 0 and accepted.peak_kib > 20 * 1024
    refused = hostile.measure(ATTACKS["jpeg-repeated-scans"].build(5000), ROOT, timeout=60)
    assert refused.outcome == "too_many_scans" and refused.pixels == 0


def test_every_attack_size_and_every_guard_is_a_case() -> None:
    cases = list(hostile.cases(include_corpus=False))
    assert sum(c.group == "attack" for c in cases) == sum(len(a.scales) for a in ATTACKS.values())
    assert [c.name for c in cases if c.group == "limit"] == list(PROBES)


def test_the_report_has_the_sections_the_docs_include(tmp_path: Path) -> None:
    def case(group: str, name: str) -> Case:
        return Case(group, name, "1 thing", bytes)

    results = [
        (case("attack", "jpeg-repeated-scans"), Measured("too_many_scans", 0.001, 0.001, 21_000, 0, 60_000), None),
        (case("limit", "jpeg.scans"), Measured("ok", 3.9, 3.2, 330_000, 50_000_000, 600_000), None),
        (case("corpus", "a.jpg"), Measured("ok", 0.5, 0.4, 90_000, 12_000_000, 4_000_000), None),
    ]
    saved = tmp_path / "runs.json"
    hostile.save(results, saved)
    text = hostile.report(hostile.load(saved), before_root=None)
    for section in ("bound", "guards", "formats", "isolation", "attacks"):
        assert f"<!-- --8<-- [start:{section}] -->" in text and f"<!-- --8<-- [end:{section}] -->" in text
    assert "| `jpeg.scans` | 100 | too_many_scans |" in text


def test_the_linear_bound_covers_every_run() -> None:
    runs = [Measured("ok", 0, cpu, 0, pixels, size) for cpu, pixels, size in [(3.2, 50e6, 6e5), (0.2, 0, 25e6)]]
    fixed, per_mb, per_mp, worst = hostile.linear_bound(runs)
    assert worst <= 1.0
    assert all(1000 * r.cpu <= fixed + per_mb * r.size / 1e6 + per_mp * r.pixels / 1e6 + 1e-6 for r in runs)
