"""A synchronous test client for the chat protocol, and the fixtures built on it.

`ChatClient` wraps python-socketio's `socketio.Client`: it records every event the server
sends (from the client's own reader thread, so access is guarded by a condition), and
offers blocking helpers to call events with an ack, wait for events, and assert that an
event did not arrive. `RawEngineIO` speaks the Engine.IO / Socket.IO wire format by hand,
for the tests that must send what a well-behaved client never would.

Test modules import the fixtures they use from here (`connect`, `transport`, ...).
"""

import json
import threading
import time
import uuid

import pytest
import requests
import socketio
import websocket

TRANSPORTS = ("websocket", "polling")
NO_DATA = object()  # "send the event with no argument at all" (distinct from null)
CALL_TIMEOUT = 5
WAIT_TIMEOUT = 3
QUIET_WAIT = 0.2
CONNECT_CODES = {"invalid_name", "name_taken", "bad_token", "bad_password",
                 "server_full", "unavailable"}


def uid(n=10):
    """A random lower-case hex string, to keep names unique on shared servers."""
    return uuid.uuid4().hex[:n]


def uname(prefix="u"):
    """A fresh, valid, unique user name."""
    return f"{prefix}-{uid()}"


def uroom(prefix="r"):
    """A fresh, valid, unique room name."""
    return f"#{prefix}-{uid()}"


def dm_key(a, b):
    """The conversation key of the DM between users `a` and `b`."""
    x, y = sorted([a.lower(), b.lower()])
    return f"dm:{x}:{y}"


class ConnectRefused(Exception):
    """The server refused the Socket.IO connection; `code` is `data.code` when present."""

    def __init__(self, payload, reason):
        self.payload = payload
        self.reason = reason
        data = payload.get("data") if isinstance(payload, dict) else None
        self.data = data
        self.code = data.get("code") if isinstance(data, dict) else None
        super().__init__(f"connection refused ({reason}): {payload!r}")


class ChatClient:
    """One Socket.IO connection that records everything it receives."""

    def __init__(self, **client_kwargs):
        client_kwargs.setdefault("reconnection", False)
        self._http = requests.Session()  # ours, so that teardown can close its sockets
        self.sio = socketio.Client(http_session=self._http, **client_kwargs)
        self._deliver_in_wire_order()
        self._cond = threading.Condition()
        self._events = []  # [(event name, payload), ...] in arrival order
        self.connect_errors = []
        self.disconnects = []
        self.welcome = None
        self.sid = self.name = self.token = None
        self.sio.on("*", self._on_any)
        self.sio.on("connect_error", self._on_connect_error)
        self.sio.on("disconnect", self._on_disconnect)

    def _deliver_in_wire_order(self):
        """Handle incoming packets one after another, in the order they arrived.

        python-engineio's client hands every received message to a new thread, so two
        events that arrived in order can be recorded in the opposite order; the ordering
        promises of the protocol could then not be checked. Socket.IO DISCONNECT packets
        (type 1) keep the threaded path: their handler joins the reader thread."""
        eio = self.sio.eio
        dispatch = eio._trigger_event

        def in_order(event, *args, **kwargs):
            if event == "message" and not (args and isinstance(args[0], str)
                                           and args[0][:1] == "1"):
                kwargs["run_async"] = False
            return dispatch(event, *args, **kwargs)

        eio._trigger_event = in_order

    # -- recording -----------------------------------------------------------------
    def _record(self, name, payload):
        with self._cond:
            self._events.append((name, payload))
            self._cond.notify_all()

    def _on_any(self, event, *args):
        self._record(event, args[0] if len(args) == 1 else (list(args) if args else None))

    def _on_connect_error(self, data=None, *rest):
        with self._cond:
            self.connect_errors.append(data)
            self._cond.notify_all()

    def _on_disconnect(self, *reason):
        with self._cond:
            self.disconnects.append(reason[0] if reason else None)
            self._cond.notify_all()

    # -- connection ----------------------------------------------------------------
    def connect(self, url, auth=None, transport="websocket", headers=None,
                timeout=CALL_TIMEOUT, wait_welcome=True):
        """Connect; return the `welcome` payload, or raise `ConnectRefused`.

        The namespace handshake is awaited here rather than inside python-socketio: after
        a refusal over polling, its own clean-up can miss sending the Engine.IO CLOSE (a
        race with its write loop) and then block until the server's next ping (25 s)."""
        try:
            self.sio.connect(url, auth=auth, transports=[transport],
                             headers=dict(headers or {}), wait=False)
        except socketio.exceptions.ConnectionError as exc:
            with self._cond:
                payload = self.connect_errors[-1] if self.connect_errors else None
            raise ConnectRefused(payload, str(exc)) from None
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self.connect_errors:
                    payload = self.connect_errors[-1]
                    break
                if "/" in self.sio.namespaces and (
                        not wait_welcome or any(n == "welcome" for n, _ in self._events)):
                    payload = None
                    break
                left = deadline - time.monotonic()
                if left <= 0 or self.disconnects:
                    payload = False
                    break
                self._cond.wait(min(left, 0.05))
        if payload is not None:
            self.disconnect()
            if payload is False:
                raise AssertionError(f"no Socket.IO connection and welcome within {timeout}s")
            raise ConnectRefused(payload, "connect_error")
        if not wait_welcome:
            return None
        self.welcome = self.wait_for("welcome", timeout=timeout)
        self.sid = self.welcome.get("sid")
        self.name = self.welcome.get("name")
        self.token = self.welcome.get("token")
        return self.welcome

    @property
    def connected(self):
        return self.sio.connected

    @property
    def socket_sid(self):
        """The Socket.IO sid the client library was given for namespace `/`."""
        return self.sio.get_sid()

    def disconnect(self):
        """Close the connection (idempotent, never raises, never waits long).

        Over polling, the Engine.IO CLOSE packet is posted directly first: the server then
        answers the pending long-poll at once, whatever state python-socketio's own write
        loop is in, so its clean-up below does not wait for a ping."""
        eio = self.sio.eio
        try:
            if eio.state == "connected" and eio.current_transport == "polling" and eio.sid:
                with requests.Session() as http:
                    http.post(eio.base_url, data="1", timeout=2,
                              headers={"Content-Type": "text/plain;charset=UTF-8"})
        except requests.exceptions.RequestException:
            pass
        try:
            if self.sio.connected:
                self.sio.disconnect()
            elif eio.state == "connected":
                eio.disconnect()
        except Exception:  # noqa: BLE001, S110 - teardown must not mask the test's result
            pass
        self._http.close()

    def wait_disconnected(self, timeout=WAIT_TIMEOUT):
        """Wait until the server has closed this connection."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self.disconnects and self.sio.connected:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("connection still open")
                self._cond.wait(min(left, 0.05))

    # -- sending -------------------------------------------------------------------
    @staticmethod
    def _args(data):
        if data is NO_DATA:
            return None  # python-socketio sends no argument for None
        if data is None:
            return (None,)  # a single JSON null argument
        return data

    def call(self, event, data=NO_DATA, timeout=CALL_TIMEOUT):
        """Emit with an ack callback and return what the ack received."""
        return self.sio.call(event, self._args(data), timeout=timeout)

    def emit(self, event, data=NO_DATA, callback=None):
        """Emit without waiting (and without an ack unless `callback` is given)."""
        self.sio.emit(event, self._args(data), callback=callback)

    def call_many(self, event, payloads, timeout=CALL_TIMEOUT * 2):
        """Pipeline several emits with acks; return the acks in sending order."""
        acks = [None] * len(payloads)
        done = threading.Event()
        remaining = [len(payloads)]
        lock = threading.Lock()

        def make_cb(i):
            def cb(*args):
                acks[i] = args[0] if len(args) == 1 else list(args)
                with lock:
                    remaining[0] -= 1
                    if remaining[0] == 0:
                        done.set()
            return cb

        if not payloads:
            return []
        for i, p in enumerate(payloads):
            self.sio.emit(event, self._args(p), callback=make_cb(i))
        if not done.wait(timeout):
            raise AssertionError(f"only {len(payloads) - remaining[0]} of "
                                 f"{len(payloads)} acks arrived")
        return acks

    # -- receiving -----------------------------------------------------------------
    def mark(self):
        """An index into the event log: pass it as `since` to look only at later events."""
        with self._cond:
            return len(self._events)

    def events(self, name=None, predicate=None, since=0):
        """The recorded payloads of `name` (all events if None) matching `predicate`."""
        with self._cond:
            items = list(self._events[since:])
        return [p for (n, p) in items
                if (name is None or n == name) and (predicate is None or predicate(p))]

    def all_events(self, since=0):
        """The recorded (name, payload) pairs."""
        with self._cond:
            return list(self._events[since:])

    def wait_for(self, name, predicate=None, timeout=WAIT_TIMEOUT, since=0):
        """Return the first recorded `name` payload matching `predicate`, waiting for it."""
        return self.wait_for_n(name, 1, predicate, timeout, since)[0]

    def wait_for_n(self, name, n, predicate=None, timeout=WAIT_TIMEOUT, since=0):
        """Wait until `n` matching `name` events were recorded; return the first `n`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [p for (e, p) in self._events[since:]
                         if e == name and (predicate is None or predicate(p))]
                if len(found) >= n:
                    return found[:n]
                left = deadline - time.monotonic()
                if left <= 0:
                    recent = self._events[-8:]
                    raise AssertionError(
                        f"{self.name or 'client'}: expected {n} {name!r} event(s), got "
                        f"{len(found)} within {timeout}s; last events: {recent!r}")
                self._cond.wait(left)

    def assert_no_event(self, name, predicate=None, wait=QUIET_WAIT, since=0):
        """Wait `wait` seconds, then assert no matching `name` event was recorded."""
        time.sleep(wait)
        found = self.events(name, predicate, since)
        assert not found, f"{self.name or 'client'} unexpectedly got {name!r}: {found!r}"


# -- assertions ------------------------------------------------------------------------
def ok(ack):
    """Assert the ack is a success object and return it."""
    assert isinstance(ack, dict), f"ack is not one object: {ack!r}"
    assert ack.get("ok") is True, f"expected ok ack, got {ack!r}"
    return ack


def err(ack, *codes):
    """Assert the ack is a failure with one of `codes`; return the code."""
    assert isinstance(ack, dict), f"ack is not one object: {ack!r}"
    assert ack.get("ok") is False, f"expected failed ack with {codes}, got {ack!r}"
    error = ack.get("error")
    assert isinstance(error, dict), f"ack error is not an object: {ack!r}"
    assert error.get("code") in codes, f"expected code in {codes}, got {ack!r}"
    assert isinstance(error.get("message"), str) and error["message"], \
        f"error message must be a non-empty string: {ack!r}"
    return error["code"]


def assert_has(actual, expected):
    """Assert `actual` is an object holding `expected`'s fields (servers may add fields)."""
    assert isinstance(actual, dict), f"expected an object like {expected!r}, got {actual!r}"
    wrong = {k: actual.get(k, "<missing>") for k, v in expected.items() if actual.get(k) != v}
    assert not wrong, f"expected {expected!r}; these differ: {wrong!r} in {actual!r}"
    return actual


def check_message(msg, **expected):
    """Assert `msg` has the MESSAGE shape, and the given field values."""
    assert isinstance(msg, dict), f"not a MESSAGE: {msg!r}"
    for key in ("id", "conversation", "kind", "from", "fromSid", "to", "text", "ts"):
        assert key in msg, f"MESSAGE lacks {key!r}: {msg!r}"
    assert isinstance(msg["id"], int) and not isinstance(msg["id"], bool), msg
    assert msg["kind"] in ("broadcast", "room", "direct"), msg
    assert isinstance(msg["conversation"], str) and isinstance(msg["text"], str), msg
    assert isinstance(msg["from"], str) and isinstance(msg["fromSid"], str), msg
    assert msg["to"] is None or isinstance(msg["to"], str), msg
    assert isinstance(msg["ts"], int) and not isinstance(msg["ts"], bool), msg
    assert abs(msg["ts"] - time.time() * 1000) < 120_000, f"ts not epoch ms now: {msg!r}"
    for key, value in expected.items():
        key = {"from_": "from"}.get(key, key)
        assert msg[key] == value, f"MESSAGE {key!r}: expected {value!r}, got {msg!r}"
    return msg


def send(client, text, **kw):
    """Send a lobby `message` with an ack; return the MESSAGE (asserting ok)."""
    payload = {"text": text, **kw} if kw else text
    return ok(client.call("message", payload))["message"]


def send_to(client, dest, content, **kw):
    """`sendMessage` to `dest` with an ack; return the MESSAGE (asserting ok)."""
    return ok(client.call("sendMessage", {"content": content, "destId": dest, **kw}))["message"]


def join(client, room, **kw):
    """`joinRoom` with an ack; return the ack (asserting ok)."""
    return ok(client.call("joinRoom", {"room": room, **kw}))


def user_entry(users, name):
    """The USER entry named `name` (case-insensitively) in a USER list, or None."""
    for u in users:
        if isinstance(u, dict) and str(u.get("name", "")).lower() == name.lower():
            return u
    return None


def room_entry(rooms, room):
    """The ROOM_INFO for `room` (case-insensitively) in a list, or None."""
    for r in rooms:
        if isinstance(r, dict) and str(r.get("room", "")).lower() == room.lower():
            return r
    return None


def eventually(check, timeout=WAIT_TIMEOUT, interval=0.05):
    """Retry `check()` until it stops raising AssertionError; return its result."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(interval)


# -- raw Engine.IO ---------------------------------------------------------------------
class RawEngineIO:
    """A hand-driven Engine.IO v4 session over `polling` or `websocket`.

    Packets are strings in the wire format (`"40"`, `'42["message","hi"]'`) or bytes
    (sent as binary). `closed()` tells whether the server has ended the session.
    """

    def __init__(self, url, transport="polling", headers=None, timeout=5):
        self.url = url
        self.transport = transport
        self.timeout = timeout
        self.base = url + "/socket.io/?EIO=4&transport=" + transport
        self.http = None
        self.ws = None
        if transport == "polling":
            self.http = requests.Session()
            r = self.http.get(self.base, headers=headers, timeout=timeout)
            r.raise_for_status()
            open_pkt = r.text.split("\x1e")[0]
        else:
            ws_url = self.base.replace("http://", "ws://", 1)
            self.ws = websocket.create_connection(ws_url, timeout=timeout,
                                                  header=headers or {})
            open_pkt = self.ws.recv()
        assert open_pkt.startswith("0"), f"not an Engine.IO open packet: {open_pkt!r}"
        self.handshake = json.loads(open_pkt[1:])
        self.sid = self.handshake["sid"]

    def close(self):
        if self.ws is not None:
            try:
                self.ws.close(timeout=0.5)
            except Exception:  # noqa: BLE001, S110 - the server may have closed it already
                pass
            self.ws.shutdown()  # always release the socket
        if self.http is not None:
            self.http.close()

    def send(self, *packets):
        """Send packets; for polling return the POST's HTTP status."""
        if self.ws is not None:
            for p in packets:
                if isinstance(p, bytes):
                    self.ws.send_binary(p)
                else:
                    self.ws.send(p)
            return None
        body = "\x1e".join(packets) if all(isinstance(p, str) for p in packets) else packets[0]
        try:
            r = self.http.post(self.base + "&sid=" + self.sid, data=body,
                               headers={"Content-Type": "text/plain;charset=UTF-8"},
                               timeout=self.timeout)
        except requests.exceptions.ConnectionError:
            return -1  # the server dropped the HTTP connection
        return r.status_code

    def receive(self, timeout=2.0):
        """Packets received within `timeout` (one poll / frames until quiet).

        Returns None when the server has closed the session (HTTP 400, a close packet
        or a closed socket)."""
        if self.ws is not None:
            got = []
            self.ws.settimeout(timeout)
            try:
                while True:
                    opcode, data = self.ws.recv_data(control_frame=True)
                    if opcode == websocket.ABNF.OPCODE_CLOSE:
                        return None
                    if opcode in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG):
                        continue
                    text = data.decode("utf-8", "replace")
                    if text == "1":
                        return None
                    got.append(text)
                    self.ws.settimeout(0.2)
            except websocket.WebSocketTimeoutException:
                return got
            except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
                return None
        try:
            r = self.http.get(self.base + "&sid=" + self.sid, timeout=timeout)
        except requests.exceptions.ReadTimeout:
            return []
        except requests.exceptions.ConnectionError:
            return None
        if r.status_code != 200:
            return None
        packets = r.text.split("\x1e") if r.text else []
        if "1" in packets:
            return None
        return packets

    def connect_socketio(self, auth=None, timeout=3.0):
        """Send the Socket.IO CONNECT and return the packets up to and including welcome."""
        self.send("40" if auth is None else "40" + json.dumps(auth))
        got = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            packets = self.receive(timeout=1.0)
            assert packets is not None, f"session closed while connecting; got {got!r}"
            for p in packets:
                if p == "2":
                    self.send("3")
                    continue
                got.append(p)
            if any(p.startswith('42["welcome"') for p in got):
                return got
        raise AssertionError(f"no welcome after raw CONNECT; got {got!r}")

    def closed(self, timeout=3.0):
        """True if the server closes the session within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            packets = self.receive(timeout=min(left, 1.0))
            if packets is None:
                return True
            for p in packets:
                if p == "2":
                    self.send("3")


# -- fixtures --------------------------------------------------------------------------
def scrape_metrics(srv, token):
    """/metrics of a server started with METRICS_TOKEN=token: {(name, labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    response = srv.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples}


def private_server(env, scope="module"):
    """A fixture: one server with its own settings and database, shared by a module's tests.

    For settings that tests only read (limits, origins, timeouts); tests that kill the
    server or need an empty database use `server_factory` instead."""

    @pytest.fixture(scope=scope)
    def fixture(tmp_path_factory):
        # tests/conftest.py: importable as `conftest` while pytest runs the suite
        from conftest import ServerProcess

        srv = ServerProcess(tmp_path_factory.mktemp("private"), env=env).start()
        yield srv
        srv.stop()

    return fixture


def disconnect_all(clients):
    """Disconnect several clients at once (each close waits for its own reader thread)."""
    threads = [threading.Thread(target=c.disconnect, daemon=True) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)


@pytest.fixture(params=TRANSPORTS)
def transport(request):
    """The Socket.IO transport under test: every protocol test runs over both."""
    return request.param


@pytest.fixture
def client_factory():
    """Make unconnected `ChatClient`s that are always disconnected at teardown."""
    made = []

    def make(**client_kwargs):
        c = ChatClient(**client_kwargs)
        made.append(c)
        return c

    yield make
    disconnect_all(made)


@pytest.fixture
def connect(client_factory, transport):
    """connect(url, auth=None, **kw) -> a connected ChatClient over the test's transport."""

    def _connect(url, auth=None, transport=transport, headers=None, timeout=CALL_TIMEOUT,
                 **client_kwargs):
        c = client_factory(**client_kwargs)
        c.connect(url, auth=auth, transport=transport, headers=headers, timeout=timeout)
        return c

    return _connect


@pytest.fixture
def raw_factory():
    """Make `RawEngineIO` sessions that are always closed at teardown."""
    made = []

    def make(url, transport="polling", **kw):
        r = RawEngineIO(url, transport, **kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def expect_refused(connect, url, auth, *codes, **kw):
    """Assert that connecting with `auth` is refused with a connect error in `codes`."""
    with pytest.raises(ConnectRefused) as info:
        connect(url, auth=auth, **kw)
    refusal = info.value
    assert isinstance(refusal.data, dict), \
        f"connect error has no data object: {refusal.payload!r}"
    assert refusal.code in codes, \
        f"expected connect error code in {codes}, got {refusal.payload!r}"
    assert isinstance(refusal.data.get("message"), str) and refusal.data["message"], \
        f"connect error data lacks a message: {refusal.payload!r}"
    return refusal


def send_while_store_is_locked(sender, prober, release, text="while locked"):
    """Send `text` from `sender` while the store is locked from outside, and meanwhile
    time `prober`'s listUsers round trips; `release()` lifts the lock once the send is
    answered. Returns (the send's ack, seconds the send waited, the round trips).

    If the store ran on the event loop, every round trip would wait as long as the send."""
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault(
        "ack", sender.call("message", text, timeout=20)))
    started = time.monotonic()
    thread.start()
    round_trips = []
    try:
        while thread.is_alive() and time.monotonic() - started < 20:
            t0 = time.monotonic()
            ok(prober.call("listUsers"))
            round_trips.append(time.monotonic() - t0)
            time.sleep(0.05)
        thread.join(20)
    finally:
        release()
    return result.get("ack"), time.monotonic() - started, round_trips
