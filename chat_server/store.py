"""Durable storage behind a narrow interface: SQLAlchemy Core, one code path for SQLite and
PostgreSQL.

Every method is blocking and must run off the event loop (see `runtime.Lane`). Each
method is one transaction, so a caller never sees half of a change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast, overload

import sqlalchemy as sa
from sqlalchemy import event, exc

from .domain.errors import NameTaken, NotFound, Unavailable
from .domain.models import Message, NewMessage, Room, User
from .schema import (
    MESSAGE_LOCK,
    SCHEMA_VERSION,
    dm_members,
    memberships,
    messages,
    meta,
    metadata,
    rename_dm_keys,
    rooms,
    sessions,
    sqlite_pragmas,
    upgrade_to_3,
    users,
)

logger = logging.getLogger(__name__)

TOKEN_USE_NOTED_EVERY_MS = 3_600_000  # a session's `used_at` is rewritten at most hourly


# (user id, clientId): a message's retry key. (conversation key, user id): a DM member.
ClientKey = tuple[int, "str | None"]
DmMember = tuple[str, "int | None"]


def now_ms() -> int:
    return int(time.time() * 1000)


def _message(row: sa.Row) -> Message:
    return Message(id=row.id, conv_key=row.conv_key, conversation=row.conversation,
                   kind=row.kind, from_name=row.from_name, from_sid=row.from_sid,
                   to=row.to_name, text=row.text, ts=row.ts)


def _row_values(item: NewMessage) -> dict[str, Any]:
    return dict(conv_key=item.conv_key, conversation=item.conversation, kind=item.kind,
                from_user_id=item.from_user_id, from_name=item.from_name,
                from_sid=item.from_sid, to_name=item.to, text=item.text, ts=item.ts,
                client_id=item.client_id)


def _new_message(item: NewMessage, new_id: int) -> Message:
    return Message(id=new_id, conv_key=item.conv_key, conversation=item.conversation,
                   kind=item.kind, from_name=item.from_name, from_sid=item.from_sid,
                   to=item.to, text=item.text, ts=item.ts)


@overload
def _user(row: sa.Row) -> User: ...
@overload
def _user(row: sa.Row | None) -> User | None: ...
def _user(row: sa.Row | None) -> User | None:
    if row is None:
        return None
    return User(id=row.id, name=row.name, key=row.key, guest=row.guest,
                password_hash=row.password_hash)


def _inserted_id(result: sa.CursorResult) -> int:
    """The primary key a single-row INSERT generated."""
    key = result.inserted_primary_key
    assert key is not None  # None only when no row was inserted
    return key[0]


class Store:
    """The chat's durable state. Errors of the database surface as `Unavailable`."""

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
        with self._tx() as conn:
            if not self.is_sqlite:  # nodes starting together must not race to create tables
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MESSAGE_LOCK + 1)))
            metadata.create_all(conn)
            version = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema")).scalar()
            if version is None:
                conn.execute(meta.insert().values(key="schema", value=str(SCHEMA_VERSION)))
            elif int(version) > SCHEMA_VERSION:
                raise RuntimeError(f"database schema {version} is newer than this server")
            elif int(version) < SCHEMA_VERSION:
                if int(version) < 2:
                    logger.info("schema 1 -> 2: %d direct conversations renamed",
                                rename_dm_keys(conn))
                if int(version) < 3:
                    logger.info("schema 2 -> 3: %d gone guests deleted", upgrade_to_3(conn))
                conn.execute(meta.update().where(meta.c.key == "schema")
                             .values(value=str(SCHEMA_VERSION)))

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

    # -- users and sessions ----------------------------------------------------------

    def user_by_key(self, key: str) -> User | None:
        with self._tx() as conn:
            return _user(conn.execute(sa.select(users).where(users.c.key == key)).first())

    def user_by_token(self, token_hash: str, used_since: int, now: int) -> User | None:
        """The user of a session token used (or made) since `used_since` (ms); an older
        token has expired and is deleted. A use at `now` is noted at most once an hour."""
        with self._tx() as conn:
            row = conn.execute(
                sa.select(users, sessions.c.used_at)
                .join(sessions, sessions.c.user_id == users.c.id)
                .where(sessions.c.token_hash == token_hash)).first()
            if row is None:
                return None
            used_at = row.used_at if row.used_at is not None else 0
            if used_at < used_since:
                conn.execute(sessions.delete().where(sessions.c.token_hash == token_hash))
                return None
            if now - used_at > TOKEN_USE_NOTED_EVERY_MS:
                conn.execute(sessions.update().where(sessions.c.token_hash == token_hash)
                             .values(used_at=now))
            return _user(row)

    def create_user(self, name: str, key: str, guest: bool, token_hash: str,
                    password_hash: str | None = None, skeleton: str | None = None,
                    now: int | None = None) -> User:
        """Register a name with its first session; `NameTaken` if the key exists, or if
        another name has the same confusable `skeleton`."""
        try:
            with self._tx() as conn:
                if skeleton is not None and conn.execute(
                        sa.select(users.c.id).where(users.c.skeleton == skeleton,
                                                    users.c.key != key).limit(1)).first():
                    raise NameTaken("That name looks like one already taken.")
                user_id = _inserted_id(conn.execute(users.insert().values(
                    name=name, key=key, guest=guest, gone=False, password_hash=password_hash,
                    created_at=now_ms(), skeleton=skeleton)))
                self._add_session(conn, user_id, token_hash, now)
        except exc.IntegrityError:
            raise NameTaken() from None
        return User(id=user_id, name=name, key=key, guest=guest, password_hash=password_hash)

    def add_session(self, user_id: int, token_hash: str, now: int | None = None) -> None:
        with self._tx() as conn:
            self._add_session(conn, user_id, token_hash, now)

    @staticmethod
    def _add_session(conn: sa.Connection, user_id: int, token_hash: str,
                     now: int | None) -> None:
        """A new session token, its use noted `now` (ms; the domain's clock)."""
        now = now_ms() if now is None else now
        conn.execute(sessions.insert().values(token_hash=token_hash, user_id=user_id,
                                              created_at=now, used_at=now))

    def revoke_session(self, token_hash: str) -> None:
        with self._tx() as conn:
            conn.execute(sessions.delete().where(sessions.c.token_hash == token_hash))

    def revoke_sessions(self, user_id: int) -> None:
        """Every token of the user (signing out everywhere)."""
        with self._tx() as conn:
            conn.execute(sessions.delete().where(sessions.c.user_id == user_id))

    def retire_guest(self, user_id: int) -> list[RoomChange]:
        """A guest is gone: it leaves its rooms, and nothing of it stays but the messages
        it sent (under its name; their clientIds are dropped, since a later user could be
        given the same id on SQLite). Its random name is never drawn again.

        Returns what happened to each of its rooms, as `remove_member` does.
        """
        with self._tx() as conn:
            room_ids = conn.execute(sa.select(memberships.c.room_id)
                                    .where(memberships.c.user_id == user_id)).scalars().all()
            changes = [self._remove_member(conn, room_id, user_id) for room_id in room_ids]
            conn.execute(messages.update().where(messages.c.from_user_id == user_id,
                                                 messages.c.client_id.is_not(None))
                         .values(client_id=None))
            conn.execute(rooms.update().where(rooms.c.owner_id == user_id)
                         .values(owner_id=None))
            conn.execute(dm_members.delete().where(dm_members.c.user_id == user_id))
            conn.execute(sessions.delete().where(sessions.c.user_id == user_id))
            conn.execute(users.delete().where(users.c.id == user_id))
        self._known_dms = {pair for pair in self._known_dms if pair[1] != user_id}
        return changes

    def retire_all_guests(self) -> int:
        """At start no guest is connected, so every guest still on record is gone."""
        with self._tx() as conn:
            ids = conn.execute(sa.select(users.c.id).where(users.c.guest.is_(True))
                               ).scalars().all()
        for user_id in ids:
            self.retire_guest(user_id)
        return len(ids)

    # -- rooms -------------------------------------------------------------------------

    def _room_query(self) -> sa.Select:
        count = (sa.select(sa.func.count()).where(memberships.c.room_id == rooms.c.id)
                 .scalar_subquery())
        return (sa.select(rooms, users.c.name.label("owner_name"), count.label("member_count"))
                .outerjoin(users, users.c.id == rooms.c.owner_id))

    @overload
    @staticmethod
    def _room(row: sa.Row) -> Room: ...
    @overload
    @staticmethod
    def _room(row: sa.Row | None) -> Room | None: ...
    @staticmethod
    def _room(row: sa.Row | None) -> Room | None:
        if row is None:
            return None
        return Room(id=row.id, name=row.name, key=row.key, owner=row.owner_name,
                    private=row.password_hash is not None, members=row.member_count,
                    password_hash=row.password_hash)

    def room_by_key(self, key: str) -> Room | None:
        with self._tx() as conn:
            return self._room(conn.execute(self._room_query().where(rooms.c.key == key)).first())

    def create_room(self, name: str, key: str, owner_id: int,
                    password_hash: str | None) -> Room | None:
        """Create a room with its owner as first member; None if the key already exists."""
        try:
            with self._tx() as conn:
                room_id = _inserted_id(conn.execute(rooms.insert().values(
                    name=name, key=key, owner_id=owner_id, password_hash=password_hash,
                    created_at=now_ms())))
                conn.execute(memberships.insert().values(room_id=room_id, user_id=owner_id))
        except exc.IntegrityError:
            return None
        return self.room_by_key(key)

    def add_member(self, room_id: int, user_id: int) -> bool:
        """True if the user became a member, False if it already was one."""
        try:
            with self._tx() as conn:
                conn.execute(memberships.insert().values(room_id=room_id, user_id=user_id))
        except exc.IntegrityError:
            return False
        return True

    def room_for(self, key: str, user_id: int) -> tuple[Room | None, bool]:
        """The room and whether the user is a member, in one round trip: `(Room, bool)`,
        or `(None, False)` when there is no such room."""
        member = (sa.select(memberships.c.id).where(memberships.c.room_id == rooms.c.id,
                                                    memberships.c.user_id == user_id)
                  .exists())
        with self._tx() as conn:
            row = conn.execute(self._room_query().add_columns(member.label("is_member"))
                               .where(rooms.c.key == key)).first()
        return (self._room(row), bool(row.is_member)) if row is not None else (None, False)

    def is_member(self, room_id: int, user_id: int) -> bool:
        with self._tx() as conn:
            return conn.execute(sa.select(memberships.c.id).where(
                memberships.c.room_id == room_id, memberships.c.user_id == user_id)
            ).first() is not None

    def remove_member(self, room_id: int, user_id: int) -> RoomChange:
        with self._tx() as conn:
            return self._remove_member(conn, room_id, user_id)

    def _remove_member(self, conn: sa.Connection, room_id: int, user_id: int) -> RoomChange:
        """Returns a RoomChange: the room, whether it was deleted, and its new owner."""
        room = self._room(conn.execute(self._room_query().where(rooms.c.id == room_id)).first())
        if room is None:  # closed since the caller found it (a leave racing a close)
            raise NotFound("The room was closed meanwhile.")
        owner_id = conn.execute(sa.select(rooms.c.owner_id).where(rooms.c.id == room_id)).scalar()
        conn.execute(memberships.delete().where(
            memberships.c.room_id == room_id, memberships.c.user_id == user_id))
        heir = conn.execute(
            sa.select(users.c.id, users.c.name)
            .join(memberships, memberships.c.user_id == users.c.id)
            .where(memberships.c.room_id == room_id).order_by(memberships.c.id).limit(1)).first()
        if heir is None:
            self._delete_room(conn, room)
            return RoomChange(room, deleted=True, new_owner=None)
        new_owner = None
        if owner_id is None or owner_id == user_id:
            conn.execute(rooms.update().where(rooms.c.id == room_id).values(owner_id=heir.id))
            new_owner = heir.name
        return RoomChange(room, deleted=False, new_owner=new_owner)

    def delete_room(self, room_id: int) -> None:
        with self._tx() as conn:
            room = self._room(conn.execute(self._room_query().where(rooms.c.id == room_id)).first())
            if room is not None:
                self._delete_room(conn, room)

    @staticmethod
    def _delete_room(conn: sa.Connection, room: Room) -> None:
        conn.execute(memberships.delete().where(memberships.c.room_id == room.id))
        conn.execute(messages.delete().where(messages.c.conv_key == room.key))
        conn.execute(rooms.delete().where(rooms.c.id == room.id))

    def rooms_of(self, user_id: int) -> list[Room]:
        with self._tx() as conn:
            member = sa.select(memberships.c.room_id).where(memberships.c.user_id == user_id)
            rows = conn.execute(self._room_query().where(rooms.c.id.in_(member))
                                .order_by(rooms.c.key)).all()
        return [self._room(r) for r in rows]

    def visible_rooms(self, user_id: int) -> list[Room]:
        with self._tx() as conn:
            member = sa.select(memberships.c.room_id).where(memberships.c.user_id == user_id)
            rows = conn.execute(self._room_query().where(sa.or_(
                rooms.c.password_hash.is_(None), rooms.c.id.in_(member)))
                .order_by(rooms.c.key)).all()
        return [self._room(r) for r in rows]

    def member_names(self, room_id: int) -> Sequence[str]:
        with self._tx() as conn:
            return conn.execute(
                sa.select(users.c.name).join(memberships, memberships.c.user_id == users.c.id)
                .where(memberships.c.room_id == room_id).order_by(memberships.c.id)).scalars().all()

    # -- messages ------------------------------------------------------------------------

    def insert_messages(self, batch: list[NewMessage]) -> list[tuple[Message, bool]]:
        """Commit a batch of NewMessages in one transaction, in order.

        Returns `(Message, duplicate)` per item: a clientId the same user already used
        (before, or earlier in the same batch) yields the stored original and
        `duplicate=True`, and nothing is inserted for it. One INSERT for the whole batch:
        building a statement per row cost more than the commit.
        """
        with self._tx() as conn:
            if not self.is_sqlite:
                # Without it two nodes could commit ids 11 then 10, and a client that
                # replays "after 11" would never see 10. SQLite has one writer anyway.
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MESSAGE_LOCK)))
            originals = self._originals(conn, batch)  # (user id, client id) -> Message
            # plan: an index into `fresh`, or the key of an original
            fresh: list[NewMessage] = []
            plan: list[int | ClientKey] = []
            for item in batch:
                key = (item.from_user_id, item.client_id)
                if item.client_id is not None and key in originals:
                    plan.append(key)
                    continue
                if item.client_id is not None:
                    originals[key] = None  # a repeat later in this batch gets this one
                plan.append(len(fresh))
                fresh.append(item)
            stored: list[Message] = []
            noted: set[DmMember] = set()
            if fresh:
                ids = conn.execute(
                    messages.insert().returning(messages.c.id, sort_by_parameter_order=True),
                    [_row_values(item) for item in fresh]).scalars().all()
                stored = [_new_message(item, new_id)
                          for item, new_id in zip(fresh, ids, strict=True)]
                for item, message in zip(fresh, stored, strict=True):
                    if item.client_id is not None:
                        originals[(item.from_user_id, item.client_id)] = message
                noted = self._note_dms(conn, [item for item in fresh if item.kind == "direct"])
        self._known_dms.update(noted)  # only now: a rolled-back batch must not hide a pair
        # Every original is a Message by now: a None above was replaced once inserted.
        return [(stored[step], False) if isinstance(step, int)
                else (cast(Message, originals[step]), True) for step in plan]

    @staticmethod
    def _originals(conn: sa.Connection,
                   batch: list[NewMessage]) -> dict[ClientKey, Message | None]:
        wanted = {(item.from_user_id, item.client_id) for item in batch
                  if item.client_id is not None}
        if not wanted:
            return {}
        rows = conn.execute(sa.select(messages).where(
            messages.c.from_user_id.in_({user for user, _ in wanted}),
            messages.c.client_id.in_({client for _, client in wanted}))).all()
        return {(row.from_user_id, row.client_id): _message(row) for row in rows
                if (row.from_user_id, row.client_id) in wanted}

    def _note_dms(self, conn: sa.Connection, items: list[NewMessage]) -> set[DmMember]:
        """Record who takes part in each direct conversation (for welcome and replay).
        Returns the pairs it made sure of, for the caller to remember once committed."""
        pairs = {(item.conv_key, user_id) for item in items
                 for user_id in (item.from_user_id, item.to_user_id)} - self._known_dms
        if not pairs:
            return pairs
        existing = set(conn.execute(
            sa.select(dm_members.c.conv_key, dm_members.c.user_id)
            .where(dm_members.c.conv_key.in_({conv for conv, _ in pairs}))).all())
        missing = pairs - {tuple(row) for row in existing}
        if missing:
            conn.execute(dm_members.insert(),
                         [{"conv_key": conv, "user_id": user} for conv, user in missing])
        return pairs

    def message_by_client_id(self, user_id: int, client_id: str) -> Message | None:
        with self._tx() as conn:
            row = conn.execute(sa.select(messages).where(
                messages.c.from_user_id == user_id, messages.c.client_id == client_id)).first()
        return _message(row) if row is not None else None

    def history(self, conv_key: str, before: int | None = None, after: int | None = None,
                limit: int = 50) -> list[Message]:
        """Messages of one conversation, oldest first (docs/protocol.md §2, `history`)."""
        query = sa.select(messages).where(messages.c.conv_key == conv_key)
        if before is not None:
            query = query.where(messages.c.id < before)
        if after is not None:
            query = query.where(messages.c.id > after).order_by(messages.c.id.asc())
        else:
            query = query.order_by(messages.c.id.desc())
        with self._tx() as conn:
            rows = conn.execute(query.limit(limit)).all()
        found = [_message(r) for r in rows]
        return found if after is not None else found[::-1]

    def snapshot(self, user_id: int, after: int | None, limit: int) -> Snapshot:
        """What a connecting client is told, read in one transaction: its rooms, its
        conversations with their newest ids, and (with `after`) the messages to replay:
        up to `limit + 1` of them, so the caller can tell whether more remain."""
        member = sa.select(memberships.c.room_id).where(memberships.c.user_id == user_id)
        dms = sa.select(dm_members.c.conv_key).where(dm_members.c.user_id == user_id)
        with self._tx() as conn:
            room_rows = conn.execute(self._room_query().where(rooms.c.id.in_(member))
                                     .order_by(rooms.c.key)).all()
            member_rooms = [self._room(r) for r in room_rows]
            dm_keys = sorted(conn.execute(dms).scalars().all())
            keys = ["lobby", *(r.key for r in member_rooms), *dm_keys]
            newest = dict(conn.execute(
                sa.select(messages.c.conv_key, sa.func.max(messages.c.id))
                .where(messages.c.conv_key.in_(keys)).group_by(messages.c.conv_key)).all())
            replay = []
            if after is not None:
                replay = [_message(r) for r in conn.execute(
                    sa.select(messages).where(messages.c.id > after, sa.or_(
                        messages.c.conv_key == "lobby",
                        messages.c.conv_key.in_([r.key for r in member_rooms]),
                        messages.c.conv_key.in_(dms)))
                    .order_by(messages.c.id).limit(limit + 1)).all()]
        names = {"lobby": "lobby", **{r.key: r.name for r in member_rooms}}
        conversations = [(names.get(key, key), newest.get(key)) for key in keys]
        return Snapshot(member_rooms, conversations, replay)

    def count_rooms(self) -> int | None:
        with self._tx() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(rooms)).scalar()

    def newest_id(self) -> int | None:
        with self._tx() as conn:
            return conn.execute(sa.select(sa.func.max(messages.c.id))).scalar()


class Snapshot:
    __slots__ = ("conversations", "replay", "rooms")

    def __init__(self, rooms: list[Room], conversations: list[tuple[str, int | None]],
                 replay: list[Message]) -> None:
        self.rooms, self.conversations, self.replay = rooms, conversations, replay


class RoomChange:
    """What removing a member did to a room."""

    __slots__ = ("deleted", "new_owner", "room")

    def __init__(self, room: Room, deleted: bool, new_owner: str | None) -> None:
        self.room, self.deleted, self.new_owner = room, deleted, new_owner


