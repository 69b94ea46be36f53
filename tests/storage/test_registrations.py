"""Registration by group commit (`Store.create_users`), on SQLite and PostgreSQL: a batch
is one transaction, and each name in it gets the answer it would get on its own."""

import pytest
import sqlalchemy as sa

from chat_server import schema
from chat_server.domain.errors import NameTaken
from chat_server.domain.models import NewUser, User
from chat_server.domain.names import skeleton
from chat_server.domain.validation import fold
from chat_server.store import Store
from chat_server.store import users as users_store


@pytest.fixture
def store(new_url):
    store = Store(new_url())
    store.create_schema()
    yield store
    store.close()


def new(name, guest=False, token="t"):
    return NewUser(name, fold(name), guest, f"{token}-{name}", None,
                   None if guest else skeleton(name), 1_000)


def rows(store):
    with store.engine.begin() as conn:
        users = conn.execute(sa.select(schema.users.c.key).order_by(schema.users.c.id))
        sessions = conn.execute(sa.select(schema.sessions.c.token_hash))
        return list(users.scalars()), sorted(sessions.scalars())


def test_a_batch_registers_every_name_with_its_session(store):
    results = store.create_users([new("ann"), new("guest-0a1b2c3d", guest=True), new("bob")])
    assert [type(r) for r in results] == [User, User, User]
    assert [r.name for r in results] == ["ann", "guest-0a1b2c3d", "bob"]
    assert len({r.id for r in results}) == 3
    assert rows(store) == (["ann", "guest-0a1b2c3d", "bob"],
                           ["t-ann", "t-bob", "t-guest-0a1b2c3d"])
    assert store.user_by_token("t-bob", 0, 1_000).id == results[2].id


def test_taken_and_lookalike_names_are_refused_one_by_one(store):
    store.create_user("victim", "victim", False, "old", None, skeleton("victim"), 1)
    results = store.create_users([
        new("Victim"),             # the same key as a registered name
        new("carol"),
        new("CAROL"),              # the same key as one earlier in the batch
        new("v\u0456ctim"),        # Cyrillic i: looks like a registered name
        new("d\u0430ve"),          # Cyrillic a ...
        new("dave"),               # ... and a later name that looks like it
        new("erin"),
    ])
    assert [type(r).__name__ for r in results] == [
        "NameTaken", "User", "NameTaken", "NameTaken", "User", "NameTaken", "User"]
    assert "looks like" in results[3].message and "looks like" in results[5].message
    assert rows(store)[0] == ["victim", "carol", "d\u0430ve", "erin"]


def test_a_conflict_only_the_database_sees_falls_back_to_one_transaction_each(
        store, monkeypatch):
    """Another node may register a name between this batch's check and its insert: the
    unique key refuses the batch, and each item is tried on its own. The check is made
    blind to the other node's row, so the insert is what finds it."""
    with store.engine.begin() as conn:  # what the other node wrote meanwhile
        conn.execute(schema.users.insert().values(
            name="gus", key="gus", guest=False, gone=False, created_at=1))
    monkeypatch.setattr(users_store, "TAKEN_KEYS", sa.select(schema.users.c.key).where(
        schema.users.c.key.in_(sa.bindparam("keys", expanding=True)), sa.false()))
    results = store.create_users([new("fay"), new("gus"), new("hal")])
    assert [type(r) for r in results] == [User, NameTaken, User]
    assert rows(store)[0] == ["gus", "fay", "hal"]
