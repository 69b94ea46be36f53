"""Edits, deletions and reactions committed in one batch (docs/protocol.md §8.2) end as
if applied one by one: each is checked against its message as the changes before it in
the batch left it (an edit after a deletion is refused, a second identical reaction
changes nothing, the 21st distinct emoji is too many), and the messages, reactions,
mentions and search index end the same. Random sequences, against a plain reference: one
change at a time, a statement per step (`apply_one`)."""

import json
import random

import pytest
import sqlalchemy as sa

from chat_server import schema
from chat_server.domain.errors import ChatError, Forbidden, NotFound, TooLarge
from chat_server.domain.models import Message, NewChange, NewMessage
from chat_server.store import Store
from chat_server.store.changes import MAX_REACTIONS

M, R = schema.messages, schema.reactions

USERS = [1, 2, 3, 4]
EMOJI = [chr(0x1F600 + n) for n in range(24)]  # more than the 20 a message may carry
WORDS = ["alpha", "beta", "gamma", "delta"]


def new_store(url):
    store = Store(url)
    store.create_schema()
    with store.engine.begin() as conn:
        conn.execute(schema.users.insert(), [
            {"id": n, "name": f"u{n}", "key": f"u{n}", "guest": False, "created_at": 1,
             "skeleton": f"u{n}"} for n in USERS])
    return store


@pytest.fixture
def urls(new_url):
    return [new_url(), new_url()]  # batched, and one at a time


def message(rng, n):
    author = rng.choice(USERS)
    return NewMessage(conv_key="lobby", conversation="lobby", kind="broadcast",
                      from_user_id=author, from_name=f"u{author}", from_sid="s", to=None,
                      to_user_id=None, text=" ".join(rng.choices(WORDS, k=2)), ts=n,
                      client_id=None, mentions=["u1"], mention_ids=[1])


def change(rng, ids, n):
    user = rng.choice(USERS)
    kind = rng.choice(["edit", "delete", "react", "react", "unreact"])
    target = rng.choice([*ids, ids[-1] + 1000])  # now and then no such message
    if kind == "edit":
        mentioned = rng.sample(USERS, rng.randint(0, 2))
        return NewChange(target, "edit", user, f"u{user}", "s", n,
                         text=" ".join(rng.choices(WORDS, k=3)),
                         mentions=[f"u{u}" for u in mentioned], mention_ids=mentioned)
    if kind == "delete":
        return NewChange(target, "delete", user, f"u{user}", "s", n,
                         may_delete_any=rng.random() < 0.3)
    # one message takes most reactions, so that it reaches the limit of distinct emoji;
    # mostly a few emoji, so that one user's reaction goes on, off and on again
    target = ids[0] if rng.random() < 0.5 else target
    emoji = rng.choice(EMOJI) if target == ids[0] else rng.choice(EMOJI[:2])
    return NewChange(target, kind, user, f"u{user}", "s", n, emoji=emoji)


def apply_one(conn, item):
    """The reference: one change, checked against its row as it is, applied step by step."""
    row = conn.execute(sa.select(M).where(M.c.id == item.message_id,
                                          M.c.kind != "update")).first()
    if row is None:
        return NotFound("")
    target = M.c.id == item.message_id
    if item.change == "edit":
        if row.from_user_id != item.by_user_id or row.deleted:
            return Forbidden("")
        conn.execute(M.update().where(target).values(
            text=item.text, edited_at=item.ts,
            mentions=json.dumps(item.mentions) if item.mentions else None))
        conn.execute(schema.mentions.delete().where(
            schema.mentions.c.message_id == item.message_id))
        for user_id in item.mention_ids:
            conn.execute(schema.mentions.insert().values(
                message_id=item.message_id, user_id=user_id, conv_key=row.conv_key))
    elif item.change == "delete":
        if row.deleted:
            return None, False
        if row.from_user_id != item.by_user_id and not item.may_delete_any:
            return Forbidden("")
        conn.execute(M.update().where(target).values(text="", deleted=True, mentions=None))
        conn.execute(schema.mentions.delete().where(
            schema.mentions.c.message_id == item.message_id))
        conn.execute(R.delete().where(R.c.message_id == item.message_id))
    else:
        if row.deleted:
            return Forbidden("")
        mine = sa.and_(R.c.message_id == item.message_id, R.c.user_id == item.by_user_id,
                       R.c.emoji == item.emoji)
        had = conn.execute(sa.select(sa.func.count()).where(mine)).scalar()
        if (item.change == "react") == bool(had):
            return None, False
        if item.change == "unreact":
            conn.execute(R.delete().where(mine))
        else:
            emojis = set(conn.execute(sa.select(R.c.emoji).distinct().where(
                R.c.message_id == item.message_id)).scalars())
            if item.emoji not in emojis and len(emojis) >= MAX_REACTIONS:
                return TooLarge("")
            conn.execute(R.insert().values(message_id=item.message_id,
                                           user_id=item.by_user_id, emoji=item.emoji,
                                           ts=item.ts))
    text = item.text if item.change == "edit" else ""
    new_id = conn.execute(M.insert().values(
        conv_key=row.conv_key, conversation=row.conversation, kind="update",
        from_user_id=item.by_user_id, from_name=item.by_name, from_sid=item.by_sid,
        text=text, ts=item.ts, target_id=item.message_id, change=item.change,
        emoji=item.emoji, mentions=json.dumps(item.mentions) if item.mentions else None)
        .returning(M.c.id)).scalar()
    return Message(id=new_id, conv_key=row.conv_key, conversation=row.conversation,
                   kind="update", from_name=item.by_name, from_sid=item.by_sid, to=None,
                   text=text, ts=item.ts, target_id=item.message_id, change=item.change,
                   emoji=item.emoji, mentions=list(item.mentions)), False


def one_by_one(store, item):
    if isinstance(item, NewMessage):
        return store.insert_messages([item])[0]
    with store.engine.begin() as conn:
        return apply_one(conn, item)


def outcome(result):
    if isinstance(result, ChatError):
        return type(result).__name__
    found, duplicate = result
    return None if found is None else (found.to_wire(), duplicate)


def state(store):
    with store.engine.begin() as conn:
        tables = [conn.execute(sa.select(table).order_by(*table.primary_key.columns)).all()
                  for table in (schema.messages, schema.reactions, schema.mentions)]
    found = {word: [m.id for m in store.search([word], ["lobby"], None, 50)]
             for word in WORDS}
    return tables, found


@pytest.mark.parametrize("seed", range(4))
def test_a_batch_of_changes_ends_as_the_same_changes_one_by_one(urls, seed):
    rng = random.Random(seed)
    stores = [new_store(url) for url in urls]
    try:
        first = [message(rng, n) for n in range(8)]
        ids = [m.id for m, _ in stores[0].insert_messages(first)]
        assert [m.id for m, _ in stores[1].insert_messages(first)] == ids
        for round_ in range(6):
            batch = []
            for n in range(40):  # mostly changes, and runs of new messages between
                ts = 100 * round_ + n
                batch.append(message(rng, ts) if rng.random() < 0.1 else change(rng, ids, ts))
            together = stores[0].insert_messages(batch)
            alone = [one_by_one(stores[1], item) for item in batch]
            assert [outcome(r) for r in together] == [outcome(r) for r in alone]
            ids += [r[0].id for r, item in zip(together, batch, strict=True)
                    if isinstance(item, NewMessage)]
            assert state(stores[0]) == state(stores[1])
        refusals = {outcome(r) for r in together if isinstance(r, ChatError)}
        assert refusals  # the sequences do reach refusals
    finally:
        for store in stores:
            store.close()


def test_the_limit_of_distinct_emoji_counts_the_batch_itself(tmp_path):
    store = new_store(f"sqlite:///{tmp_path}/limit.db")
    rng = random.Random(1)
    (target, _), = store.insert_messages([message(rng, 0)])
    batch = [NewChange(target.id, "react", 1, "u1", "s", n, emoji=EMOJI[n])
             for n in range(21)]
    batch.append(NewChange(target.id, "unreact", 1, "u1", "s", 30, emoji=EMOJI[0]))
    batch.append(NewChange(target.id, "react", 1, "u1", "s", 31, emoji=EMOJI[20]))
    batch.append(NewChange(target.id, "delete", 2, "u2", "s", 32, may_delete_any=True))
    batch.append(NewChange(target.id, "react", 1, "u1", "s", 33, emoji=EMOJI[0]))
    results = [outcome(r) for r in store.insert_messages(batch)]
    assert results[20] == "TooLarge"
    assert results[21][0]["type"] == "unreact" and results[22][0]["type"] == "react"
    assert results[24] == "Forbidden"  # deleted within the batch
    assert store.message_by_id(target.id).reactions == []
    store.close()
