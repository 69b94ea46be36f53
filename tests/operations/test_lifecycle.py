"""Stopping: SIGTERM lets sends in flight finish, closes clients, exits in bounded time."""

import signal
import sqlite3
import threading
import time

from support.checks import ok
from support.client import ChatClient
from support.names import uname


def test_sigterm_finishes_in_flight_sends_and_exits(server_factory):
    """Sends stuck behind a database lock when SIGTERM arrives are still committed and
    acked once the lock goes; then clients are closed and the process exits 0."""
    srv = server_factory(env={"RATE_LIMIT": "off"})
    client = ChatClient()
    client.connect(srv.url, auth={"name": uname("term")})
    ok(client.call("message", "before"))
    acks, done = [], threading.Event()

    def collect(*args):
        acks.append(args[0])
        if len(acks) == 20:
            done.set()

    locker = sqlite3.connect(srv.db_path, timeout=1)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        for i in range(20):
            client.sio.emit("message", f"in flight {i}", callback=collect)
        time.sleep(0.5)  # received, and waiting for the lock
        started = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert srv.proc.poll() is None, "exited without waiting for sends in flight"
    finally:
        locker.rollback()
        locker.close()
    assert done.wait(10), f"only {len(acks)} of 20 acks arrived"
    assert all(a["ok"] for a in acks), acks
    assert srv.proc.wait(15) == 0
    assert time.monotonic() - started < 12  # the grace period (10 s) bounds it
    client.wait_disconnected(timeout=5)
    assert "stopping (SIGTERM)" in srv.log_text()

    srv.start()  # same database: every acked message is there
    reader = ChatClient()
    try:
        reader.connect(srv.url, auth={"name": uname("reader")})
        page = ok(reader.call("history", {"conversation": "lobby"}))["messages"]
        stored = {m["id"] for m in page}
        assert {a["message"]["id"] for a in acks} <= stored
    finally:
        reader.disconnect()
        client.disconnect()
