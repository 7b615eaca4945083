"""The on-demand variants ledger's contract, on the fake and on DynamoDB (moto): one render per
variant, counted once against each cap, dead leases and expired failures taken over."""

from __future__ import annotations

import threading
from typing import Any

from chalicelib.ports import Claim, TransformEntry, TransformLimits, TransformState

KEY = "processed/0123456789abcdef0123456789abcdef/od/abcdef012345/320.webp"
IMAGE = "0123456789abcdef0123456789abcdef#abcdef012345"
DAY = "2026-12-07"
NOW = 1_796_000_000.0
OPEN = TransformLimits(per_image=0, per_day=0)


def test_the_first_claim_renders_and_the_others_find_it_taken(transform_ledger: Any) -> None:
    assert transform_ledger.get(KEY) is None
    claim, entry = transform_ledger.claim(KEY, IMAGE, DAY, NOW + 30, NOW, OPEN)
    assert claim is Claim.CLAIMED and entry.state is TransformState.RENDERING
    claim, entry = transform_ledger.claim(KEY, IMAGE, DAY, NOW + 31, NOW + 1, OPEN)
    assert claim is Claim.TAKEN and entry.state is TransformState.RENDERING and entry.lease_until == NOW + 30
    transform_ledger.finish(KEY, TransformEntry(TransformState.DONE), 0, NOW + 2)
    found = transform_ledger.get(KEY)
    assert found.state is TransformState.DONE and found.live(NOW + 10**9)
    claim, entry = transform_ledger.claim(KEY, IMAGE, DAY, NOW + 40, NOW + 10, OPEN)
    assert claim is Claim.TAKEN and entry.state is TransformState.DONE


def test_racing_claims_give_exactly_one_render(transform_ledger: Any) -> None:
    results: list[Claim] = []

    def claim() -> None:
        results.append(transform_ledger.claim(KEY, IMAGE, DAY, NOW + 30, NOW, OPEN)[0])

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == sorted([Claim.CLAIMED] + [Claim.TAKEN] * 5)


def test_a_dead_render_and_an_expired_failure_are_taken_over_without_counting_again(transform_ledger: Any) -> None:
    one_each = TransformLimits(per_image=1, per_day=1)
    assert transform_ledger.claim(KEY, IMAGE, DAY, NOW + 30, NOW, one_each)[0] is Claim.CLAIMED
    assert transform_ledger.claim(KEY, IMAGE, DAY, NOW + 60, NOW + 31, one_each)[0] is Claim.CLAIMED
    failed = TransformEntry(TransformState.FAILED, code="too_many_pixels", message="Too many pixels.")
    transform_ledger.finish(KEY, failed, 3600, NOW + 32)
    claim, entry = transform_ledger.claim(KEY, IMAGE, DAY, NOW + 90, NOW + 60, one_each)
    assert claim is Claim.TAKEN and (entry.state, entry.code, entry.message) == (
        TransformState.FAILED,
        "too_many_pixels",
        "Too many pixels.",
    )
    assert entry.live(NOW + 60) and not entry.live(NOW + 32 + 3600)
    assert transform_ledger.claim(KEY, IMAGE, DAY, NOW + 3700, NOW + 3640, one_each)[0] is Claim.CLAIMED


def test_new_variants_are_counted_against_the_image_and_the_stage_day(transform_ledger: Any) -> None:
    limits = TransformLimits(per_image=2, per_day=3)
    assert transform_ledger.claim(KEY + "a", IMAGE, DAY, NOW + 30, NOW, limits)[0] is Claim.CLAIMED
    assert transform_ledger.claim(KEY + "b", IMAGE, DAY, NOW + 30, NOW, limits)[0] is Claim.CLAIMED
    assert transform_ledger.claim(KEY + "c", IMAGE, DAY, NOW + 30, NOW, limits) == (Claim.IMAGE_FULL, None)
    assert transform_ledger.get(KEY + "c") is None  # refused: nothing written
    assert transform_ledger.claim(KEY + "d", "another#image", DAY, NOW + 30, NOW, limits)[0] is Claim.CLAIMED
    assert transform_ledger.claim(KEY + "e", "another#image", DAY, NOW + 30, NOW, limits) == (Claim.STAGE_FULL, None)
    assert transform_ledger.claim(KEY + "e", "another#image", "2026-12-08", NOW + 30, NOW, limits)[0] is Claim.CLAIMED
