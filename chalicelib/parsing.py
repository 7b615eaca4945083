"""Everything a client sends, read one way: JSON bodies, fields, ids, numbers, dates and names.

Every route parses its request with these, so the same input gets the same answer everywhere: a
body over the limit is always 413 `body_too_large`, a number is always ASCII digits (in a query) or
a JSON number with an integral value (in a body), a date is always bounded. Each refusal is a 4xx
with a code (errors.py); nothing a client sends can reach a 500 from here.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from chalicelib.domain import is_image_id, parse_iso
from chalicelib.errors import BadRequest, InvalidId, TooLarge

MAX_BODY_BYTES = 16 * 1024
MAX_JSON_DEPTH = 32  # far deeper than any body of ours (2); json's own recursion would end in a 500
MAX_FILENAME_CHARS = 255
MAX_DIGITS = 18  # every number we take fits in 18 digits; more is an attack on int()
_NESTING = {ord("{"): 1, ord("["): 1, ord("}"): -1, ord("]"): -1}


def json_object(body: bytes | str | None, *, required: bool = True) -> dict[str, Any]:
    """The body as a JSON object. An absent body is {} where the route's fields are all optional."""
    if not body:
        if required:
            raise BadRequest("The request body must be a JSON object.", "invalid_json")
        return {}
    if len(body) > MAX_BODY_BYTES:
        raise TooLarge(f"The request body exceeds {MAX_BODY_BYTES} bytes.", "body_too_large")
    raw = body.encode() if isinstance(body, str) else body
    if _depth(raw) > MAX_JSON_DEPTH:
        raise BadRequest(f"The request body nests deeper than {MAX_JSON_DEPTH} levels.", "invalid_json")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("The request body is not valid JSON.", "invalid_json") from exc
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.", "invalid_json")
    return data


def _depth(raw: bytes) -> int:
    """How deep brackets nest outside strings, read before the parser recurses into them."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in _NESTING:
            depth += _NESTING[byte]
            deepest = max(deepest, depth)
    return deepest


def known_fields(data: Mapping[str, Any], allowed: set[str], where: str = "field") -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise BadRequest(
            f"Unknown {where}(s): {', '.join(unknown)}. Allowed: {', '.join(sorted(allowed))}.", "unknown_field"
        )


def image_id(raw: str | None) -> str:
    if not is_image_id(raw or ""):
        raise InvalidId("An image id is 32 lowercase hex characters, as returned by POST /uploads.")
    return str(raw)


def integer(
    value: Any,
    name: str,
    minimum: int,
    maximum: int = 10**MAX_DIGITS - 1,
    *,
    text: bool = False,
    code: str = "invalid_field",
) -> int:
    """A whole number from `minimum` to `maximum`: a JSON number with an integral value (60 or 60.0);
    with `text`, also a string of ASCII digits (a query parameter, Uppy's metadata). Else a 400."""
    number = _whole_number(value, text)
    if number is None or not minimum <= number <= maximum:
        raise BadRequest(f"{name} must be an integer from {minimum} to {maximum}.", code)
    return number


def _whole_number(value: Any, text: bool) -> int | None:
    if isinstance(value, bool):  # a JSON true is no number, though Python's bool is an int
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 10**MAX_DIGITS else None
    if text and isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= MAX_DIGITS:
        return int(value)
    return None


def query_integer(params: Mapping[str, str] | None, name: str, default: int, minimum: int, maximum: int) -> int:
    """`?name=N`; absent or empty: `default`."""
    raw = (params or {}).get(name)
    return default if raw is None or raw == "" else integer(raw, name, minimum, maximum, text=True)


def boolean(data: Mapping[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false.", "invalid_field")
    return value


def optional_text(data: Mapping[str, Any], name: str, max_chars: int = 2048) -> str | None:
    """A string we handed out earlier (a cursor, an id): up to `max_chars`, or absent (null or empty)."""
    value = data.get(name)
    if value is not None and (not isinstance(value, str) or len(value) > max_chars):
        raise BadRequest(f"{name} must be a string as returned by an earlier call.", "invalid_field")
    return value or None


def moment(value: Any, name: str) -> datetime:
    """An ISO 8601 date or time (a date is its midnight; no offset means UTC), as an aware UTC datetime.
    Years 1 and 9999 with an offset overflow when converted: refused, like any unreadable date."""
    try:
        parsed = parse_iso(str(value))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise BadRequest(f"{name} must be an ISO date or time, e.g. 2026-11-01.", "invalid_field") from exc


def filename(value: Any) -> str | None:
    """The client's filename, kept as display metadata only (it never reaches an S3 key): its last
    path component, Unicode-normalised, without control characters. The length limit is on what the
    client sends, before any of that cleaning."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest("filename must be a string.", "invalid_field")
    if len(value) > MAX_FILENAME_CHARS:
        raise BadRequest(f"filename may be at most {MAX_FILENAME_CHARS} characters.", "invalid_field")
    name = value.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in unicodedata.normalize("NFC", name) if unicodedata.category(ch)[0] != "C").strip()
    return name or None


def profile(value: Any, known: Mapping[str, Any], default: str | None = None) -> str:
    """A profile name among `known`; absent: `default` (when the route has one)."""
    if value is None and default is not None:
        return default
    if not isinstance(value, str) or value not in known:
        raise BadRequest(f"Unknown profile {value!r}; valid profiles: {', '.join(known)}.", "unknown_profile")
    return value
