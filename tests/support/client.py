"""A synchronous test client for the chat protocol.

`ChatClient` wraps python-socketio's `socketio.Client`: it records every event the server
sends (from the client's own reader thread, so access is guarded by a condition), and
offers blocking helpers to call events with an ack, wait for events, and assert that an
event did not arrive.
"""

import threading
import time

import requests
import requests.adapters
import socketio
import urllib3

from chat_server import compat

TRANSPORTS = ("websocket", "polling")
NO_DATA = object()  # "send the event with no argument at all" (distinct from null)
CALL_TIMEOUT = 5
WAIT_TIMEOUT = 3
QUIET_WAIT = 0.2

# The server answers a long-poll with every packet queued for the client; python-engineio's
# client refuses more than 16 per response unless told otherwise.
compat.allow_many_packets_per_poll(4096)


class StaleConnectionRetry(urllib3.Retry):
    """Retries a request whose connection broke before any answer; never one that timed
    out waiting for it (the server may have taken it: a second POST would repeat it)."""

    def increment(self, method=None, url=None, response=None, error=None, _pool=None,
                  _stacktrace=None):
        if isinstance(error, urllib3.exceptions.ReadTimeoutError):
            raise error
        return super().increment(method, url, response, error, _pool, _stacktrace)


def http_session():
    """The HTTP session of one test client: a request that meets a keep-alive connection
    the server closed at that moment is sent again on a new one. Without this, a polling
    client loses its POST, and python-engineio's client then ends its write loop while it
    still says it is connected: everything it emits afterwards is silently dropped."""
    session = requests.Session()
    retry = StaleConnectionRetry(total=2, connect=2, read=1, status=0, other=0, redirect=0,
                                 allowed_methods=None, raise_on_status=False)
    adapter = requests.adapters.HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    return session


class NoAck(AssertionError, socketio.exceptions.TimeoutError):
    """No ack in time; the message says what the client library thinks of the connection."""


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
        self._http = http_session()  # ours, so that teardown can close its sockets
        self.sio = socketio.Client(http_session=self._http, **client_kwargs)
        # Events are recorded in the order they arrived, so that the ordering promises of
        # the protocol can be checked.
        compat.handle_in_arrival_order(self.sio)
        self._cond = threading.Condition()
        self._events = []  # [(event name, payload), ...] in arrival order
        self._times = []  # time.monotonic() of each, when it was recorded
        self.connect_errors = []
        self.disconnects = []
        self.welcome = None
        self.sid = self.name = self.token = None
        self.sio.on("*", self._on_any)
        self.sio.on("connect_error", self._on_connect_error)
        self.sio.on("disconnect", self._on_disconnect)

    # -- recording -----------------------------------------------------------------
    def _record(self, name, payload):
        with self._cond:
            self._events.append((name, payload))
            self._times.append(time.monotonic())
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
        """Connected and able to send: python-engineio's client can lose its writer (a
        failed POST, an idle queue) and still say it is connected (python-engineio #454)."""
        eio = self.sio.eio
        return (self.sio.connected and eio.state == "connected"
                and eio.write_loop_task is not None)

    def state(self):
        """What the client library says of this connection, for failure messages."""
        eio = self.sio.eio
        return (f"connected={self.sio.connected} eio.state={eio.state} "
                f"transport={eio.current_transport} writer={eio.write_loop_task is not None} "
                f"sid={self.sid}")

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
        except Exception:
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
        try:
            return self.sio.call(event, self._args(data), timeout=timeout)
        except socketio.exceptions.TimeoutError:
            raise NoAck(f"{self.name or 'client'}: no ack for {event!r} within "
                        f"{timeout}s ({self.state()})") from None

    def emit(self, event, data=NO_DATA, callback=None):
        """Emit without waiting (and without an ack unless `callback` is given)."""
        self.sio.emit(event, self._args(data), callback=callback)

    def call_many(self, event, payloads, timeout=CALL_TIMEOUT * 2):
        """Pipeline several emits of one event with acks; return the acks in sending order."""
        return self.call_each([(event, p) for p in payloads], timeout)

    def call_each(self, calls, timeout=CALL_TIMEOUT * 2):
        """Pipeline (event, payload) emits with acks, without waiting in between; return
        the acks in sending order."""
        acks = [None] * len(calls)
        done = threading.Event()
        remaining = [len(calls)]
        lock = threading.Lock()

        def make_cb(i):
            def cb(*args):
                acks[i] = args[0] if len(args) == 1 else list(args)
                with lock:
                    remaining[0] -= 1
                    if remaining[0] == 0:
                        done.set()
            return cb

        if not calls:
            return []
        for i, (event, payload) in enumerate(calls):
            self.sio.emit(event, self._args(payload), callback=make_cb(i))
        if not done.wait(timeout):
            raise AssertionError(f"only {len(calls) - remaining[0]} of "
                                 f"{len(calls)} acks arrived")
        return acks

    # -- receiving -----------------------------------------------------------------
    def mark(self):
        """An index into the event log: pass it as `since` to look only at later events."""
        with self._cond:
            return len(self._events)

    def event_times(self, name):
        """When each `name` event was recorded (time.monotonic()), oldest first."""
        with self._cond:
            return [t for (e, _), t in zip(self._events, self._times, strict=True)
                    if e == name]

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
                        f"{len(found)} within {timeout}s ({self.state()}); "
                        f"last events: {recent!r}")
                self._cond.wait(left)

    def assert_no_event(self, name, predicate=None, wait=QUIET_WAIT, since=0):
        """Wait `wait` seconds, then assert no matching `name` event was recorded."""
        time.sleep(wait)
        found = self.events(name, predicate, since)
        assert not found, f"{self.name or 'client'} unexpectedly got {name!r}: {found!r}"


def disconnect_all(clients):
    """Disconnect several clients at once (each close waits for its own reader thread)."""
    threads = [threading.Thread(target=c.disconnect, daemon=True) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)

