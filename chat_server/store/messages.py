"""Messages: group commit with idempotent retries, changes (§8), history and export."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, cast

import sqlalchemy as sa

from ..domain.errors import Blocked, ChatError, Muted
from ..domain.models import Message, NewChange, NewMessage
from ..schema import (
    MESSAGE_LOCK,
    dm_members,
    mentions,
    messages,
    reactions,
    rooms,
    users,
)
from .base import (
    ClientKey,
    DmMember,
    message_of,
    row_values,
    stored_message,
)
from .changes import Result, apply_changes
from .rooms import RoomStore

# The next message id on SQLite: past the highest AUTOINCREMENT ever gave (sqlite_sequence
# keeps it when the newest rows are deleted) and past every row.
NEXT_SQLITE_ID = sa.text(
    "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0), "
    "coalesce((SELECT max(id) FROM messages), 0)) + 1")
# Moderation's refusals of new messages (`_refusals`): per pair of ids, narrowed in Python.
REFUSALS = {
    "blocks": sa.text("SELECT user_id, blocked_id FROM blocks "
                      "WHERE user_id IN :users AND blocked_id IN :senders").bindparams(
        sa.bindparam("users", expanding=True), sa.bindparam("senders", expanding=True)),
    "mutes": sa.text("SELECT room_id, user_id, until FROM room_mutes "
                     "WHERE room_id IN :rooms AND user_id IN :senders").bindparams(
        sa.bindparam("rooms", expanding=True), sa.bindparam("senders", expanding=True)),
}


MESSAGE_HEADS = sa.text(
    "SELECT id, conv_key, from_user_id, from_name FROM messages "
    "WHERE id IN :ids AND kind <> 'update'").bindparams(sa.bindparam("ids", expanding=True))


class MessageStore(RoomStore):
    """Messages and changes: their group commit, history, export and pruning."""

    def insert_messages(self, batch: list[NewMessage | NewChange]) -> list[Result]:
        """Commit a batch of new messages and changes in one transaction, in order.

        Per new message `(Message, duplicate)`: a clientId the same user already used
        (before, or earlier in the same batch) yields the stored original and
        `duplicate=True`, and nothing is inserted for it. Consecutive messages share one
        INSERT: building a statement per row cost more than the commit. Per change (§8):
        `(UPDATE, False)`, `(None, False)` when it changes nothing (a repeated reaction
        state), or the ChatError that refuses it, checked against the message as it is in
        this transaction, after the changes before it; consecutive changes are written
        together too (`changes.apply_changes`).
        """
        results: list[Result] = []
        with self._tx() as conn:
            if not self.is_sqlite:
                # Without it two nodes could commit ids 11 then 10, and a client that
                # replays "after 11" would never see 10. SQLite has one writer anyway.
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MESSAGE_LOCK)))
            new = [item for item in batch if isinstance(item, NewMessage)]
            originals = self._originals(conn, new)  # (user id, client id) -> Message
            noted: set[DmMember] = set()
            run: list[NewMessage] = []
            changes: list[NewChange] = []
            for item in [*batch, None]:
                if isinstance(item, NewMessage):
                    if changes:
                        results += apply_changes(conn, changes, self._insert_rows)
                        changes = []
                    run.append(item)
                    continue
                if run:
                    results += self._insert_run(conn, run, originals)
                    noted |= self._note_dms(conn, [m for m in run if m.kind == "direct"])
                    run = []
                if item is not None:
                    changes.append(item)
            if changes:
                results += apply_changes(conn, changes, self._insert_rows)
        self._known_dms.update(noted)  # only now: a rolled-back batch must not hide a pair
        return results

    def _insert_run(self, conn: sa.Connection, run: list[NewMessage],
                    originals: dict[ClientKey, Message | None]) -> list[Result]:
        # plan: an index into `fresh`, the key of an original, or what refused the item
        fresh: list[NewMessage] = []
        plan: list[int | ClientKey | ChatError] = []
        refused = self._refusals(conn, run)
        for item in run:
            key = (item.from_user_id, item.client_id)
            if item.client_id is not None and key in originals:
                plan.append(key)
                continue
            refusal = refused.get(id(item))
            if refusal is not None:
                plan.append(refusal)
                continue
            if item.client_id is not None:
                originals[key] = None  # a repeat later in this batch gets this one
            plan.append(len(fresh))
            fresh.append(item)
        stored: list[Message] = []
        if fresh:
            ids = self._insert_rows(conn, [row_values(item) for item in fresh])
            stored = [stored_message(item, new_id)
                      for item, new_id in zip(fresh, ids, strict=True)]
            for item, message in zip(fresh, stored, strict=True):
                if item.client_id is not None:
                    originals[(item.from_user_id, item.client_id)] = message
            mentioned = [{"message_id": message.id, "user_id": user_id,
                          "conv_key": message.conv_key}
                         for item, message in zip(fresh, stored, strict=True)
                         for user_id in item.mention_ids]
            if mentioned:
                conn.execute(mentions.insert(), mentioned)
        # Every original is a Message by now: a None above was replaced once inserted.
        return [step if isinstance(step, ChatError)
                else (stored[step], False) if isinstance(step, int)
                else (cast(Message, originals[step]), True) for step in plan]

    def _insert_rows(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> list[int]:
        """Insert rows of `messages`; their ids, in the order of `rows`.

        SQLAlchemy cannot tie SQLite's RETURNING rows to the parameters that made them,
        so with `sort_by_parameter_order` it inserts one row per statement: a statement
        and a fetch per message, in the store's thread, holding the GIL the event loop
        needs. SQLite has one writer (this transaction holds it), so the ids are given
        here instead, after the highest ever given (AUTOINCREMENT's record, which
        deleted rows do not lower), and the rows go in with one executemany.
        PostgreSQL batches RETURNING in order, under the advisory lock."""
        if not self.is_sqlite:
            return list(conn.execute(
                messages.insert().returning(messages.c.id, sort_by_parameter_order=True),
                rows).scalars())
        first = conn.execute(NEXT_SQLITE_ID).scalar_one()
        ids = list(range(first, first + len(rows)))
        conn.execute(messages.insert(), [{**row, "id": new_id}
                                         for row, new_id in zip(rows, ids, strict=True)])
        return ids

    @staticmethod
    def _refusals(conn: sa.Connection, run: list[NewMessage]) -> dict[int, ChatError]:
        """Per `id()` of a new message refused by moderation as this transaction sees
        it: its recipient blocks its sender (`Blocked`), or its sender is muted in its
        room until after it was sent (`Muted`). A retry of an accepted clientId is not
        refused (its original stands). One statement per kind of check, none when no
        message of the run asks for one: the lobby's messages cost nothing here."""
        refused: dict[int, ChatError] = {}
        dms = [item for item in run if item.check_blocks and item.to_user_id is not None]
        if dms:
            pairs = {(user, sender) for user, sender in conn.execute(REFUSALS["blocks"], {
                "users": sorted({item.to_user_id for item in dms
                                 if item.to_user_id is not None}),
                "senders": sorted({item.from_user_id for item in dms})})}
            for item in dms:
                if (item.to_user_id, item.from_user_id) in pairs:
                    refused[id(item)] = Blocked()
        in_rooms = [item for item in run if item.mute_room_id is not None]
        if in_rooms:
            until = {(room_id, user_id): at for room_id, user_id, at in conn.execute(
                REFUSALS["mutes"], {"rooms": sorted({item.mute_room_id for item in in_rooms
                                                     if item.mute_room_id is not None}),
                                    "senders": sorted({item.from_user_id
                                                       for item in in_rooms})})}
            for item in in_rooms:
                at = until.get((item.mute_room_id, item.from_user_id))
                if at is not None and at > item.ts:
                    refused[id(item)] = Muted()
        return refused

    def message_heads(self, ids: list[int]) -> dict[int, tuple[str, int, str]]:
        """What never changes of these messages (never of changes): per id found, its
        conversation, its author's user id and name."""
        with self._tx() as conn:
            return {row[0]: (row[1], row[2], row[3])
                    for row in conn.execute(MESSAGE_HEADS, {"ids": ids})}

    def message_by_id(self, message_id: int) -> Message | None:
        """A message (never a change), in its current state."""
        with self._tx() as conn:
            row = conn.execute(sa.select(messages).where(
                messages.c.id == message_id, messages.c.kind != "update")).first()
            if row is None:
                return None
            return self._with_reactions(conn, [row])[0]

    def _with_reactions(self, conn: sa.Connection, rows: Sequence[sa.Row]) -> list[Message]:
        """Messages with their current reactions (§8.4): per emoji, the count and at most
        50 names, in the order the reactions came."""
        wanted = [row.id for row in rows if row.kind != "update" and not row.deleted]
        found: dict[int, dict[str, list[str]]] = {}
        for start in range(0, len(wanted), 500):
            for message_id, emoji, name in conn.execute(
                    sa.select(reactions.c.message_id, reactions.c.emoji, users.c.name)
                    .join(users, users.c.id == reactions.c.user_id)
                    .where(reactions.c.message_id.in_(wanted[start:start + 500]))
                    .order_by(reactions.c.ts, reactions.c.user_id)):
                found.setdefault(message_id, {}).setdefault(emoji, []).append(name)
        return [message_of(row, [{"emoji": emoji, "count": len(names), "names": names[:50]}
                                 for emoji, names in found.get(row.id, {}).items()])
                for row in rows]

    @staticmethod
    def _without_deleted_text(conn: sa.Connection, found: list[Message]) -> list[Message]:
        """Edits of a message deleted since, with their text emptied: a deleted message's
        text is never sent again (docs/protocol.md §8.1), not even as an edit's text. The
        edit rows keep it; only what is sent leaves it out."""
        edited = {m.target_id for m in found if m.change == "edit" and m.text}
        if not edited:
            return found
        gone = set(conn.execute(sa.select(messages.c.id).where(
            messages.c.id.in_(edited), messages.c.deleted.is_(True))).scalars())
        return [replace(m, text="", mentions=[])
                if m.change == "edit" and m.target_id in gone else m for m in found]

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
        query = sa.select(messages).where(messages.c.conv_key == conv_key,
                                          messages.c.kind != "update")
        if before is not None:
            query = query.where(messages.c.id < before)
        if after is not None:
            query = query.where(messages.c.id > after).order_by(messages.c.id.asc())
        else:
            query = query.order_by(messages.c.id.desc())
        with self._tx() as conn:
            found = self._with_reactions(conn, conn.execute(query.limit(limit)).all())
        return found if after is not None else found[::-1]

    def export_page(self, after: int, limit: int,
                    conv_key: str | None = None) -> list[Message]:
        """Messages (not changes) after id `after`, oldest first, in their current state
        (an edited text, a tombstone); of one conversation when `conv_key` is given."""
        query = sa.select(messages).where(messages.c.id > after, messages.c.kind != "update")
        if conv_key is not None:
            query = query.where(messages.c.conv_key == conv_key)
        with self._tx() as conn:
            return self._with_reactions(conn, conn.execute(
                query.order_by(messages.c.id).limit(limit)).all())

    def prune(self, before_ts: int, limit: int) -> int:
        """Delete up to `limit` of the oldest messages and changes sent before `before_ts`
        (retention); their reactions and mentions go with them. Returns how many.

        Looks only at the `limit` lowest ids: ids grow with time, so the old ones are
        there, and a round that finds nothing to delete costs one page of the primary
        key, not a scan of the history."""
        with self._tx() as conn:
            oldest = conn.execute(sa.select(messages.c.id, messages.c.ts)
                                  .order_by(messages.c.id).limit(limit)).all()
            ids = [row.id for row in oldest if row.ts < before_ts]
            if not ids:
                return 0
            conn.execute(reactions.delete().where(reactions.c.message_id.in_(ids)))
            conn.execute(mentions.delete().where(mentions.c.message_id.in_(ids)))
            conn.execute(messages.delete().where(messages.c.id.in_(ids)))
            return len(ids)

    def messages_after(self, after: int, limit: int) -> list[Message]:
        """Every conversation's messages after id `after`, oldest first: what a node of
        several missed (`cluster.ordering`)."""
        with self._tx() as conn:
            rows = conn.execute(sa.select(messages).where(messages.c.id > after)
                                .order_by(messages.c.id).limit(limit)).all()
            return self._without_deleted_text(conn, [message_of(row) for row in rows])

    def count_rooms(self) -> int | None:
        with self._tx() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(rooms)).scalar()

    def newest_id(self) -> int | None:
        with self._tx() as conn:
            return conn.execute(sa.select(sa.func.max(messages.c.id))).scalar()

