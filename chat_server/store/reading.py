"""Read state and search (docs/protocol.md §9): read markers, who a mention can reach,
the conversations a user can read, and full-text search."""

from __future__ import annotations

import sqlalchemy as sa

from ..domain.models import Message, User
from ..schema import dm_members, memberships, messages, read_markers, rooms, users
from .base import user_of
from .messages import MessageStore

# Search on SQLite (docs/protocol.md §9.4): the full-text index drives, newest match
# first (FTS5 walks its rowids backwards without sorting), and each match is checked
# against the scope until `limit` are found. A common word matches half the database;
# collecting every match first and then sorting took seconds at a million messages.
SQLITE_SEARCH = sa.text("""
SELECT m.id FROM messages_fts CROSS JOIN messages AS m ON m.id = messages_fts.rowid
WHERE messages_fts MATCH :q AND m.conv_key IN :keys AND m.kind <> 'update'
  AND m.deleted = :no AND m.id < :before
ORDER BY messages_fts.rowid DESC LIMIT :limit
""").bindparams(sa.bindparam("keys", expanding=True))
ID_MAX = 2**63 - 1


class ReadingStore(MessageStore):
    def mention_candidates(self, conv_key: str, keys: list[str]) -> list[User]:
        """Of the users named by `keys`, those who can read the conversation (§9.3):
        anyone for the lobby, the members of a room, the two people of a DM."""
        if not keys:
            return []
        with self._tx() as conn:
            query = sa.select(users).where(users.c.key.in_(keys))
            if conv_key.startswith("#"):
                query = query.where(users.c.id.in_(
                    sa.select(memberships.c.user_id).join(rooms, rooms.c.id ==
                                                          memberships.c.room_id)
                    .where(rooms.c.key == conv_key)))
            elif conv_key != "lobby":
                query = query.where(users.c.id.in_(
                    sa.select(dm_members.c.user_id).where(dm_members.c.conv_key == conv_key)))
            return [user_of(row) for row in conn.execute(query).all()]

    def readable_conversations(self, user_id: int) -> list[str]:
        """Every conversation the user can read now: the lobby, its rooms, its DMs."""
        with self._tx() as conn:
            room_keys = conn.execute(sa.select(rooms.c.key).join(
                memberships, memberships.c.room_id == rooms.c.id)
                .where(memberships.c.user_id == user_id)).scalars().all()
            dm_keys = conn.execute(sa.select(dm_members.c.conv_key)
                                   .where(dm_members.c.user_id == user_id)).scalars().all()
        return ["lobby", *room_keys, *dm_keys]

    def mark_read(self, user_id: int, conv_key: str, read: int) -> int:
        """Move the user's read marker to max(old, read); returns the marker."""
        with self._tx() as conn:
            old = conn.execute(sa.select(read_markers.c.last_read).where(
                read_markers.c.user_id == user_id, read_markers.c.conv_key == conv_key)
            ).scalar()
            if old is None:
                conn.execute(read_markers.insert().values(user_id=user_id, conv_key=conv_key,
                                                          last_read=read))
                return read
            if read > old:
                conn.execute(read_markers.update().where(
                    read_markers.c.user_id == user_id, read_markers.c.conv_key == conv_key)
                    .values(last_read=read))
                return read
            return int(old)

    def search(self, words: list[str], conv_keys: list[str], before: int | None,
               limit: int) -> list[Message]:
        """Messages of `conv_keys` holding every word (the last also as a prefix), newest
        first, from the full-text index (docs/protocol.md §9.4)."""
        if not conv_keys:
            return []
        query = sa.select(messages).where(messages.c.conv_key.in_(conv_keys),
                                          messages.c.kind != "update",
                                          messages.c.deleted.is_(False))
        if before is not None:
            query = query.where(messages.c.id < before)
        if self.is_sqlite:
            terms = [f'"{w.replace(chr(34), chr(34) * 2)}"' for w in words]
            terms[-1] += "*"
            with self._tx() as conn:
                ids = list(conn.execute(SQLITE_SEARCH, {
                    "q": " ".join(terms), "keys": conv_keys, "no": False, "limit": limit,
                    "before": before if before is not None else ID_MAX}).scalars())
                rows = conn.execute(sa.select(messages).where(messages.c.id.in_(ids))
                                    .order_by(messages.c.id.desc())).all() if ids else []
                return self._with_reactions(conn, rows)
        else:
            terms = ["'" + w.replace("\\", "\\\\").replace("'", "''") + "'" for w in words]
            terms[-1] += ":*"
            query = query.where(sa.literal_column("search").op("@@")(
                sa.func.to_tsquery("simple", " & ".join(terms))))
        with self._tx() as conn:
            rows = conn.execute(query.order_by(messages.c.id.desc()).limit(limit)).all()
            return self._with_reactions(conn, rows)
