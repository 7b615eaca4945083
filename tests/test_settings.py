"""Configuration: defaults, the seed recipes, and failing fast with the field's name."""
from __future__ import annotations

import pytest

from chalicelib.errors import ConfigError
from chalicelib.imaging.specs import parse_variants
from chalicelib.settings import Settings

REQUIRED = {"INPUT_BUCKET": "in-b", "OUTPUT_BUCKET": "out-b", "TABLE_NAME": "t", "TOPIC_ARN": "arn:aws:sns:us-east-1:1:t"}


def test_defaults() -> None:
    settings = Settings.from_env(REQUIRED)
    assert settings.max_upload_bytes == 25 * 1024 * 1024 and settings.max_pixels == 50_000_000
    assert settings.max_side == 12_000
    assert settings.allowed_content_types == ("image/jpeg", "image/png", "image/webp", "image/gif")
    assert [(v.name, v.max_width, v.format) for v in settings.variants] == [("web", 2048, "webp"), ("thumb", 320, "webp")]
    assert settings.upload_key("abc") == "uploads/abc"
    assert settings.output_key("abc", "web", "webp") == "processed/abc/web.webp"


def test_seed_recipes_parse() -> None:
    specs = parse_variants(
        '[{"name": "thumb200", "max": 200}, {"name": "low", "scale": 30, "format": "jpeg", "quality": 40,'
        ' "progressive": true}, {"name": "web800", "max": 800, "format": "webp", "quality": 80}]'
    )
    assert specs[1].scale_percent == 30 and specs[1].progressive and specs[1].quality == 40
    assert specs[1].target_size(1000, 500) == (300, 150)
    assert specs[2].target_size(4000, 3000) == (800, 600) and specs[0].target_size(100, 50) == (100, 50)


@pytest.mark.parametrize(
    "env, field",
    [
        ({"INPUT_BUCKET": ""}, "INPUT_BUCKET"),
        ({"MAX_UPLOAD_BYTES": "lots"}, "MAX_UPLOAD_BYTES"),
        ({"MAX_PIXELS": "0"}, "MAX_PIXELS"),
        ({"ALLOWED_CONTENT_TYPES": "image/jpeg,image/x-icon"}, "ALLOWED_CONTENT_TYPES"),
        ({"UPLOAD_PREFIX": "uploads"}, "UPLOAD_PREFIX"),
        ({"VARIANTS": "not json"}, "VARIANTS"),
        ({"VARIANTS": "[]"}, "VARIANTS"),
        ({"VARIANTS": '[{"name": "a", "max": 10, "format": "bmp"}]'}, "VARIANTS[0].format"),
        ({"VARIANTS": '[{"name": "a", "max": 10, "quality": 101}]'}, "VARIANTS[0].quality"),
        ({"VARIANTS": '[{"name": "a", "max": 10, "scale": 50}]'}, "VARIANTS[0]: give either"),
        ({"VARIANTS": '[{"name": "a"}]'}, "VARIANTS[0]: needs a box"),
        ({"VARIANTS": '[{"name": "a", "max": 10}, {"name": "a", "max": 5}]'}, "duplicate variant name"),
        ({"VARIANTS": '[{"name": "a b", "max": 10}]'}, "VARIANTS[0].name"),
        ({"VARIANTS": '[{"name": "a", "max": 10, "colour": "red"}]'}, "unknown field"),
        ({"VARIANTS": '[{"name": "a", "scale": 150}]'}, "VARIANTS[0].scale"),
    ],
)
def test_bad_configuration_fails_naming_the_field(env: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace("[", r"\[").replace("]", r"\]")):
        Settings.from_env({**REQUIRED, **env})
