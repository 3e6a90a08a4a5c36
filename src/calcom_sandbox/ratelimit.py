"""Cal.com's throttler (NOTES §5): hits per window per credential, then a block that counts down."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

DEFAULT_BLOCK = timedelta(seconds=60)  # RATE_LIMIT_DEFAULT_BLOCK_DURATION_MS


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int


@dataclass
class _Bucket:
    hits: int
    window_ends: datetime
    blocked_until: datetime | None = None


class RateLimiter:
    """Cal.com's throttler: `limit` hits per `window` per tracker, then blocked for `block` (NOTES §5)."""

    def __init__(self, limit: int, window: timedelta = timedelta(seconds=60), block: timedelta | None = None) -> None:
        self.limit = limit
        self.window = window
        self.block = block if block is not None else DEFAULT_BLOCK
        self._buckets: dict[str, _Bucket] = {}

    def hit(self, tracker: str, now: datetime) -> RateDecision:
        bucket = self._buckets.get(tracker)
        if bucket is not None and bucket.blocked_until is not None:
            if now < bucket.blocked_until:
                return RateDecision(False, self.limit, 0, _ceil_seconds(bucket.blocked_until - now))
            bucket = None
        if bucket is None or now >= bucket.window_ends:
            bucket = self._buckets[tracker] = _Bucket(0, now + self.window)
        bucket.hits += 1
        if bucket.hits > self.limit:
            bucket.blocked_until = now + self.block
            return RateDecision(False, self.limit, 0, _ceil_seconds(self.block))
        return RateDecision(True, self.limit, self.limit - bucket.hits, _ceil_seconds(bucket.window_ends - now))

    def reset(self) -> None:
        """Forget every window and block (a test's fresh start)."""
        self._buckets.clear()

    def block_now(self, tracker: str, now: datetime, block: timedelta | None = None) -> RateDecision:
        """Block `tracker` from `now` as if it had just gone over the limit (for `block`, else the default)."""
        length = block if block is not None else self.block
        self._buckets[tracker] = _Bucket(self.limit + 1, now + self.window, blocked_until=now + length)
        return RateDecision(False, self.limit, 0, _ceil_seconds(length))


def _ceil_seconds(delta: timedelta) -> int:
    return max(0, math.ceil(delta.total_seconds()))
