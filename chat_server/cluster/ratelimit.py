"""Rate-limit buckets shared by all nodes through Redis."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from ..domain.ratelimit import Key, RateLimiter

if TYPE_CHECKING:
    from redis import Redis

    from ..config import RateLimit


class SharedRateLimiter:
    """The same buckets kept in Redis, so a user's tabs on different nodes share one.

    If Redis cannot be reached the node falls back to its own buckets: sends stay
    possible (they are stored in the database first) and limited, only per node.
    """

    _ACQUIRE = """
    local now = redis.call('TIME')
    now = tonumber(now[1]) + tonumber(now[2]) / 1000000
    local capacity, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
    local levels = {}
    for i, key in ipairs(KEYS) do
      local bucket = redis.call('HMGET', key, 'tokens', 'stamp')
      local tokens = tonumber(bucket[1]) or capacity
      local stamp = tonumber(bucket[2]) or now
      tokens = math.min(capacity, tokens + (now - stamp) * rate)
      if tokens < 1 then return 0 end
      levels[i] = tokens
    end
    for i, key in ipairs(KEYS) do
      redis.call('HSET', key, 'tokens', tostring(levels[i] - 1), 'stamp', tostring(now))
      redis.call('PEXPIRE', key, ARGV[3])
    end
    return 1
    """

    _REFUND = """
    for _, key in ipairs(KEYS) do
      local tokens = tonumber(redis.call('HGET', key, 'tokens'))
      if tokens then
        redis.call('HSET', key, 'tokens', tostring(math.min(tonumber(ARGV[1]), tokens + 1)))
      end
    end
    return 1
    """

    PREFIX = "chat:rate:"

    def __init__(self, redis: Redis, limit: RateLimit | None,
                 clock: Callable[[], float] = time.monotonic, prefix: str = PREFIX) -> None:
        self.limit = limit
        self.redis = redis
        self.prefix = prefix  # one per kind of bucket: sends, events, password checks...
        self.local = RateLimiter(limit, clock)
        self._errors = RedisError
        self._acquire = redis.register_script(self._ACQUIRE)
        self._refund = redis.register_script(self._REFUND)
        # A bucket that has been idle long enough to be full again may as well not exist.
        self._ttl_ms = int(limit.seconds * 1000 * 2) if limit else 0

    def _keys(self, keys: tuple[Key, ...]) -> list[str]:
        return [self.prefix + ":".join(key) for key in keys]

    def acquire(self, *keys: Key) -> bool:
        if self.limit is None:
            return True
        try:
            return self._acquire(keys=self._keys(keys),
                                 args=[self.limit.count, self.limit.per_second,
                                       self._ttl_ms]) == 1
        except self._errors:
            return self.local.acquire(*keys)

    def refund(self, *keys: Key) -> None:
        if self.limit is None:
            return
        try:
            self._refund(keys=self._keys(keys), args=[self.limit.count])
        except self._errors:
            self.local.refund(*keys)

    def forget(self, key: Key) -> None:
        self.local.forget(key)  # Redis keys expire on their own

    def prune(self) -> None:
        self.local.prune()
