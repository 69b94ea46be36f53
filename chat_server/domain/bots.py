"""Bots (docs/protocol.md §12): accounts made by an operator, and what a bot does over
HTTP, without a Socket.IO connection.

A bot is a user with `bot` set. Over HTTP it acts through a `Connection` made for the
request and never added to the presence: nobody sees it come online, and its sends,
joins and reads go through `Sending`, `Rooms` and `Reading` exactly as a connection's
do (validation, rate limits, idempotency, the group commit, delivery in id order). Its
buckets are keyed by `http:<user id>` in place of a sid, and by its name as a user's
are, so its Socket.IO tabs and its HTTP requests share the user's budget.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import names, security, validation
from .budgets import Budgets
from .context import Context
from .errors import BadToken, Forbidden, InvalidPayload
from .models import User
from .presence import Connection
from .validation import Send, fold

if TYPE_CHECKING:
    from ..store import Store
    from .reading import Reading
    from .rooms import Rooms
    from .sending import Sending

TOKEN_MAX = 200  # as `auth.token` (§1.1)
API_SID_PREFIX = "http:"  # the `fromSid` of what a bot sends over HTTP


@dataclass(frozen=True)
class NewBot:
    user: User
    token: str  # shown once; the store keeps its hash


def add_bot(store: Store, name: str, now: int) -> NewBot:
    """`bot add NAME`: the name rules of a new registration (§1.3), `NameTaken` if it
    exists or looks like a registered name."""
    validation.check_new_user_name(name)
    token = security.new_token()
    user = store.create_bot(name, fold(name), security.hash_token(token),
                            names.skeleton(name), now)
    return NewBot(user, token)


def find_bot(store: Store, name: str) -> User | None:
    user = store.user_by_key(fold(name)) if validation.valid_user_name(name) else None
    return user if user is not None and user.bot else None


def parse_post(payload: object, max_length: int) -> Send:
    """`POST /api/v1/messages {to, text, clientId?, replyTo?}`: `to` is `lobby`, a
    `#room` or a user name; the rest as `message`'s payload (§2.3)."""
    if not isinstance(payload, dict):
        raise InvalidPayload("The body must be a JSON object.")
    to = payload.get("to")
    if not isinstance(to, str) or not 1 <= len(to) <= 64:
        raise InvalidPayload("'to' must be 'lobby', a '#room' or a user name.")
    send = validation.parse_message(
        {"text": payload.get("text"), "clientId": payload.get("clientId"),
         "replyTo": payload.get("replyTo")}, max_length)
    if to == "lobby":
        return send
    if not to.startswith("#") and not validation.valid_user_name(to):
        raise InvalidPayload("'to' must be 'lobby', a '#room' or a user name.")
    return Send(send.text, send.client_id, to, send.reply_to)


class Bots:
    """What the HTTP API (`chat_server/api.py`) asks of the domain."""

    def __init__(self, ctx: Context, budgets: Budgets, sending: Sending, rooms: Rooms,
                 reading: Reading) -> None:
        self.ctx = ctx
        self.budgets = budgets
        self.sending = sending
        self.rooms = rooms
        self.reading = reading

    def authenticate(self, token: str | None, address: str) -> Connection:
        """The bot whose token this is, as a connection of this request alone; `BadToken`
        for no token, an unknown one or a user's that is not a bot's, `Forbidden` for a
        bot banned from the server. Every request is charged to the event budget."""
        if not token or len(token) > TOKEN_MAX:
            raise BadToken("Send 'Authorization: Bearer <token>' with a bot's token.")
        now = self.ctx.now_ms()
        used_since = now - int(self.ctx.config.token_ttl * 86_400_000)  # bots: ignored
        user = self.ctx.store_call(self.ctx.store.user_by_token,
                                   security.hash_token(token), used_since, now)
        if user is None or not user.bot:
            raise BadToken("That token is not a bot's token.")
        if self.ctx.store_call(self.ctx.store.user_banned, user.id):
            raise Forbidden("This bot is banned from the server.")
        conn = Connection(API_SID_PREFIX + str(user.id), user, token, time.monotonic(),
                          "http", address)
        self.budgets.charge_event(conn)
        return conn

    def send(self, conn: Connection, payload: object) -> dict[str, Any]:
        """`POST /api/v1/messages`: the stored MESSAGE (the original, for a retry)."""
        send = self.sending.parse(conn, parse_post, payload)
        return self.sending.send_as(conn, send, sids=False).to_wire()

    def join(self, conn: Connection, payload: object) -> dict[str, Any]:
        """`POST /api/v1/rooms/join`: joinRoom's answer, `{room, members, history}`."""
        return self.rooms.join_room_as(conn, payload)

    def history(self, conn: Connection, query: dict[str, Any]) -> list[dict[str, Any]]:
        """`GET /api/v1/messages`: as `history` (§2.5), oldest first."""
        return self.reading.history_as(conn, query)
