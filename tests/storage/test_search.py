"""The store's search (docs/protocol.md §9.4) against a plain oracle: every word, the last
also as a prefix, case-insensitive, only the conversations given, newest first, below
`before`, at most `limit`, deleted messages never, edits by their new text. On SQLite
also with the two steps' sizes shrunk, so that a walk that runs out of matches hands over
to the scoped step, and a scope is cut into several statements."""

import random
import re

import pytest
import sqlalchemy as sa

from chat_server import schema
from chat_server.domain.models import NewChange, NewMessage
from chat_server.store import Store, reading

VOCABULARY = ["alpha", "Alpine", "beta", "Betamax", "gamma", "gam", "delta", "DELTAS",
              "epsilon", "zeta"]
CONVERSATIONS = ["lobby", "#r1", "#r2", "#r3", "#r4", "dm:ann:bob", "dm:ann:cy", "dm:bob:cy"]


def words_of(text):
    return set(re.findall(r"\w+", text.lower()))


def oracle(rows, words, keys, before, limit):
    """rows: id -> (conv_key, text, deleted)."""
    found = []
    for message_id in sorted(rows, reverse=True):
        conv_key, text, deleted = rows[message_id]
        have = words_of(text)
        if (conv_key in keys and not deleted and (before is None or message_id < before)
                and all(w in have for w in words[:-1])
                and any(h.startswith(words[-1]) for h in have)):
            found.append(message_id)
    return found[:limit]


def new_message(conv_key, text, n):
    kind = "direct" if conv_key.startswith("dm:") else "room" if conv_key[0] == "#" \
        else "broadcast"
    return NewMessage(conv_key=conv_key, conversation=conv_key, kind=kind, from_user_id=1,
                      from_name="ann", from_sid="sid", to="bob" if kind == "direct" else None,
                      to_user_id=2 if kind == "direct" else None, text=text, ts=n,
                      client_id=None)


def change(message_id, kind, text=""):
    return NewChange(message_id=message_id, change=kind, by_user_id=1, by_name="ann",
                     by_sid="sid", ts=1, text=text)


@pytest.fixture
def store(new_url):
    store = new_store(new_url())
    yield store
    store.close()


def new_store(url):
    store = Store(url)
    store.create_schema()
    with store.engine.begin() as conn:  # the authors and DM members
        conn.execute(schema.users.insert(), [
            {"id": n, "name": name, "key": name, "guest": False, "created_at": 1,
             "skeleton": name} for n, name in enumerate(["ann", "bob", "cy"], start=1)])
    return store


def fill(store, rng, count=400):
    """Messages with words drawn unevenly (some everywhere, some rare), then edits and
    deletions; returns id -> (conv_key, text, deleted) as the store should now have it."""
    rows = {}
    weights = [30, 3, 20, 2, 10, 4, 6, 1, 2, 1]
    conv_weights = [10, 6, 3, 1, 1, 4, 1, 1]
    batch = []
    for n in range(count):
        conv_key = rng.choices(CONVERSATIONS, conv_weights)[0]
        text = " ".join(rng.choices(VOCABULARY, weights, k=rng.randint(1, 4)))
        batch.append(new_message(conv_key, text, n))
    for (message, _), item in zip(store.insert_messages(batch), batch, strict=True):
        rows[message.id] = (item.conv_key, item.text, False)
    changes = []
    for message_id in rng.sample(sorted(rows), 60):
        conv_key, _, _ = rows[message_id]
        if rng.random() < 0.5:
            text = " ".join(rng.choices(VOCABULARY, k=2)) + " omega"
            changes.append(change(message_id, "edit", text))
            rows[message_id] = (conv_key, text, False)
        else:
            changes.append(change(message_id, "delete"))
            rows[message_id] = (conv_key, "", True)
    store.insert_messages(changes)
    return rows


def queries(rng, rows, count=150):
    ids = sorted(rows)
    for _ in range(count):
        words = [w.lower() for w in rng.choices([*VOCABULARY, "omega"], k=rng.randint(1, 2))]
        if rng.random() < 0.3:
            words[-1] = words[-1][:rng.randint(1, len(words[-1]))]
        keys = rng.sample(CONVERSATIONS, rng.randint(1, len(CONVERSATIONS)))
        before = rng.choice(ids) if rng.random() < 0.3 else None
        yield words, keys, before, rng.randint(1, 50)


SIZES = {"as shipped": {},
         "tiny steps": {"SEARCH_WALK": 3, "SCOPED_AT_ONCE": 1, "SCOPED_KEYS": 2}}


@pytest.mark.parametrize("sizes", SIZES.values(), ids=SIZES.keys())
def test_search_finds_what_the_oracle_finds(store, sizes, monkeypatch):
    if sizes and not store.is_sqlite:
        pytest.skip("the steps are SQLite's")
    for name, value in sizes.items():
        monkeypatch.setattr(reading, name, value)
    rng = random.Random(15)
    rows = fill(store, rng)
    for words, keys, before, limit in queries(rng, rows):
        got = [m.id for m in store.search(words, keys, before, limit)]
        assert got == oracle(rows, words, keys, before, limit), (words, keys, before, limit)


def test_a_conversation_is_never_found_as_a_word(store):
    """SQLite's index holds each message's conversation as a token of its own column; a
    word of the query never matches it (nor does PostgreSQL's index hold it)."""
    batch = [new_message("#team", "hello", 1), new_message("dm:ann:bob", "hello", 2)]
    store.insert_messages(batch)
    for key in ("#team", "dm:ann:bob"):
        for word in (key.encode().hex(), key.encode().hex()[:3], "team", "ann"):
            assert store.search([word], ["#team", "dm:ann:bob"], None, 50) == []
    assert len(store.search(["hello"], ["#team", "dm:ann:bob"], None, 50)) == 2
    assert [m.conv_key for m in store.search(["hello"], ["#team"], None, 50)] == ["#team"]


def test_the_sqlite_index_stays_whole_through_edits_deletions_and_pruning(tmp_path):
    store = new_store(f"sqlite:///{tmp_path}/whole.db")
    rng = random.Random(3)
    rows = fill(store, rng, 200)
    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM messages WHERE id <= 50"))  # as retention does
        conn.execute(sa.text(
            "INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 0)"))
    rows = {k: v for k, v in rows.items() if k > 50}
    for words, keys, before, limit in queries(rng, rows, 50):
        got = [m.id for m in store.search(words, keys, before, limit)]
        assert got == oracle(rows, words, keys, before, limit)
    store.close()
