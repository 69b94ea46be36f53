"""Going live: `welcome`, replay of what a returning client missed, then live delivery.

Messages are committed, then delivered (on one node by `sending.LocalDistribution`, with
several by `cluster.ordering.Sequencer`), and `delivered_mark` says how far delivery has
got on this node, in id order. A snapshot read while the mark stood still holds every
message up to it: those are replayed, and the later ones reach the client live, because
nothing yields between that check and entering the rooms. No gap, no duplicate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .context import Context
from .effects import Effect, Emit, Enter, lobby, room_target, user_target
from .watching import Watching, dm_peers


class GoingLive:
    def __init__(self, ctx: Context, delivered_mark: Callable[[], int],
                 watching: Watching) -> None:
        self.ctx = ctx
        self.watching = watching
        self.delivered_mark = delivered_mark  # how far delivery got (`Sending`)

    def go_live(self, sid: str) -> None:
        """Send `welcome` (and replay) to `sid` and start delivering live events to it."""
        presence, store = self.ctx.presence, self.ctx.store
        conn = presence.get(sid)
        if conn is None:
            return
        last_id = conn.extra.get("last_id")
        limit = self.ctx.config.replay_limit
        # Who is online may take a Redis round trip: asked before the snapshot, so that
        # nothing yields between the snapshot's mark check and entering the rooms.
        peers = dm_peers(conn.user.key, self.ctx.store_call(store.dm_conversations,
                                                            conn.user.id))
        users = self.watching.welcome_users(peers)  # users, online (§7), usersTruncated?
        for _ in range(10):  # a snapshot read while nothing was delivered meanwhile
            mark = self.delivered_mark()
            snap = self.ctx.store_call(store.snapshot, conn.user.id, last_id, limit)
            if mark == self.delivered_mark():
                break
        if presence.get(sid) is None:  # gone while we read
            return
        replay = [m for m in snap.replay[:limit] if m.id <= mark]
        welcome: dict[str, Any] = {
            "sid": sid, "name": conn.user.name, "token": conn.token,
            "rooms": [room.to_wire() for room in snap.rooms],
            **users,
            "conversations": [{"conversation": name, "lastId": newest}
                              for name, newest in snap.conversations],
        }
        if last_id is not None:
            welcome["replayTruncated"] = len(snap.replay) > limit
        effects: list[Effect] = [Enter([sid], lobby()), Enter([sid], user_target(conn.user.key))]
        effects += [Enter([sid], room_target(room.key)) for room in snap.rooms]
        effects.append(Emit("welcome", welcome, [sid]))
        effects += [Emit("reply", m.to_wire(), [sid]) for m in replay]
        effects.append(self.watching.arrival(conn, peers))
        self.ctx.publish(effects)
