"""Clients that live through faults, as a careful real client would, and keep a record of
everything they saw, for the checks of docs/protocol.md §2.3, §4 and §11.

A `Recipient` stays connected to some node: when its connection dies (or stops answering)
it opens a new one, to any node that answers, with its token and `lastId` (the newest id
it has received). Each connection's events are kept as they were when the client gave it
up: what arrives on a connection the client has abandoned is not something it saw.

A `Sender` is a recipient that also sends: small pipelined batches of `message` and
`sendMessage` with clientIds, each retried (same clientId) until it is acked `ok`. Every
emission is recorded with its connection, its place on that connection and its times.
"""

import threading
import time

from support.client import ChatClient
from support.ordering import Pipelined, direct_send, lobby_send

RETRYABLE = ("unavailable", "rate_limited")


class Connection:
    """One connection of a recipient: where, with which lastId, and what it received."""

    def __init__(self, index, node, client, last_id):
        self.index = index
        self.node = node
        self.client = client
        self.last_id = last_id  # the lastId this connection was opened with (None: first)
        self.events = None  # frozen when given up; None while it is the current one
        self.sent = 0  # emissions made on it
        self.opened = time.monotonic()

    def reply_times(self):
        """time.monotonic() of each `reply` it recorded, in order (for failure reports)."""
        return self.client.event_times("reply")

    def seen(self):
        return self.events if self.events is not None else self.client.all_events()


class Recipient:
    """A user (registered by name) connected to one node at a time."""

    def __init__(self, name, nodes, faults, rng, transport="websocket",
                 connect_timeout=10):
        self.name = name
        self.nodes = nodes  # ServerProcess list; their urls survive restarts
        self.faults = faults  # for which nodes are out right now
        self.rng = rng
        self.transport = transport
        self.connect_timeout = connect_timeout
        self.token = None
        self.connections = []
        self.refusals = []  # (node, what) of failed connection attempts
        self.all_clients = []  # for teardown
        self.stopping = threading.Event()
        self.thread = None
        self.errors = []  # unexpected trouble in the client's own thread

    # -- connections -----------------------------------------------------------------
    @property
    def current(self):
        return self.connections[-1] if self.connections else None

    def healthy(self):
        conn = self.current
        return (conn is not None and conn.events is None and conn.client.connected
                and not conn.client.disconnects)

    def newest_seen(self):
        newest = None
        for conn in self.connections:
            for name, payload in conn.seen():
                if name == "reply" and isinstance(payload, dict) and (
                        newest is None or payload["id"] > newest):
                    newest = payload["id"]
        return newest

    def give_up_current(self):
        """Freeze the current connection's record and close it in the background (a paused
        node would keep a close waiting)."""
        conn = self.current
        if conn is None or conn.events is not None:
            return
        conn.events = conn.client.all_events()
        threading.Thread(target=conn.client.disconnect, daemon=True).start()

    def connect(self, first_node=None):
        """Open a connection to a node that answers; True when connected."""
        self.give_up_current()
        if first_node is not None:
            order = [first_node]
        else:
            up = self.faults.up_nodes() if self.faults else list(range(len(self.nodes)))
            order = self.rng.sample(up, len(up)) or list(range(len(self.nodes)))
        for i in order:
            if self.connections:
                # lastId 0 when nothing arrived yet: replay everything (§1.9)
                last_id = self.newest_seen() or 0
                auth = {"token": self.token, "lastId": last_id}
            else:
                auth, last_id = {"name": self.name}, None
            client = ChatClient()
            self.all_clients.append(client)
            try:
                client.connect(self.nodes[i].url, auth=auth, transport=self.transport,
                               timeout=self.connect_timeout)
            except Exception as exc:
                self.refusals.append((i + 1, f"{type(exc).__name__}: {exc}"[:200]))
                threading.Thread(target=client.disconnect, daemon=True).start()
                continue
            self.token = self.token or client.token
            self.connections.append(Connection(len(self.connections), i + 1, client, last_id))
            return True
        return False

    # -- the client's own thread ----------------------------------------------------
    def start(self):
        self.thread = threading.Thread(target=self._guarded, daemon=True)
        self.thread.start()

    def _guarded(self):
        try:
            self.run()
        except Exception as exc:  # reported by the test
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def run(self):
        """A listener: reconnect whenever the connection is gone."""
        while not self.stopping.is_set():
            if not self.healthy() and not self.connect():
                time.sleep(0.3)
                continue
            time.sleep(0.1)

    def freeze(self):
        """Keep the current connection open (for `history`) but stop recording it."""
        conn = self.current
        if conn is not None and conn.events is None:
            conn.events = conn.client.all_events()

    def stop(self, timeout):
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout)
            return not self.thread.is_alive()
        return True


class Message:
    """One message a sender means to send, with every attempt at it."""

    def __init__(self, seq, cid, event, payload, conversation, text):
        self.seq = seq  # place in the sender's own order
        self.cid = cid
        self.event = event
        self.payload = payload
        self.conversation = conversation
        self.text = text
        self.emissions = []  # [connection index, place on it, emitted at, ack, acked at]
        self.id = None
        self.ids = set()  # every id an ok ack gave (more than one: stored twice)
        self.errors = []  # error codes met (retryable ones are retried)


class Sender(Recipient):
    """A recipient that sends to `targets` ([(destination, conversation)], destination
    None for the lobby) until told to stop, then until every message is acked."""

    def __init__(self, name, nodes, faults, rng, targets, window=4, ack_timeout=5,
                 pause=(0.2, 0.6), **kw):
        super().__init__(name, nodes, faults, rng, **kw)
        self.targets = targets
        self.window = window
        self.ack_timeout = ack_timeout
        self.pause = pause
        self.messages = []
        self.unacked = []
        self.stop_new = threading.Event()
        self.finished = threading.Event()  # every message it sent is acked
        self.fatal = []  # acks that are neither ok nor a retryable error

    def _new_message(self):
        seq = len(self.messages)
        dest, conversation = self.rng.choice(self.targets)
        cid = f"{self.name}-{seq}"
        text = f"{cid} #{seq} of {self.name}"
        event, payload = lobby_send(text, cid) if dest is None else \
            direct_send(dest, text, cid)
        msg = Message(seq, cid, event, payload, conversation, text)
        self.messages.append(msg)
        self.unacked.append(msg)

    def run(self):
        while not self.stopping.is_set():
            if self.stop_new.is_set() and not self.unacked:
                self.finished.set()
                return super().run()  # a listener from now on
            if not self.healthy() and not self.connect():
                time.sleep(0.3)
                continue
            if not self.stop_new.is_set():
                wanted = self.rng.randint(1, self.window)
                while len(self.unacked) < wanted:
                    self._new_message()
            batch = self.unacked[:self.window]
            conn = self.current
            sends = [(m.event, m.payload) for m in batch]
            pipelined = Pipelined(conn.client, sends)
            for m in batch:
                m.emissions.append([conn.index, conn.sent, pipelined.emitted_at, None, None])
                conn.sent += 1
            complete = pipelined.wait(self.ack_timeout)
            with pipelined._cond:
                acks = list(pipelined.acks)
                times = list(pipelined.ack_times)
            retry_soon = False
            for m, ack, at in zip(batch, acks, times, strict=True):
                m.emissions[-1][3:] = [ack, at]
                if ack is None:
                    continue
                if isinstance(ack, dict) and ack.get("ok") is True:
                    got = ack["message"]["id"]
                    m.ids.add(got)
                    m.id = m.id if m.id is not None else got
                    self.unacked.remove(m)
                    continue
                code = (ack.get("error") or {}).get("code") if isinstance(ack, dict) else None
                m.errors.append(code)
                if code in RETRYABLE:
                    retry_soon = True
                else:
                    self.fatal.append((m.cid, ack))
                    self.unacked.remove(m)
            if not complete:
                self.give_up_current()  # its node may be dead or paused: go elsewhere
            elif retry_soon:
                time.sleep(0.3)
            else:
                time.sleep(self.rng.uniform(*self.pause))
