"""Faults: SIGKILL at random moments under load, and a store that cannot write.

Issue 5, "Faults". test_lifecycle.py covers SIGTERM, protocol/test_durability.py a SIGKILL
right after a few acks, test_store_faults.py and protocol/test_store_failure.py a locked
database. Here:

- SIGKILL while four senders pipeline hundreds of messages with clientIds (three rounds,
  each killed after a random 0.2-1.5 s, restarted on the same database): every acked
  message is in `history` exactly once and unchanged, ids strictly increase across the
  restarts, no stored text is partial or foreign, the database passes SQLite's integrity
  check, and after the restart a retry of every unacked clientId is accepted once (the
  original when it was stored before the kill, a new message otherwise), never twice;
- a full disk (the server's file-size limit lowered under it, so every write fails with
  EFBIG, as on a full file system) and a read-only database (the database and its WAL
  made immutable): senders, registrations and room creation get `unavailable`, tokens
  still sign in, history and room lists still read, and the server recovers by itself
  when the fault clears, with nothing half-done left behind.
"""

import hashlib
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import threading
import time

import pytest
import socketio
from support.actions import join
from support.checks import check_message, err, ok
from support.client import ChatClient, ConnectRefused
from support.names import uname, uroom

# A fresh seed each run (printed); CRASH_SEED=<n> repeats a run's kill times.
SEED = int(os.environ.get("CRASH_SEED") or random.randrange(1 << 30))
ROUNDS = 3
SENDERS = 4
WINDOW = 16  # sends in flight per sender


def body(cid):
    """The text sent with `cid`: long, and derived from it, so any damage shows."""
    digest = hashlib.sha256(cid.encode()).hexdigest()
    return f"{cid}|" + (digest * 24)[: 1200 + int(digest[:2], 16)]


class Sender:
    """One user pipelining sends with clientIds until its connection dies."""

    def __init__(self, url, index, room):
        self.index = index
        self.room = room
        self.name = uname(f"crash{index}")
        self.token = None
        self.url = url
        self.transport = "polling" if index == 3 else "websocket"
        self.sent = {}  # clientId -> (event, payload)
        self.acked = {}  # clientId -> MESSAGE
        self.refused = {}  # clientId -> ack (must stay empty)
        self.client = None
        self._lock = threading.Lock()

    def connect(self):
        self.client = ChatClient()
        auth = {"token": self.token} if self.token else {"name": self.name}
        self.client.connect(self.url, auth=auth, transport=self.transport)
        self.token = self.client.token

    def payload(self, cid):
        if self.index % 2 == 0:
            return "message", {"text": body(cid), "clientId": cid}
        return "sendMessage", {"content": body(cid), "destId": self.room, "clientId": cid}

    def pump(self, round_no, stop):
        """Send with up to WINDOW acks outstanding, until `stop` or the connection dies."""
        window = threading.BoundedSemaphore(WINDOW)
        n = 0
        while not stop.is_set():
            if not window.acquire(timeout=0.2):
                if not self.client.connected:
                    return
                continue
            cid = f"{self.name}-r{round_no}-{n}"
            n += 1
            event, payload = self.payload(cid)

            def acked(*args, cid=cid):
                ack = args[0] if args else None
                with self._lock:
                    if isinstance(ack, dict) and ack.get("ok"):
                        self.acked[cid] = ack["message"]
                    else:
                        self.refused[cid] = ack
                window.release()

            with self._lock:
                self.sent[cid] = (event, payload)
            try:
                self.client.sio.emit(event, payload, callback=acked)
            except socketio.exceptions.SocketIOError:
                return

    def unacked(self):
        with self._lock:
            return [cid for cid in self.sent if cid not in self.acked]


def close_hard(client):
    """Disconnect, and close the websocket python-engineio's client leaves open when the
    server vanished under it (it would otherwise be collected unclosed, a warning)."""
    client.disconnect()
    ws = getattr(client.sio.eio, "ws", None)
    if ws is not None:
        try:
            ws.shutdown()
        except Exception:
            pass


def all_messages(client, conversation):
    """The whole history of a conversation, paged forward with `after`."""
    out, after = [], 0
    while True:
        page = ok(client.call("history", {"conversation": conversation, "after": after,
                                          "limit": 100}, timeout=30))["messages"]
        out.extend(page)
        if len(page) < 100:
            return out
        after = page[-1]["id"]


def integrity_check(db_path):
    """SQLite's own check, read-only (no checkpoint: the server must recover the WAL)."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        db.close()


def check_store(reader, senders, room):
    """Everything acked is stored once and intact; nothing stored is foreign or partial."""
    stored = all_messages(reader, "lobby") + all_messages(reader, room)
    by_cid = {}
    for conversation in ("lobby", room):
        ids = [m["id"] for m in stored if m["conversation"] == conversation]
        assert ids == sorted(ids) and len(set(ids)) == len(ids), \
            f"{conversation}: ids not strictly increasing"
    names = {s.name: s for s in senders}
    for m in stored:
        cid, _, _ = m["text"].partition("|")
        assert m["from"] in names, f"a message from nowhere: {m!r}"
        assert cid.startswith(m["from"] + "-"), f"text of another sender: {m['text'][:80]!r}"
        assert m["text"] == body(cid), f"stored text damaged for {cid}: {m['text'][:80]!r}..."
        assert cid not in by_cid, f"{cid} stored twice: ids {by_cid[cid]['id']} and {m['id']}"
        by_cid[cid] = m
    for s in senders:
        for cid, msg in s.acked.items():
            assert cid in by_cid, f"acked message {cid} (id {msg['id']}) lost"
            assert by_cid[cid] == msg, f"{cid} changed: acked {msg!r}, stored {by_cid[cid]!r}"
    return by_cid


def test_sigkill_under_load_loses_nothing_acked(server_factory):
    srv = server_factory(env={"RATE_LIMIT": "off"})
    print(f"CRASH_SEED={SEED}")  # shown with a failure: repeats its kill times
    rng = random.Random(SEED)
    room = uroom("Crash")
    senders = [Sender(srv.url, i, room) for i in range(SENDERS)]
    reader = None
    newest_before = 0
    figures = []
    try:
        for s in senders:
            s.connect()
            join(s.client, room)
        for round_no in range(ROUNDS):
            stop = threading.Event()
            threads = [threading.Thread(target=s.pump, args=(round_no, stop), daemon=True)
                       for s in senders]
            acked_before = sum(len(s.acked) for s in senders)
            for t in threads:
                t.start()
            # The load is on once acks flow; then the kill comes at a random moment.
            deadline = time.monotonic() + 15
            while sum(len(s.acked) for s in senders) == acked_before:
                assert time.monotonic() < deadline, "no ack within 15 s of starting the load"
                time.sleep(0.01)
            kill_after = rng.uniform(0.2, 1.5)
            time.sleep(kill_after)
            srv.kill()
            stop.set()
            for t in threads:
                t.join(10)
            for s in senders:
                close_hard(s.client)
            integrity_check(srv.db_path)
            srv.start()

            for s in senders:
                assert not s.refused, f"{s.name} had sends refused: {list(s.refused.items())[:3]}"
                s.connect()
            reader = ChatClient()
            reader.connect(srv.url, auth={"name": uname("reader")})
            join(reader, room)
            stored = check_store(reader, senders, room)
            new_ids = [m["id"] for m in stored.values() if m["id"] > newest_before]
            acked_now = sum(len(s.acked) for s in senders)

            # Retry every send whose ack never came: accepted exactly once.
            retried = originals = 0
            for s in senders:
                for cid in s.unacked():
                    event, payload = s.sent[cid]
                    msg = ok(s.client.call(event, payload, timeout=20))["message"]
                    check_message(msg, from_=s.name, text=body(cid))
                    if cid in stored:  # committed before the kill, its ack lost with it
                        assert msg == stored[cid], f"retry of stored {cid} made a new message"
                        originals += 1
                    else:
                        assert msg["id"] > max(m["id"] for m in stored.values()), \
                            f"new message {cid} got an old id {msg['id']}"
                    s.acked[cid] = msg
                    retried += 1
            # A second retry of everything changes nothing.
            for s in senders:
                sample = rng.sample(sorted(s.acked), min(20, len(s.acked)))
                for cid in sample:
                    event, payload = s.sent[cid]
                    assert ok(s.client.call(event, payload))["message"] == s.acked[cid]
            stored = check_store(reader, senders, room)
            assert set(stored) == {cid for s in senders for cid in s.sent}, \
                "history differs from what was sent"
            newest_before = max(m["id"] for m in stored.values())
            figures.append((round(kill_after, 2), acked_now, retried, originals, len(new_ids)))
            reader.disconnect()
            reader = None

        total = sum(len(s.sent) for s in senders)
        print(f"SIGKILL rounds (kill after s, acked so far, retried, of which already stored, "
              f"stored in the round): {figures}; "
              f"{total} messages")
        assert total >= 200, f"only {total} sends: the load did not pipeline"
    finally:
        for s in senders:
            if s.client is not None:
                close_hard(s.client)
        if reader is not None:
            reader.disconnect()


# -- the store cannot write -----------------------------------------------------------------

def full_disk(srv):
    """Every write of the server process beyond 4 KiB into a file fails (EFBIG), as on a
    full file system; lifting the limit again is the disk being cleaned up."""
    if not hasattr(resource, "prlimit"):
        pytest.skip("resource.prlimit is Linux-only")
    pid = srv.proc.pid
    soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    return (lambda: resource.prlimit(pid, resource.RLIMIT_FSIZE, (4096, hard)),
            lambda: resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard)))


def read_only(srv):
    """The database and its WAL made immutable (`chattr +i`; root ignores file modes).

    The `-shm` index is left alone: SQLite maps it into memory, and an immutable mapping
    makes the process die of SIGBUS on its next write, which no server code can handle."""
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("chattr is not installed")
    files = [str(srv.db_path), str(srv.db_path) + "-wal"]
    probe = srv.tmp_path / "chattr-probe"
    probe.write_text("x")
    if subprocess.run([chattr, "+i", str(probe)], capture_output=True,
                      check=False).returncode != 0:
        probe.unlink()
        pytest.skip("the file system does not support immutable files (or no capability)")
    subprocess.run([chattr, "-i", str(probe)], check=True)
    probe.unlink()
    return (lambda: subprocess.run([chattr, "+i", *files], check=True),
            lambda: subprocess.run([chattr, "-i", *files], check=True))


@pytest.mark.parametrize("fault", [full_disk, read_only], ids=["disk-full", "read-only"])
def test_store_that_cannot_write_gives_unavailable_and_recovers(server_factory, fault):
    srv = server_factory(env={"RATE_LIMIT": "off"})
    start_fault, clear_fault = fault(srv)
    clients = []

    def client(auth=None, transport="websocket"):
        c = ChatClient()
        clients.append(c)
        c.connect(srv.url, auth=auth, transport=transport)
        return c

    faulty = False
    try:
        alice = client({"name": uname("alice")})
        bob = client({"name": uname("bob")}, transport="polling")
        room = uroom("Kept")
        join(alice, room)
        join(bob, room)
        before = [ok(alice.call("message", f"before {i}"))["message"] for i in range(3)]
        in_room = ok(bob.call("sendMessage", {"content": "room before", "destId": room}))
        mark = bob.mark()

        start_fault()
        faulty = True
        t0 = time.monotonic()
        err(alice.call("message", "during the fault", timeout=30), "unavailable")
        err(alice.call("message", {"text": "with id", "clientId": "cid-fault"}, timeout=30),
            "unavailable")
        err(bob.call("sendMessage", {"content": "dm", "destId": alice.name}, timeout=30),
            "unavailable")
        err(bob.call("sendMessage", {"content": "room", "destId": room}, timeout=30),
            "unavailable")
        err(alice.call("joinRoom", {"room": uroom("New")}, timeout=30), "unavailable")
        assert time.monotonic() - t0 < 60
        with pytest.raises(ConnectRefused) as refused:
            client({"name": uname("newcomer")})
        assert refused.value.code == "unavailable"
        # Reads keep working: a token signs in, history and rooms are there.
        alice2 = client({"token": alice.token})
        assert ok(alice2.call("history", {"conversation": "lobby"}))["messages"][-3:] == before
        assert ok(bob.call("history", {"conversation": room}))["messages"] == \
            [in_room["message"]]
        assert ok(alice2.call("listRooms"))["rooms"]
        assert srv.get("/healthz").status_code == 200
        bob.assert_no_event("reply", since=mark, wait=0.3)

        clear_fault()
        faulty = False
        after = ok(alice.call("message", {"text": "after", "clientId": "cid-fault"},
                              timeout=30))["message"]
        assert after["id"] > before[-1]["id"] and after["text"] == "after"
        assert bob.wait_for("reply", lambda m: m["id"] == after["id"])["text"] == "after"
        join(alice, uroom("New"))
        newcomer = client({"name": uname("newcomer")})
        ok(newcomer.call("message", "hello"))
        history = ok(bob.call("history", {"conversation": "lobby"}))["messages"]
        texts = [m["text"] for m in history]
        assert "during the fault" not in texts and "with id" not in texts
        assert texts[-5:] == ["before 0", "before 1", "before 2", "after", "hello"]
        assert srv.proc.poll() is None
    finally:
        if faulty:
            clear_fault()
        for c in clients:
            c.disconnect()
