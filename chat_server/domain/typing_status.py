"""`typing` notices: to a room's members or a DM peer, never stored, never to the sender."""

from __future__ import annotations

from . import validation
from .context import Context
from .effects import Emit, room_target, user_target
from .identity import Identity
from .rooms import Rooms
from .watching import quiet_room


class TypingStatus:
    def __init__(self, ctx: Context, identity: Identity, rooms: Rooms) -> None:
        self.ctx = ctx
        self.identity = identity
        self.rooms = rooms

    def typing(self, sid: str, payload: object) -> None:
        conn = self.identity.conn(sid)
        request = validation.parse_typing(payload)
        skip = self.ctx.presence.sids_of(conn.user.key)
        if request.to.startswith("#"):
            room = self.rooms.member_room(conn.user, request.to)
            if quiet_room(room, self.ctx.config.presence_limit):
                return  # checked, then not sent: too many members to tell (§7)
            to, audience = room.name, room_target(room.key)
        else:
            peer = self.identity.peer_by_name(request.to)
            to, audience = peer.name, user_target(peer.key)
        self.ctx.publish([Emit("typing", {"from": conn.user.name, "to": to,
                                          "typing": request.typing}, [audience], skip=skip)])
