"""`python -m bench.animation` (make bench-animation): animated uploads through imgpress against the
anchors, written to bench/ANIMATION.md.

On real animated files (the corpus's GIFs, and the animated WebP, GIF, APNG and AVIF kept in
tests/fixtures/animated/), each engine makes the default profile's moving variant (a WebP of at most
2048 px, quality 80, effort 4) in a fresh process pinned to one core: imgpress's render; `gif2webp
-lossy -q 80 -m 4` (Debian's `webp`; GIFs only); libvips through pyvips (`n=-1`, one thread). For each:
bytes, against the source; SSIM of every frame shown against the source's frame shown at that moment
(composited, over white and black where there is alpha), mean and worst; CPU time (the least of 5
runs in each of 3 fresh processes, the engines taking turns: other load only adds) and the peak
memory the work added. Then the worst case the work limit allows: MAX_ANIMATION_WORK
output pixels of noise, lossy and lossless, against the memory estimate.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.corpus import DEFAULT_CORPUS, REPO
from bench.machine import load_average, reset_peak_rss, status_kib

FIXTURES = REPO / "tests" / "fixtures" / "animated"
SOURCES = ("iss634.webp", "chi.gif", "apng_blend_op_over_near_transparent.png", "star.avifs")
WEB = '[{"name": "web", "max": 2048, "format": "webp", "quality": 80}]'
ENGINES = ("imgpress", "gif2webp", "pyvips")
RUNS = 5
ROUNDS = 3
WORST_SIDE = 1000  # noise frames of 1 MP, as many as the work limit allows


def files(corpus: Path) -> list[Path]:
    found = sorted(corpus.glob("gif_anim__*")) if corpus.is_dir() else []
    return found + [FIXTURES / name for name in SOURCES]


# ---------------------------------------------------------------- one engine on one file, in a fresh process


def _imgpress(data: bytes) -> bytes:
    from chalicelib.imaging.limits import DecodeLimits
    from chalicelib.imaging.render import render_variants
    from chalicelib.imaging.specs import parse_variants

    limits = DecodeLimits(("GIF", "PNG", "WEBP", "AVIF"))
    return render_variants(data, parse_variants(WEB), limits).variants[0].data


def _pyvips(data: bytes) -> bytes:
    import pyvips

    image = pyvips.Image.thumbnail_buffer(data, 2048, height=2048, size="down", option_string="n=-1")
    return bytes(image.webpsave_buffer(Q=80, effort=4, keep="none"))


def _gif2webp(data: bytes) -> bytes:
    with tempfile.TemporaryDirectory() as directory:
        source, output = Path(directory) / "in.gif", Path(directory) / "out.webp"
        source.write_bytes(data)
        subprocess.run(["gif2webp", "-lossy", "-q", "80", "-m", "4", str(source), "-o", str(output)], check=True,
                       capture_output=True)  # fmt: skip
        return output.read_bytes()


def measure(engine: str, path: Path) -> dict[str, Any]:
    """The first run gives the peak memory it added (gif2webp: its own process's peak), the next ones
    the CPU time, this process's and its children's."""
    if engine == "pyvips":
        os.environ["VIPS_CONCURRENCY"] = "1"
        import pyvips

        pyvips.cache_set_max(0)
    run = {"imgpress": _imgpress, "pyvips": _pyvips, "gif2webp": _gif2webp}[engine]
    data = path.read_bytes()
    reset_peak_rss()
    baseline = status_kib("VmRSS")
    output = run(data)
    peak_kib = max(status_kib("VmHWM") - baseline, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    cpus = []
    for _ in range(RUNS):
        before = _cpu()
        run(data)
        cpus.append(_cpu() - before)
    return {"bytes": len(output), "cpu_seconds": min(cpus), "peak_mib": peak_kib / 1024,
            "output": output.hex()}  # fmt: skip


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def worst(lossless: bool) -> dict[str, Any]:
    """MAX_ANIMATION_WORK output pixels of noise (1 MP frames), lossless or lossy: the render's CPU
    time and the memory it added, against the estimate decode.check_memory makes before decoding."""
    from PIL import Image

    from chalicelib.imaging.decode import memory_needed
    from chalicelib.imaging.limits import MAX_ANIMATION_WORK, DecodeLimits
    from chalicelib.imaging.render import render_variants
    from chalicelib.imaging.specs import parse_variants
    from chalicelib.imaging.structure import check_structure

    frames = MAX_ANIMATION_WORK // WORST_SIDE**2
    noise = [Image.effect_noise((WORST_SIDE, WORST_SIDE), 90).convert("RGB") for _ in range(3)]
    buffer = io.BytesIO()
    moving = [noise[i % 3] for i in range(1, frames)]
    noise[0].save(buffer, "WEBP", save_all=True, append_images=moving, quality=90, method=0, duration=100)
    data = buffer.getvalue()
    variant = json.loads(WEB)[0] | {"lossless": lossless}
    reset_peak_rss()
    baseline = status_kib("VmRSS")
    started = time.process_time()
    rendering = render_variants(data, parse_variants(json.dumps([variant])), DecodeLimits(("WEBP",)))
    estimate = memory_needed(check_structure(data, "WEBP"), (WORST_SIDE, WORST_SIDE), frames)
    return {
        "frames": frames,
        "lossless": lossless,
        "animation": rendering.variants[0].animation,
        "cpu_seconds": time.process_time() - started,
        "peak_mib": (status_kib("VmHWM") - baseline) / 1024,
        "estimate_mib": estimate / 2**20,
    }


def _worker(request: dict[str, Any]) -> dict[str, Any]:
    """Run a request in a fresh process pinned to one core; its last stdout line is the JSON result."""
    completed = subprocess.run(
        ["taskset", "-c", "0", sys.executable, "-m", "bench.animation", "--worker", json.dumps(request)],
        capture_output=True, text=True, cwd=REPO, check=True,
    )  # fmt: skip
    return dict(json.loads(completed.stdout.strip().splitlines()[-1]))


# ---------------------------------------------------------------- fidelity


def timeline(data: bytes) -> list[tuple[float, Any]]:
    """(when it is shown in ms, the frame as RGBA) for every frame of an animation."""
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    first = 1 if image.info.get("default_image") else 0
    shown, start = [], 0.0
    for index in range(first, getattr(image, "n_frames", 1)):
        image.seek(index)
        image.load()
        shown.append((start, image.convert("RGBA")))
        start += float(image.info.get("duration") or 0)
    return shown


def frame_ssims(source: bytes, output: bytes) -> list[float]:
    """For each frame of the source, the SSIM of the output's frame shown at that moment."""
    from bench.quality import ssim_shown

    expected, got = timeline(source), timeline(output)
    scores = []
    for moment, _frame in expected:
        reference = [frame for start, frame in expected if start <= moment][-1]
        shown = [frame for start, frame in got if start <= moment][-1]
        if shown.size != reference.size:
            reference = reference.resize(shown.size)
        scores.append(ssim_shown(reference, shown))
    return scores


# ---------------------------------------------------------------- the report


def run(corpus: Path) -> dict[str, Any]:
    rows = []
    for path in files(corpus):
        data = path.read_bytes()
        row: dict[str, Any] = {"file": path.name, "bytes": len(data), "frames": len(timeline(data)), "engines": {}}
        engines = [engine for engine in ENGINES if _reads(engine, data)]
        results: dict[str, dict[str, Any]] = {}
        for _round in range(ROUNDS):  # engines take turns, so a burst of other load hits them alike
            for engine in engines:
                result = _worker({"mode": "measure", "engine": engine, "path": str(path)})
                best = results.setdefault(engine, result)
                best["cpu_seconds"] = min(best["cpu_seconds"], result["cpu_seconds"])
        for engine, result in results.items():
            scores = frame_ssims(data, bytes.fromhex(result.pop("output")))
            row["engines"][engine] = result | {"ssim_mean": statistics.mean(scores), "ssim_worst": min(scores)}
            print(f"{path.name:44} {engine:9} {result['bytes']:9} B {result['cpu_seconds'] * 1000:8.0f} ms", flush=True)
        rows.append(row)
    worst_cases = [_worker({"mode": "worst", "lossless": lossless}) for lossless in (False, True)]
    return {"rows": rows, "worst": worst_cases, "load": load_average()}


def _reads(engine: str, data: bytes) -> bool:
    """gif2webp reads GIFs only; libvips reads no APNG, nor (through n=-1) an AVIF sequence."""
    if engine == "gif2webp":
        return data.startswith(b"GIF")
    return engine != "pyvips" or (data[1:4] != b"PNG" and data[4:8] != b"ftyp")


def _percent(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f} %"


def report(results: dict[str, Any], command: str) -> str:
    lines = [
        "# Animations: imgpress against gif2webp and libvips",
        "",
        f"`{command}` (make bench-animation), one core per process, load average at the end"
        f" {results['load']}. The default profile's moving variant (WebP, at most 2048 px, quality 80,"
        " effort 4); gif2webp `-lossy -q 80 -m 4`; libvips `thumbnail` with `n=-1` and `webpsave`"
        " (Q 80, effort 4). SSIM: every source frame against the output's frame shown at that moment.",
        "",
        "<!-- --8<-- [start:summary] -->",
        "| file | frames | source | engine | bytes | of source | SSIM mean / worst frame | CPU | peak memory |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        for engine, result in row["engines"].items():
            lines.append(
                f"| {row['file']} | {row['frames']} | {row['bytes']:,} | {engine} | {result['bytes']:,}"
                f" | {_percent(result['bytes'], row['bytes'])} | {result['ssim_mean']:.4f} / {result['ssim_worst']:.4f}"
                f" | {result['cpu_seconds'] * 1000:,.0f} ms | {result['peak_mib']:.0f} MiB |"
            )
    lines += ["", *_verdicts(results["rows"]), "", "The work limit's worst case, noise frames of 1 MP:", ""]
    lines += ["| encoding | frames | CPU | peak memory | memory estimate |", "|---|---|---|---|---|"]
    for case in results["worst"]:
        lines.append(
            f"| {'lossless' if case['lossless'] else 'lossy'} ({case['animation']}) | {case['frames']}"
            f" | {case['cpu_seconds']:.1f} s | {case['peak_mib']:.0f} MiB | {case['estimate_mib']:.0f} MiB |"
        )
    lines += ["<!-- --8<-- [end:summary] -->", ""]
    return "\n".join(lines)


def _verdicts(rows: Sequence[dict[str, Any]]) -> Iterator[str]:
    for row in rows:
        ours, anchors = row["engines"]["imgpress"], row["engines"]
        facts = []
        if "gif2webp" in anchors:
            theirs = anchors["gif2webp"]
            smaller = ours["bytes"] <= theirs["bytes"] and ours["ssim_worst"] >= theirs["ssim_worst"] - 0.001
            facts.append(
                f"{'met' if smaller else 'MISSED'}: {_percent(ours['bytes'], theirs['bytes'])} of gif2webp's bytes,"
                f" worst frame SSIM {ours['ssim_worst']:.4f} against {theirs['ssim_worst']:.4f}"
            )
        if "pyvips" in anchors:
            faster = ours["cpu_seconds"] <= anchors["pyvips"]["cpu_seconds"]
            facts.append(
                f"{'met' if faster else 'MISSED'}: {_percent(ours['cpu_seconds'], anchors['pyvips']['cpu_seconds'])}"
                " of libvips's CPU time"
            )
        yield f"- {row['file']}: " + ("; ".join(facts) or "no anchor reads it (time and bytes only)")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.animation", description=__doc__)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "ANIMATION.md")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        request = json.loads(args.worker)
        result = (
            measure(request["engine"], Path(request["path"]))
            if request["mode"] == "measure"
            else worst(request["lossless"])
        )
        print(json.dumps(result))
        return
    command = "python -m bench.animation"
    args.out.write_text(report(run(args.corpus), command))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
