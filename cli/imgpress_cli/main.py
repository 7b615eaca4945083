"""`imgpress`: upload, status, list, delete, reprocess and backfill (against an imgpress API) and
compress (locally).

Exit codes: 0 all good; 1 an image failed or the API said no; 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imgpress_cli.api import ApiError, ImgpressApi
from imgpress_cli.output import image_details, image_table
from imgpress_cli.progress import ProgressBar
from imgpress_cli.resumable import upload_in_parts

DEFAULT_API = "http://127.0.0.1:8000"
OK, FAILED, USAGE = 0, 1, 2
# Larger files go up in parts, resumably (resumable.py); smaller ones in one presigned POST.
MULTIPART_OVER_BYTES = 8 * 1024 * 1024


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=None, separators=(", ", ": ")), flush=True)


# Phone formats Python's table may not know yet.
for _type, _extension in (("image/avif", ".avif"), ("image/heic", ".heic"), ("image/heif", ".heif")):
    mimetypes.add_type(_type, _extension)


def _content_type(path: Path) -> str:
    """From the extension; the API decides whether it is accepted (and the Lambda sniffs the bytes)."""
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def upload_one(
    api: ImgpressApi,
    path: Path,
    wait: bool,
    timeout: float,
    profile: str | None = None,
    multipart_over: int = MULTIPART_OVER_BYTES,
) -> dict[str, Any]:
    """The whole client flow for one file: slot, straight-to-S3 upload, then (optionally) wait.

    Files over `multipart_over` bytes go up in parts and resume where an earlier run stopped."""
    content_type = _content_type(path)
    image_id = None
    try:
        size = path.stat().st_size
        bar = ProgressBar(path.name, size)
        if size > multipart_over:
            image_id = upload_in_parts(api, path, content_type, profile, bar.update)
        else:
            slot = api.create_upload(path.name, content_type, size, profile)
            image_id = slot["id"]
            api.send_file(slot["upload"], path, content_type, bar.update)
        bar.finish("uploaded")
        image = api.wait(image_id, timeout) if wait else api.image(image_id)
    except OSError as exc:
        return _not_uploaded(path, image_id, ApiError("unreadable", f"cannot read {path}: {exc.strerror or exc}"))
    except ApiError as error:
        return _not_uploaded(path, image_id, error)
    return {"file": str(path), **image}


def _not_uploaded(path: Path, image_id: str | None, error: ApiError) -> dict[str, Any]:
    print(f"imgpress: {path}: {error}", file=sys.stderr)
    return {"file": str(path), "id": image_id, "status": "not_uploaded", "error": error.to_dict()}


def cmd_upload(args: argparse.Namespace) -> int:
    api = ImgpressApi(args.api)
    threshold = int(args.multipart_over * 1024 * 1024)
    results = [upload_one(api, Path(name), args.wait, args.timeout, args.profile, threshold) for name in args.files]
    if args.json:
        _print_json(results)
    else:
        print(image_table(results))
    return FAILED if any(result["status"] in ("failed", "not_uploaded") for result in results) else OK


def cmd_status(args: argparse.Namespace) -> int:
    image = ImgpressApi(args.api).image(args.id)
    if args.json:
        _print_json(image)
    else:
        print(image_details(image))
    return OK


def cmd_list(args: argparse.Namespace) -> int:
    api = ImgpressApi(args.api)
    page = api.list_images(args.status, args.limit, args.cursor)
    items = list(page["items"])
    while args.all and page["next_cursor"]:
        page = api.list_images(args.status, args.limit, page["next_cursor"])
        items.extend(page["items"])
    if args.json:
        _print_json({"items": items, "next_cursor": page["next_cursor"]})
    else:
        print(image_table(items) if items else "no images")
        if page["next_cursor"]:
            print(f"more: imgpress list --cursor {page['next_cursor']}  (or --all)", file=sys.stderr)
    return OK


def cmd_delete(args: argparse.Namespace) -> int:
    api = ImgpressApi(args.api)
    status = OK
    for image_id in args.ids:
        try:
            api.delete(image_id)
            print(f"deleted {image_id}")
        except ApiError as error:
            print(f"imgpress: {image_id}: {error}", file=sys.stderr)
            status = FAILED
    return status


def cmd_reprocess(args: argparse.Namespace) -> int:
    api = ImgpressApi(args.api)
    image = api.reprocess(args.id, args.profile)
    if args.wait:
        request = image["reprocess"]["id"]
        image = api.wait_for_reprocess(args.id, request, args.timeout)
    if args.json:
        _print_json(image)
    else:
        print(image_details(image))
    failed = image.get("reprocess") and image["reprocess"]["status"] == "failed"
    return FAILED if failed else OK


def cmd_backfill(args: argparse.Namespace) -> int:
    from imgpress_cli.backfill import BackfillOptions, enqueue, watch

    api = ImgpressApi(args.api)
    options = BackfillOptions(
        args.profile, args.status, args.since, args.owner, args.backfill, args.page_size, args.dry_run
    )
    try:
        totals = enqueue(api, options)
    except KeyboardInterrupt:
        print("\nstopped; nothing is lost: run again with the same --backfill id to go on", file=sys.stderr)
        return FAILED
    if args.dry_run or args.no_wait or totals.backfill is None:
        result: dict[str, Any] = {"backfill": totals.backfill, "dry_run": args.dry_run, **totals.counts}
    else:
        print(f"watching backfill {totals.backfill} (Ctrl-C stops watching, not the work)", file=sys.stderr)
        try:
            result = {"backfill": totals.backfill, **watch(api, totals.backfill, args.interval)}
        except KeyboardInterrupt:
            print(f"\nstill running; see `imgpress backfill --backfill {totals.backfill} ...`", file=sys.stderr)
            return OK
    if args.json:
        _print_json(result)
    else:
        print(f"backfill {totals.backfill or '(dry run)'}: {totals.summary()}")
    return FAILED if result.get("failed") else OK


def cmd_compress(args: argparse.Namespace) -> int:
    # Pillow and chalicelib load only for this command: the API commands stay quick to start.
    from chalicelib.errors import ConfigError
    from imgpress_cli.compress import compress_files, local_settings

    try:
        settings = local_settings(args.variants, profile=args.profile)
    except ConfigError as error:
        print(f"imgpress: {error}", file=sys.stderr)
        return USAGE
    status = OK
    for result in compress_files([Path(name) for name in args.files], Path(args.output), settings):
        _print_json(result)
        if result["status"] != "done":
            status = FAILED
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imgpress", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    api = argparse.ArgumentParser(add_help=False)
    api.add_argument(
        "--api",
        default=os.environ.get("IMGPRESS_API", DEFAULT_API),
        metavar="URL",
        help="API base URL, stage path included (default: $IMGPRESS_API or %(default)s)",
    )
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON instead of a table")

    upload = commands.add_parser("upload", parents=[api, as_json], help="upload images and show the results")
    upload.add_argument("files", nargs="+", metavar="FILE")
    upload.add_argument(
        "--wait",
        action="store_true",
        help="wait until each image is done or failed (the API holds one request per image: no polling)",
    )
    upload.add_argument("--profile", metavar="NAME", help="processing profile (default: the stage's default profile)")
    upload.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="how long --wait waits for each image (default: %(default)g)",
    )
    upload.add_argument(
        "--multipart-over",
        type=float,
        default=MULTIPART_OVER_BYTES / 1024 / 1024,
        metavar="MiB",
        help="send larger files in 5 MiB parts that a re-run resumes (default: %(default)g MiB)",
    )
    upload.set_defaults(run=cmd_upload)

    status = commands.add_parser("status", parents=[api, as_json], help="show one image: status, variants, links")
    status.add_argument("id")
    status.set_defaults(run=cmd_status)

    listing = commands.add_parser("list", parents=[api, as_json], help="list images, newest first")
    listing.add_argument("--status", choices=("pending", "processing", "done", "failed"))
    listing.add_argument("--limit", type=int, metavar="N", help="page size, 1-100 (API default 20)")
    listing.add_argument("--cursor", help="continue from a previous page's next_cursor")
    listing.add_argument("--all", action="store_true", help="follow next_cursor to the last page")
    listing.set_defaults(run=cmd_list)

    delete = commands.add_parser("delete", parents=[api], help="delete images: original, outputs and record")
    delete.add_argument("ids", nargs="+", metavar="ID")
    delete.set_defaults(run=cmd_delete)

    again = commands.add_parser(
        "reprocess", parents=[api, as_json], help="render one image again from its original, maybe with another profile"
    )
    again.add_argument("id")
    again.add_argument("--profile", metavar="NAME", help="profile to render with (default: the image's own)")
    again.add_argument("--wait", action="store_true", help="wait until the new outputs replace the old ones")
    again.add_argument(
        "--timeout", type=float, default=300.0, metavar="SECONDS", help="for --wait (default %(default)g)"
    )
    again.set_defaults(run=cmd_reprocess)

    backfill = commands.add_parser(
        "backfill",
        parents=[api, as_json],
        help="reprocess many images with a profile, then show progress until the queue drains",
        description="Ask the API, one page at a time, to queue every selected image (yours; every owner's "
        "for an admin) for rendering with PROFILE, then show queued, done, failed, rate and ETA. Stopping "
        "loses nothing: run again with --backfill ID and finished images are skipped.",
    )
    backfill.add_argument("--profile", required=True, metavar="NAME", help="the profile to render with")
    backfill.add_argument("--status", choices=("done", "failed"), default="done", help="which images (default done)")
    backfill.add_argument("--since", metavar="DATE", help="only images created at or after this ISO date/time")
    backfill.add_argument("--owner", help="admins: only this owner's images")
    backfill.add_argument("--backfill", metavar="ID", help="continue (or re-run) this backfill")
    backfill.add_argument("--page-size", type=int, default=100, metavar="N", help="images per API call (1-100)")
    backfill.add_argument("--dry-run", action="store_true", help="count what would be queued; change nothing")
    backfill.add_argument("--no-wait", action="store_true", help="queue, then exit without watching")
    backfill.add_argument("--interval", type=float, default=2.0, metavar="SECONDS", help="between progress polls")
    backfill.set_defaults(run=cmd_backfill)

    compress = commands.add_parser(
        "compress",
        help="run the Lambda's processing on local files (no API, no AWS)",
        description="Render FILES exactly as the S3 handler would and write the variants to DIR. Prints one "
        "JSON line per file. Honours VARIANTS, MAX_PIXELS, MAX_SIDE, MAX_UPLOAD_BYTES and "
        "ALLOWED_CONTENT_TYPES from the environment, like the Lambda.",
    )
    compress.add_argument("files", nargs="+", metavar="FILE")
    compress.add_argument("-o", "--output", required=True, metavar="DIR", help="where to write <name>.<variant>.<ext>")
    compress.add_argument(
        "--profile", metavar="NAME", help="run this profile's variants (default: the default profile)"
    )
    compress.add_argument(
        "--variants",
        metavar="JSON",
        help="variant list as in the VARIANTS setting (default: $VARIANTS, else the built-in web + thumb)",
    )
    compress.set_defaults(run=cmd_compress)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        code = args.run(args)
    except ApiError as error:
        print(f"imgpress: {error}", file=sys.stderr)
        code = FAILED
    sys.exit(code)
