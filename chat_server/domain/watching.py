"""Who hears about whom: presence that scales (docs/protocol.md §7).

While at most `PRESENCE_LIMIT` users are online, presence is v1: everyone hears of every
arrival and departure, and `welcome` lists everyone. Above it a user's arrival or
departure reaches only its *watchers*: its DM peers (the `user:` audience of each, so a
peer on any node hears it) and the connections that named it in `watchUsers` (the
`watch:` audience). Either way an arrival costs O(1) plus O(watchers), never O(online).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from . import validation
from .context import Context
from .effects import Effect, Emit, Enter, Exit, lobby, user_target, watch_target
from .models import Room, User
from .presence import Connection

ONLINE_COUNT_EVERY = 5.0  # seconds: `onlineCount` at most this often (§7)


def dm_peers(user_key: str, conversations: Iterable[str]) -> list[str]:
    """The other party of each of the user's `dm:` conversations (not the user itself)."""
    peers = []
    for conversation in conversations:
        if conversation.startswith("dm:"):
            first, second = validation.dm_user_keys(conversation)
            peer = second if first == user_key else first
            if peer != user_key:
                peers.append(peer)
    return peers


def quiet_room(room: Room, limit: int) -> bool:
    """A room above the limit gets no `joined`/`left` events and no `typing`."""
    return room.members > limit


class Watching:
    def __init__(self, ctx: Context, conn: Callable[[str], Connection]) -> None:
        self.ctx = ctx
        self._conn = conn  # sid -> its Connection, or Forbidden
        self.last_count: int | None = None  # the last `onlineCount` this node sent

    @property
    def limit(self) -> int:
        return self.ctx.config.presence_limit

    def crowded(self) -> bool:
        """Above the limit: presence goes to watchers only."""
        return self.ctx.presence.online_count() > self.limit

    # -- what a connecting client is told, and who hears of it ---------------------------

    def welcome_users(self, peers: list[str]) -> dict[str, Any]:
        """`welcome`'s `users` and `online` (and `usersTruncated` above the limit)."""
        presence = self.ctx.presence
        online = presence.online_count()
        if online <= self.limit:
            return {"users": presence.users(), "online": online}
        return {"users": presence.users_of(peers), "online": online, "usersTruncated": True}

    def arrival(self, conn: Connection, peers: list[str]) -> Emit:
        """`addChat` for a new connection (each new sid, as in v1)."""
        return self._tell(conn.user, "addChat", {"sid": conn.sid, "name": conn.user.name},
                          peers, skip=[conn.sid])

    def departure(self, sid: str, user: User) -> Emit:
        """`userLeft` once the user's last connection is gone."""
        peers: list[str] = []
        if self.crowded():
            peers = dm_peers(user.key, self.ctx.store_call(self.ctx.store.dm_conversations,
                                                           user.id))
        return self._tell(user, "userLeft", {"sid": sid, "name": user.name}, peers)

    def _tell(self, user: User, event: str, data: dict[str, Any], peers: list[str],
              skip: list[str] | None = None) -> Emit:
        if not self.crowded():
            return Emit(event, data, [lobby()], skip=skip or [])
        audiences = [watch_target(user.key), *(user_target(peer) for peer in peers)]
        return Emit(event, data, audiences, skip=skip or [])

    # -- watchUsers and onlineCount -------------------------------------------------------

    def watch_users(self, sid: str, payload: object) -> dict[str, Any]:
        """Replace this connection's watch list; answer with those of them online."""
        conn = self._conn(sid)
        wanted = validation.parse_watch_users(payload)
        before = set(conn.extra.get("watching", ()))
        conn.extra["watching"] = wanted
        now = set(wanted)
        effects: list[Effect] = [Exit([sid], watch_target(key)) for key in before - now]
        effects += [Enter([sid], watch_target(key)) for key in wanted if key not in before]
        self.ctx.publish(effects)
        return {"users": self.ctx.presence.users_of(wanted)}

    def online_count(self) -> list[Effect]:
        """Every `ONLINE_COUNT_EVERY` seconds, on every node: above the limit, this node's
        connections hear how many users are online, when that changed; and once more
        when it falls back to the limit, so a page that showed the count sees it end."""
        online = self.ctx.presence.online_count()
        if online == self.last_count or (online <= self.limit and self.last_count is None):
            return []
        self.last_count = online if online > self.limit else None
        return [Emit("onlineCount", {"online": online}, [lobby()], local=True)]
