"""Presence shared by all nodes through Redis, with per-node heartbeats."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from redis.exceptions import RedisError

from ..domain.models import User
from ..domain.presence import Connection, Presence
from ..domain.security import hash_token

if TYPE_CHECKING:
    from redis import Redis

T = TypeVar("T")


def _text(raw: bytes | str) -> str:
    """A Redis answer as text: the client does not decode responses, so it is bytes."""
    return cast(bytes, raw).decode()


class RedisPresence:
    """Presence shared by all nodes through Redis, with per-node heartbeats.

    Each node keeps its own connections in a local `Presence` (the handlers need their
    objects) and mirrors them into Redis:

        chat:presence:user:<key>   hash  sid -> node     (every tab of a user, any node)
        chat:presence:sids         hash  sid -> user key
        chat:presence:tokens       hash  sid -> hash of the token it signed in with
        chat:presence:profiles     hash  user key -> user as JSON (while online)
        chat:presence:names        zset  user keys online, all of score 0 (sorted by
                                         key: `listUsers` pages, docs/protocol.md §7)
        chat:presence:node:<node>  set   sids of that node
        chat:presence:nodes        set   node names
        chat:presence:alive:<node> key   expires HEARTBEAT_TTL s after the last beat

    A node that stops beating is reaped by any survivor within `ttl` + `ttl / 3` seconds
    of its last beat (beats come every `ttl / 3` seconds).
    """

    PREFIX = "chat:presence:"

    # Removes one sid; returns how many tabs its user still has anywhere.
    _REMOVE = """
    redis.call('HDEL', KEYS[1], ARGV[1])
    redis.call('HDEL', KEYS[2], ARGV[1])
    redis.call('HDEL', KEYS[5], ARGV[1])
    redis.call('SREM', KEYS[3], ARGV[1])
    local left = redis.call('HLEN', KEYS[1])
    if left == 0 then
        redis.call('HDEL', KEYS[4], ARGV[2])
        redis.call('ZREM', KEYS[6], ARGV[2])
    end
    return left
    """

    def __init__(self, redis: Redis, node: str, user_factory: Callable[[dict[str, Any]], User],
                 ttl: float = 15.0) -> None:
        self.redis = redis
        self.node = node
        self.ttl = ttl
        self.beat_every = ttl / 3
        self.user_factory = user_factory  # a profile's fields -> models.User
        self.local = Presence()
        self._remove = redis.register_script(self._REMOVE)
        self.unsynced: list[tuple[str, User]] = []  # left while Redis was unreachable
        self.stale = False  # connections came while Redis was unreachable: mirror again
        self._redis_error = RedisError

    def _k(self, *parts: str) -> str:
        return self.PREFIX + ":".join(parts)

    def add(self, conn: Connection) -> bool:
        first_here = self.local.add(conn)
        try:
            return self._mirror(conn)
        except self._redis_error:
            # Keep serving on what this node knows; the next heartbeat that reaches
            # Redis mirrors every connection of this node again.
            self.stale = True
            return first_here

    def _mirror(self, conn: Connection) -> bool:
        """This connection in Redis; True when it is its user's first tab anywhere."""
        user = conn.user
        profile = json.dumps({"id": user.id, "name": user.name, "key": user.key,
                              "guest": user.guest})
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self._k("user", user.key), conn.sid, self.node)
        pipe.hset(self._k("sids"), conn.sid, user.key)
        pipe.hset(self._k("tokens"), conn.sid, hash_token(conn.token))
        pipe.hset(self._k("profiles"), user.key, profile)
        pipe.zadd(self._k("names"), {user.key: 0})
        pipe.sadd(self._k("node", self.node), conn.sid)
        pipe.sadd(self._k("nodes"), self.node)
        pipe.hlen(self._k("user", user.key))
        return bool(pipe.execute()[-1] == 1)

    def remove(self, sid: str) -> tuple[Connection | None, bool]:
        conn, _ = self.local.remove(sid)
        if conn is None:
            return None, False
        try:
            return conn, self._forget(sid, conn.user.key, self.node) == 0
        except self._redis_error:
            # Keep serving; `reap` retries, so the user does not linger as a ghost.
            self.unsynced.append((sid, conn.user))
            return conn, False

    def _forget(self, sid: str, user_key: str, node: str) -> int:
        return self._remove(keys=[self._k("user", user_key), self._k("sids"),
                                  self._k("node", node), self._k("profiles"),
                                  self._k("tokens"), self._k("names")],
                            args=[sid, user_key])

    def get(self, sid: str) -> Connection | None:
        return self.local.get(sid)

    def local_sids(self) -> list[str]:
        return self.local.local_sids()

    # -- what the domain asks (ports.PresencePort): Redis, or this node while it is away --

    def user_of_sid(self, sid: str) -> User | None:
        return self._or_local(lambda: self._shared_user_of_sid(sid),
                              lambda: self.local.user_of_sid(sid))

    def sids_with_token(self, user_key: str, token: str) -> list[str]:
        return self._or_local(lambda: self._shared_sids_with_token(user_key, token),
                              lambda: self.local.sids_with_token(user_key, token))

    def sids_of(self, user_key: str) -> list[str]:
        return self._or_local(lambda: self._shared_sids_of(user_key),
                              lambda: self.local.sids_of(user_key))

    def online_user(self, user_key: str) -> User | None:
        return self._or_local(lambda: self._shared_online_user(user_key),
                              lambda: self.local.online_user(user_key))

    def users(self) -> list[dict[str, Any]]:
        return self._or_local(self._shared_users, self.local.users)

    def online_count(self) -> int:
        return self._or_local(self._shared_online_count, self.local.online_count)

    def users_of(self, user_keys: Iterable[str]) -> list[dict[str, Any]]:
        keys = list(user_keys)
        return self._or_local(lambda: self._shared_users_of(keys),
                              lambda: self.local.users_of(keys))

    def users_page(self, prefix: str, after: str | None, limit: int) -> list[dict[str, Any]]:
        return self._or_local(lambda: self._shared_users_page(prefix, after, limit),
                              lambda: self.local.users_page(prefix, after, limit))

    # -- Redis ---------------------------------------------------------------------------

    def _shared_user_of_sid(self, sid: str) -> User | None:
        conn = self.local.get(sid)
        if conn is not None:
            return conn.user
        key = self.redis.hget(self._k("sids"), sid)
        return self._shared_online_user(_text(key)) if key else None

    def _shared_sids_with_token(self, user_key: str, token: str) -> list[str]:
        sids = self._shared_sids_of(user_key)
        if not sids:
            return []
        wanted = hash_token(token)
        tokens = self.redis.hmget(self._k("tokens"), sids)
        return [sid for sid, raw in zip(sids, tokens, strict=True)
                if raw is not None and _text(raw) == wanted]

    def _shared_sids_of(self, user_key: str) -> list[str]:
        return [_text(s) for s in self.redis.hkeys(self._k("user", user_key))]

    def _shared_online_user(self, user_key: str) -> User | None:
        profile = self.redis.hget(self._k("profiles"), user_key)
        return self.user_factory(json.loads(profile)) if profile else None

    def _shared_users(self) -> list[dict[str, Any]]:
        profiles = self.redis.hgetall(self._k("profiles"))
        keys = [_text(k) for k in profiles]
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.hkeys(self._k("user", key))
        tabs = pipe.execute()
        return [{"name": json.loads(profiles[key.encode()])["name"],
                 "sids": sorted(_text(s) for s in sids)}
                for key, sids in zip(keys, tabs, strict=True) if sids]

    def _shared_online_count(self) -> int:
        return int(self.redis.zcard(self._k("names")))

    def _shared_users_of(self, user_keys: Iterable[str]) -> list[dict[str, Any]]:
        keys = list(dict.fromkeys(user_keys))
        if not keys:
            return []
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(self._k("profiles"), keys)
        for key in keys:
            pipe.hkeys(self._k("user", key))
        profiles, *tabs = pipe.execute()
        return [{"name": json.loads(profile)["name"], "sids": sorted(_text(s) for s in sids)}
                for profile, sids in zip(profiles, tabs, strict=True) if profile and sids]

    def _shared_users_page(self, prefix: str, after: str | None,
                           limit: int) -> list[dict[str, Any]]:
        """A range of the sorted set of online keys (bytewise, which is the order of the
        keys as text: UTF-8 keeps code point order; b"\\xff" never occurs in it)."""
        low = b"[" + prefix.encode()
        if after is not None and after.encode() >= prefix.encode():
            low = b"(" + after.encode()
        high = b"[" + prefix.encode() + b"\xff" if prefix else b"+"
        keys = [_text(k) for k in self.redis.zrangebylex(self._k("names"), low, high,
                                                          start=0, num=limit)]
        return self._shared_users_of(key for key in keys if key.startswith(prefix))

    def __len__(self) -> int:
        return len(self.local)

    def heartbeat(self) -> None:
        self.redis.set(self._k("alive", self.node), "1", px=int(self.ttl * 1000))
        self.redis.sadd(self._k("nodes"), self.node)
        if self.stale:  # Redis is back: what connected meanwhile is shared again
            self.stale = False
            for conn in list(self.local.by_sid.values()):
                self._mirror(conn)

    def _or_local(self, shared: Callable[[], T], local: Callable[[], T]) -> T:
        """Ask Redis; while it is unreachable, answer from this node's own connections
        (docs/protocol.md §11: presence degrades to the node and recovers)."""
        try:
            return shared()
        except self._redis_error:
            self.stale = True
            return local()

    def reap(self) -> list[tuple[str, User, bool]]:
        """Remove the connections of nodes whose heartbeat expired.

        Returns `(sid, user, was_last)` for each removed connection, this node's own
        departures that Redis missed during an outage included. One survivor wins the
        claim on each dead node, so nobody reports a departure twice.
        """
        removed: list[tuple[str, User, bool]] = []
        user: User | None
        while self.unsynced:
            sid, user = self.unsynced[0]
            left = self._forget(sid, user.key, self.node)
            self.unsynced.pop(0)
            removed.append((sid, user, left == 0))
        for raw in self.redis.smembers(self._k("nodes")):
            node = _text(raw)
            if node == self.node or self.redis.exists(self._k("alive", node)):
                continue
            if not self.redis.set(self._k("reaping", node), self.node, nx=True, ex=60):
                continue
            for raw_sid in self.redis.smembers(self._k("node", node)):
                sid = _text(raw_sid)
                key = self.redis.hget(self._k("sids"), sid)
                if key is None:
                    self.redis.srem(self._k("node", node), sid)
                    continue
                user = self.online_user(_text(key))
                left = self._forget(sid, _text(key), node)
                if user is not None:
                    removed.append((sid, user, left == 0))
            self.redis.delete(self._k("node", node))
            self.redis.srem(self._k("nodes"), node)
        return removed

    def leave_cluster(self) -> None:
        """On a clean shutdown: forget this node's connections at once."""
        for sid in list(self.local.by_sid):
            self.remove(sid)
        self.redis.delete(self._k("alive", self.node), self._k("node", self.node))
        self.redis.srem(self._k("nodes"), self.node)
