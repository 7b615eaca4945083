"""GET/DELETE /images: what a client sees of a record, with short-lived links to the outputs."""

from __future__ import annotations

import re
from typing import Any

from chalicelib.errors import BadRequest, InvalidId, NotFound
from chalicelib.records import STATUSES, ImageRecords
from chalicelib.settings import Settings
from chalicelib.storage import ObjectStore

_ID = re.compile(r"^[0-9a-f]{32}$")
DEFAULT_PAGE = 20
MAX_PAGE = 100


def parse_image_id(raw: str) -> str:
    if not _ID.match(raw or ""):
        raise InvalidId("An image id is 32 lowercase hex characters, as returned by POST /uploads.")
    return raw


def _largest(outputs: dict[str, Any]) -> dict[str, Any]:
    """The output with the most pixels (the one that replaces the original on a page)."""
    return dict(max(outputs.values(), key=lambda o: (o["width"] * o["height"], o["bytes"])))


def savings(original: dict[str, Any] | None, outputs: dict[str, Any]) -> dict[str, Any] | None:
    """Bytes saved by the largest output."""
    if not original or not outputs:
        return None
    largest = _largest(outputs)
    saved = original["bytes"] - largest["bytes"]
    return {"bytes": saved, "percent": round(100.0 * saved / original["bytes"], 1) if original["bytes"] else 0.0}


def output_url(output: dict[str, Any], store: ObjectStore, settings: Settings) -> str:
    """A stable public link behind OUTPUT_BASE_URL (CDN, cacheable forever), else a presigned GET."""
    if settings.output_base_url:
        return f"{settings.output_base_url}/{output['key']}"
    return store.presign_get(output["bucket"], output["key"], settings.download_url_ttl)


def markup(outputs: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """What `<img srcset>` / `<picture>` need: per format, the variants of the largest one's shape.

    Cropped variants of another aspect ratio (avatars) are left out: a srcset must show one picture.
    """
    if not outputs:
        return None
    largest = _largest(outputs)
    aspect = largest["width"] / largest["height"]
    srcset: dict[str, list[dict[str, Any]]] = {}
    for output in outputs.values():
        if abs(output["width"] / output["height"] - aspect) <= 0.02 * aspect:
            srcset.setdefault(output["format"], []).append(output)
    return {
        "width": largest["width"],
        "height": largest["height"],
        "srcset": {
            fmt: ", ".join(f"{o['url']} {o['width']}w" for o in sorted(items, key=lambda o: o["width"]))
            for fmt, items in srcset.items()
        },
    }


def image_view(record: dict[str, Any], store: ObjectStore, settings: Settings) -> dict[str, Any]:
    outputs = {
        name: {
            **{k: out[k] for k in ("format", "content_type", "width", "height", "bytes", "bucket", "key") if k in out},
            "method": out.get("method", "reencoded"),
            "url": output_url(out, store, settings),
        }
        for name, out in (record.get("outputs") or {}).items()
    }
    return {
        "id": record["id"],
        "status": record["status"],
        "filename": record.get("filename"),
        "content_type": record.get("content_type"),
        "declared_content_type": record.get("content_type"),
        "type_mismatch": bool(record.get("type_mismatch")),
        "sha256": record.get("sha256"),
        "deduplicated_from": record.get("deduplicated_from"),
        "profile": record.get("profile"),
        "created_at": record.get("created_at"),
        "updated_at": record.get("updated_at"),
        "completed_at": record.get("completed_at"),
        "original": _original(record),
        "outputs": outputs,
        "savings": savings(record.get("original"), record.get("outputs") or {}),
        "placeholders": record.get("placeholders"),
        "markup": markup(outputs),
        "error": record.get("error"),
        "links": {"self": f"/images/{record['id']}"},
    }


def _original(record: dict[str, Any]) -> dict[str, Any] | None:
    """The original's metadata once known, with where it is stored."""
    original = record.get("original")
    if not original:
        return None
    return {**original, "bucket": record.get("input_bucket"), "key": record.get("input_key")}


def get_image(image_id: str, records: ImageRecords) -> dict[str, Any]:
    record = records.get(parse_image_id(image_id))
    if record is None:
        raise NotFound(f"No image with id {image_id}.")
    return record


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def parse_list_query(params: dict[str, str] | None) -> tuple[str | None, int, str | None, str | None]:
    params = params or {}
    unknown = sorted(set(params) - {"status", "limit", "cursor", "sha256"})
    if unknown:
        raise BadRequest(f"Unknown query parameter(s): {', '.join(unknown)}.", "unknown_field")
    status = params.get("status") or None
    if status is not None and status not in STATUSES:
        raise BadRequest(f"status must be one of {', '.join(STATUSES)}.", "invalid_field")
    raw_limit = params.get("limit")
    try:
        limit = int(raw_limit) if raw_limit else DEFAULT_PAGE
    except ValueError as exc:
        raise BadRequest(f"limit must be an integer from 1 to {MAX_PAGE}.", "invalid_field") from exc
    if not 1 <= limit <= MAX_PAGE:
        raise BadRequest(f"limit must be an integer from 1 to {MAX_PAGE}.", "invalid_field")
    sha256 = (params.get("sha256") or "").lower() or None
    if sha256 is not None and not _SHA256.match(sha256):
        raise BadRequest("sha256 must be 64 hexadecimal characters.", "invalid_field")
    return status, limit, params.get("cursor") or None, sha256


def list_images(
    params: dict[str, str] | None, records: ImageRecords, store: ObjectStore, settings: Settings
) -> dict[str, Any]:
    status, limit, cursor, sha256 = parse_list_query(params)
    items, next_cursor = records.list_page(status, limit, cursor, sha256)
    return {"items": [image_view(item, store, settings) for item in items], "next_cursor": next_cursor}


def delete_image(image_id: str, records: ImageRecords, store: ObjectStore, settings: Settings) -> None:
    """Remove original, every output under the image's prefix, then the record (last, so a
    failure part-way leaves a record that a retried DELETE can finish)."""
    record = get_image(image_id, records)
    store.delete_objects(
        record.get("input_bucket", settings.input_bucket), [record.get("input_key", settings.upload_key(image_id))]
    )
    prefix = f"{settings.output_prefix}{image_id}/"
    store.delete_objects(store.output_bucket, store.list_keys(store.output_bucket, prefix))
    records.delete(image_id)
