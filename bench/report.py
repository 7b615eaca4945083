"""Render the benchmark's results as bench/RESULTS.md (and keep the raw numbers as JSON)."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.corpus import CLASSES, CorpusImage
from bench.run import Measurement
from bench.targets import TOO_CLOSE_TO_CALL, ClassCheck, ClassSummary, Verdict, ratio


@dataclass
class Results:
    command: str
    machine: dict[str, str]
    repeat: int
    target_image: CorpusImage
    headline: list[Measurement]
    matrix: list[Measurement]
    summaries: list[ClassSummary]
    checks: list[ClassCheck]
    verdicts: list[Verdict]
    throughput: list[dict[str, Any]]
    stages: dict[str, float]
    import_time: dict[str, Any]
    load: dict[str, str] = field(default_factory=dict)


def machine_info() -> dict[str, str]:
    from PIL import Image, features

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = next(
        line.split(":", 1)[1].strip()
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    info = {
        "cpu": cpu,
        "cores": str(len(os.sched_getaffinity(0))),
        "memory": memory,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "pillow": f"{Image.__version__} (libjpeg-turbo {features.version('libjpeg_turbo')}, libwebp {features.version('webp')}, "
        f"littlecms {features.version('littlecms2')})",
    }
    try:
        import pyvips

        info["pyvips"] = f"{pyvips.__version__} (libvips {pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)})"
    except (ImportError, OSError):
        info["pyvips"] = "not installed"
    return info


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def _kb(n: int) -> str:
    return f"{n / 1000:.1f}"


def _met(verdict: Verdict) -> str:
    return {True: "**met**", False: "**missed**", None: "not checked"}[verdict.met]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def render(results: Results) -> str:
    out: list[str] = ["# imgpress benchmark results", ""]
    out += [f"Produced by `{results.command}` (see the README's *Performance* section).", ""]
    out += ["## Machine", ""]
    out += [f"- {key}: {value}" for key, value in results.machine.items()]
    out += [f"- load average at start / end: {results.load.get('start', '?')} / {results.load.get('end', '?')}"]
    out += [
        f"- every time is the median of {results.repeat} warm runs in one fresh process per (engine, image); "
        "**time = CPU seconds of that process** (all threads), wall time alongside. Peak RSS is the first run's "
        "high-water mark above the RSS just before it (imports done, source bytes loaded), divided by the "
        "source's megapixels.",
        "",
    ]

    out += ["## Targets", ""]
    out += _table(["target", "measured", "verdict"], [[v.target, v.measured, _met(v)] for v in results.verdicts])
    out += [""]

    image = results.target_image
    out += [f"## 20 MP baseline JPEG -> 2048 px WebP q80 (`{image.name}`, {image.width}x{image.height})", ""]
    out += _table(
        ["engine", "time ms", "wall ms", "peak RSS MiB", "MiB/MP", "bytes", "SSIM"],
        [
            [
                m.engine,
                _ms(m.cpu_seconds),
                _ms(m.seconds),
                f"{m.peak_rss_mib:.0f}",
                f"{m.rss_mib_per_mp:.2f}",
                str(m.outputs[0]["bytes"]),
                f"{m.outputs[0]['ssim']:.4f}",
            ]
            for m in results.headline
        ],
    )
    out += [""]

    out += ["## Per class: the whole default job (`web` 2048 px WebP q80 + `thumb` 320 px WebP q75)", ""]
    out += [
        "Time and MiB/MP are medians over the class's images; bytes are summed and SSIM averaged over them. "
        "`misoriented` counts images whose output is not upright.",
        "",
    ]
    variants = list(results.summaries[0].bytes) if results.summaries else []
    rows = []
    for s in results.summaries:
        naive = next((n for n in results.summaries if n.image_class == s.image_class and n.engine == "naive"), None)
        versus = f"{ratio(s.seconds, naive.seconds):.2f}x" if naive else ""
        rows.append(
            [
                CLASSES[s.image_class],
                str(s.images),
                s.engine,
                _ms(s.seconds),
                versus,
                _ms(s.wall_seconds),
                f"{s.rss_mib_per_mp:.2f}",
            ]
            + [f"{_kb(s.bytes[v])} / {s.ssim[v]:.4f}" for v in variants]
            + [str(s.misoriented)]
        )
    out += _table(
        ["class", "n", "engine", "time ms", "vs naive", "wall ms", "MiB/MP"]
        + [f"{v} kB / SSIM" for v in variants]
        + ["misoriented"],
        rows,
    )
    out += [""]

    out += _class_checks(results.checks)
    out += ["## Throughput of the whole default job over the corpus", ""]
    rows = []
    for engine in dict.fromkeys(m.engine for m in results.matrix):
        cpu = sum(m.cpu_seconds for m in results.matrix if m.engine == engine)
        count = sum(1 for m in results.matrix if m.engine == engine)
        rows.append([engine, "medians above", str(count), "-", "-", f"{count / cpu:.2f}"])
    rows += [
        [
            t["engine"],
            f"{t['processes']} in parallel",
            str(t["images"]),
            f"{t['wall_seconds']:.1f}",
            f"{t['images'] / t['wall_seconds']:.2f}",
            f"{t['images_per_second_per_core']:.2f}",
        ]
        for t in results.throughput
    ]
    out += _table(["engine", "run", "images", "wall s", "images/s", "images/s per core"], rows)
    out += [
        "",
        "*medians above*: images / the sum of each image's median CPU time (one warm core, the "
        "steadiest figure). *N in parallel*: one pass over the corpus split across N single-threaded "
        "workers started together; per core = images / their summed busy seconds (start-up excluded), "
        "images/s = images / wall time including start-up. Parallel runs share the machine, so other "
        "load shows up there first.",
        "",
    ]

    out += _time_by_stage(results)
    out += ['## `python -c "import app"`', ""]
    it = results.import_time
    out += [
        f"Median {_ms(it['import_app_seconds'])} ms (bare interpreter {_ms(it['bare_python_seconds'])} ms); "
        f"heavy modules loaded by the import: {it['heavy_modules_loaded'] or 'none'}.",
        "",
    ]

    out += _reading_notes()
    out += ["## Every measurement (default job)", ""]
    out += _table(
        ["image", "class", "MP", "engine", "time ms", "wall ms", "MiB/MP"] + [f"{v} bytes / SSIM" for v in variants],
        [
            [
                m.image.name,
                m.image.image_class,
                f"{m.image.megapixels:.1f}",
                m.engine,
                _ms(m.cpu_seconds),
                _ms(m.seconds),
                f"{m.rss_mib_per_mp:.2f}",
            ]
            + [
                f"{m.output(v)['bytes']} / {m.output(v)['ssim']:.4f}"
                + (" (misoriented)" if m.output(v)["misoriented"] else "")
                for v in variants
            ]
            for m in results.matrix
        ],
    )
    out += [""]
    return "\n".join(out)


def _class_checks(checks: Sequence[ClassCheck]) -> list[str]:
    out = ["## Per class: imgpress against the naive recipe", ""]
    out += [
        "Compared only where the naive output is a fair match: images it leaves misoriented, sources "
        "with transparency (which it drops) and sources with a non-sRGB colour profile (which it ignores) "
        "are excluded and counted. *SSIM at naive's bytes* "
        "reads imgpress's SSIM off its own rate-distortion curve (quality -5 / default / +5) at exactly "
        "the naive output's size, i.e. what picking the quality per image would give. *Time vs naive made "
        "correct* compares every image of the class with `naive-correct`: the seed recipe plus EXIF "
        "orientation, ICC to sRGB and alpha kept, i.e. the same picture the slow way.",
        "",
    ]
    variants = list(next((c.ssim for c in checks if c.ssim), {}))
    rows = []
    for c in checks:
        cells = [CLASSES[c.image_class], f"{c.compared} ({c.excluded})"]
        for v in variants:
            if v in c.ssim:
                ours, naive = c.ssim[v]
                cells += [f"{ours:.4f} / {naive:.4f}", f"{c.bytes_ratio[v]:.3f}", f"{c.ssim_at_naive_bytes[v]:.4f}"]
            else:
                cells += ["-", "-", "-"]
        verdict = {True: "yes", False: "no", None: "-"}
        rows.append(
            [
                *cells,
                "-" if c.time_ratio is None else f"{c.time_ratio:.2f}x",
                f"{c.time_ratio_all:.2f}x",
                "-" if c.time_ratio_correct is None else f"{c.time_ratio_correct:.2f}x",
                verdict[c.strict],
                verdict[c.at_equal_bytes],
            ]
        )
    out_paired = _paired(checks)
    header = ["class", "compared (excluded)"]
    for v in variants:
        header += [f"{v} SSIM imgpress / naive", f"{v} bytes vs naive", f"{v} SSIM at naive's bytes"]
    out += _table(
        [
            *header,
            "time vs naive (compared)",
            "time vs naive (all)",
            "time vs naive made correct",
            "SSIM >= at <= bytes",
            "SSIM >= at equal bytes",
        ],
        rows,
    )
    return [*out, "", *out_paired]


def _paired(checks: Sequence[ClassCheck]) -> list[str]:
    rows = [
        [
            CLASSES[c.image_class],
            baseline,
            f"{separate:.2f}x",
            f"{p.estimate:.3f}x",
            f"{p.low:.3f}-{p.high:.3f}",
            f"{p.images} x {p.rounds}",
            "parity" if p.parity else "faster" if p.high < 1.0 else "slower",
        ]
        for c in checks
        for baseline, separate, p in (
            ("naive", c.time_ratio, c.paired_vs_naive),
            ("naive-correct", c.time_ratio_correct, c.paired_vs_correct),
        )
        if p is not None and separate is not None
    ]
    if not rows:
        return []
    out = [
        "### Paired timing, where separate processes cannot tell",
        "",
        f"Classes not clearly faster than their baseline above (ratio over {1 - TOO_CLOSE_TO_CALL:.2f}) are timed "
        "again with imgpress and the baseline taking turns in a worker process, the order flipping every "
        "round, the rounds split over three workers: separate processes running the very same calls differ "
        "by a few percent, and by up to a quarter on images that take a few milliseconds. The ratio is the "
        "median over the class's images of each image's median per-round ratio; the interval is a 95 % "
        "bootstrap over rounds. Where it holds 1.00 the two are indistinguishable (*parity*); the verdicts "
        "above use this paired ratio. Run to run, the paired ratio still moves by about 2 %.",
        "",
    ]
    out += _table(["class", "baseline", "separate processes", "paired", "95 % CI", "images x rounds", "reading"], rows)
    return [*out, ""]


def _time_by_stage(results: Results) -> list[str]:
    out = ["## Where the default job's time goes (imgpress, target image)", ""]
    total = sum(results.stages.values())
    out += _table(
        ["stage", "ms per job", "share"],
        [
            [stage, _ms(seconds), f"{seconds / total:.0%}"]
            for stage, seconds in sorted(results.stages.items(), key=lambda item: -item[1])
        ],
    )
    out += [""]
    return out


def _reading_notes() -> list[str]:
    return [
        "## Reading these numbers",
        "",
        "- **The reference is the naive recipe's own resampling.** For an upright sRGB source the naive "
        "output differs from the reference only by its encoding, so `imgpress SSIM >= naive SSIM` at the same "
        "quality is only reachable where both do the same work. JPEG `draft` (DCT-domain downscaling) is what "
        "makes imgpress fast, and it costs a little fidelity before encoding (docs: decision 0001).",
        "- **Where no resize is needed** (sources at most 2048 px), imgpress and naive run the same Pillow "
        "calls; their time ratio is then 1.00 give or take run-to-run noise, a few percent on a shared machine.",
        "- **Every engine produces the same outputs:** the two variants. `imgpress` is the core without the "
        "placeholders the Lambda adds; `imgpress+placeholders` is the Lambda's whole job (ThumbHash, BlurHash, "
        "dominant colour and LQIP on top), shown alongside so their cost is visible.",
        "- **Naive is compared only where it is right:** it ignores EXIF orientation and colour profiles and "
        "drops transparency (converting to RGB), so there its output is not the same picture, and its time is "
        "not for the same work. `naive-correct` fixes exactly those three things and nothing else; it is the "
        "time baseline for every image, including those.",
        "- **Transparency costs time:** imgpress, naive-correct and pyvips keep the alpha plane, which WebP "
        "compresses losslessly; that is why sources with alpha take longer than the seed recipe, which throws "
        "it away.",
        "- **pyvips on CMYK without a profile** uses a real CMYK profile; the reference (and imgpress) use "
        "Pillow's plain conversion, which is how the derived CMYK file was made, so pyvips scores lower there.",
        "- Times are CPU seconds of the worker process; other load on the machine inflates wall time first "
        "(see the load average above).",
        "",
    ]


def write(results: Results, markdown: Path, raw: Path) -> None:
    markdown.write_text(render(results))
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(
        json.dumps(
            {
                "command": results.command,
                "machine": results.machine,
                "load": results.load,
                "verdicts": [vars(v) for v in results.verdicts],
                "checks": [asdict(c) for c in results.checks],
                "headline": [m.as_dict() for m in results.headline],
                "matrix": [m.as_dict() for m in results.matrix],
                "throughput": results.throughput,
                "stages": results.stages,
                "import_time": results.import_time,
            },
            indent=1,
        )
    )
