"""What clients see of an image: the API's image object, the SNS message, the CLI's JSON, and the
`<img>` markup and savings computed for them. Pure: presentation of domain.ImageRecord, no storage."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from chalicelib.domain import ImageRecord, OriginalInfo, OutputInfo, ReprocessStatus
from chalicelib.imaging.results import MOVING


class Measured(Protocol):
    """Anything with a size in pixels and bytes: a stored output, or a file `imgpress compress` wrote."""

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    @property
    def bytes(self) -> int: ...


M = TypeVar("M", bound=Measured)


def largest_output(outputs: Mapping[str, M]) -> M | None:
    """The output with the most pixels: the one that replaces the original on a page."""
    if not outputs:
        return None
    return max(outputs.values(), key=lambda o: (o.width * o.height, o.bytes))


def savings(original_bytes: int | None, outputs: Mapping[str, Measured]) -> dict[str, Any] | None:
    """Bytes saved by the largest output, and the share of the original that is."""
    largest = largest_output(outputs)
    if original_bytes is None or largest is None:
        return None
    original = OriginalInfo(original_bytes)
    saved = original.bytes - largest.bytes
    return {"bytes": saved, "percent": round(100.0 * saved / original.bytes, 1) if original.bytes else 0.0}


UrlFor = Callable[[OutputInfo], str]


def markup(outputs: Mapping[str, OutputInfo], url_for: UrlFor) -> dict[str, Any] | None:
    """What `<img srcset>` / `<picture>` need: per format, the variants of the largest one's shape.

    Cropped variants of another aspect ratio (avatars) are left out: a srcset must show one picture.
    For an animation, the srcset holds only the moving variants (a browser must not pick a still for
    a small screen), and `poster` is the largest still: for reduced motion and before it plays.
    """
    moving = {name: output for name, output in outputs.items() if output.animation == MOVING}
    largest = largest_output(moving or outputs)
    if largest is None:
        return None
    aspect = largest.width / largest.height
    srcset: dict[str, list[OutputInfo]] = {}
    for output in (moving or outputs).values():
        if abs(output.width / output.height - aspect) <= 0.02 * aspect:
            srcset.setdefault(output.format, []).append(output)
    shown: dict[str, Any] = {
        "width": largest.width,
        "height": largest.height,
        "srcset": {
            fmt: ", ".join(f"{url_for(o)} {o.width}w" for o in sorted(items, key=lambda o: o.width))
            for fmt, items in srcset.items()
        },
    }
    if moving:
        poster = largest_output({name: o for name, o in outputs.items() if o.animation != MOVING})
        shown.update(animated=True, poster=url_for(poster) if poster is not None else None)
    return shown


def public_view(record: ImageRecord, url_for: UrlFor | None = None) -> dict[str, Any]:
    """The image as clients see it: the API's image object, the SNS message and the CLI's JSON.

    With `url_for`, each output gets a download URL and the view gets `<img>` markup; the SNS
    message is built without (subscribers get bucket and key, never a signed URL).
    """
    outputs = {name: output.to_dict() for name, output in record.outputs.items()}
    if url_for is not None:
        for name, output in record.outputs.items():
            outputs[name]["url"] = url_for(output)
    original = None
    if record.original is not None:
        original = {**record.original.to_dict(), "bucket": record.input_bucket, "key": record.input_key}
    return {
        "id": record.id,
        "owner": record.owner,
        "status": str(record.status),
        "filename": record.filename,
        "content_type": record.content_type,
        "declared_content_type": record.content_type,
        "type_mismatch": record.type_mismatch,
        "sha256": record.sha256,
        "deduplicated_from": record.deduplicated_from,
        "profile": record.profile,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "completed_at": record.completed_at,
        "attempts": record.attempts,
        "original": original,
        "outputs": outputs,
        "savings": savings(record.original.bytes if record.original else None, record.outputs),
        "placeholders": dict(record.placeholders) if record.placeholders is not None else None,
        "animation": record.animation,
        "markup": markup(record.outputs, url_for) if url_for is not None else None,
        "error": record.error.to_dict() if record.error else None,
        "generation": record.generation,
        "backfill": record.backfill,
        "reprocess": record.reprocess.to_dict() if record.reprocess else None,
        "links": {"self": f"/images/{record.id}"},
    }


def message_type(record: ImageRecord) -> str:
    """image.done / image.failed; image.reprocess_failed when a reprocess failed and the previous
    outcome (status, outputs) still stands."""
    if record.reprocess is not None and record.reprocess.status is ReprocessStatus.FAILED:
        return "image.reprocess_failed"
    return f"image.{record.status}"


def result_message(record: ImageRecord) -> dict[str, Any]:
    """The SNS message of a final image: its public view (no URLs), typed for filter policies."""
    return {"type": message_type(record), **public_view(record)}
