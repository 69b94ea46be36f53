"""Going live: `welcome`, replay of what a returning client missed, then live delivery."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .context import Context
from .effects import Effect, Emit, Enter, lobby, room_target, user_target
from .models import Message
from .ports import Handover
from .watching import Watching, dm_peers


class LocalHandover:
    """One node. Messages are committed in a batch and then delivered, so a snapshot read
    from the store may hold messages not yet delivered: replay keeps only what was
    delivered when the snapshot was read, and the rest reaches the client live, because
    nothing yields between that check and entering the rooms. No gap, no duplicate."""

    def replayable(self, replay: list[Message], delivered_mark: int) -> list[Message]:
        return [m for m in replay if m.id <= delivered_mark]

    def after_welcome(self, sid: str, newest: int,
                      catch_up: Callable[[str, int], None]) -> None:
        pass


class CatchUpHandover:
    """Several nodes: a message committed elsewhere while this client was going live may
    have been published before its rooms were joined. A second look a moment later sends
    what it could have missed; clients drop the ids they already have."""

    CATCH_UP_AFTER = 1.0

    def __init__(self, later: Callable[..., object]) -> None:
        self.later = later  # later(seconds, fn, *args): run fn after a delay

    def replayable(self, replay: list[Message], delivered_mark: int) -> list[Message]:
        return replay

    def after_welcome(self, sid: str, newest: int,
                      catch_up: Callable[[str, int], None]) -> None:
        self.later(self.CATCH_UP_AFTER, catch_up, sid, newest)


class GoingLive:
    def __init__(self, ctx: Context, handover: Handover,
                 delivered_mark: Callable[[], int], watching: Watching) -> None:
        self.ctx = ctx
        self.handover = handover
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
        for _ in range(10):  # a snapshot read while nothing was delivered meanwhile
            mark = self.delivered_mark()
            snap = self.ctx.store_call(store.snapshot, conn.user.id, last_id, limit)
            if mark == self.delivered_mark():
                break
        if presence.get(sid) is None:  # gone while we read
            return
        replay = self.handover.replayable(snap.replay[:limit], mark)
        peers = dm_peers(conn.user.key, (name for name, _ in snap.conversations))
        welcome: dict[str, Any] = {
            "sid": sid, "name": conn.user.name, "token": conn.token,
            "rooms": [room.to_wire() for room in snap.rooms],
            **self.watching.welcome_users(peers),  # users, online (§7), usersTruncated?
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
        if last_id is not None:
            newest = max([last_id, *(m.id for m in replay)])
            self.handover.after_welcome(sid, newest, self.catch_up)

    def catch_up(self, sid: str, after: int) -> None:
        conn = self.ctx.presence.get(sid)
        if conn is None:
            return
        limit = self.ctx.config.replay_limit
        snap = self.ctx.store_call(self.ctx.store.snapshot, conn.user.id, after, limit)
        if self.ctx.presence.get(sid) is not None and snap.replay:
            self.ctx.publish([Emit("reply", m.to_wire(), [sid]) for m in snap.replay[:limit]])
