"""Moderation's durable state (docs/protocol.md §10): room roles, room bans and mutes,
users banned from the server, blocks."""

from __future__ import annotations

import sqlalchemy as sa

from ..schema import blocks, memberships, room_bans, room_mutes, rooms, user_bans, users
from .base import RoomChange
from .rooms import RoomStore


class ModerationStore(RoomStore):
    def role_in(self, room_id: int, user_id: int) -> str | None:
        """`owner`, `moderator`, `member`, or None when not a member."""
        with self._tx() as conn:
            owner = conn.execute(sa.select(rooms.c.owner_id)
                                 .where(rooms.c.id == room_id)).scalar()
            role = conn.execute(sa.select(memberships.c.role).where(
                memberships.c.room_id == room_id, memberships.c.user_id == user_id)).scalar()
        if role is None:
            return None
        return "owner" if owner == user_id else str(role)

    def set_role(self, room_id: int, user_id: int, role: str) -> bool:
        """Whether the member's role changed (False: not a member, or the same role)."""
        with self._tx() as conn:
            changed = conn.execute(memberships.update().where(
                memberships.c.room_id == room_id, memberships.c.user_id == user_id,
                memberships.c.role != role).values(role=role)).rowcount
        return bool(changed)

    def ban_from_room(self, room_id: int, user_id: int, by: str, on: bool,
                      now: int) -> RoomChange | None:
        """Ban (or lift the ban of) a user from a room. A ban also removes the member:
        the change, or None when it was not a member."""
        with self._tx() as conn:
            where = sa.and_(room_bans.c.room_id == room_id, room_bans.c.user_id == user_id)
            conn.execute(room_bans.delete().where(where))
            if not on:
                return None
            conn.execute(room_bans.insert().values(room_id=room_id, user_id=user_id,
                                                   by_name=by, ts=now))
            member = conn.execute(sa.select(memberships.c.id).where(
                memberships.c.room_id == room_id, memberships.c.user_id == user_id)).first()
            return self._remove_member(conn, room_id, user_id) if member else None

    def banned_from_room(self, room_id: int, user_id: int) -> bool:
        with self._tx() as conn:
            return conn.execute(sa.select(room_bans.c.user_id).where(
                room_bans.c.room_id == room_id, room_bans.c.user_id == user_id)
            ).first() is not None

    def mute(self, room_id: int, user_id: int, until: int | None) -> None:
        """Mute a member until `until` (ms since the epoch), or lift it (None)."""
        with self._tx() as conn:
            conn.execute(room_mutes.delete().where(room_mutes.c.room_id == room_id,
                                                   room_mutes.c.user_id == user_id))
            if until is not None:
                conn.execute(room_mutes.insert().values(room_id=room_id, user_id=user_id,
                                                        until=until))

    def muted_until(self, room_id: int, user_id: int) -> int | None:
        with self._tx() as conn:
            return conn.execute(sa.select(room_mutes.c.until).where(
                room_mutes.c.room_id == room_id, room_mutes.c.user_id == user_id)).scalar()

    def ban_user(self, user_id: int, by: str, on: bool, now: int) -> None:
        with self._tx() as conn:
            conn.execute(user_bans.delete().where(user_bans.c.user_id == user_id))
            if on:
                conn.execute(user_bans.insert().values(user_id=user_id, by_name=by, ts=now))

    def user_banned(self, user_id: int) -> bool:
        with self._tx() as conn:
            return conn.execute(sa.select(user_bans.c.user_id)
                                .where(user_bans.c.user_id == user_id)).first() is not None

    def bans_since(self, since: int) -> list[tuple[str, str, int]]:
        """Users banned at or after `since`: (user key, by, ts), oldest first."""
        with self._tx() as conn:
            return [(row.key, row.by_name, row.ts) for row in conn.execute(
                sa.select(users.c.key, user_bans.c.by_name, user_bans.c.ts)
                .join(users, users.c.id == user_bans.c.user_id)
                .where(user_bans.c.ts >= since).order_by(user_bans.c.ts))]

    def banned_users(self) -> list[tuple[str, str, int]]:
        """Every user banned from the server: (name, by, ts)."""
        with self._tx() as conn:
            return [(row.name, row.by_name, row.ts) for row in conn.execute(
                sa.select(users.c.name, user_bans.c.by_name, user_bans.c.ts)
                .join(users, users.c.id == user_bans.c.user_id).order_by(users.c.key))]

    def block(self, user_id: int, blocked_id: int, on: bool) -> None:
        with self._tx() as conn:
            conn.execute(blocks.delete().where(blocks.c.user_id == user_id,
                                               blocks.c.blocked_id == blocked_id))
            if on:
                conn.execute(blocks.insert().values(user_id=user_id, blocked_id=blocked_id))

    def blocks(self, user_id: int, blocked_id: int) -> bool:
        """Whether `user_id` blocks `blocked_id`."""
        with self._tx() as conn:
            return conn.execute(sa.select(blocks.c.user_id).where(
                blocks.c.user_id == user_id, blocks.c.blocked_id == blocked_id)
            ).first() is not None

    def blocked_names(self, user_id: int) -> list[str]:
        with self._tx() as conn:
            return list(conn.execute(sa.select(users.c.name)
                                     .join(blocks, blocks.c.blocked_id == users.c.id)
                                     .where(blocks.c.user_id == user_id)
                                     .order_by(users.c.key)).scalars())
