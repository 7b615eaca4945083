"""How images look in a terminal: sizes in KB/MB, one table row per image, a detail view."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_UNITS = ("KB", "MB", "GB")


def human_bytes(count: int | None) -> str:
    """1536 -> "1.5 KB". Negative counts (an output larger than its original) keep their sign."""
    if count is None:
        return "-"
    sign, value = ("-" if count < 0 else ""), float(abs(count))
    if value < 1024:
        return f"{sign}{int(value)} B"
    for unit in _UNITS:
        value /= 1024
        if value < 1024 or unit == _UNITS[-1]:
            break
    return f"{sign}{value:.1f} {unit}"


def describe_original(original: dict[str, Any] | None) -> str:
    if not original:
        return "-"
    if original.get("width"):
        return f"{original['format']} {original['width']}x{original['height']} {human_bytes(original['bytes'])}"
    return human_bytes(original.get("bytes"))


def describe_output(output: dict[str, Any]) -> str:
    return f"{output['format']} {output['width']}x{output['height']} {human_bytes(output['bytes'])}"


def describe_result(image: dict[str, Any]) -> str:
    """The variants of a finished image, or the reason it failed."""
    if image.get("error"):
        return f"{image['error']['code']}: {image['error']['message']}"
    return (
        ", ".join(f"{name} {describe_output(output)}" for name, output in (image.get("outputs") or {}).items()) or "-"
    )


def describe_savings(savings: dict[str, Any] | None) -> str:
    return f"{savings['percent']:g}%" if savings else "-"


def image_table(images: Sequence[dict[str, Any]]) -> str:
    """One row per image: id, file, status, original, variants (or error), savings."""
    header = ("ID", "FILE", "STATUS", "ORIGINAL", "SAVED", "VARIANTS / ERROR")
    rows = [
        (
            image.get("id") or "-",
            image.get("file") or image.get("filename") or "-",
            image["status"],
            describe_original(image.get("original")),
            describe_savings(image.get("savings")),
            describe_result(image),
        )
        for image in images
    ]
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header) - 1)]
    lines = []
    for row in (header, *rows):
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths)]
        lines.append("  ".join([*cells, str(row[-1])]).rstrip())
    return "\n".join(lines)


def image_details(image: dict[str, Any]) -> str:
    """Everything `imgpress status` knows about one image, one fact per line, links included."""
    lines = [
        ("id", image["id"]),
        ("status", image["status"]),
        ("file", f"{image.get('filename') or '-'} ({image.get('content_type') or '-'})"),
        ("created", image.get("created_at") or "-"),
        ("completed", image.get("completed_at") or "-"),
        ("original", describe_original(image.get("original"))),
    ]
    for name, output in (image.get("outputs") or {}).items():
        lines.append((name, f"{describe_output(output)}  {output['url']}"))
    if image.get("savings"):
        lines.append(("saved", f"{human_bytes(image['savings']['bytes'])} ({describe_savings(image['savings'])})"))
    if image.get("error"):
        lines.append(("error", describe_result(image)))
    width = max(len(label) for label, _ in lines)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in lines)
