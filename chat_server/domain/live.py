"""Going live: `welcome`, replay of what a returning client missed, then live delivery.

The connection enters its rooms first, held (`Hold`): what is emitted to it is kept, not
sent. Then the snapshot is read, and `Release` sends `welcome`, the replay, and what was
kept, less what the replay already had. So whatever is delivered while the snapshot is
read, on one node or several, the client gets each message once and in id order.
"""

from __future__ import annotations

from typing import Any

from .context import Context
from .effects import Effect, Enter, Hold, Release, lobby, room_target, user_target
from .watching import Watching, dm_peers


class GoingLive:
    def __init__(self, ctx: Context, watching: Watching) -> None:
        self.ctx = ctx
        self.watching = watching

    def go_live(self, sid: str) -> None:
        """Send `welcome` (and replay) to `sid` and start delivering live events to it."""
        presence, store, call = self.ctx.presence, self.ctx.store, self.ctx.store_call
        conn = presence.get(sid)
        if conn is None:
            return
        last_id = conn.extra.get("last_id")
        limit = self.ctx.config.replay_limit
        # A name registered by this very connect is in no room and no DM yet.
        dm_keys, rooms = (([], []) if conn.extra.get("new")
                          else call(store.memberships_of, conn.user.id))
        peers = dm_peers(conn.user.key, dm_keys)
        users = self.watching.welcome_users(peers)  # users, online (§7), usersTruncated?
        entered = {room.key for room in rooms}
        self.ctx.publish([Hold(sid), Enter([sid], lobby()),
                          Enter([sid], user_target(conn.user.key)),
                          *(Enter([sid], room_target(key)) for key in sorted(entered))])
        snap = call(store.snapshot, conn.user.id, last_id, limit)
        if presence.get(sid) is None:  # gone while we read
            self.ctx.publish([Release(sid, [], 0)])
            return
        replay = snap.replay[:limit]
        welcome: dict[str, Any] = {
            "sid": sid, "name": conn.user.name, "token": conn.token,
            "rooms": [room.to_wire() for room in snap.rooms],
            **users,
            # v2 (docs/protocol.md §9.2): read state per conversation
            "conversations": [{"conversation": c.name, "lastId": c.newest,
                               "lastRead": c.last_read, "unread": c.unread,
                               "mentions": c.mentions} for c in snap.conversations],
        }
        if last_id is not None:
            welcome["replayTruncated"] = len(snap.replay) > limit
        welcome["blocked"] = snap.blocked  # v2 (docs/protocol.md §10.5)
        # Rooms joined while the snapshot was read (joinRoom enters every tab anyway).
        effects: list[Effect] = [Enter([sid], room_target(room.key)) for room in snap.rooms
                                 if room.key not in entered]
        first: list[tuple[str, object]] = [("welcome", welcome)]
        first += [(m.event, m.to_wire()) for m in replay]
        upto = max([last_id or 0, *(m.id for m in replay)]) if last_id is not None else 0
        effects.append(Release(sid, first, upto))
        effects.append(self.watching.arrival(conn, peers))
        self.ctx.publish(effects)
