"""The store under faults and load: the event loop never waits for the database."""

import sqlite3
import threading
import time

import pytest
from support.actions import send_while_store_is_locked
from support.checks import err, ok
from support.client import ChatClient
from support.names import uname

pytestmark = pytest.mark.alone  # both time round trips while the store is busy


def _client(url, name, transport="websocket"):
    client = ChatClient()
    client.connect(url, auth={"name": name}, transport=transport)
    return client


def test_locked_database_gives_unavailable_and_hub_keeps_serving(server_factory):
    """While another process holds the write lock, the sender gets `unavailable` after
    SQLite's busy timeout, nobody sees the message, and other clients' round trips do not
    wait for it (the store call runs on an OS thread, not on the event loop)."""
    srv = server_factory(env={"RATE_LIMIT": "off"})
    alice, bob = _client(srv.url, uname("a")), _client(srv.url, uname("b"), "polling")
    try:
        ok(alice.call("message", "before the lock"))
        bob.wait_for("reply", lambda m: m["text"] == "before the lock")
        mark = bob.mark()

        locker = sqlite3.connect(srv.db_path, timeout=1)
        locker.execute("BEGIN EXCLUSIVE")
        ack, blocked_for, round_trips = send_while_store_is_locked(alice, bob, locker.close)
        err(ack, "unavailable")
        assert blocked_for > 2, "the send should have waited for the lock"
        assert len(round_trips) >= 10
        assert max(round_trips) < blocked_for / 2
        bob.assert_no_event("reply", lambda m: m["text"] == "while locked", since=mark)

        after = ok(alice.call("message", "after the lock"))["message"]
        bob.wait_for("reply", lambda m: m["id"] == after["id"])
        history = ok(bob.call("history", {"conversation": "lobby"}))["messages"]
        assert [m["text"] for m in history] == ["before the lock", "after the lock"]
        assert srv.get("/healthz").json()["store"] == "ok"
    finally:
        alice.disconnect()
        bob.disconnect()


def test_busy_sender_does_not_slow_other_clients(server_factory):
    """One client sends as fast as acks allow and pages history; another's listUsers round
    trips stay far below the time the busy client's work takes in total."""
    # A flood from one client by design: its budgets are lifted (test_budgets.py has them).
    srv = server_factory(env={"RATE_LIMIT": "off", "EVENT_RATE": "off", "EVENT_WINDOW": "1000"})
    busy, calm = _client(srv.url, uname("busy")), _client(srv.url, uname("calm"))
    try:
        stop = threading.Event()
        sent = []

        def flood():
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and not stop.is_set():
                acks = busy.call_many("message", [f"m{len(sent)}-{i}" for i in range(50)])
                sent.extend(a for a in acks if a and a.get("ok"))
                ok(busy.call("history", {"conversation": "lobby", "limit": 100}))

        worker = threading.Thread(target=flood)
        worker.start()
        round_trips = []
        while worker.is_alive():
            t0 = time.monotonic()
            ok(calm.call("listUsers"))
            round_trips.append(time.monotonic() - t0)
            time.sleep(0.02)
        worker.join()
        assert len(sent) >= 100
        round_trips.sort()
        assert len(round_trips) >= 20
        # Generous: the median stays interactive while hundreds of commits happen.
        assert round_trips[len(round_trips) // 2] < 0.5
    finally:
        stop.set()
        busy.disconnect()
        calm.disconnect()
