"""PROTOCOL.md `unavailable`: a store that cannot write refuses, delivers nothing, keeps serving."""

import sqlite3

import pytest

from chat_client import (  # noqa: F401 - fixtures are used by name
    client_factory, connect, err, expect_refused, ok, send, transport, uid, uname,
)

STORE_WAIT = 40  # generous: the server may wait for its busy timeout before giving up


@pytest.fixture
def locked_store(server_factory):
    """A private server, and a function that takes its database's write lock until teardown."""
    srv = server_factory(env={"RATE_LIMIT": "off"})
    holders = []

    def lock():
        db = sqlite3.connect(str(srv.db_path), timeout=10, isolation_level=None)
        db.execute("BEGIN EXCLUSIVE")
        holders.append(db)

    def unlock():
        while holders:
            db = holders.pop()
            db.execute("ROLLBACK")
            db.close()

    yield srv, lock, unlock
    unlock()


def test_send_with_store_locked_is_unavailable(locked_store, connect):
    """With the database write-locked, a send is `unavailable` and reaches no one; later ones work."""
    srv, lock, unlock = locked_store
    a = connect(srv.url, auth={"name": uname("a")})
    b = connect(srv.url)
    lock()
    text = "not stored " + uid()
    err(a.call("message", {"text": text, "clientId": uid()}, timeout=STORE_WAIT), "unavailable")
    ok(b.call("listUsers"))
    unlock()
    b.assert_no_event("reply", lambda m: m["text"] == text)
    m = send(a, "stored " + uid())
    assert b.wait_for("reply", lambda x: x["id"] == m["id"]) == m
    hist = ok(b.call("history", {"conversation": "lobby"}))["messages"]
    assert text not in [x["text"] for x in hist]


def test_registration_with_store_locked_is_unavailable(locked_store, connect):
    """Registering a new name while the store cannot write is refused with `unavailable`."""
    srv, lock, unlock = locked_store
    lock()
    name = uname("late")
    expect_refused(connect, srv.url, {"name": name}, "unavailable", timeout=STORE_WAIT)
    unlock()
    assert connect(srv.url, auth={"name": name}).name == name
