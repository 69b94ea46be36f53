"""Token buckets, one per connection and one per user, both checked on every send."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import RateLimit

Key = tuple[str, str]  # ("sid", sid), ("user", user key) or ("addr", address)


class TokenBucket:
    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, capacity: int, rate: float, now: float) -> None:
        self.capacity, self.rate = capacity, rate
        self.tokens, self.stamp = float(capacity), now

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    @property
    def full(self) -> bool:
        return self.tokens >= self.capacity


class RateLimiter:
    """`acquire(*keys)` takes one token from every key's bucket, or from none of them."""

    def __init__(self, limit: RateLimit | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit  # None: off
        self.clock = clock
        self.buckets: dict[Key, TokenBucket] = {}

    def _bucket(self, key: Key, now: float) -> TokenBucket:
        bucket = self.buckets.get(key)
        if bucket is None:
            assert self.limit is not None  # callers return early when the limit is off
            bucket = self.buckets[key] = TokenBucket(self.limit.count, self.limit.per_second, now)
        else:
            bucket.refill(now)
        return bucket

    def acquire(self, *keys: Key) -> bool:
        if self.limit is None:
            return True
        now = self.clock()
        buckets = [self._bucket(key, now) for key in keys]
        if any(b.tokens < 1 for b in buckets):
            return False
        for b in buckets:
            b.tokens -= 1
        return True

    def refund(self, *keys: Key) -> None:
        """Give back a token taken for a send that turned out to be a retry."""
        for key in keys:
            bucket = self.buckets.get(key)
            if bucket is not None:
                bucket.tokens = min(bucket.capacity, bucket.tokens + 1)

    def prune(self) -> None:
        """Drop every bucket that is full again: it is the same as no bucket."""
        if self.limit is None:
            return
        now = self.clock()
        for key, bucket in list(self.buckets.items()):
            bucket.refill(now)
            if bucket.full:
                del self.buckets[key]

    def forget(self, key: Key) -> None:
        """Drop a bucket that no longer matters: a closed connection, or one that is full
        again (a fresh bucket would be the same, so reconnecting gains nothing)."""
        bucket = self.buckets.get(key)
        if bucket is None:
            return
        bucket.refill(self.clock())
        if key[0] == "sid" or bucket.full:
            del self.buckets[key]
