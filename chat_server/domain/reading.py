"""Reading: `history`, read markers (`markRead`) and `search`, of what the user may read
(docs/protocol.md §2, §9)."""

from __future__ import annotations

from . import payloads, validation
from .context import Context
from .effects import Effect, Emit, user_target
from .errors import Forbidden, NotFound
from .identity import Identity
from .models import User
from .presence import Connection
from .rooms import Rooms
from .validation import fold


class Reading:
    def __init__(self, ctx: Context, identity: Identity, rooms: Rooms) -> None:
        self.ctx = ctx
        self.identity = identity
        self.rooms = rooms

    def history(self, sid: str, payload: object) -> list[dict]:
        return self.history_as(self.identity.conn(sid), payload)

    def history_as(self, conn: Connection, payload: object) -> list[dict]:
        """`history` as `conn`, which may also be a bot's HTTP identity (`bots.py`)."""
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

    def mark_read(self, sid: str, payload: object) -> dict:
        """Move the read marker; the user's other tabs hear `readMarker`, a DM's peer a
        `read` receipt (docs/protocol.md §9.1)."""
        conn = self.identity.conn(sid)
        request = payloads.parse_mark_read(payload)
        conv_key = self.readable(conn.user, request.conversation)
        store = self.ctx.store
        last_read = self.ctx.store_call(store.mark_read, conn.user.id, conv_key, request.id)
        marker = {"conversation": conv_key, "lastRead": last_read}
        effects: list[Effect] = [Emit("readMarker", marker, [user_target(conn.user.key)],
                                      skip=[sid])]
        if conv_key.startswith("dm:"):
            for peer in set(validation.dm_user_keys(conv_key)) - {conn.user.key}:
                user = self.ctx.store_call(self.ctx.store.user_by_key, peer)
                if user is not None:
                    effects.append(Emit("read", {"conversation": conv_key,
                                                 "name": conn.user.name,
                                                 "lastRead": last_read},
                                        [user_target(user.key)]))
        self.ctx.publish(effects)
        return {"lastRead": last_read}

    def search(self, sid: str, payload: object) -> list[dict]:
        """Messages with every word, from what the user can read now (or the one
        conversation named), newest first (docs/protocol.md §9.4)."""
        conn = self.identity.conn(sid)
        query = payloads.parse_search(payload)
        if query.conversation is not None:
            keys = [self.readable(conn.user, query.conversation)]
        else:
            keys = self.ctx.store_call(self.ctx.store.readable_conversations, conn.user.id)
        found = self.ctx.store_call(self.ctx.store.search, query.words, keys, query.before,
                                    query.limit)
        return [m.to_wire() for m in found]
