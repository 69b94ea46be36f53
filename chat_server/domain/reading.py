"""Reading: `history` of a conversation the user may read."""

from __future__ import annotations

from . import validation
from .context import Context
from .errors import Forbidden, NotFound
from .identity import Identity
from .models import User
from .rooms import Rooms
from .validation import fold


class Reading:
    def __init__(self, ctx: Context, identity: Identity, rooms: Rooms) -> None:
        self.ctx = ctx
        self.identity = identity
        self.rooms = rooms

    def history(self, sid: str, payload: object) -> list[dict]:
        conn = self.identity.conn(sid)
        query = validation.parse_history(payload)
        conv_key = self.readable(conn.user, query.conversation)
        found = self.ctx.store_call(self.ctx.store.history, conv_key, query.before,
                                    query.after, query.limit)
        return [m.to_wire() for m in found]

    def readable(self, user: User, conversation: str) -> str:
        """The key of a conversation the user may read, or the reason it may not."""
        if conversation == "lobby":
            return "lobby"
        if conversation.startswith("#"):
            return self.rooms.member_room(user, conversation).key
        if conversation.startswith("dm:"):
            if not validation.is_dm_key_of(conversation, user.name):
                raise Forbidden("You may read only your own direct conversations.")
            return conversation
        if not validation.valid_user_name(conversation):
            raise NotFound("No such conversation.")
        peer = self.ctx.store_call(self.ctx.store.user_by_key, fold(conversation))
        if peer is None:
            raise NotFound("No such user.")
        return validation.dm_key(user.name, peer.name)
