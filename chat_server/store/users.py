"""Users, their sessions (tokens), and guests who are gone."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import exc

from ..domain.errors import NameTaken
from ..domain.models import NewUser, User
from ..schema import (
    dm_members,
    memberships,
    messages,
    rooms,
    sessions,
    users,
)
from .base import TOKEN_USE_NOTED_EVERY_MS, RoomChange, inserted_id, now_ms, user_of
from .rooms import RoomStore

# Statements of the connect path, built once (see rooms.ROOMS_OF).
TAKEN_KEYS = (sa.select(users.c.key)
              .where(users.c.key.in_(sa.bindparam("keys", expanding=True))))
TAKEN_LOOKS = (sa.select(users.c.skeleton, users.c.key)
               .where(users.c.skeleton.in_(sa.bindparam("skeletons", expanding=True))))
INSERT_USERS = users.insert().returning(users.c.id, sort_by_parameter_order=True)
INSERT_SESSION = sessions.insert()


class UserStore(RoomStore):
    """Users and sessions; retiring a guest also takes it out of its rooms."""

    def user_by_key(self, key: str) -> User | None:
        with self._tx() as conn:
            return user_of(conn.execute(sa.select(users).where(users.c.key == key)).first())

    def user_by_token(self, token_hash: str, used_since: int, now: int) -> User | None:
        """The user of a session token used (or made) since `used_since` (ms); an older
        token has expired and is deleted (a bot's never does: docs/protocol.md §12.1). A
        use at `now` is noted at most once an hour."""
        with self._tx() as conn:
            row = conn.execute(
                sa.select(users, sessions.c.used_at)
                .join(sessions, sessions.c.user_id == users.c.id)
                .where(sessions.c.token_hash == token_hash)).first()
            if row is None:
                return None
            used_at = row.used_at if row.used_at is not None else 0
            if used_at < used_since and not row.bot:
                conn.execute(sessions.delete().where(sessions.c.token_hash == token_hash))
                return None
            if now - used_at > TOKEN_USE_NOTED_EVERY_MS:
                conn.execute(sessions.update().where(sessions.c.token_hash == token_hash)
                             .values(used_at=now))
            return user_of(row)

    def create_user(self, name: str, key: str, guest: bool, token_hash: str,
                    password_hash: str | None = None, skeleton: str | None = None,
                    now: int | None = None) -> User:
        """Register a name with its first session; `NameTaken` if the key exists, or if
        another name has the same confusable `skeleton`."""
        new = NewUser(name, key, guest, token_hash, password_hash, skeleton,
                      now_ms() if now is None else now)
        result = self.create_users([new])[0]
        if isinstance(result, NameTaken):
            raise result
        return result

    def create_users(self, batch: list[NewUser]) -> list[User | NameTaken]:
        """Register several names in one transaction: a storm of new guests costs one
        commit (one fsync) per batch, not one each. A name that is taken, or looks like a
        taken one (also earlier in the batch), gets its `NameTaken`. A conflict only the
        database sees (another node registering the same name at once) sends each item
        through a transaction of its own."""
        try:
            with self._tx() as conn:
                return self._register(conn, batch)
        except exc.IntegrityError:
            if len(batch) == 1:
                return [NameTaken()]
            return [self.create_users([item])[0] for item in batch]

    @staticmethod
    def _register(conn: sa.Connection, batch: list[NewUser]) -> list[User | NameTaken]:
        """Two reads for the whole batch (keys taken, skeletons in use), then one insert
        of the users and one of their sessions."""
        taken = set(conn.execute(TAKEN_KEYS, {"keys": [item.key for item in batch]}).scalars())
        looks: dict[str, set[str]] = {}  # skeleton -> the keys that have it
        wanted = [item.skeleton for item in batch if item.skeleton is not None]
        if wanted:
            for skeleton, key in conn.execute(TAKEN_LOOKS, {"skeletons": wanted}):
                looks.setdefault(skeleton, set()).add(key)
        refused: list[NameTaken | None] = []
        accepted = []
        for item in batch:
            if item.key in taken:
                refused.append(NameTaken())
            elif item.skeleton is not None and looks.get(item.skeleton, set()) - {item.key}:
                refused.append(NameTaken("That name looks like one already taken."))
            else:
                refused.append(None)
                accepted.append(item)
                taken.add(item.key)
                if item.skeleton is not None:
                    looks.setdefault(item.skeleton, set()).add(item.key)
        ids: list[int] = []
        if accepted:
            ids = list(conn.execute(INSERT_USERS, [
                {"name": item.name, "key": item.key, "guest": item.guest, "gone": False,
                 "password_hash": item.password_hash, "created_at": item.now,
                 "skeleton": item.skeleton} for item in accepted]).scalars())
            conn.execute(INSERT_SESSION, [
                {"token_hash": item.token_hash, "user_id": user_id, "created_at": item.now,
                 "used_at": item.now} for item, user_id in zip(accepted, ids, strict=True)])
        made = iter(User(id=user_id, name=item.name, key=item.key, guest=item.guest,
                         password_hash=item.password_hash)
                    for item, user_id in zip(accepted, ids, strict=True))
        return [error if error is not None else next(made) for error in refused]

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
        given the same id on SQLite). Its random name is never drawn again, so the DM pairs
        remembered in `_known_dms` for it can never match a new message: they stay.

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
        return changes

    def retire_all_guests(self) -> int:
        """At start no guest is connected, so every guest still on record is gone."""
        with self._tx() as conn:
            ids = conn.execute(sa.select(users.c.id).where(users.c.guest.is_(True))
                               ).scalars().all()
        for user_id in ids:
            self.retire_guest(user_id)
        return len(ids)


    # -- bots (docs/protocol.md §12.1) --------------------------------------------------

    def create_bot(self, name: str, key: str, token_hash: str, skeleton: str,
                   now: int) -> User:
        """Register a bot with its one token, in one transaction; `NameTaken` as for
        `create_user`."""
        try:
            with self._tx() as conn:
                if conn.execute(sa.select(users.c.id).where(users.c.skeleton == skeleton,
                                                            users.c.key != key)
                                .limit(1)).first():
                    raise NameTaken("That name looks like one already taken.")
                user_id = inserted_id(conn.execute(users.insert().values(
                    name=name, key=key, guest=False, gone=False, created_at=now,
                    skeleton=skeleton, bot=True)))
                self._add_session(conn, user_id, token_hash, now)
        except exc.IntegrityError:
            raise NameTaken() from None
        return User(id=user_id, name=name, key=key, guest=False, bot=True)

    def bots(self) -> list[tuple[str, int, int | None]]:
        """Every bot: (name, created at, last use of its token or None), by name."""
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(users.c.name, users.c.created_at, sa.func.max(sessions.c.used_at))
                .select_from(users.outerjoin(sessions, sessions.c.user_id == users.c.id))
                .where(users.c.bot.is_(True))
                .group_by(users.c.id, users.c.name, users.c.created_at)
                .order_by(users.c.key)).all()
        return [(row[0], row[1], row[2]) for row in rows]

    def remove_bot(self, user_id: int) -> None:
        """No longer a bot: its tokens are deleted. The user stays (its name too, so that
        nobody else can take it and seem to have written its messages)."""
        with self._tx() as conn:
            conn.execute(sessions.delete().where(sessions.c.user_id == user_id))
            conn.execute(users.update().where(users.c.id == user_id).values(bot=False))
