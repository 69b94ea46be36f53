"""Rooms and memberships."""

from __future__ import annotations

from collections.abc import Sequence
from typing import overload

import sqlalchemy as sa
from sqlalchemy import exc

from ..domain.errors import NotFound
from ..domain.models import Room
from ..schema import (
    memberships,
    messages,
    rooms,
    users,
)
from .base import RoomChange, StoreBase, inserted_id, now_ms


def _room_query() -> sa.Select:
    count = (sa.select(sa.func.count()).where(memberships.c.room_id == rooms.c.id)
             .scalar_subquery())
    mods = sa.alias(users)
    moderators = (sa.select(sa.func.aggregate_strings(mods.c.name, ","))
                  .join(memberships, memberships.c.user_id == mods.c.id)
                  .where(memberships.c.room_id == rooms.c.id,
                         memberships.c.role == "moderator").scalar_subquery())
    return (sa.select(rooms, users.c.name.label("owner_name"), count.label("member_count"),
                      moderators.label("moderator_names"))
            .outerjoin(users, users.c.id == rooms.c.owner_id))


# Statements built once, with bound parameters: building a query with subqueries costs
# more Python than running it (the connect path reads rooms on every connect).
ROOM_QUERY = _room_query()
ROOMS_OF = (ROOM_QUERY.where(rooms.c.id.in_(
    sa.select(memberships.c.room_id).where(memberships.c.user_id == sa.bindparam("user_id"))))
    .order_by(rooms.c.key))


class RoomStore(StoreBase):
    """Rooms, memberships and ownership."""

    @staticmethod
    def _room_query() -> sa.Select:
        return ROOM_QUERY

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
        names = row.moderator_names  # comma-joined: names hold no commas
        return Room(id=row.id, name=row.name, key=row.key, owner=row.owner_name,
                    private=row.password_hash is not None, members=row.member_count,
                    password_hash=row.password_hash,
                    moderators=tuple(sorted(names.split(","), key=str.casefold))
                    if names else ())

    def room_by_key(self, key: str) -> Room | None:
        with self._tx() as conn:
            return self._room(conn.execute(self._room_query().where(rooms.c.key == key)).first())

    def create_room(self, name: str, key: str, owner_id: int,
                    password_hash: str | None) -> Room | None:
        """Create a room with its owner as first member; None if the key already exists."""
        try:
            with self._tx() as conn:
                room_id = inserted_id(conn.execute(rooms.insert().values(
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
            return self._rooms_of(conn, user_id)

    def _rooms_of(self, conn: sa.Connection, user_id: int) -> list[Room]:
        return [self._room(r) for r in conn.execute(ROOMS_OF, {"user_id": user_id})]

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

