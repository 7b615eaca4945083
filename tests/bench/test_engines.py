"""The engines the benchmark compares, run in this process: the same variants from each, and the
naive recipe made correct shows the picture the reference shows."""

from __future__ import annotations

from bench.engines import ENGINES, Output, vips_available
from bench.quality import Reference
from chalicelib.settings import imaging_settings
from tests import images

SPECS = imaging_settings({}).variants  # the default job: web 2048 px, thumb 320 px


def render(engine_name: str, data: bytes) -> list[Output]:
    engine = ENGINES[engine_name]()
    engine.prepare()
    return engine.run(data, SPECS)


def test_every_engine_makes_the_default_variants_at_the_same_sizes() -> None:
    data = images.jpeg(640, 400)
    for name in [name for name in ENGINES if name != "pyvips" or vips_available()]:
        outputs = render(name, data)
        assert [(o.name, o.format, o.width, o.height) for o in outputs] == [
            ("web", "webp", 640, 400),
            ("thumb", "webp", 320, 200),
        ], name


def test_the_recipe_made_correct_keeps_what_the_naive_one_gets_wrong() -> None:
    disc = images.rgba_png(64, 48)
    reference = Reference.from_bytes(disc)
    assert reference.ssim(render("naive-correct", disc)[0].data) > 0.99 > reference.ssim(render("naive", disc)[0].data)
    turned = images.oriented_jpeg(6)  # stored 200x400, shown 400x200
    assert [(o.width, o.height) for o in render("naive-correct", turned)] == [(400, 200), (320, 160)]
    assert [(o.width, o.height) for o in render("naive", turned)] == [(200, 400), (160, 320)]
