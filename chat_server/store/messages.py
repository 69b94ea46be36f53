"""Messages: group commit with idempotent retries, changes (§8), history and export."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, cast

import sqlalchemy as sa

from ..domain.errors import Blocked, ChatError, Forbidden, Muted, NotFound, TooLarge
from ..domain.models import Message, NewChange, NewMessage
from ..domain.validation import is_dm_key_of
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
from .rooms import RoomStore

# Per item of a batch: (message or update, whether a retry's original), or what refused it.
Result = tuple[Message | None, bool] | ChatError
MAX_REACTIONS = 20  # distinct emoji on one message (docs/protocol.md §8.2)
# The statements of a run of changes (`_apply_changes`).
CHANGE = {name: sa.text(sql) for name, sql in {
    # `mentioned`, `reacted`: whether the run must clear its mention and reaction rows
    "targets": "SELECT id, conv_key, conversation, from_user_id, deleted, edited_at, "
               "mentions IS NOT NULL AS mentioned, EXISTS (SELECT 1 FROM reactions "
               "WHERE reactions.message_id = messages.id) AS reacted "
               "FROM messages WHERE id IN :ids AND kind <> 'update'",
    "mine": "SELECT message_id, user_id, emoji FROM reactions "
            "WHERE message_id IN :ids AND user_id IN :users",
    "counts": "SELECT message_id, emoji, count(*) FROM reactions WHERE message_id IN :ids "
              "GROUP BY message_id, emoji",
    "state": "UPDATE messages SET text = :text, edited_at = :edited_at, mentions = :mentions, "
             "deleted = :deleted WHERE id = :id",
    "unmention": "DELETE FROM mentions WHERE message_id = :id",
    "unreact_all": "DELETE FROM reactions WHERE message_id = :id",
    "unreact": "DELETE FROM reactions WHERE message_id = :id AND user_id = :user "
               "AND emoji = :emoji",
    "react": "INSERT INTO reactions (message_id, user_id, emoji, ts) "
             "VALUES (:id, :user, :emoji, :ts)",
    "members": "SELECT rooms.key, memberships.user_id FROM memberships "
               "JOIN rooms ON rooms.id = memberships.room_id "
               "WHERE rooms.key IN :keys AND memberships.user_id IN :users",
}.items()}
for name in ("targets", "counts"):
    CHANGE[name] = CHANGE[name].bindparams(sa.bindparam("ids", expanding=True))
CHANGE["members"] = CHANGE["members"].bindparams(sa.bindparam("keys", expanding=True),
                                                 sa.bindparam("users", expanding=True))
CHANGE["mine"] = CHANGE["mine"].bindparams(sa.bindparam("ids", expanding=True),
                                           sa.bindparam("users", expanding=True))
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


class _Target:
    """A changed message's state within a run of changes."""

    def __init__(self, conv_key: str, conversation: str, author_id: int, deleted: bool,
                 edited_at: int | None, mentioned: bool, reacted: bool) -> None:
        self.conv_key, self.conversation, self.author_id = conv_key, conversation, author_id
        self.deleted, self.edited_at = deleted, edited_at
        # before the run: whether it has mention rows, reaction rows (to clear if touched)
        self.mentioned, self.reacted = mentioned, reacted
        self.touched = False  # its row is written at the end of the run
        self.text = ""
        self.mentions: str | None = None
        self.mention_ids: list[int] = []

    def edit(self, text: str, at: int | None, mentions: str | None,
             mention_ids: list[int]) -> None:
        self.touched = True
        self.text, self.edited_at = text, at
        self.mentions, self.mention_ids = mentions, list(mention_ids)


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
        together too (`_apply_changes`).
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
                        results += self._apply_changes(conn, changes)
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
                results += self._apply_changes(conn, changes)
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

    def _apply_changes(self, conn: sa.Connection, run: list[NewChange]) -> list[Result]:
        """Consecutive edits, deletions and reactions (docs/protocol.md §8.2): each checked
        in order against the state its message is in after the ones before it, then all
        written with a few statements for the run (a statement per change cost three times
        a message's store time). Plain statements, built once (CHANGE)."""
        found = conn.execute(CHANGE["targets"], {
            "ids": sorted({item.message_id for item in run})}).all()
        targets = {row.id: _Target(row.conv_key, row.conversation, row.from_user_id,
                                   bool(row.deleted), row.edited_at, bool(row.mentioned),
                                   bool(row.reacted)) for row in found}
        reacting = sorted({item.message_id for item in run if item.message_id in targets
                           and item.change in ("react", "unreact")})
        had: set[tuple[int, int, str]] = set()  # (message, user, emoji) before the run
        counts: dict[tuple[int, str], int] = {}  # (message, emoji): how many reacted so
        if reacting:
            had = {(row[0], row[1], row[2]) for row in conn.execute(CHANGE["mine"], {
                "ids": reacting, "users": sorted({item.by_user_id for item in run})})}
            counts = {(row[0], row[1]): row[2]
                      for row in conn.execute(CHANGE["counts"], {"ids": reacting})}
        present = set(had)  # ... and as the run leaves them
        added: dict[tuple[int, int, str], int] = {}  # reacted in the run: when
        results: list[Result | int] = []  # int: the index of its row in `updates`
        updates: list[dict[str, Any]] = []
        unreadable = self._unreadable(conn, run, targets)
        for item in run:
            target = targets.get(item.message_id)
            if target is None or id(item) in unreadable:
                results.append(NotFound("No such message."))
                continue
            refused = self._change(target, item, present, added, counts)
            if refused is not None:
                results.append(refused)
                continue
            results.append(len(updates))
            updates.append(dict(
                conv_key=target.conv_key, conversation=target.conversation, kind="update",
                from_user_id=item.by_user_id, from_name=item.by_name, from_sid=item.by_sid,
                to_name=None, text=item.text if item.change == "edit" else "", ts=item.ts,
                target_id=item.message_id, change=item.change, emoji=item.emoji,
                mentions=json.dumps(item.mentions) if item.mentions else None))
        touched = {i: t for i, t in targets.items() if t.touched}
        if touched:
            conn.execute(CHANGE["state"], [
                {"id": i, "text": t.text, "edited_at": t.edited_at, "mentions": t.mentions,
                 "deleted": t.deleted} for i, t in touched.items()])
            unmention = [{"id": i} for i, t in touched.items() if t.mentioned]
            if unmention:
                conn.execute(CHANGE["unmention"], unmention)
            mentioned = [{"message_id": i, "user_id": user_id, "conv_key": t.conv_key}
                         for i, t in touched.items() for user_id in t.mention_ids]
            if mentioned:
                conn.execute(mentions.insert(), mentioned)
        # Reactions the run added to a message it then deleted were never written.
        cleared = [{"id": i} for i, t in touched.items() if t.deleted and t.reacted]
        if cleared:
            conn.execute(CHANGE["unreact_all"], cleared)
        gone = [key for key in had if key not in present or key in added]
        if gone:
            conn.execute(CHANGE["unreact"], [{"id": m, "user": u, "emoji": e}
                                             for m, u, e in gone])
        if added:
            conn.execute(CHANGE["react"], [{"id": m, "user": u, "emoji": e, "ts": ts}
                                           for (m, u, e), ts in added.items()])
        ids: list[int] = []
        if updates:
            ids = self._insert_rows(conn, updates)
        out: list[Result] = []
        for item, result in zip(run, results, strict=True):
            if not isinstance(result, int):
                out.append(result)
                continue
            row = updates[result]
            out.append((Message(
                id=ids[result], conv_key=row["conv_key"], conversation=row["conversation"],
                kind="update", from_name=item.by_name, from_sid=item.by_sid, to=None,
                text=row["text"], ts=item.ts, target_id=item.message_id, change=item.change,
                emoji=item.emoji, mentions=list(item.mentions)), False))
        return out

    @staticmethod
    def _unreadable(conn: sa.Connection, run: list[NewChange],
                    targets: dict[int, _Target]) -> set[int]:
        """`id()`s of the changes (those asking, `check_readable`) whose user may not read
        their message's conversation: a room it is not a member of, someone else's DM.
        Refused as not found, as the domain does (whether a message exists is not told to
        someone who may not read it)."""
        asked = [(item, targets[item.message_id]) for item in run
                 if item.check_readable and item.message_id in targets]
        in_rooms = {(target.conv_key, item.by_user_id) for item, target in asked
                    if target.conv_key.startswith("#")}
        members: set[tuple[str, int]] = set()
        if in_rooms:
            members = {(key, user) for key, user in conn.execute(CHANGE["members"], {
                "keys": sorted({key for key, _ in in_rooms}),
                "users": sorted({user for _, user in in_rooms})})}
        refused: set[int] = set()
        for item, target in asked:
            key = target.conv_key
            if key.startswith("#"):
                readable = (key, item.by_user_id) in members
            elif key.startswith("dm:"):
                readable = is_dm_key_of(key, item.by_name)
            else:
                readable = True  # the lobby
            if not readable:
                refused.add(id(item))
        return refused

    @staticmethod
    def _change(target: _Target, item: NewChange, present: set[tuple[int, int, str]],
                added: dict[tuple[int, int, str], int],
                counts: dict[tuple[int, str], int]) -> Result | None:
        """Check one change against its message as the run left it and apply it there:
        None when it goes ahead, else its result (a refusal, or `(None, False)`: nothing
        to change)."""
        if item.change == "edit":
            if target.author_id != item.by_user_id:
                return Forbidden("Only its author may edit a message.")
            if target.deleted:
                return Forbidden("A deleted message cannot be edited.")
            target.edit(item.text, item.ts, json.dumps(item.mentions) if item.mentions
                        else None, item.mention_ids)
            return None
        if item.change == "delete":
            if target.deleted:
                return None, False  # deleted already: nothing changes
            if target.author_id != item.by_user_id and not item.may_delete_any:
                return Forbidden("You may not delete this message.")
            target.edit("", target.edited_at, None, [])
            target.deleted = True
            for key in [key for key in present if key[0] == item.message_id]:
                present.discard(key)
                added.pop(key, None)
            for used in [used for used in counts if used[0] == item.message_id]:
                counts[used] = 0
            return None
        if target.deleted:
            return Forbidden("A deleted message takes no reactions.")
        assert item.emoji is not None
        key = (item.message_id, item.by_user_id, item.emoji)
        if (item.change == "react") == (key in present):
            return None, False  # the state asked for holds already
        emoji = (item.message_id, item.emoji)
        if item.change == "unreact":
            present.discard(key)
            added.pop(key, None)
            counts[emoji] = counts.get(emoji, 1) - 1
            return None
        kinds = {e for (m, e), n in counts.items() if m == item.message_id and n > 0}
        if item.emoji not in kinds and len(kinds) >= MAX_REACTIONS:
            return TooLarge(f"A message takes at most {MAX_REACTIONS} different reactions.")
        present.add(key)
        added[key] = item.ts
        counts[emoji] = counts.get(emoji, 0) + 1
        return None

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

