"""PROTOCOL.md `unavailable` at connect time (a send while the store is locked is covered by
test_store_faults.py)."""

import sqlite3

import pytest
from support.checks import expect_refused
from support.names import uname

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


def test_registration_with_store_locked_is_unavailable(locked_store, connect):
    """Registering a new name while the store cannot write is refused with `unavailable`."""
    srv, lock, unlock = locked_store
    lock()
    name = uname("late")
    expect_refused(connect, srv.url, {"name": name}, "unavailable", timeout=STORE_WAIT)
    unlock()
    assert connect(srv.url, auth={"name": name}).name == name
