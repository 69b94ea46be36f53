"""Messages: group commit with idempotent retries, history, and the snapshot at connect."""

from __future__ import annotations

from typing import cast

import sqlalchemy as sa

from ..domain.models import Message, NewMessage
from ..schema import (
    MESSAGE_LOCK,
    dm_members,
    memberships,
    messages,
    rooms,
)
from .base import ClientKey, DmMember, Snapshot, message_of, row_values, stored_message
from .rooms import RoomStore


class MessageStore(RoomStore):
    """Messages; the snapshot at connect reads rooms too."""

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
                    [row_values(item) for item in fresh]).scalars().all()
                stored = [stored_message(item, new_id)
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
        return {(row.from_user_id, row.client_id): message_of(row) for row in rows
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
        return message_of(row) if row is not None else None

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
        found = [message_of(r) for r in rows]
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
                replay = [message_of(r) for r in conn.execute(
                    sa.select(messages).where(messages.c.id > after, sa.or_(
                        messages.c.conv_key == "lobby",
                        messages.c.conv_key.in_([r.key for r in member_rooms]),
                        messages.c.conv_key.in_(dms)))
                    .order_by(messages.c.id).limit(limit + 1)).all()]
        names = {"lobby": "lobby", **{r.key: r.name for r in member_rooms}}
        conversations = [(names.get(key, key), newest.get(key)) for key in keys]
        return Snapshot(member_rooms, conversations, replay)

    def messages_after(self, after: int, limit: int) -> list[Message]:
        """Every conversation's messages after id `after`, oldest first: what a node of
        several missed (`cluster.ordering`)."""
        with self._tx() as conn:
            rows = conn.execute(sa.select(messages).where(messages.c.id > after)
                                .order_by(messages.c.id).limit(limit)).all()
        return [message_of(row) for row in rows]

    def dm_conversations(self, user_id: int) -> list[str]:
        """The keys of the direct conversations the user takes part in."""
        with self._tx() as conn:
            return list(conn.execute(sa.select(dm_members.c.conv_key)
                                     .where(dm_members.c.user_id == user_id)).scalars())

    def count_rooms(self) -> int | None:
        with self._tx() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(rooms)).scalar()

    def newest_id(self) -> int | None:
        with self._tx() as conn:
            return conn.execute(sa.select(sa.func.max(messages.c.id))).scalar()

