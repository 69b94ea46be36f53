"""`typing` notices: to a room's members or a DM peer, never stored, never to the sender."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import validation
from .context import Context
from .effects import Emit, room_target, user_target
from .identity import Identity
from .rooms import Rooms
from .watching import quiet_room

if TYPE_CHECKING:
    from .moderation import Moderation


class TypingStatus:
    def __init__(self, ctx: Context, identity: Identity, rooms: Rooms,
                 moderation: Moderation | None = None) -> None:
        self.ctx = ctx
        self.identity = identity
        self.rooms = rooms
        self.moderation = moderation  # mutes and blocks (§10)

    def typing(self, sid: str, payload: object) -> None:
        conn = self.identity.conn(sid)
        request = validation.parse_typing(payload)
        skip = self.ctx.presence.sids_of(conn.user.key)
        if request.to.startswith("#"):
            room = self.rooms.member_room(conn.user, request.to)
            if self.moderation is not None:
                self.moderation.check_not_muted(conn.user, room)
            if quiet_room(room, self.ctx.config.presence_limit):
                return  # checked, then not sent: too many members to tell (§7)
            to, audience = room.name, room_target(room.key)
        else:
            peer = self.identity.peer_by_name(request.to)
            if self.moderation is not None:
                self.moderation.check_not_blocked(conn.user, peer)
            to, audience = peer.name, user_target(peer.key)
        self.ctx.publish([Emit("typing", {"from": conn.user.name, "to": to,
                                          "typing": request.typing}, [audience], skip=skip)])
