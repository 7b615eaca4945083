"""Request parsing has one owner: what a client may send, and the 4xx (never a 500) for what it may not."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from chalicelib import parsing
from chalicelib.errors import BadRequest, InvalidId, TooLarge


def test_a_body_over_the_limit_is_413_everywhere() -> None:
    with pytest.raises(TooLarge) as raised:
        parsing.json_object(b'{"a": "' + b"x" * parsing.MAX_BODY_BYTES + b'"}', required=False)
    assert raised.value.code == "body_too_large" and raised.value.http_status == 413


@pytest.mark.parametrize("levels", [parsing.MAX_JSON_DEPTH + 1, 1500, 5000])
def test_deeply_nested_json_is_a_400_not_a_recursion_error(levels: int) -> None:
    body = '{"a": ' + "[" * levels + "]" * levels + "}"
    with pytest.raises(BadRequest) as raised:
        parsing.json_object(body[: parsing.MAX_BODY_BYTES])
    assert raised.value.code == "invalid_json"


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = "[" * 100 + '\\"' + "{" * 100
    assert parsing.json_object(json.dumps({"filename": text})) == {"filename": text}


@pytest.mark.parametrize("body", [b"", None, b"[]", b"nul", b"\xff\xfe", b'"text"'])
def test_a_body_that_is_no_json_object_is_a_400(body: bytes | None) -> None:
    with pytest.raises(BadRequest) as raised:
        parsing.json_object(body)
    assert raised.value.code == "invalid_json"


def test_an_optional_body_may_be_absent() -> None:
    assert parsing.json_object(b"", required=False) == {}


@pytest.mark.parametrize("value, expected", [(60, 60), (60.0, 60), (0, 0)])
def test_json_numbers_with_integral_values_are_integers(value: float, expected: int) -> None:
    assert parsing.integer(value, "limit", 0, 100) == expected


@pytest.mark.parametrize("value", ["60", True, 60.5, None, [], {}, float("inf"), float("nan"), 1e300, 101, -1])
def test_anything_else_in_a_body_is_a_400(value: object) -> None:
    with pytest.raises(BadRequest) as raised:
        parsing.integer(value, "limit", 0, 100)
    assert raised.value.code == "invalid_field" and "limit" in raised.value.message


@pytest.mark.parametrize("raw", ["²", "١", "٣٠", "1²", "-1", "+1", " 1", "1e3", "0x10", "9" * 19])
def test_only_ascii_digits_are_numbers_in_a_query(raw: str) -> None:
    with pytest.raises(BadRequest):
        parsing.query_integer({"wait": raw}, "wait", 0, 0, 10**19)


def test_a_query_number_absent_or_empty_is_the_default() -> None:
    assert parsing.query_integer({}, "limit", 20, 1, 100) == 20
    assert parsing.query_integer({"limit": ""}, "limit", 20, 1, 100) == 20
    assert parsing.query_integer({"limit": "007"}, "limit", 20, 1, 100) == 7


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T12:00:00+02:00", datetime(2026, 11, 1, 10, tzinfo=UTC)),
        ("2026-11-01T12:00:00Z", datetime(2026, 11, 1, 12, tzinfo=UTC)),
    ],
)
def test_dates_and_times_become_utc(value: str, expected: datetime) -> None:
    assert parsing.moment(value, "since") == expected


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "yesterday", 5, ""])
def test_dates_that_overflow_or_do_not_parse_are_a_400(value: object) -> None:
    with pytest.raises(BadRequest) as raised:
        parsing.moment(value, "since")
    assert raised.value.code == "invalid_field"


def test_the_filename_limit_is_on_what_the_client_sent() -> None:
    sent = "../" * 100 + "photo.jpg"  # 309 characters, 9 after cleaning
    with pytest.raises(BadRequest):
        parsing.filename(sent)
    assert parsing.filename("a/b\\c\x00d.jpg") == "cd.jpg"
    assert parsing.filename("x" * parsing.MAX_FILENAME_CHARS) == "x" * parsing.MAX_FILENAME_CHARS


@pytest.mark.parametrize("raw", ["", None, "A" * 32, "0" * 31, "0" * 33, "0" * 31 + "\n", "٠" * 32])
def test_an_image_id_is_32_lowercase_hex_characters(raw: str | None) -> None:
    with pytest.raises(InvalidId):
        parsing.image_id(raw)
    assert parsing.image_id("0123456789abcdef" * 2) == "0123456789abcdef" * 2


@pytest.mark.parametrize("value, expected", [(None, None), ("", None), ("c1", "c1")])
def test_a_handed_out_string_absent_null_or_empty_is_none(value: str | None, expected: str | None) -> None:
    assert parsing.optional_text({"cursor": value}, "cursor") == expected


@pytest.mark.parametrize("value", [5, "x" * 2049, []])
def test_a_handed_out_string_of_another_type_or_too_long_is_a_400(value: object) -> None:
    with pytest.raises(BadRequest):
        parsing.optional_text({"cursor": value}, "cursor")
