"""On-demand variants: signed transform links, and the render behind each the first time it is asked for.

`GET /images/{id}` of a done image gives `links.transform`, a template
`/<OUTPUT_PREFIX><id>/od/<revision>/{width}.{format}?exp=…&kid=…&sig=…` signed for that image
(signing.py). The path is the object's key: deployed, the CDN serves the object from S3 and asks
the API only when it does not exist yet (docs: deploy/cdn); here, the API answers every request
with a 302 to the object, rendering it first if nobody has.

A request, top to bottom: verify the signature (before any read, so unsigned requests cost
nothing), check the width against the ladder and the format, read the record (done, the current
revision), negotiate `auto` from `Accept`, then find the variant in the ledger (ports.TransformLedger):
done (a hit), failed (the same refusal), being rendered (wait for it), or absent: claim it (counted
against the image's and the stage's caps), charge the owner's quota, render it from the kept
original through the upload path's image core and guards in a child process with its own deadline,
store it, record it. Each variant is rendered once; a refused one is refused again, without
rendering, until its failure expires.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from chalicelib import logs, metrics, parsing, pipeline
from chalicelib.deadline import DeadlineExceeded
from chalicelib.domain import ImageRecord, Status
from chalicelib.errors import BadRequest, Busy, Conflict, Gone, ImageRejected, ImgpressError, NotFound
from chalicelib.imaging.results import RenderedVariant
from chalicelib.imaging.settings import ImagingSettings
from chalicelib.imaging.specs import VariantSpec
from chalicelib.ports import Claim, Ports, TransformEntry, TransformLimits, TransformState
from chalicelib.settings import Settings, TransformSettings
from chalicelib.signing import SigningKeys, link_expiry

log = logging.getLogger("imgpress.transforms")
FORMATS = ("auto", "avif", "webp", "jpeg")
# Original formats that can carry transparency: `auto` answers PNG for them where neither AVIF nor WebP is accepted.
ALPHA_CAPABLE = frozenset({"PNG", "GIF", "WEBP", "AVIF", "TIFF", "HEIF"})
FOLLOWER_POLL_SECONDS = 0.2  # a request that finds the variant being rendered looks again this often
FAILURE_KEEP_SECONDS = 3600  # a refused render is answered as refused, without rendering, this long
BRIEF_FAILURE_SECONDS = 10  # for refusals about the moment (an original being replaced, a fault)
# A stored variant's entry expires after this (DynamoDB's TTL tidies a deleted image's); a request
# after that claims it again, finds the object stored and records it done without rendering.
DONE_KEEP_SECONDS = 30 * 24 * 3600
TRANSFORM_CACHE_CONTROL = "private, max-age=60"  # the redirect only; the object itself is immutable

# A refusal recorded for a variant, as a request that waited for it gets it (others: ImageRejected, 422).
REFUSALS: dict[str, type[ImgpressError]] = {"original_gone": Gone, "original_changed": Conflict, "busy": Busy}
Renderer = Callable[[bytes, VariantSpec, ImagingSettings, float], RenderedVariant]


def render_with_pillow(data: bytes, spec: VariantSpec, imaging: ImagingSettings, seconds: float) -> RenderedVariant:
    """The upload path's render (its image core, guards and child process), killed after `seconds`."""
    return pipeline.render_with_pillow(data, [spec], imaging, timeout=seconds, placeholders=False).variants[0]


@dataclass(frozen=True)
class Served:
    """Where the variant is stored, and how the request found it (rendered now, or a hit)."""

    bucket: str
    key: str
    negotiated: bool  # `auto` was asked: the answer varies with Accept
    rendered: bool


@dataclass(frozen=True)
class Size:
    """What a request asks for: a width of the ladder, or a preset's box (filled, cropping the most
    detailed region). `name` is the variant key's stem: `640`, `avatar`."""

    name: str
    width: int
    height: int | None = None

    def spec(self, fmt: str) -> VariantSpec:
        """The image core's spec: never enlarged, a still of an animation's first frame."""
        if self.height is None:
            return VariantSpec(name=f"w{self.width}", format=fmt, max_width=self.width, animate=False)
        return VariantSpec(
            name=self.name,
            format=fmt,
            max_width=self.width,
            max_height=self.height,
            fit="cover",
            crop="entropy",
            animate=False,
        )


def parse_name(name: str, transforms: TransformSettings) -> tuple[Size, str]:
    """`640.webp` -> (640 wide, "webp"), `avatar.auto` -> (the preset, "auto"). A width off the
    ladder is refused naming the ladder (no snapping: a srcset's `w` descriptors must be the widths
    it gets), an unknown name naming the presets."""
    stem, dot, fmt = name.partition(".")
    if not dot or fmt not in FORMATS or not stem.isascii() or not 1 <= len(stem) <= 32:
        raise BadRequest(
            f"Ask for <width>.<format> or <preset>.<format>, the format one of {', '.join(FORMATS)}; got {name!r}.",
            "invalid_field",
        )
    presets = dict((preset, (width, height)) for preset, width, height in transforms.presets)
    if stem in presets:
        return Size(stem, *presets[stem]), fmt
    if not stem.isdigit() or int(stem) not in transforms.widths:
        ladder = ", ".join(str(w) for w in transforms.widths)
        known = ", ".join(presets) or "none"
        raise BadRequest(
            f"{stem!r} is neither a width of this stage's ladder ({ladder}) nor a preset ({known}).",
            "width_not_allowed",
        )
    return Size(str(int(stem)), int(stem)), fmt


def accepts(accept: str | None, media_type: str) -> bool:
    """Whether an Accept header names `media_type` with a quality above 0 (wildcards do not count:
    browsers send `*/*` whatever they decode)."""
    for part in (accept or "").lower().split(","):
        kind, *parameters = (p.strip() for p in part.split(";"))
        if kind != media_type:
            continue
        quality = next((p[2:] for p in parameters if p.startswith("q=")), "1")
        try:
            return float(quality) > 0
        except ValueError:
            return False
    return False


def negotiate(accept: str | None, original_format: str | None) -> str:
    """`auto`: AVIF if accepted, else WebP, else JPEG (PNG for an original that can be transparent)."""
    if accepts(accept, "image/avif"):
        return "avif"
    if accepts(accept, "image/webp"):
        return "webp"
    return "png" if (original_format or "").upper() in ALPHA_CAPABLE else "jpeg"


def transform_link(record: ImageRecord, settings: Settings, keys: SigningKeys | None, now: datetime) -> str | None:
    """The signed template for a done image, or None (not done, no outputs, or no keys on this stage)."""
    revision = record.outputs_revision
    if keys is None or record.is_deleted or record.status != Status.DONE or revision is None:
        return None
    signed = keys.sign(record.id, link_expiry(now.timestamp(), settings.transforms.link_ttl_seconds))
    path = f"/{settings.transform_prefix(record.id, revision)}{{width}}.{{format}}?{signed.query()}"
    return f"{settings.transforms.base_url or ''}{path}"


class Transforms:
    """One transform request (app.py's route); `render` and `sleep` are swapped in tests."""

    def __init__(
        self,
        settings: Settings,
        ports: Ports,
        keys: SigningKeys | None,
        render: Renderer = render_with_pillow,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings
        self._ports = ports
        self._keys = keys
        self._render = render
        self._sleep = sleep

    def serve(self, image_id: str, name: str, params: Mapping[str, str] | None, accept: str | None) -> Served:
        """The stored variant `name` of the image (rendered now if it was not), or an ImgpressError."""
        if self._keys is None:
            raise NotFound("On-demand variants are not enabled on this stage.", "not_found")
        record: ImageRecord | None = None
        try:
            image_id = parsing.image_id(image_id)
            self._keys.verify(image_id, params, self._ports.now().timestamp())
            size, asked = parse_name(name, self._settings.transforms)
            record = self._ports.records.get(image_id)
            if record is None or record.is_deleted:
                raise NotFound(f"No image with id {image_id}.")
            revision = record.outputs_revision
            if record.status != Status.DONE or revision is None:
                raise Conflict(f"Image {image_id} is {record.status}: only done images have variants.", "not_done")
            original = record.original.format if record.original else None
            fmt = negotiate(accept, original) if asked == "auto" else asked
            key = f"{self._settings.transform_prefix(image_id, revision)}{size.name}.{fmt}"
            rendered = self._settle(record, key, size, fmt, revision)
        except ImgpressError as refused:
            metrics.transform_refused(record, refused.code)
            raise
        if not rendered:
            metrics.transform_hit(record)
        return Served(self._ports.store.output_bucket, key, asked == "auto", rendered)

    def _settle(self, record: ImageRecord, key: str, size: Size, fmt: str, revision: str) -> bool:
        """Whether this request rendered the variant (False: it was rendered before, or by a racing request)."""
        ledger, now = self._ports.transforms, self._ports.now().timestamp()
        entry = ledger.get(key)
        if entry is None or not entry.live(now):
            transforms = self._settings.transforms
            lease_until = now + transforms.render_seconds + self._settings.deadline_margin_seconds
            limits = TransformLimits(transforms.max_variants_per_image, transforms.max_renders_per_day)
            day = self._ports.now().strftime("%Y-%m-%d")
            claim, entry = ledger.claim(key, f"{record.id}#{revision}", day, lease_until, now, limits)
            if claim is Claim.IMAGE_FULL:
                raise Conflict(
                    f"Image {record.id} has its {transforms.max_variants_per_image} on-demand variants already;"
                    " ask for one of those widths and formats.",
                    "too_many_variants",
                )
            if claim is Claim.STAGE_FULL:
                raise Busy("This stage has rendered all the on-demand variants it may today (UTC).", "daily_limit")
            if claim is Claim.CLAIMED:
                return self._render_claimed(record, key, size, fmt)
        assert entry is not None
        self._wait_for(key, entry)
        return False

    def _wait_for(self, key: str, entry: TransformEntry) -> None:
        """Returns once the variant is done; raises the refusal it ended with. One being rendered by
        another request is waited for, at most as long as its render may take."""
        give_up_at = time.monotonic() + self._settings.transforms.render_seconds + 1
        while entry.state is TransformState.RENDERING:
            if time.monotonic() > give_up_at:
                raise Busy("This variant is being rendered; retry in a moment.", "busy")
            self._sleep(FOLLOWER_POLL_SECONDS)
            found = self._ports.transforms.get(key)
            if found is None:
                raise Busy("This variant's render was given up; retry.", "busy")
            entry = found
        if entry.state is TransformState.FAILED:
            refusal = REFUSALS.get(entry.code or "", ImageRejected)
            raise refusal(entry.message or "This variant could not be rendered.", entry.code)

    def _render_claimed(self, record: ImageRecord, key: str, size: Size, fmt: str) -> bool:
        """Under the claim: charge, render from the original, store, record. Every refusal is recorded.
        False when the object turns out stored already (its end was not recorded, or had expired)."""
        ledger, store, settings = self._ports.transforms, self._ports.store, self._settings
        try:
            if store.head_original(store.output_bucket, key) is not None:
                ledger.finish(
                    key, TransformEntry(TransformState.DONE), DONE_KEEP_SECONDS, self._ports.now().timestamp()
                )
                return False
            self._ports.quotas.take_transform(record.owner, self._ports.now())
            data = self._original(record)
            spec = size.spec(fmt)
            started = time.perf_counter()
            try:
                variant = self._render(data, spec, settings.imaging, settings.transforms.render_seconds)
            except DeadlineExceeded:
                seconds = settings.transforms.render_seconds
                raise ImageRejected(f"The render did not finish in {seconds} s.", "processing_timeout") from None
            render_ms = (time.perf_counter() - started) * 1000
            tags = {"imgpress:variant": f"od-{size.name}-{fmt}", "imgpress:profile": "on-demand"}
            store.put_output(key, variant.data, variant.content_type, tags)
        except ImgpressError as refused:
            keep = FAILURE_KEEP_SECONDS if type(refused) is ImageRejected else BRIEF_FAILURE_SECONDS
            failed = TransformEntry(TransformState.FAILED, code=refused.code, message=refused.message)
            ledger.finish(key, failed, keep, self._ports.now().timestamp())
            logs.outcome("transform_refused", record.id, key=key, code=refused.code)
            raise
        except Exception:
            failed = TransformEntry(TransformState.FAILED, code="processing_error", message="The render failed.")
            ledger.finish(key, failed, BRIEF_FAILURE_SECONDS, self._ports.now().timestamp())
            raise
        ledger.finish(key, TransformEntry(TransformState.DONE), DONE_KEEP_SECONDS, self._ports.now().timestamp())
        metrics.transform_rendered(record, key, variant, render_ms)
        return True

    def _original(self, record: ImageRecord) -> bytes:
        """The kept original, as the record's outcome describes it (a newer upload is not rendered here)."""
        limit = self._settings.imaging.max_upload_bytes
        stored = self._ports.store.read_original(record.input_bucket, record.input_key, limit)
        if stored is None:
            raise Gone("The original is no longer stored (expired by the retention rule, or removed).", "original_gone")
        if stored.etag != record.source_etag:
            raise Conflict("A new upload to this image is being processed; retry when it is done.", "original_changed")
        if stored.data is None:
            raise ImageRejected(f"The original is {stored.size} bytes; at most {limit} are read.", "too_large")
        return stored.data
