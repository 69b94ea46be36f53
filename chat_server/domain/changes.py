"""Messages that change: `editMessage`, `deleteMessage`, `react` (docs/protocol.md §8).

A change is checked here for what the domain knows (the payload, who may read the
conversation, the room's owner), then goes through the group commit like a message: the
store checks it against the message's state in the same transaction, gives it the next
id of the one sequence, and it is delivered as `update` in id order, by the same
distribution, to the same audience a `reply` would reach.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import payloads
from .context import Context
from .errors import Forbidden, NotFound
from .identity import Identity
from .models import NewChange, User
from .presence import Connection
from .reading import Reading
from .sending import MessageHead, Sending, Turn
from .validation import fold

if TYPE_CHECKING:
    from .moderation import Moderation


class Changes:
    def __init__(self, ctx: Context, identity: Identity, reading: Reading,
                 sending: Sending, moderation: Moderation | None = None) -> None:
        self.ctx = ctx
        self.moderation = moderation  # who may delete others' messages (§10)
        self.identity = identity
        self.reading = reading
        self.sending = sending

    def edit(self, sid: str, payload: object, turn: Turn | None = None) -> dict[str, Any]:
        conn = self.identity.conn(sid)
        request = payloads.parse_edit(payload, self.ctx.config.max_text_length)
        mentioned: list[User] = []
        if "@" in request.text:  # whom it mentions depends on the conversation
            conv_key, _, _ = self._readable(conn, request.message_id)
            mentioned = self.sending.mentions(conv_key, request.text)
            check = False
        else:
            check = self._left_to_the_commit(conn, request.message_id)
        return self._submit(conn, turn, NewChange(
            request.message_id, "edit", conn.user.id, conn.user.name, sid, self.ctx.now_ms(),
            text=request.text, mentions=[user.name for user in mentioned],
            mention_ids=[user.id for user in mentioned if user.id != conn.user.id],
            check_readable=check))

    def delete(self, sid: str, payload: object, turn: Turn | None = None) -> dict[str, Any]:
        conn = self.identity.conn(sid)
        request = payloads.parse_delete(payload)
        # A server admin removes any message, in rooms it is not in and in others'
        # direct conversations too (docs/protocol.md §10.4, §10.6).
        admin = self.moderation is not None and self.moderation.is_admin(conn.user)
        head = self._readable(conn, request.message_id, anywhere=admin)
        return self._submit(conn, turn, NewChange(
            request.message_id, "delete", conn.user.id, conn.user.name, sid,
            self.ctx.now_ms(), may_delete_any=self._moderates(conn, head)))

    def react(self, sid: str, payload: object, turn: Turn | None = None) -> dict[str, Any]:
        conn = self.identity.conn(sid)
        request = payloads.parse_react(payload)
        check = self._left_to_the_commit(conn, request.message_id)
        return self._submit(conn, turn, NewChange(
            request.message_id, "react" if request.on else "unreact", conn.user.id,
            conn.user.name, sid, self.ctx.now_ms(), emoji=request.emoji,
            check_readable=check))

    def _left_to_the_commit(self, conn: Connection, message_id: int) -> bool:
        """Whether the commit must check that this user may read the message's
        conversation: when this node does not keep the message's head. Asking the store
        for it first took a turn of the store's lane between two commits, and made an
        edit of an older message cost half again as much as one of a recent message.
        A kept head is checked here, as `_readable` does."""
        if self.sending.known_head(message_id) is None:
            return True
        self._readable(conn, message_id)
        return False

    def _readable(self, conn: Connection, message_id: int,
                  anywhere: bool = False) -> MessageHead:
        """The message's head, if this user may read its conversation (or `anywhere`: an
        admin deleting); otherwise it is not found (whether it exists is not told to
        someone who may not read it)."""
        head = self.sending.message_head(message_id)
        if head is None:
            raise NotFound("No such message.")
        if anywhere:
            return head
        try:
            self.reading.readable(conn.user, head[0])
        except (NotFound, Forbidden):
            raise NotFound("No such message.") from None
        return head

    def _moderates(self, conn: Connection, head: MessageHead) -> bool:
        """Whether the user may delete someone else's message there: in a room its owner
        and moderators, anywhere a server admin (`authorization`, §10). One's own message
        needs no one's leave (nor a store call to find out)."""
        conv_key, author_id, author_name = head
        if author_id == conn.user.id:
            return False
        room = None
        if conv_key.startswith("#"):
            room = self.ctx.store_call(self.ctx.store.room_by_key, conv_key)
        if self.moderation is None:
            return room is not None and room.owner is not None and \
                fold(room.owner) == conn.user.key
        author = self.ctx.store_call(self.ctx.store.user_by_key, fold(author_name))
        return self.moderation.may("deleteMessage", conn.user, author, room)

    def _submit(self, conn: Connection, turn: Turn | None, item: NewChange) -> dict[str, Any]:
        update, _ = self.sending.submit(item, turn)
        return {} if update is None else {"update": update.to_wire()}
