"""On-demand variants (chalicelib/transforms.py) on the in-memory fakes, with the real image core:
signed links, the ladder, Accept negotiation, render-once (also under a race), caps, quotas,
refusals remembered, staleness after a reprocess, and DELETE."""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from chalicelib.deadline import Deadline, DeadlineExceeded
from chalicelib.domain import ImageRecord, new_image_id
from chalicelib.errors import BadRequest, Busy, Conflict, Forbidden, ImageRejected, NotFound, QuotaExceeded
from chalicelib.images import delete_image, image_view
from chalicelib.imaging.isolation import run_isolated
from chalicelib.imaging.results import RenderedVariant
from chalicelib.imaging.settings import ImagingSettings
from chalicelib.imaging.specs import VariantSpec
from chalicelib.pipeline import UploadProcessor
from chalicelib.quota import Quotas
from chalicelib.settings import Settings
from chalicelib.signing import SigningKeys
from chalicelib.transforms import Transforms, accepts, negotiate, render_with_pillow
from tests import images
from tests.conftest import ENV
from tests.fakes import FakePorts, InMemoryObjectStore, InMemoryQuotaStore

KEYS = SigningKeys.parse("k1:" + "s" * 40, "TRANSFORM_KEYS")
CHROME = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
SAFARI_15 = "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5"
OLD = "image/png,image/*;q=0.8,*/*;q=0.5"


@dataclass(frozen=True)
class Viewer:
    owner: str = "alice"
    is_admin: bool = False


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Rig:
    settings: Settings
    clock: Clock = field(default_factory=Clock)
    renders: list[VariantSpec] = field(default_factory=list)
    render_delay: float = 0.0

    def __post_init__(self) -> None:
        store = InMemoryObjectStore(ENV["OUTPUT_BUCKET"])
        quotas = Quotas(self.settings.quotas, InMemoryQuotaStore())
        self.ports = FakePorts(store=store, quotas=quotas, signing_keys=KEYS, clock=self.clock)

    def render(self, data: bytes, spec: VariantSpec, imaging: ImagingSettings, seconds: float) -> RenderedVariant:
        self.renders.append(spec)
        time.sleep(self.render_delay)
        return render_with_pillow(data, spec, imaging, seconds)

    @property
    def transforms(self) -> Transforms:
        return Transforms(self.settings, self.ports, KEYS, self.render, sleep=lambda s: time.sleep(0.01))

    def done_image(self, data: bytes, content_type: str = "image/jpeg") -> ImageRecord:
        image_id = new_image_id()
        key = self.settings.upload_key(image_id)
        record = ImageRecord.pending(
            image_id,
            owner="alice",
            profile="default",
            content_type=content_type,
            input_bucket=ENV["INPUT_BUCKET"],
            input_key=key,
            now=self.clock(),
        )
        self.ports.records.create(record)
        etag = self.ports.store.put_original(ENV["INPUT_BUCKET"], key, data, content_type)
        from chalicelib.pipeline import UploadEvent

        processor = UploadProcessor(self.settings, self.ports.records, self.ports.store, self.ports.endings)
        assert processor.process(UploadEvent(ENV["INPUT_BUCKET"], key, etag, len(data)), Deadline(60)) == "done"
        done = self.ports.records.get(image_id)
        assert done is not None
        return done

    def link(self, record: ImageRecord) -> str:
        view = image_view(record, self.settings, self.ports)
        return str(view["links"]["transform"])

    def get(self, link: str, width: int | str, fmt: str, accept: str | None = None) -> tuple[str, bytes, str]:
        """Fill the template in and serve it: (key, stored bytes, content type)."""
        url = urlsplit(link.replace("{width}", str(width)).replace("{format}", fmt))
        *_, image_id, od, _revision, name = url.path.split("/")
        assert od == "od"
        served = self.transforms.serve(image_id, name, dict(parse_qsl(url.query)), accept)
        stored = self.ports.store.objects[(served.bucket, served.key)]
        return served.key, stored.data, stored.content_type


@pytest.fixture
def rig() -> Rig:
    return Rig(Settings.from_env(ENV))


def limited(**changes: Any) -> Settings:
    settings = Settings.from_env(ENV)
    quota_changes: dict[str, Any] = {k: v for k, v in changes.items() if k == "transforms_per_day"}
    transform_changes: dict[str, Any] = {k: v for k, v in changes.items() if k not in quota_changes}
    return replace(
        settings,
        transforms=replace(settings.transforms, **transform_changes),
        quotas=replace(settings.quotas, **quota_changes),
    )


def test_a_done_image_gets_a_signed_template_and_others_none(rig: Rig) -> None:
    record = rig.done_image(images.jpeg(800, 600))
    link = rig.link(record)
    revision = record.outputs_revision
    assert link.startswith(f"/processed/{record.id}/od/{revision}/{{width}}.{{format}}?exp=")
    assert {k for k, _ in parse_qsl(urlsplit(link).query)} == {"exp", "kid", "sig"}
    assert rig.link(record) == link  # the same all hour: pages that embed it stay cacheable
    pending = replace(record, status="pending", outputs={})
    assert "transform" not in image_view(pending, rig.settings, rig.ports)["links"]
    off = dataclasses.replace(rig.ports, signing_keys=None)
    assert "transform" not in image_view(record, rig.settings, off)["links"]


def test_a_ladder_width_comes_back_at_that_width_in_the_asked_format_rendered_once(rig: Rig) -> None:
    record = rig.done_image(images.jpeg(1200, 800))
    link = rig.link(record)
    for fmt, pillow_format in (("webp", "WEBP"), ("jpeg", "JPEG"), ("avif", "AVIF")):
        key, data, content_type = rig.get(link, 320, fmt)
        decoded = images.decode(data)
        assert (decoded.format, decoded.size) == (pillow_format, (320, 213))
        assert key == f"processed/{record.id}/od/{record.outputs_revision}/320.{fmt}"
        assert content_type == f"image/{fmt}"
    assert len(rig.renders) == 3
    rig.get(link, 320, "webp")
    assert len(rig.renders) == 3  # found stored: never rendered again
    key, data, _ = rig.get(link, 4096, "webp")  # never enlarged
    assert images.decode(data).size == (1200, 800)


def test_auto_follows_accept(rig: Rig) -> None:
    photo = rig.done_image(images.jpeg(640, 480))
    transparent = rig.done_image(images.rgba_png(300, 200), "image/png")
    assert rig.get(rig.link(photo), 160, "auto", CHROME)[0].endswith("/160.avif")
    assert rig.get(rig.link(photo), 160, "auto", SAFARI_15)[0].endswith("/160.webp")
    assert rig.get(rig.link(photo), 160, "auto", OLD)[0].endswith("/160.jpeg")
    assert rig.get(rig.link(photo), 160, "auto", None)[0].endswith("/160.jpeg")
    key, data, content_type = rig.get(rig.link(transparent), 160, "auto", OLD)
    assert key.endswith("/160.png") and content_type == "image/png" and images.decode(data).mode == "RGBA"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (CHROME, "avif"),
        ("image/avif;q=0, image/webp", "webp"),
        ("IMAGE/WEBP", "webp"),
        ("image/webp;q=0.0", "jpeg"),
        ("image/webp;q=abc", "jpeg"),
        ("*/*", "jpeg"),
        ("image/*", "jpeg"),
        ("", "jpeg"),
    ],
)
def test_negotiation(accept: str, expected: str) -> None:
    assert negotiate(accept, "JPEG") == expected
    assert accepts(CHROME, "image/avif") and not accepts(CHROME, "image/jxl")


def test_off_ladder_widths_and_bad_names_are_refused_naming_the_ladder(rig: Rig) -> None:
    link = rig.link(rig.done_image(images.jpeg(640, 480)))
    with pytest.raises(BadRequest) as off:
        rig.get(link, 321, "webp")
    assert off.value.code == "width_not_allowed" and "16, 32, 48" in off.value.message and "4096" in off.value.message
    assert "avatar, card" in off.value.message
    for width, fmt in ((320, "gif"), (320, "png"), (0, "webp")):
        with pytest.raises(BadRequest):
            rig.get(link, width, fmt)
    assert rig.renders == []


def test_tampered_foreign_and_expired_links_are_refused_before_anything_is_read(rig: Rig) -> None:
    first, second = rig.done_image(images.jpeg(320, 240)), rig.done_image(images.jpeg(320, 240))
    foreign = rig.link(first).replace(first.id, second.id)
    with pytest.raises(Forbidden, match="not one this API signed"):
        rig.get(foreign, 160, "webp")
    with pytest.raises(Forbidden, match="not one this API signed"):
        rig.get(rig.link(first).replace("exp=", "exp=1"), 160, "webp")
    link = rig.link(first)
    rig.clock.now += timedelta(days=8)
    with pytest.raises(Forbidden) as expired:
        rig.get(link, 160, "webp")
    assert expired.value.code == "link_expired"
    assert rig.renders == []


def test_racing_first_requests_render_once_and_all_get_the_variant() -> None:
    rig = Rig(Settings.from_env(ENV), render_delay=0.3)
    link = rig.link(rig.done_image(images.jpeg(640, 480)))
    keys: list[str] = []

    def ask() -> None:
        keys.append(rig.get(link, 320, "webp")[0])

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(rig.renders) == 1 and len(keys) == 4 and len(set(keys)) == 1


def test_a_refused_render_is_refused_again_without_rendering_until_it_expires() -> None:
    rig = Rig(Settings.from_env(ENV))
    record = rig.done_image(images.jpeg(640, 480))
    hostile = images.png_header(60000, 60000)  # the original, replaced under the same ETag by a hostile one
    rig.ports.store.objects[(ENV["INPUT_BUCKET"], record.input_key)].data = hostile
    link = rig.link(record)
    for _ in range(2):
        with pytest.raises(ImageRejected) as refused:
            rig.get(link, 320, "webp")
        assert refused.value.code in ("dimensions_too_large", "too_many_pixels")
    assert len(rig.renders) == 1
    rig.clock.now += timedelta(hours=2)
    with pytest.raises(ImageRejected):
        rig.get(link, 320, "webp")
    assert len(rig.renders) == 2


def test_a_new_upload_being_processed_is_not_rendered_from(rig: Rig) -> None:
    record = rig.done_image(images.jpeg(640, 480))
    rig.ports.store.put_original(ENV["INPUT_BUCKET"], record.input_key, images.jpeg(320, 240))
    with pytest.raises(Conflict) as changed:
        rig.get(rig.link(record), 160, "webp")
    assert changed.value.code == "original_changed" and rig.renders == []


def test_caps_per_image_per_stage_and_the_owners_quota() -> None:
    rig = Rig(limited(max_variants_per_image=2))
    link = rig.link(rig.done_image(images.jpeg(640, 480)))
    rig.get(link, 16, "webp")
    rig.get(link, 32, "webp")
    rig.get(link, 16, "webp")  # an existing one is still served
    with pytest.raises(Conflict) as full:
        rig.get(link, 48, "webp")
    assert full.value.code == "too_many_variants"

    rig = Rig(limited(max_renders_per_day=1))
    rig.get(rig.link(rig.done_image(images.jpeg(320, 240))), 16, "webp")
    with pytest.raises(Busy) as daily:
        rig.get(rig.link(rig.done_image(images.jpeg(320, 240))), 16, "webp")
    assert daily.value.code == "daily_limit"

    rig = Rig(limited(transforms_per_day=1))
    link = rig.link(rig.done_image(images.jpeg(320, 240)))
    rig.get(link, 16, "webp")
    with pytest.raises(QuotaExceeded) as quota:
        rig.get(link, 32, "webp")
    assert quota.value.limit == "transforms_per_day" and quota.value.retry_after == 12 * 3600


def test_a_reprocess_makes_variants_stale_and_delete_removes_them(rig: Rig) -> None:
    record = rig.done_image(images.jpeg(640, 480))
    old_link = rig.link(record)
    old_key = rig.get(old_link, 160, "webp")[0]
    redone = replace(
        record,
        outputs={
            n: replace(o, key=o.key.replace(str(record.outputs_revision), "0" * 12)) for n, o in record.outputs.items()
        },
    )
    assert redone.outputs_revision == "0" * 12
    rig.ports.records.save(redone)
    new_key = rig.get(old_link, 160, "webp")[0]  # an older link gets the current outputs' variant
    assert new_key != old_key and "/od/000000000000/" in new_key and len(rig.renders) == 2
    delete_image(record.id, Viewer(), rig.settings, rig.ports)
    assert rig.ports.store.keys(ENV["OUTPUT_BUCKET"]) == []
    with pytest.raises(NotFound):
        rig.get(old_link, 160, "webp")


def test_a_stage_without_keys_has_no_route_to_render(rig: Rig) -> None:
    record = rig.done_image(images.jpeg(320, 240))
    link = rig.link(record)
    query = dict(parse_qsl(urlsplit(link).query))
    with pytest.raises(NotFound):
        Transforms(rig.settings, rig.ports, None).serve(record.id, "160.webp", query, None)


def test_the_isolated_render_is_killed_at_its_deadline_on_any_thread() -> None:
    outcome: list[BaseException] = []

    def slow() -> None:
        started = time.monotonic()
        try:
            run_isolated(lambda: time.sleep(10), 64 << 20, timeout=0.3)
        except DeadlineExceeded as exceeded:
            outcome.append(exceeded)
        assert time.monotonic() - started < 3

    thread = threading.Thread(target=slow)
    thread.start()
    thread.join()
    assert len(outcome) == 1


def test_a_render_past_its_deadline_is_refused_with_a_code() -> None:
    rig = Rig(limited(render_seconds=1))

    def stuck(data: bytes, spec: VariantSpec, imaging: ImagingSettings, seconds: float) -> RenderedVariant:
        raise DeadlineExceeded

    link = rig.link(rig.done_image(images.jpeg(320, 240)))
    rig.render = stuck  # type: ignore[method-assign]
    with pytest.raises(ImageRejected) as late:
        rig.get(link, 160, "webp")
    assert late.value.code == "processing_timeout"


def test_new_outputs_get_new_variants_and_the_old_ones_keep_their_keys(rig: Rig) -> None:
    """A key never changes content (decision 0016): the old revision's variant stays where it was
    until the image is deleted, and new links name the new revision."""
    from chalicelib.pipeline import UploadEvent

    record = rig.done_image(images.jpeg(640, 480))
    old_key = rig.get(rig.link(record), 160, "webp")[0]
    etag = rig.ports.store.put_original(ENV["INPUT_BUCKET"], record.input_key, images.jpeg(480, 640))
    processor = UploadProcessor(rig.settings, rig.ports.records, rig.ports.store, rig.ports.endings)
    event = UploadEvent(ENV["INPUT_BUCKET"], record.input_key, etag, 1)
    assert processor.process(event, Deadline(60)) == "done"  # new bytes in the slot: new outputs
    assert images.decode(rig.ports.store.objects[(ENV["OUTPUT_BUCKET"], old_key)].data).size == (160, 120)
    renewed = rig.ports.records.get(record.id)
    assert renewed is not None and renewed.outputs_revision != record.outputs_revision
    key, data, _ = rig.get(rig.link(renewed), 160, "webp")
    assert f"/od/{renewed.outputs_revision}/" in key and images.decode(data).size == (160, 213)


def test_a_preset_fills_its_box_cropping_the_most_detailed_region(rig: Rig) -> None:
    link = rig.link(rig.done_image(images.jpeg(1200, 800)))
    key, data, _ = rig.get(link, "avatar", "webp")
    assert key.endswith("/avatar.webp") and images.decode(data).size == (128, 128)
    key, data, _ = rig.get(link, "card", "jpeg")
    assert key.endswith("/card.jpeg") and images.decode(data).size == (640, 360)
    with pytest.raises(BadRequest) as unknown:
        rig.get(link, "hero", "webp")
    assert unknown.value.code == "width_not_allowed" and "'hero'" in unknown.value.message
