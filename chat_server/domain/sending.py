"""Sending: `message` and `sendMessage`, from the rate limit to the store to delivery."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple, Protocol

from . import validation
from .context import Context
from .effects import Emit, targets_of
from .errors import ChatError, Forbidden, NotFound, RateLimited
from .identity import Identity
from .models import Message, NewChange, NewMessage, User
from .ports import Distribution, GroupCommit, LimiterPort, OneByOne, Publish, Submitter
from .presence import Connection
from .rooms import Rooms
from .validation import Send

if TYPE_CHECKING:
    from .moderation import Moderation

# Per item of a batch: the stored message or change (None: a change that changed nothing)
# and whether it was a retry's original; or the ChatError that refused a change.
Committed = tuple["Message | None", bool] | ChatError


class Destination(NamedTuple):
    conv_key: str
    conversation: str
    kind: str  # broadcast | room | direct
    to: str | None
    to_user_id: int | None = None
    # Moderation's checks, made by the store in the commit's own transaction, so a send
    # costs no store call before it (docs/protocol.md §10.2, §10.5): the room whose mutes
    # apply, and whether the recipient's blocks do.
    mute_room_id: int | None = None
    check_blocks: bool = False


Item = NewMessage | NewChange
# What never changes of a stored message: its conversation, its author's id and name.
MessageHead = tuple[str, int, str]


class Signal(Protocol):
    """A one-shot event (`runtime.Event` in the server, `threading.Event` in tests)."""

    def set(self) -> None: ...
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


class Turn:
    """One send's place in its connection's line: `wait` until the send before it was
    handed to the store, then `done` once this one was (or failed)."""

    def __init__(self, line: SendOrder, sid: str, before: Signal | None, mine: Signal) -> None:
        self.line, self.sid, self.before, self.mine = line, sid, before, mine

    def wait(self) -> None:
        if self.before is not None:
            self.before.wait(self.line.patience)

    def done(self) -> None:
        if not self.mine.is_set():
            self.mine.set()
            if self.line.last.get(self.sid) is self.mine:
                del self.line.last[self.sid]


class SendOrder:
    """A connection's sends are stored in the order it sent them (docs/protocol.md §4,
    §11), however long each one's checks take: each waits for the one before it to be
    queued for the store (not committed: one batch may hold them all).

    The transport takes a turn when an event arrives, before anything can yield, because
    the handlers of pipelined events run concurrently and may resume in any order.
    """

    def __init__(self, signal: Callable[[], Signal] = threading.Event,
                 patience: float = 30.0) -> None:
        self.signal = signal
        self.patience = patience  # seconds a send waits for the one before it, at most
        self.last: dict[str, Signal] = {}  # sid -> the newest send's signal

    def take(self, sid: str) -> Turn:
        before, mine = self.last.get(sid), self.signal()
        self.last[sid] = mine
        return Turn(self, sid, before, mine)


class LocalDistribution:
    """One node: each batch is delivered as it is committed, in id order, a group of
    messages per turn of the event loop (a client going live meanwhile is held, see
    `live.GoingLive`)."""

    # A batch of 500 broadcasts to 1,000 clients at once would hold the loop for half a
    # second.
    DELIVER_AT_ONCE = 16

    def __init__(self, publish: Publish, pause: Callable[[], None] = lambda: None) -> None:
        self.publish = publish
        self.pause = pause  # lets other work run (the event loop) before going on

    def start(self, newest: int) -> None:
        pass  # nothing to remember: each batch is delivered whole, in order

    def committed(self, messages: list[Message]) -> None:
        for start in range(0, len(messages), self.DELIVER_AT_ONCE):
            if start:
                self.pause()
            group = messages[start:start + self.DELIVER_AT_ONCE]
            self.publish([Emit(m.event, m.to_wire(), targets_of(m.conv_key)) for m in group])


class Sending:
    # What a change (or a reply) may need to know of its message before the group commit:
    # its conversation and author. A store call for it took a turn of the store's one
    # lane between two commits, so each change became a commit (and an fsync) of its own:
    # 8-10x fewer changes than sends per second. Now the heads of the messages committed
    # here lately are kept (newest HEADS); for the others, an edit without @names and a
    # reaction leave the check to the commit (`Changes`), and what still needs the head
    # first (a reply, an edit that mentions, a deletion) looks it up with the others
    # waiting meanwhile: one batch, one statement, like the commits.
    HEADS = 10_000

    def __init__(self, ctx: Context, identity: Identity, rooms: Rooms, limiter: LimiterPort,
                 group_commit: GroupCommit = OneByOne,
                 on_accepted: Callable[[Message], None] = lambda message: None,
                 signal: Callable[[], Signal] = threading.Event,
                 distribution: Distribution | None = None,
                 pause: Callable[[], None] = lambda: None,
                 moderation: Moderation | None = None) -> None:
        self.ctx = ctx
        self.moderation = moderation  # mutes and blocks (§10); None: v1 rules
        self.identity = identity
        self.rooms = rooms
        self.limiter = limiter
        self.on_accepted = on_accepted  # metrics
        self.distribution = distribution or LocalDistribution(ctx.publish, pause)
        self._commits: Submitter[Item, Committed] = group_commit(self.commit_batch)
        self.order = SendOrder(signal)
        self._heads: OrderedDict[int, MessageHead] = OrderedDict()
        self._head_lookups: Submitter[int, MessageHead | None] = group_commit(
            self._look_up_heads)

    def send_lobby(self, sid: str, payload: object, turn: Turn | None = None) -> Message:
        """`message`: to everyone. Returns the stored MESSAGE (the original, for a retry).
        `turn`: this send's place among the connection's sends (`order.take`)."""
        conn = self.identity.conn(sid)
        return self.send_as(conn, self.parse(conn, validation.parse_message, payload), turn)

    def send_message(self, sid: str, payload: object, turn: Turn | None = None) -> Message:
        """`sendMessage`: to a room the sender is in, or directly to a user."""
        conn = self.identity.conn(sid)
        return self.send_as(conn, self.parse(conn, validation.parse_send_message, payload),
                            turn)

    def send_as(self, conn: Connection, send: Send, turn: Turn | None = None,
                sids: bool = True) -> Message:
        """Send as `conn`, which may also be a bot's HTTP identity (`bots.py`): to the
        lobby (no `dest`), a room, or a user (by an online sid too, unless not `sids`)."""

        moderated = self.moderation is not None

        def destination() -> Destination:
            if send.dest is None:
                return Destination("lobby", "lobby", "broadcast", None)
            if send.dest.startswith("#"):
                room = self.rooms.member_room(conn.user, send.dest)
                return Destination(room.key, room.name, "room", room.name,
                                   mute_room_id=room.id if moderated else None)
            peer = (self.identity.peer(send.dest) if sids
                    else self.identity.peer_by_name(send.dest))
            conv = validation.dm_key(conn.user.name, peer.name)
            return Destination(conv, conv, "direct", peer.name, peer.id,
                               check_blocks=moderated and peer.id != conn.user.id)

        return self._send(conn, send, destination, turn)

    def parse(self, conn: Connection, parse: Callable[[object, int], Send],
              payload: object) -> Send:
        """Every attempt counts, a malformed one too (it has no clientId one could trust)."""
        try:
            return parse(payload, self.ctx.config.max_text_length)
        except ChatError:
            self._charge(conn)  # over the limit, it is `rate_limited` like any other
            raise

    def _send(self, conn: Connection, send: Send, destination: Callable[[], Destination],
              turn: Turn | None = None) -> Message:
        """Charge the rate limit, find the destination, store and deliver.

        A retry of a clientId this user already had accepted gets its original MESSAGE,
        not counted: on the way in, the store finds it and the token is given back; and
        when the send fails first, over the limit or because its destination is gone (the
        DM peer's sid went offline, the sender left the room), one store lookup tells a
        retry from a new send. A fresh send pays for no lookup.
        """
        try:
            self._charge(conn)
            where = destination()
        except (RateLimited, NotFound, Forbidden) as error:
            if send.client_id is None:
                raise
            original = self.ctx.store_call(self.ctx.store.message_by_client_id,
                                           conn.user.id, send.client_id)
            if original is None:
                raise
            if not isinstance(error, RateLimited):
                self._refund(conn)
            return original
        conv_key = where.conv_key
        if send.reply_to is not None:
            answered = self.message_head(send.reply_to)
            if answered is None or answered[0] != conv_key:
                raise NotFound("The message replied to is not in this conversation.")
        mentioned = self.mentions(conv_key, send.text)
        item = NewMessage(
            conv_key=conv_key, conversation=where.conversation, kind=where.kind,
            from_user_id=conn.user.id, from_name=conn.user.name, from_sid=conn.sid,
            to=where.to, to_user_id=where.to_user_id, text=send.text, ts=self.ctx.now_ms(),
            client_id=send.client_id, reply_to=send.reply_to,
            mentions=[user.name for user in mentioned],
            # The rows counting unread mentions (§9.2): never of one's own message.
            mention_ids=[user.id for user in mentioned if user.id != conn.user.id],
            mute_room_id=where.mute_room_id, check_blocks=where.check_blocks)
        message, duplicate = self.submit(item, turn)
        if duplicate:
            self._refund(conn)
        assert message is not None  # a new message is always stored (or its original)
        return message

    def submit(self, item: Item, turn: Turn | None = None) -> tuple[Message | None, bool]:
        """Hand a new message or change to the group commit, in its connection's turn."""
        if turn is not None:
            turn.wait()
        result = self._commits.submit(item, turn.done if turn else None)
        if isinstance(result, ChatError):
            raise result
        return result

    def known_head(self, message_id: int) -> MessageHead | None:
        """The message's head if this node keeps it (no store call), else None."""
        return self._heads.get(message_id)

    def message_head(self, message_id: int) -> MessageHead | None:
        """A message's conversation and author (None: no such message, or a change's id):
        from the messages committed here lately, else from the store. The message may
        have been deleted since, or its room closed: the commit checks its state."""
        head = self._heads.get(message_id)
        if head is None:
            head = self._head_lookups.submit(message_id)
            if head is not None:
                self._remember(message_id, head)
        return head

    def _look_up_heads(self, ids: list[int]) -> list[MessageHead | None]:
        found = self.ctx.store_call(self.ctx.store.message_heads, list(set(ids)))
        return [found.get(message_id) for message_id in ids]

    def _remember(self, message_id: int, head: MessageHead) -> None:
        self._heads[message_id] = head
        if len(self._heads) > self.HEADS:
            self._heads.popitem(last=False)

    def mentions(self, conv_key: str, text: str) -> list[User]:
        """Who `@name` in `text` mentions: users that exist and can read the conversation
        (docs/protocol.md §9.3). A text without "@" costs nothing."""
        if "@" not in text:
            return []
        # Once per user: `@Bob @bob` is one mention (two would break the batch's commit).
        keys = list(dict.fromkeys(validation.fold(name)
                                  for name in validation.mentioned_names(text)))
        if not keys:
            return []
        if conv_key.startswith("dm:"):
            # A DM is read by the two users its key names: known before its first message
            # has recorded them as its members (the store's DM members would miss both).
            found = {user.key: user for user in self.ctx.store_call(
                self.ctx.store.mention_candidates, "lobby", keys)
                if validation.is_dm_key_of(conv_key, user.name)}
        else:
            found = {user.key: user for user in self.ctx.store_call(
                self.ctx.store.mention_candidates, conv_key, keys)}
        return [found[key] for key in keys if key in found]

    def _charge(self, conn: Connection) -> None:
        """Take a token from the connection's and the user's buckets, or refuse the send."""
        if not self.limiter.acquire(("sid", conn.sid), ("user", conn.user.key)):
            raise RateLimited()

    def _refund(self, conn: Connection) -> None:
        self.limiter.refund(("sid", conn.sid), ("user", conn.user.key))

    def commit_batch(self, items: list[Item]) -> list[Committed]:
        """Store a batch of messages and changes in one transaction, then hand what is
        new, in id order, to the distribution that delivers it."""
        results = self.ctx.store_call(self.ctx.store.insert_messages, items)
        for item, result in zip(items, results, strict=True):
            if isinstance(item, NewMessage) and isinstance(result, tuple) and result[0]:
                self._remember(result[0].id, (item.conv_key, item.from_user_id,
                                              item.from_name))
        fresh = [result[0] for result in results
                 if isinstance(result, tuple) and result[0] is not None and not result[1]]
        if fresh:
            self.distribution.committed(fresh)
        for message in fresh:
            self.on_accepted(message)
        return results
