"""The store's engine, transactions and life-cycle, shared by its parts."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple, overload

import sqlalchemy as sa
from sqlalchemy import event, exc

from ..domain.errors import Unavailable
from ..domain.models import Message, NewMessage, Room, User
from ..schema import MESSAGE_LOCK, migrate, sqlite_pragmas

logger = logging.getLogger(__name__)

TOKEN_USE_NOTED_EVERY_MS = 3_600_000  # a session's `used_at` is rewritten at most hourly


# (user id, clientId): a message's retry key. (conversation key, user id): a DM member.
ClientKey = tuple[int, "str | None"]
DmMember = tuple[str, "int | None"]


def now_ms() -> int:
    return int(time.time() * 1000)


def message_of(row: sa.Row, reactions: list[dict[str, Any]] | None = None) -> Message:
    return Message(id=row.id, conv_key=row.conv_key, conversation=row.conversation,
                   kind=row.kind, from_name=row.from_name, from_sid=row.from_sid,
                   to=row.to_name, text=row.text, ts=row.ts, reply_to=row.reply_to,
                   edited_at=row.edited_at, deleted=bool(row.deleted),
                   mentions=json.loads(row.mentions) if row.mentions else [],
                   reactions=reactions or [], target_id=row.target_id, change=row.change,
                   emoji=row.emoji)


def row_values(item: NewMessage) -> dict[str, Any]:
    return dict(conv_key=item.conv_key, conversation=item.conversation, kind=item.kind,
                from_user_id=item.from_user_id, from_name=item.from_name,
                from_sid=item.from_sid, to_name=item.to, text=item.text, ts=item.ts,
                client_id=item.client_id, reply_to=item.reply_to,
                mentions=json.dumps(item.mentions) if item.mentions else None)


def stored_message(item: NewMessage, new_id: int) -> Message:
    return Message(id=new_id, conv_key=item.conv_key, conversation=item.conversation,
                   kind=item.kind, from_name=item.from_name, from_sid=item.from_sid,
                   to=item.to, text=item.text, ts=item.ts, reply_to=item.reply_to,
                   mentions=list(item.mentions))


@overload
def user_of(row: sa.Row) -> User: ...
@overload
def user_of(row: sa.Row | None) -> User | None: ...
def user_of(row: sa.Row | None) -> User | None:
    if row is None:
        return None
    return User(id=row.id, name=row.name, key=row.key, guest=row.guest,
                password_hash=row.password_hash, bot=bool(getattr(row, "bot", False)))


def inserted_id(result: sa.CursorResult) -> int:
    """The primary key a single-row INSERT generated."""
    key = result.inserted_primary_key
    assert key is not None  # None only when no row was inserted
    return key[0]



class StoreBase:
    """Engine and transactions. Errors of the database surface as `Unavailable`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._known_dms: set[DmMember] = set()  # pairs known to be in dm_members
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            # One connection, used by one OS thread at a time (the lane serialises calls).
            self.engine = sa.create_engine(
                url, poolclass=sa.pool.StaticPool,
                connect_args={"check_same_thread": False, "timeout": 5},
            )
            event.listen(self.engine, "connect", sqlite_pragmas)
        else:
            # psycopg2, because eventlet's monkey-patching makes it cooperative; a plain
            # postgresql:// would pick psycopg 3 on SQLAlchemy 2.1, which would block the hub.
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+psycopg2://" + url.split("://", 1)[1]
            # A locked table or a stuck query fails after a bound, as SQLite's busy timeout.
            self.engine = sa.create_engine(
                url, pool_pre_ping=True, pool_size=10, max_overflow=20,
                connect_args={"options": "-c lock_timeout=5000 -c statement_timeout=15000",
                              "connect_timeout": 5})

    # -- life-cycle -------------------------------------------------------------------

    def create_schema(self) -> None:
        """Create or upgrade the schema (`schema.migrate`, Alembic)."""
        with self._tx() as conn:
            if not self.is_sqlite:  # nodes starting together must not race to migrate
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MESSAGE_LOCK + 1)))
            migrate(conn)

    def ping(self) -> bool:
        with self._tx() as conn:
            conn.execute(sa.select(1))
        return True

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[sa.Connection]:
        """`engine.begin()` that turns database failures into the domain's `Unavailable`.

        Integrity errors pass through: they are answers (a name or room already exists).
        """
        try:
            with self.engine.begin() as conn:
                yield conn
        except exc.IntegrityError:
            raise
        except exc.SQLAlchemyError as error:
            logger.error("store unavailable: %s", str(error).splitlines()[0])
            raise Unavailable() from error



class ConversationState(NamedTuple):
    """One conversation in `welcome` (docs/protocol.md §1.7, §9.2)."""

    name: str
    newest: int | None  # the newest message's id
    last_read: int | None
    unread: int
    mentions: int


class Snapshot:
    __slots__ = ("blocked", "conversations", "replay", "rooms")

    def __init__(self, rooms: list[Room], conversations: list[ConversationState],
                 replay: list[Message], blocked: list[str] | None = None) -> None:
        self.rooms, self.conversations, self.replay = rooms, conversations, replay
        self.blocked = blocked or []  # the names this user blocks (§10.5)


class RoomChange:
    """What removing a member did to a room."""

    __slots__ = ("deleted", "new_owner", "room")

    def __init__(self, room: Room, deleted: bool, new_owner: str | None) -> None:
        self.room, self.deleted, self.new_owner = room, deleted, new_owner


