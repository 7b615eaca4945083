"""How close does `target_ssim` get in its 3 encodes? Every corpus image, WebP and JPEG, two targets.

Run: .venv/bin/python -m bench.quality_targeting [CORPUS_DIR] > bench/QUALITY_TARGETING.md
Images are fitted to 1024 px first (a typical variant). A target is "reachable" when it lies
between the SSIM of quality 1 and quality 100 (±0.005); the search cannot do better than that.
"""
from __future__ import annotations

import io
import statistics
import sys
from pathlib import Path

from PIL import Image

from chalicelib.imaging.quality import encode_for_ssim, ssim_against

CORPUS = Path.home() / ".cache" / "imgpress-corpus" / "corpus"
TARGETS = (0.95, 0.97)
FORMATS = ("WEBP", "JPEG")
SKIP = (".tif", ".tiff", ".heic", ".avif")


def main() -> None:
    corpus = Path(sys.argv[1]) if len(sys.argv) > 1 else CORPUS
    errors: list[float] = []
    reachable_errors: list[float] = []
    encodes: list[int] = []
    for path in sorted(corpus.iterdir()):
        if path.suffix.lower() in SKIP:
            continue
        with Image.open(path) as source:
            pixels = source.convert("RGB")
        pixels.thumbnail((1024, 1024))
        measure = ssim_against(pixels)
        for fmt in FORMATS:
            def encode(quality: int, fmt: str = fmt) -> bytes:
                buffer = io.BytesIO()
                pixels.save(buffer, fmt, quality=quality)
                return buffer.getvalue()

            low, high = measure(encode(1)), measure(encode(100))
            for target in TARGETS:
                calls: list[int] = []
                _data, _quality, ssim = encode_for_ssim(target, lambda q: calls.append(q) or encode(q), measure)
                encodes.append(len(calls))
                errors.append(abs(ssim - target))
                if low - 0.005 <= target <= high + 0.005:
                    reachable_errors.append(abs(ssim - target))

    def share(values: list[float], bound: float) -> str:
        return f"{sum(v <= bound for v in values)}/{len(values)} ({100 * sum(v <= bound for v in values) / len(values):.0f} %)"

    print("# target_ssim: how close 3 encodes get\n")
    print(f"Command: `.venv/bin/python -m bench.quality_targeting` · corpus `{corpus}` · targets {TARGETS} · {FORMATS}\n")
    print("| cases | within ±0.005 | within ±0.01 | median error | max encodes |")
    print("|---|---|---|---|---|")
    print(f"| all {len(errors)} | {share(errors, 0.005)} | {share(errors, 0.01)} | {statistics.median(errors):.4f} | {max(encodes)} |")
    print(f"| reachable {len(reachable_errors)} | {share(reachable_errors, 0.005)} | {share(reachable_errors, 0.01)} "
          f"| {statistics.median(reachable_errors):.4f} | {max(encodes)} |")


if __name__ == "__main__":
    main()
