"""Edits, deletions and reactions committed with the messages of a batch (docs/protocol.md
§8): `apply_changes` checks a run of consecutive changes against their messages as the
run leaves them, then writes the run with a few statements, in the transaction of
`MessageStore.insert_messages`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from ..domain.errors import ChatError, Forbidden, NotFound, TooLarge
from ..domain.models import Message, NewChange
from ..domain.validation import is_dm_key_of
from ..schema import mentions

# Per item of a batch: (message or update, whether a retry's original), or what refused it.
Result = tuple[Message | None, bool] | ChatError

MAX_REACTIONS = 20  # distinct emoji on one message (docs/protocol.md §8.2)
# The statements of a run of changes (`apply_changes`), built once.
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


class Target:
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


def apply_changes(conn: sa.Connection, run: list[NewChange],
                  insert_rows: Callable[[sa.Connection, list[dict[str, Any]]], list[int]]
                  ) -> list[Result]:
    """Consecutive edits, deletions and reactions (docs/protocol.md §8.2): each checked
    in order against the state its message is in after the ones before it, then all
    written with a few statements for the run (a statement per change cost three times
    a message's store time). Plain statements, built once (CHANGE)."""
    found = conn.execute(CHANGE["targets"], {
        "ids": sorted({item.message_id for item in run})}).all()
    targets = {row.id: Target(row.conv_key, row.conversation, row.from_user_id,
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
    unreadable = _unreadable(conn, run, targets)
    for item in run:
        target = targets.get(item.message_id)
        if target is None or id(item) in unreadable:
            results.append(NotFound("No such message."))
            continue
        refused = _change(target, item, present, added, counts)
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
        ids = insert_rows(conn, updates)
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


def _unreadable(conn: sa.Connection, run: list[NewChange],
                targets: dict[int, Target]) -> set[int]:
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


def _change(target: Target, item: NewChange, present: set[tuple[int, int, str]],
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
