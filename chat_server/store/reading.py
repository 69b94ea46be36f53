"""Read state and search (docs/protocol.md §9): read markers, who a mention can reach,
the conversations a user can read, and full-text search."""

from __future__ import annotations

import sqlalchemy as sa

from ..domain.models import Message, User
from ..schema import dm_members, memberships, messages, read_markers, rooms, users
from .base import user_of
from .messages import MessageStore

# Search on SQLite (docs/protocol.md §9.4) in up to two steps, newest match first (FTS5
# walks its rowids backwards without sorting), each match checked against the scope:
# 1. SQLITE_WALK: the words' matches, up to SEARCH_WALK of them, each looked up for its
#    conversation, until `limit` are in scope. Fast when the scope holds a good share of
#    the matches (a user's 100 conversations: 20 results within a few hundred matches).
# 2. SQLITE_SCOPED, below where the walk stopped (or at once for a scope of at most
#    SCOPED_AT_ONCE conversations): the index itself intersects the words with the scope's
#    conversation tokens (`conv`, the hex of the key: migration `search_scope`), so a
#    common word in one DM costs that DM's matches, not the whole database's; up to
#    SCOPED_KEYS conversations per statement.
# Both still check the message row (conversation, kind, deleted): the index narrows, the
# row decides.
SQLITE_WALK = sa.text("""
SELECT messages_fts.rowid, m.conv_key IN :keys AND m.kind <> 'update' AND m.deleted = :no
FROM messages_fts CROSS JOIN messages AS m ON m.id = messages_fts.rowid
WHERE messages_fts MATCH :q AND messages_fts.rowid < :before
ORDER BY messages_fts.rowid DESC LIMIT :walk
""").bindparams(sa.bindparam("keys", expanding=True))
SQLITE_SCOPED = sa.text("""
SELECT m.id FROM messages_fts CROSS JOIN messages AS m ON m.id = messages_fts.rowid
WHERE messages_fts MATCH :q AND m.conv_key IN :keys AND m.kind <> 'update'
  AND m.deleted = :no AND messages_fts.rowid < :before
ORDER BY messages_fts.rowid DESC LIMIT :limit
""").bindparams(sa.bindparam("keys", expanding=True))
SEARCH_WALK = 1000  # matches the first step looks at (about 4 us each at a million)
SCOPED_KEYS = 100  # conversations per scoped statement (each one a term of the index)
SCOPED_AT_ONCE = 10  # a scope this small skips the walk
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
            with self._tx() as conn:
                ids = self._sqlite_search(conn, words, conv_keys, before, limit)
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

    @staticmethod
    def _sqlite_search(conn: sa.Connection, words: list[str], conv_keys: list[str],
                       before: int | None, limit: int) -> list[int]:
        """The ids of a search on SQLite, newest first (see SQLITE_WALK)."""
        terms = [f'"{w.replace(chr(34), chr(34) * 2)}"' for w in words]
        terms[-1] += "*"
        text = "{text}: (" + " ".join(terms) + ")"
        below = before if before is not None else ID_MAX
        found: list[int] = []
        if len(conv_keys) > SCOPED_AT_ONCE:
            walked = 0
            walk = conn.execute(SQLITE_WALK, {"q": text, "keys": conv_keys, "no": False,
                                              "before": below, "walk": SEARCH_WALK})
            for rowid, in_scope in walk:
                walked += 1
                below = rowid
                if in_scope:
                    found.append(rowid)
                    if len(found) == limit:
                        break
            walk.close()
            if len(found) == limit or walked < SEARCH_WALK:
                return found
        pages = []
        for start in range(0, len(conv_keys), SCOPED_KEYS):
            keys = conv_keys[start:start + SCOPED_KEYS]
            scope = " OR ".join(key.encode().hex() for key in keys)
            pages.append(conn.execute(SQLITE_SCOPED, {
                "q": f"{text} AND {{conv}}: ({scope})", "keys": keys, "no": False,
                "before": below, "limit": limit - len(found)}).scalars().all())
        return found + sorted((i for page in pages for i in page), reverse=True)[
            :limit - len(found)]
