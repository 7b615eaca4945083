"""Drive the measurements: every (engine, image) in its own worker process, then score every
output's SSIM; the whole job's throughput, where its time goes, and the cold-start import."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.corpus import REPO, CorpusImage
from bench.quality import Reference
from chalicelib.imaging.specs import DEFAULT_QUALITY

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Job:
    """A set of variants, as the VARIANTS setting spells it."""

    name: str
    variants: str

    def with_quality_offset(self, offset: int) -> Job:
        variants = [
            {**v, "quality": max(1, min(100, v.get("quality", DEFAULT_QUALITY[v["format"]]) + offset))}
            for v in json.loads(self.variants)
        ]
        return Job(f"{self.name}-q{offset:+d}", json.dumps(variants))


@dataclass
class Measurement:
    image: CorpusImage
    engine: str
    job: str
    seconds: float
    cpu_seconds: float
    peak_rss_mib: float
    process_peak_rss_mib: float
    outputs: list[dict[str, Any]]
    label: str = ""  # a setting the job was run with, e.g. "quality-5"
    source_alpha: bool = False  # the source has visible transparency (set when scored)
    source_colour_managed: bool = False  # the source has a non-sRGB colour profile (set when scored)

    @property
    def rss_mib_per_mp(self) -> float:
        return self.peak_rss_mib / self.image.megapixels

    def output(self, name: str) -> dict[str, Any]:
        return next(o for o in self.outputs if o["name"] == name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "image": self.image.name,
            "class": self.image.image_class,
            "megapixels": round(self.image.megapixels, 3),
            "engine": self.engine,
            "job": self.job,
            "label": self.label,
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
            "peak_rss_mib": self.peak_rss_mib,
            "process_peak_rss_mib": self.process_peak_rss_mib,
            "rss_mib_per_mp": self.rss_mib_per_mp,
            "source_alpha": self.source_alpha,
            "source_colour_managed": self.source_colour_managed,
            "outputs": self.outputs,
        }


def call_worker(request: dict[str, Any]) -> dict[str, Any]:
    """Run `python -m bench.worker` in a fresh process; its last stdout line is the JSON result."""
    completed = subprocess.run(
        [sys.executable, "-m", "bench.worker"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"worker failed on {request.get('path')}: {completed.stderr.strip()[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


@dataclass
class Bench:
    out_dir: Path
    repeat: int
    progress: Progress = print
    _references: dict[Path, Reference] = field(default_factory=dict)

    def measure(
        self,
        image: CorpusImage,
        engine: str,
        job: Job,
        label: str = "",
        repeat: int | None = None,
    ) -> Measurement:
        where = self.out_dir / "outputs" / job.name / (label or engine) / image.path.stem
        request = {
            "mode": "measure",
            "engine": engine,
            "path": str(image.path),
            "variants": job.variants,
            "repeat": repeat or self.repeat,
            "out_dir": str(where),
        }
        result = call_worker(request)
        measurement = Measurement(
            image,
            engine,
            job.name,
            result["seconds"],
            result["cpu_seconds"],
            result["peak_rss_mib"],
            result["process_peak_rss_mib"],
            result["outputs"],
            label,
        )
        self._score(measurement)
        self.progress(
            f"{job.name:8} {label or engine:12} {image.name:48} {measurement.seconds * 1000:8.1f} ms "
            f"{measurement.rss_mib_per_mp:6.2f} MiB/MP"
        )
        return measurement

    def paired(
        self, image: CorpusImage, engines: Sequence[str], job: Job, rounds: int, processes: int = 3
    ) -> dict[str, list[float]]:
        """CPU seconds per run of each engine on `image`, taking turns in a process (see bench.worker);
        the rounds are split over `processes` workers, so the spread between processes counts too."""
        cpus: dict[str, list[float]] = {name: [] for name in engines}
        for share in (rounds // processes + (i < rounds % processes) for i in range(processes)):
            if not share:
                continue
            request = {
                "mode": "paired",
                "engines": list(engines),
                "path": str(image.path),
                "variants": job.variants,
                "rounds": share,
            }
            for name, seconds in call_worker(request)["cpu_seconds"].items():
                cpus[name] += seconds
        self.progress(
            f"{job.name:8} {'paired':12} {image.name:48} "
            + " ".join(f"{name} {statistics.median(seconds) * 1000:.1f} ms" for name, seconds in cpus.items())
        )
        return cpus

    def matrix(self, images: Sequence[CorpusImage], engines: Sequence[str], job: Job) -> list[Measurement]:
        return [self.measure(image, engine, job) for image in images for engine in engines]

    def reference(self, image: CorpusImage) -> Reference:
        if image.path not in self._references:
            self._references.clear()  # one full-size reference at a time keeps the parent's memory flat
            self._references[image.path] = Reference.from_bytes(image.path.read_bytes())
        return self._references[image.path]

    def _score(self, measurement: Measurement) -> None:
        reference = self.reference(measurement.image)
        measurement.source_alpha = reference.has_visible_alpha
        measurement.source_colour_managed = reference.colour_managed
        upright_landscape = reference.size[0] >= reference.size[1]
        for output in measurement.outputs:
            output["ssim"] = reference.ssim(Path(output["path"]).read_bytes())
            square = output["width"] == output["height"] or reference.size[0] == reference.size[1]
            output["misoriented"] = not square and (output["width"] >= output["height"]) != upright_landscape


def throughput(images: Sequence[CorpusImage], engine: str, job: Job, processes: int) -> dict[str, Any]:
    """The whole job over `images`, split across `processes` single-threaded workers started together."""
    shares = [[str(image.path) for image in images[i::processes]] for i in range(processes)]
    started = time.perf_counter()
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO
        )
        for _ in shares
    ]
    for worker, share in zip(workers, shares):
        assert worker.stdin is not None
        worker.stdin.write(json.dumps({"mode": "batch", "engine": engine, "paths": share, "variants": job.variants}))
        worker.stdin.close()
    busy = []
    for worker in workers:
        assert worker.stdout is not None
        busy.append(json.loads(worker.stdout.read().strip().splitlines()[-1])["seconds"])
        if worker.wait() != 0:
            raise RuntimeError(f"{engine} batch worker failed")
    wall = time.perf_counter() - started
    return {
        "engine": engine,
        "processes": processes,
        "images": len(images),
        "wall_seconds": wall,
        "busy_seconds": busy,
        "images_per_second": len(images) / wall,
        "images_per_second_per_core": len(images) / sum(busy),
    }


def stage_profile(image: CorpusImage, job: Job, repeat: int) -> dict[str, float]:
    """Seconds per run of imgpress's job on `image`, by stage (decode, resize, encode, colour, ...)."""
    request = {
        "mode": "profile",
        "engine": "imgpress",
        "path": str(image.path),
        "variants": job.variants,
        "repeat": repeat,
    }
    return call_worker(request)


def import_time(runs: int) -> dict[str, Any]:
    """Wall time of `python -c "import app"` (the Lambda cold-start import), and what it loaded."""
    probe = "import sys, app; print(sorted(m for m in ('PIL', 'boto3', 'botocore.client') if m in sys.modules))"

    def timed(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True)
        return time.perf_counter() - started

    heavy = subprocess.run([sys.executable, "-c", probe], cwd=REPO, check=True, capture_output=True, text=True)
    timed("import app")
    return {
        "import_app_seconds": statistics.median(timed("import app") for _ in range(runs)),
        "bare_python_seconds": statistics.median(timed("pass") for _ in range(runs)),
        "heavy_modules_loaded": json.loads(heavy.stdout.strip().replace("'", '"')),
    }
