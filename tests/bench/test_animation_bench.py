"""bench/animation.py: which anchors read which files, one engine measured in its own process, the
verdicts it writes."""

from __future__ import annotations

from pathlib import Path

from bench.animation import FIXTURES, _reads, _verdicts, _worker, frame_ssims

CHI = FIXTURES / "chi.gif"


def test_each_anchor_is_given_only_what_it_reads() -> None:
    gif, apng = CHI.read_bytes(), (FIXTURES / "apng_num_plays_1.png").read_bytes()
    sequence = (FIXTURES / "star.avifs").read_bytes()
    assert [_reads(engine, gif) for engine in ("imgpress", "gif2webp", "pyvips")] == [True, True, True]
    assert [_reads(engine, apng) for engine in ("imgpress", "gif2webp", "pyvips")] == [True, False, False]
    assert [_reads(engine, sequence) for engine in ("imgpress", "gif2webp", "pyvips")] == [True, False, False]


def test_imgpress_is_measured_in_a_fresh_process_and_its_frames_match_the_source() -> None:
    result = _worker({"mode": "measure", "engine": "imgpress", "path": str(CHI)})
    output = bytes.fromhex(result["output"])
    assert output[8:12] == b"WEBP" and result["bytes"] == len(output) < len(CHI.read_bytes())
    assert result["cpu_seconds"] > 0 and result["peak_mib"] >= 0
    assert min(frame_ssims(CHI.read_bytes(), output)) > 0.99  # a lossless palette animation stays exact


def test_verdicts_hold_imgpress_to_gif2webp_bytes_at_its_ssim_and_to_libvips_time() -> None:
    def engine(size: int, worst: float, cpu: float) -> dict[str, float]:
        return {"bytes": size, "ssim_worst": worst, "cpu_seconds": cpu}

    rows = [
        {
            "file": "a.gif",
            "engines": {
                "imgpress": engine(90, 0.95, 1.0),
                "gif2webp": engine(100, 0.95, 2.0),
                "pyvips": engine(80, 0.94, 0.5),
            },
        },
        {"file": "b.png", "engines": {"imgpress": engine(10, 1.0, 0.1)}},
    ]
    assert list(_verdicts(rows)) == [
        "- a.gif: met: 90 % of gif2webp's bytes, worst frame SSIM 0.9500 against 0.9500;"
        " MISSED: 200 % of libvips's CPU time",
        "- b.png: no anchor reads it (time and bytes only)",
    ]


def test_the_fixtures_it_names_are_kept(tmp_path: Path) -> None:
    from bench.animation import files

    assert all(path.is_file() for path in files(tmp_path))  # no corpus: the fixtures alone
