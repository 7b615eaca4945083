"""How results look in a terminal: sizes, the image table, the status view, progress bars."""

from __future__ import annotations

import io

from imgpress_cli.output import human_bytes, image_details, image_table
from imgpress_cli.progress import ProgressBar

DONE = {
    "id": "a" * 32,
    "status": "done",
    "filename": "holiday.jpg",
    "content_type": "image/jpeg",
    "created_at": "2026-11-24T06:00:00.123Z",
    "completed_at": "2026-11-24T06:00:01.456Z",
    "original": {"format": "JPEG", "width": 6000, "height": 4000, "bytes": 8412345},
    "outputs": {
        "web": {"format": "webp", "width": 2048, "height": 1365, "bytes": 412345, "url": "https://out/web"},
        "thumb": {"format": "webp", "width": 320, "height": 213, "bytes": 14345, "url": "https://out/thumb"},
    },
    "savings": {"bytes": 8000000, "percent": 95.1},
    "error": None,
}
FAILED = {
    "id": "b" * 32,
    "status": "failed",
    "filename": "fake.png",
    "original": {"bytes": 14, "format": None, "width": None, "height": None},
    "outputs": {},
    "savings": None,
    "error": {"code": "not_an_image", "message": "The file is not an image."},
}


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (None, 0, 1023, 1536, 8412345, -2048, 5 * 1024**4)] == [
        "-",
        "0 B",
        "1023 B",
        "1.5 KB",
        "8.0 MB",
        "-2.0 KB",
        "5120.0 GB",
    ]


def test_table_has_one_aligned_row_per_image() -> None:
    lines = image_table([DONE, FAILED]).splitlines()
    assert lines[0].split() == ["ID", "FILE", "STATUS", "ORIGINAL", "SAVED", "VARIANTS", "/", "ERROR"]
    assert lines[1].split("  ")[0] == "a" * 32
    assert "JPEG 6000x4000 8.0 MB" in lines[1] and "95.1%" in lines[1]
    assert lines[1].endswith("web webp 2048x1365 402.7 KB, thumb webp 320x213 14.0 KB")
    assert lines[2].endswith("not_an_image: The file is not an image.") and " 14 B " in lines[2]
    assert lines[1].index("done") == lines[2].index("failed") == lines[0].index("STATUS")


def test_details_show_every_variant_with_its_link() -> None:
    details = dict(line.split(None, 1) for line in image_details(DONE).splitlines())
    assert details["web"] == "webp 2048x1365 402.7 KB  https://out/web"
    assert details["saved"] == "7.6 MB (95.1%)"
    assert "error" not in details
    assert dict(line.split(None, 1) for line in image_details(FAILED).splitlines())["error"] == (
        "not_an_image: The file is not an image."
    )


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_redraws_on_a_terminal_and_prints_once_elsewhere() -> None:
    log = io.StringIO()
    bar = ProgressBar("photo.jpg", 2000, log)
    for done in range(0, 2049, 512):
        bar.update(done, 2048)
    bar.finish("uploaded")
    assert log.getvalue().count("\n") == 1 and "[" + "#" * 28 + "] 100%" in log.getvalue()

    terminal = Terminal()
    bar = ProgressBar("photo.jpg", 2000, terminal)
    bar.update(1024, 2048)
    bar.update(2048, 2048)
    bar.finish("uploaded")
    frames = terminal.getvalue().split("\r")[1:]
    assert " 50%" in frames[0] and frames[-1].endswith("] 100% of 2.0 KB  uploaded\n")
