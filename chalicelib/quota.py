"""Per-owner upload quotas: which counters a new upload slot moves, and the answer when a limit is
used up (docs: quotas). Pure: the counters live behind ports.QuotaStore (DynamoDB: quota_store.py).

Windows are fixed and UTC. All of one owner's counters of one UTC day live in one item, so a
single conditional write takes a slot against every limit at once, and no two requests can both
take the last unit of any of them:

- `uploads`, `bytes`: slots made that day, and the bytes they declared;
- `hHH`: slots made in hour HH of that day;
- `s<b>`, `n<b>`: open slots. Time is cut into buckets as long as an upload URL lives
  (UPLOAD_URL_TTL_SECONDS, numbered from the epoch), so a slot made in bucket b can only be
  uploaded to during b and b+1. It is counted in `s<b>` and `s<b+1>` (and `n<b>`, the slots
  made in b, which says when room comes back); its first claim takes it out of them, and an
  unused slot stops counting when b+1 ends: one to two URL lifetimes after it was made.

Counts err only upwards, and only until their window ends: a slot whose record could not be
written, or whose release failed, is still counted meanwhile.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from chalicelib.auth.principal import Principal
from chalicelib.domain import parse_iso
from chalicelib.errors import BadRequest, QuotaExceeded
from chalicelib.ports import Counter, QuotaStore

UPLOADS_PER_HOUR = "uploads_per_hour"
UPLOADS_PER_DAY = "uploads_per_day"
BYTES_PER_DAY = "bytes_per_day"
OPEN_SLOTS = "open_slots"
TRANSFORMS_PER_DAY = "transforms_per_day"  # on-demand renders (transforms.py), charged to the image's owner
# A take also removes the open-slot counters of this many buckets before its own (dead by then),
# so an owner's day item stays small however short the buckets are.
CLEANED_BUCKETS = 8

Charge = tuple[str, Counter]  # the name of the limit a counter enforces ("" for none), and the counter


@dataclass(frozen=True)
class QuotaLimits:
    """A stage's per-owner limits, 0 meaning unlimited. `slot_seconds` is the upload URL's lifetime."""

    uploads_per_hour: int = 0
    uploads_per_day: int = 0
    bytes_per_day: int = 0
    open_slots: int = 0
    slot_seconds: int = 900
    transforms_per_day: int = 0

    @property
    def enabled(self) -> bool:
        return any((self.uploads_per_hour, self.uploads_per_day, self.bytes_per_day, self.open_slots))

    def charges(self, size: int, now: datetime) -> list[Charge]:
        """The counters one new slot of `size` declared bytes moves, made at `now`."""
        day = _day(now)
        charges: list[Charge] = []
        if self.uploads_per_hour:
            charges.append(
                (UPLOADS_PER_HOUR, Counter(day, f"h{now.astimezone(UTC).hour:02d}", 1, self.uploads_per_hour))
            )
        if self.uploads_per_day:
            charges.append((UPLOADS_PER_DAY, Counter(day, "uploads", 1, self.uploads_per_day)))
        if self.bytes_per_day:
            charges.append((BYTES_PER_DAY, Counter(day, "bytes", size, self.bytes_per_day)))
        if self.open_slots:
            bucket = self.bucket(now)
            charges += [
                (OPEN_SLOTS, Counter(self._day_of(bucket), f"s{bucket}", 1, self.open_slots)),
                ("", Counter(self._day_of(bucket), f"n{bucket}", 1)),
                ("", Counter(self._day_of(bucket + 1), f"s{bucket + 1}", 1)),
            ]
        return charges

    def expired(self, now: datetime) -> list[tuple[str, str]]:
        """Open-slot counters of buckets gone by, in the item a take at `now` writes anyway."""
        if not self.open_slots:
            return []
        bucket = self.bucket(now)
        day = self._day_of(bucket)
        gone = [b for b in range(bucket - CLEANED_BUCKETS, bucket) if self._day_of(b) == day]
        return [(day, f"{kind}{b}") for b in gone for kind in ("s", "n")]

    def slot_release(self, opened_at: datetime, now: datetime) -> list[Counter]:
        """What a slot made at `opened_at` stops counting in, once its upload is claimed at `now`."""
        if not self.open_slots:
            return []
        made, current = self.bucket(opened_at), self.bucket(now)
        if current > made + 1:
            return []  # no longer counted anywhere
        following = Counter(self._day_of(made + 1), f"s{made + 1}", -1)
        if current == made + 1:
            return [following]
        return [Counter(self._day_of(made), f"s{made}", -1), Counter(self._day_of(made), f"n{made}", -1), following]

    def refusal(self, charges: Sequence[Charge], before: Mapping[tuple[str, str], int], now: datetime) -> QuotaExceeded:
        """The 429 for a take the store refused: the exceeded limit that frees up last, and when."""
        exceeded = [(name, c) for name, c in charges if name and not c.allows(before.get(c.key, 0))]
        # A store that showed no values leaves every limit in question: name the longest wait.
        candidates = exceeded or [(name, c) for name, c in charges if name]
        waits = [(self._retry_after(name, before, now), name, c) for name, c in candidates]
        seconds, name, counter = max(waits, key=lambda wait: wait[0])
        return QuotaExceeded(_message(name, counter, before.get(counter.key, 0), seconds), name, seconds)

    def bucket(self, moment: datetime) -> int:
        return int(moment.timestamp()) // self.slot_seconds

    def _day_of(self, bucket: int) -> str:
        return _day(datetime.fromtimestamp(bucket * self.slot_seconds, UTC))

    def _retry_after(self, limit: str, before: Mapping[tuple[str, str], int], now: datetime) -> int:
        """Seconds until `limit` has room again if nothing else is taken meanwhile."""
        if limit == UPLOADS_PER_HOUR:
            until = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0).timestamp() + 3600
        elif limit == OPEN_SLOTS:
            bucket = self.bucket(now)
            made_here = before.get((self._day_of(bucket), f"n{bucket}"), 0)
            # Next bucket, only the slots made in this one still count; they go when it ends.
            until = (bucket + (1 if made_here < self.open_slots else 2)) * self.slot_seconds
        else:
            midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            until = (midnight + timedelta(days=1)).timestamp()
        return max(1, math.ceil(until - now.timestamp()))


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


def day_ends(window: str) -> int:
    """Epoch seconds at the end of the UTC day `window` ("2026-11-29")."""
    return int((datetime.strptime(window, "%Y-%m-%d").replace(tzinfo=UTC) + timedelta(days=1)).timestamp())


def _message(limit: str, counter: Counter, used: int, seconds: int) -> str:
    if limit == OPEN_SLOTS:
        return (
            f"At most {counter.limit} upload slots may wait for their file at once. Upload to one you have,"
            f" or retry in {seconds} s, when unused ones have expired."
        )
    if limit == BYTES_PER_DAY:
        return (
            f"At most {counter.limit} bytes may be uploaded per day (UTC); {used} are taken today and this"
            f" upload declares {counter.amount}. Retry in {seconds} s."
        )
    if limit == TRANSFORMS_PER_DAY:
        return (
            f"At most {counter.limit} on-demand variants may be rendered per day (UTC) for this owner's images;"
            f" those already rendered are still served. Retry in {seconds} s."
        )
    period = "hour" if limit == UPLOADS_PER_HOUR else "day"
    return f"At most {counter.limit} uploads may be started per {period} (UTC). Retry in {seconds} s."


class Quotas:
    """The stage's limits over a QuotaStore: POST /uploads takes a slot, its first claim gives it back."""

    def __init__(self, limits: QuotaLimits, store: QuotaStore) -> None:
        self.limits = limits
        self._store = store

    def take(self, caller: Principal, size: int | None, now: datetime) -> None:
        """Count one new upload slot of `size` declared bytes against the caller's limits, or raise
        QuotaExceeded having counted nothing. Admins are exempt; a bytes quota needs the size."""
        if caller.is_admin or not self.limits.enabled:
            return
        if self.limits.bytes_per_day and size is None:
            raise BadRequest(
                "size (the file's length in bytes) is required: uploaded bytes are counted per day.", "missing_field"
            )
        self._charge(caller.owner, self.limits.charges(size or 0, now), now, self.limits.expired(now))

    def take_transform(self, owner: str, now: datetime) -> None:
        """Count one on-demand render against the image owner's daily limit, or raise QuotaExceeded."""
        if not self.limits.transforms_per_day:
            return
        counter = Counter(_day(now), "transforms", 1, self.limits.transforms_per_day)
        self._charge(owner, [(TRANSFORMS_PER_DAY, counter)], now)

    def _charge(
        self, owner: str, charges: list[Charge], now: datetime, expired: Sequence[tuple[str, str]] = ()
    ) -> None:
        """Every charge counted, atomically, or none and QuotaExceeded naming the first limit it hit."""
        before = self._store.apply(owner, [counter for _, counter in charges], expired)
        if before is not None:
            raise self.limits.refusal(charges, before, now)

    def release_slot(self, owner: str, opened_at: str, now: datetime) -> None:
        """The first upload to the slot made at `opened_at` (ISO) has arrived: it is no longer open.

        A refusal means the slot was never counted (the limit was set after it was made): nothing to do.
        """
        changes = self.limits.slot_release(parse_iso(opened_at), now)
        if changes:
            self._store.apply(owner, changes)
