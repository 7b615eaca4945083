"""The GIF frame walker agrees with Pillow's full parser and stops where decoders stop."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from chalicelib.imaging.gifframes import count_gif_frames
from tests import hostile, images

UNBOUNDED = 10**9


def pillow_frames(data: bytes) -> int:
    with Image.open(io.BytesIO(data)) as image:
        return int(image.n_frames)


def gif_with_extras() -> bytes:
    """Local colour tables, comments, a loop extension and frames of different sizes."""
    frames = [Image.new("RGB", (90 + 7 * i, 60), (40 * i, 200 - 30 * i, 90)) for i in range(5)]
    frames[2].paste((255, 255, 0), (10, 10, 40, 40))
    buffer = io.BytesIO()
    frames[0].save(
        buffer,
        "GIF",
        save_all=True,
        append_images=frames[1:],
        duration=[40, 80, 120, 40, 40],
        loop=0,
        comment=b"made by a test " * 40,
        disposal=2,
    )
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        images.gif(frames=1),
        images.gif(frames=3),
        images.gif(frames=40),
        gif_with_extras(),
        hostile.many_frame_gif(300),
    ],
    ids=["one", "three", "forty", "extensions-and-local-palettes", "300-empty-frames"],
)
def test_counts_what_pillow_counts(data: bytes) -> None:
    assert count_gif_frames(data, UNBOUNDED) == pillow_frames(data)


def test_stops_one_past_the_limit() -> None:
    assert count_gif_frames(hostile.many_frame_gif(300), stop_after=10) == 11


@pytest.mark.parametrize("cut", [5, 13, 100, 700])
def test_truncated_files_count_what_they_hold(cut: int) -> None:
    data = images.gif(frames=40)
    counted = count_gif_frames(data[:cut], UNBOUNDED)
    assert 1 <= counted <= 40


def test_garbage_after_the_screen_descriptor_is_one_frame() -> None:
    data = images.gif(frames=3)
    assert count_gif_frames(data[:13] + b"\x00" * 500, UNBOUNDED) == 1
