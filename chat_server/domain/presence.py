"""Who is online: users and their connections (one per browser tab), on one node.

Several nodes share presence through `cluster.presence.RedisPresence`, which keeps the
same interface (`ports.PresencePort`) and a local `Presence` for its own connections.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .models import User


@dataclass
class Connection:
    sid: str
    user: User
    token: str
    connected_at: float
    transport: str = ""
    address: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Presence:
    def __init__(self) -> None:
        self.by_sid: dict[str, Connection] = {}
        # self.by_user[user_key][sid] = Connection, oldest first
        self.by_user: dict[str, dict[str, Connection]] = {}
        # self._wire[user_key] = USER as sent ({"name", "sids"}), kept up to date here:
        # every connect below PRESENCE_LIMIT sends the whole list, so it is never rebuilt.
        self._wire: dict[str, dict[str, Any]] = {}
        self._keys: list[str] = []  # online user keys, sorted: `listUsers` pages (§7)

    def add(self, conn: Connection) -> bool:
        """Returns True when this is the user's first connection."""
        self.by_sid[conn.sid] = conn
        key = conn.user.key
        tabs = self.by_user.setdefault(key, {})
        tabs[conn.sid] = conn
        self._rewire(key, tabs)
        if len(tabs) == 1:
            bisect.insort(self._keys, key)
        return len(tabs) == 1

    def remove(self, sid: str) -> tuple[Connection | None, bool]:
        """Returns (connection, was_last) or (None, False) for an unknown sid."""
        conn = self.by_sid.pop(sid, None)
        if conn is None:
            return None, False
        key = conn.user.key
        tabs = self.by_user.get(key, {})
        tabs.pop(sid, None)
        if tabs:
            self._rewire(key, tabs)
            return conn, False
        self.by_user.pop(key, None)
        self._wire.pop(key, None)
        at = bisect.bisect_left(self._keys, key)
        if at < len(self._keys) and self._keys[at] == key:
            del self._keys[at]
        return conn, True

    def _rewire(self, key: str, tabs: dict[str, Connection]) -> None:
        self._wire[key] = {"name": next(iter(tabs.values())).user.name, "sids": list(tabs)}

    def get(self, sid: str) -> Connection | None:
        return self.by_sid.get(sid)

    def local_sids(self) -> list[str]:
        return list(self.by_sid)

    def user_of_sid(self, sid: str) -> User | None:
        conn = self.by_sid.get(sid)
        return conn.user if conn is not None else None

    def sids_of(self, user_key: str) -> list[str]:
        return list(self.by_user.get(user_key, ()))

    def sids_with_token(self, user_key: str, token: str) -> list[str]:
        """The user's connections that signed in with `token` (one sign-in's tabs)."""
        return [sid for sid, conn in self.by_user.get(user_key, {}).items()
                if conn.token == token]

    def online_user(self, user_key: str) -> User | None:
        tabs = self.by_user.get(user_key)
        return next(iter(tabs.values())).user if tabs else None

    def users(self) -> list[dict[str, Any]]:
        """Who is online, as USER objects; shared with the presence: read, never change."""
        return list(self._wire.values())

    def online_count(self) -> int:
        """How many users (not connections) are online."""
        return len(self.by_user)

    def users_of(self, user_keys: Iterable[str]) -> list[dict[str, Any]]:
        """The USER objects of those of `user_keys` who are online."""
        return [self._wire[key] for key in user_keys if key in self._wire]

    def users_page(self, prefix: str, after: str | None, limit: int) -> list[dict[str, Any]]:
        """Online users by key, from just after `after` (or the first starting with
        `prefix`), at most `limit` of those starting with `prefix`: a binary search and
        `limit` steps, whoever else is online."""
        keys = self._keys
        at = bisect.bisect_left(keys, prefix)
        if after is not None:
            at = max(at, bisect.bisect_right(keys, after))
        page: list[dict[str, Any]] = []
        while at < len(keys) and len(page) < limit and keys[at].startswith(prefix):
            page.append(self._wire[keys[at]])
            at += 1
        return page

    def __len__(self) -> int:
        return len(self.by_sid)

    def reap(self) -> list[tuple[str, User, bool]]:
        """Nothing to reap: one node has no other nodes that could die."""
        return []
