"""Configuration: defaults, the seed recipes, and failing fast with the field's name."""

from __future__ import annotations

import pytest

from chalicelib.errors import ConfigError
from chalicelib.imaging.specs import parse_variants
from chalicelib.settings import Settings

REQUIRED = {
    "INPUT_BUCKET": "in-b",
    "OUTPUT_BUCKET": "out-b",
    "TABLE_NAME": "t",
    "TOPIC_ARN": "arn:aws:sns:us-east-1:1:t",
}


def test_defaults() -> None:
    deployment = Settings.from_env(REQUIRED)
    settings = deployment.imaging
    assert settings.max_upload_bytes == 25 * 1024 * 1024 and settings.max_pixels == 50_000_000
    assert settings.max_side == 12_000
    assert settings.allowed_content_types == (
        "image/jpeg",
        "image/png",
        "image/webp",
        "image/gif",
        "image/avif",
        "image/heic",
        "image/heif",
    )
    assert settings.profiles.default == "default"
    assert set(settings.profiles.names) >= {"default", "compress", "thumbnail200", "resize", "lowres-jpeg", "web800"}
    assert [(v.name, v.max_width, v.format) for v in settings.variants] == [
        ("web", 2048, "webp"),
        ("thumb", 320, "webp"),
    ]
    assert deployment.upload_key("abc") == "uploads/abc"
    assert deployment.output_key("abc", "r1", "web", "webp") == "processed/abc/r1/web.webp"
    assert (deployment.max_attempts, deployment.deadline_margin_seconds) == (3, 5)


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
        ({"VARIANTS": '[{"name": "a", "width": 10, "fit": "cover"}]'}, "VARIANTS[0].fit"),
        ({"VARIANTS": '[{"name": "a", "max": 10, "format": "jpeg", "lossless": true}]'}, "VARIANTS[0].lossless"),
        ({"VARIANTS": '[{"name": "a", "max": 10, "background": "white"}]'}, "VARIANTS[0].background"),
        (
            {"VARIANTS": '[{"name": "a", "max": 10, "watermark": {"text": "x", "image": "watermark.png"}}]'},
            "VARIANTS[0].watermark: give exactly one",
        ),
        (
            {"VARIANTS": '[{"name": "a", "max": 10, "watermark": {"image": "missing.png"}}]'},
            "VARIANTS[0].watermark.image",
        ),
        (
            {"VARIANTS": '[{"name": "a", "max": 10, "watermark": {"text": "x", "opacity": 2}}]'},
            "VARIANTS[0].watermark.opacity",
        ),
        (
            {"VARIANTS": '[{"name": "a", "max": 10, "watermark": {"text": "x", "position": "middle"}}]'},
            "VARIANTS[0].watermark.position",
        ),
        ({"PROFILES": "{"}, "PROFILES: not valid JSON"),
        ({"PROFILES": '{"profiles": {}}'}, "PROFILES.profiles"),
        (
            {"PROFILES": '{"default": "x", "profiles": {"a": {"variants": [{"name": "v", "max": 5}]}}}'},
            "PROFILES.default",
        ),
        ({"PROFILES": '{"profiles": {"Bad Name": {"variants": []}}}'}, "PROFILES.profiles.Bad Name"),
        (
            {"PROFILES": '{"profiles": {"default": {"variants": [{"name": "v", "max": 5, "format": "gif"}]}}}'},
            "PROFILES.profiles.default.variants[0].format",
        ),
        (
            {"PROFILES": '{"profiles": {"default": {"variants": [{"name": "v", "max": 5, "quality": 0}]}}}'},
            "PROFILES.profiles.default.variants[0].quality",
        ),
        (
            {
                "PROFILES": '{"profiles": {"default": {"variants": [{"name": "v", "max": 5}, {"name": "v", "scale": 5}]}}}'
            },
            "PROFILES.profiles.default.variants: duplicate",
        ),
        ({"DEFAULT_PROFILE": "nope"}, "default: 'nope' is not one of the profiles"),
        ({"OUTPUT_SSE": "des"}, "OUTPUT_SSE"),
        ({"BLURHASH_COMPONENTS": "10x3"}, "BLURHASH_COMPONENTS"),
        ({"VARIANTS": '[{"name": "a", "max": 10, "quality": 80, "target_ssim": 0.95}]'}, "VARIANTS[0].target_ssim"),
        ({"VARIANTS": '[{"name": "a", "max": 10, "format": "png", "target_ssim": 0.95}]'}, "VARIANTS[0].target_ssim"),
        ({"VARIANTS": '[{"name": "a", "max": 10, "target_ssim": 1.5}]'}, "VARIANTS[0].target_ssim"),
        ({"BLURHASH_COMPONENTS": "four"}, "BLURHASH_COMPONENTS"),
        ({"DEDUPE": "maybe"}, "DEDUPE"),
        ({"OUTPUT_BASE_URL": "cdn.example.com"}, "OUTPUT_BASE_URL"),
        ({"OUTPUT_BUCKET": "in-b", "OUTPUT_PREFIX": "uploads/processed/"}, "OUTPUT_PREFIX: with one bucket"),
    ],
)
def test_bad_configuration_fails_naming_the_field(env: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace("[", r"\[").replace("]", r"\]")):
        Settings.from_env({**REQUIRED, **env})


def test_one_bucket_layout_with_separate_prefixes_is_accepted() -> None:
    settings = Settings.from_env({**REQUIRED, "OUTPUT_BUCKET": REQUIRED["INPUT_BUCKET"]})
    assert settings.input_bucket == settings.output_bucket and settings.output_prefix == "processed/"


def test_profiles_from_the_environment_and_default_override() -> None:
    document = '{"default": "a", "profiles": {"a": {"variants": [{"name": "x", "max": 10}]}, "b": {"variants": [{"name": "y", "scale": 50}]}}}'
    settings = Settings.from_env({**REQUIRED, "PROFILES": document, "DEFAULT_PROFILE": "b"})
    assert settings.imaging.profiles.names == ["a", "b"] and settings.imaging.variants[0].name == "y"


@pytest.mark.parametrize(
    "env, threads",
    [
        ({}, 1),  # not on Lambda: one, as the benchmarks and `imgpress compress` always rendered
        ({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1769"}, 1),  # one vCPU
        ({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3538"}, 2),
        ({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512"}, 1),
        ({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3538", "ENCODE_THREADS": "1"}, 1),
        ({"ENCODE_THREADS": "3"}, 3),
    ],
)
def test_variants_are_encoded_in_parallel_only_with_two_vcpus_or_when_asked(
    env: dict[str, str], threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert Settings.from_env({**REQUIRED, **env}).imaging.encode_threads == threads


def test_encode_threads_must_be_a_positive_integer() -> None:
    with pytest.raises(ConfigError, match="ENCODE_THREADS"):
        Settings.from_env({**REQUIRED, "ENCODE_THREADS": "0"})


@pytest.mark.parametrize(
    "env, megabytes",
    [
        ({}, 1513),  # not on Lambda: as on the stage's 1769 MB upload handler
        ({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1769"}, 1513),  # the function's memory less 256 MB
        ({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3538"}, 3282),
        ({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3538", "RENDER_MEMORY_MB": "1000"}, 1000),
    ],
)
def test_a_render_may_use_the_function_s_memory_less_what_the_handler_holds(
    env: dict[str, str], megabytes: int
) -> None:
    imaging = Settings.from_env({**REQUIRED, **env}).imaging
    assert imaging.render_memory_mb == megabytes
    assert imaging.decode_limits().max_render_bytes == megabytes * 1024 * 1024


def test_render_memory_must_be_at_least_64_mb() -> None:
    with pytest.raises(ConfigError, match="RENDER_MEMORY_MB"):
        Settings.from_env({**REQUIRED, "RENDER_MEMORY_MB": "10"})
