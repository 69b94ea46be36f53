"""What a connecting client is told (`welcome`, docs/protocol.md §1.7, §9.2) and what it
enters first: its rooms and DMs, read state, blocks, and the replay after `lastId`. Every
statement is built once: a connect storm runs them thousands of times a second."""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa

from ..domain.models import Room
from ..schema import blocks, dm_members, messages, read_markers, users
from .base import ConversationState, Snapshot
from .messages import MessageStore

# The connect path's statements, built once (see rooms.ROOMS_OF).
DM_KEYS = (sa.select(dm_members.c.conv_key)
           .where(dm_members.c.user_id == sa.bindparam("user_id")))
READ_MARKERS = (sa.select(read_markers.c.conv_key, read_markers.c.last_read)
                .where(read_markers.c.user_id == sa.bindparam("user_id"),
                       read_markers.c.conv_key.in_(sa.bindparam("keys", expanding=True))))
BLOCKED_NAMES = (sa.select(users.c.name).join(blocks, blocks.c.blocked_id == users.c.id)
                 .where(blocks.c.user_id == sa.bindparam("user_id")).order_by(users.c.key))
REPLAY = (sa.select(messages)
          .where(messages.c.id > sa.bindparam("after"), sa.or_(
              messages.c.conv_key == "lobby",
              messages.c.conv_key.in_(sa.bindparam("rooms", expanding=True)),
              messages.c.conv_key.in_(DM_KEYS)))
          .order_by(messages.c.id).limit(sa.bindparam("limit")))
UNREAD_MAX = 1000  # unread counts stop here (docs/protocol.md §9.2)

# One conversation in `welcome` (docs/protocol.md §9.2): its newest message's id (from the
# end of the index, past any changes), how many messages of others after the read marker
# are not deleted, and how many of those mention the user; each count stops at UNREAD_MAX.
# Index ranges only (`ix_messages_conv` covers the first two, `ix_mentions_user_conv` the
# third). Plain SQL, built once: a snapshot runs it per conversation, and building the
# expression each time cost more than the database's work.
CONVERSATION_STATE = sa.text("""
SELECT
  (SELECT id FROM messages WHERE conv_key = :key AND kind <> 'update'
   ORDER BY id DESC LIMIT 1),
  (SELECT count(*) FROM (SELECT 1 FROM messages WHERE conv_key = :key AND id > :after
     AND kind <> 'update' AND deleted = :no AND from_user_id <> :me LIMIT :most) AS u),
  (SELECT count(*) FROM (SELECT 1 FROM mentions WHERE user_id = :me AND conv_key = :key
     AND message_id > :after LIMIT :most) AS m)
""")


@functools.cache
def _conversation_state_sql(dialect: sa.Dialect) -> tuple[str, list[str] | None]:
    """`CONVERSATION_STATE` compiled once per dialect: its SQL, and the order of its
    parameters (qmark for sqlite3; None: named, for psycopg2)."""
    compiled = CONVERSATION_STATE.compile(dialect=dialect)
    return str(compiled), compiled.positiontup


class WelcomeStore(MessageStore):
    """The connect path's reads."""

    def snapshot(self, user_id: int, after: int | None, limit: int) -> Snapshot:
        """What a connecting client is told, read in one transaction: its rooms, its
        conversations with their newest message ids and read state, and (with `after`) the
        messages and changes to replay: up to `limit + 1` of them, so the caller can tell
        whether more remain."""
        with self._tx() as conn:
            member_rooms = self._rooms_of(conn, user_id)
            dm_keys = sorted(conn.execute(DM_KEYS, {"user_id": user_id}).scalars())
            keys = ["lobby", *(r.key for r in member_rooms), *dm_keys]
            read: dict[str, int] = dict(conn.execute(
                READ_MARKERS, {"user_id": user_id, "keys": keys}).all())
            state = self._conversation_states(conn, user_id, keys, read)
            newest = {key: row[0] for key, row in state.items()}
            unread = {key: (int(row[1]), int(row[2])) for key, row in state.items()}
            blocked = list(conn.execute(BLOCKED_NAMES, {"user_id": user_id}).scalars())
            replay = []
            if after is not None:
                replay = self._with_reactions(conn, conn.execute(REPLAY, {
                    "after": after, "rooms": [r.key for r in member_rooms],
                    "user_id": user_id, "limit": limit + 1}).all())
                replay = self._without_deleted_text(conn, replay)
        names = {"lobby": "lobby", **{r.key: r.name for r in member_rooms}}
        conversations = [ConversationState(names.get(key, key), newest.get(key), read.get(key),
                                           *unread.get(key, (0, 0)))
                         for key in keys]
        return Snapshot(member_rooms, conversations, replay, blocked)

    @staticmethod
    def _conversation_states(conn: sa.Connection, user_id: int, keys: list[str],
                             read: dict[str, int]) -> dict[str, tuple[Any, ...]]:
        """`CONVERSATION_STATE` per conversation, on the DBAPI cursor of this transaction:
        a hundred conversations through SQLAlchemy's execute cost ten times the queries."""
        sql, positional = _conversation_state_sql(conn.dialect)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        states = {}
        try:
            for key in keys:
                params = {"key": key, "after": read.get(key) or 0, "me": user_id,
                          "no": False, "most": UNREAD_MAX}
                cursor.execute(sql, [params[name] for name in positional]
                               if positional else params)
                states[key] = tuple(cursor.fetchone() or (None, 0, 0))
        finally:
            cursor.close()
        return states

    def dm_conversations(self, user_id: int) -> list[str]:
        """The keys of the direct conversations the user takes part in."""
        with self._tx() as conn:
            return list(conn.execute(DM_KEYS, {"user_id": user_id}).scalars())

    def memberships_of(self, user_id: int) -> tuple[list[str], list[Room]]:
        """Its DM keys and its rooms, in one transaction: what a connection enters before
        its snapshot is read (`live.GoingLive`)."""
        with self._tx() as conn:
            return (list(conn.execute(DM_KEYS, {"user_id": user_id}).scalars()),
                    self._rooms_of(conn, user_id))
