"""The one place that leans on library internals (python-socketio, python-engineio, eventlet).

Everything else in the package uses only public APIs. Each function below names the
upstream behaviour it relies on; `check()` looks for every such name and fails loudly when
an installed version lacks one (the server calls it at start, and a test calls it), so an
upgrade inside the pinned ranges cannot break us silently. If a check fails, read the
library's changelog for the named attribute and adapt the function here, nowhere else.

Nothing here is imported by the domain. eventlet is reached through `runtime` (which
filters its deprecation warning) inside the functions that need it: test processes use
the client-side helpers without loading eventlet.
"""

from __future__ import annotations

import functools
import http
import inspect
import logging
from collections.abc import Callable
from typing import Any, Protocol

import engineio
import engineio.exceptions
import engineio.payload
import engineio.socket
import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

logger = logging.getLogger(__name__)

MAX_ATTACHMENTS = 8  # binary attachments one packet may announce; each is one frame


class IncompatibleLibrary(RuntimeError):
    """An installed library lacks an internal this module relies on."""


# -- python-socketio's Server --------------------------------------------------------------

class SocketServer(socketio.Server):
    """python-socketio's Server with what docs/protocol.md asks of it that the library leaves
    open. Relies on `Server._handle_eio_connect(eio_sid, environ)`,
    `_handle_eio_message(eio_sid, data)`, `_handle_event(eio_sid, namespace, id, data)`,
    `_handle_event_internal(server, sid, eio_sid, data, namespace, id)`,
    `_trigger_event(event, namespace, *args)`, `_binary_packet` (eio_sid -> a binary
    packet awaiting attachments) and `not_handled`.

    - Handlers must know whether the client gave an ack callback (`wants_ack()`): without
      one, a failure goes back as an `error` event.
    - Event names that are not strings, or are "*", reach the catch-all as unknown events.
    - An undecodable packet, or a binary packet announcing too many attachments, closes
      that one connection (the library logs and goes on, buffering without bound).
    - Acks go through `send_ack` (fanout's encoder) instead of the library's packet path.
    - Each new Engine.IO session is reported to `on_session_open(eio_sid, environ)`, and
      each handled Socket.IO CONNECT packet to `on_session_connect(eio_sid)`
      (edge.SessionBudget counts the sessions in between).
    - Events on `/` pass `gate` (handlers.SocketHandlers) before a greenlet is spawned for
      them; see `_handle_event`.
    """

    def __init__(self, send_ack: Callable[..., None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.send_ack = send_ack  # (server, eio_sid, namespace, ack id, result)
        self.on_session_open: Callable[[str, dict], None] | None = None
        self.on_session_connect: Callable[[str], None] | None = None
        self.gate: EventGate | None = None
        self._refused_since_yield = 0

    def _handle_eio_connect(self, eio_sid: str, environ: dict) -> Any:
        super()._handle_eio_connect(eio_sid, environ)
        if self.on_session_open is not None:
            self.on_session_open(eio_sid, environ)
        session = self.eio.sockets.get(eio_sid)
        if session is not None:
            session.receive = _closing_on_unknown_packets(session)

    def _handle_eio_message(self, eio_sid: str, data: str | bytes) -> Any:
        try:
            if isinstance(data, bytes) and eio_sid not in self._binary_packet:
                raise ValueError("binary frame where none was expected")
            if isinstance(data, str) and data[:1] in ("5", "6"):
                # BINARY_EVENT / BINARY_ACK announce their attachment count before "-".
                count = data[1:data.find("-")] if "-" in data[:12] else ""
                if not count.isdigit() or int(count) > MAX_ATTACHMENTS:
                    raise ValueError("too many binary attachments")
            super()._handle_eio_message(eio_sid, data)
            if isinstance(data, str) and data[:1] == "0" and self.on_session_connect:
                self.on_session_connect(eio_sid)  # a CONNECT, handled (accepted or not)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError,
                RecursionError) as error:
            logger.info("closing %s: undecodable packet (%s)", eio_sid, error)
            session = self.eio.sockets.get(eio_sid)
            if session is not None:
                # Not eio.disconnect(): over long-polling it waits for the client's next
                # poll, and this runs inside the client's POST.
                session.close(wait=False)

    def _handle_event(self, eio_sid: str, namespace: str | None, id: int | None,
                      data: list) -> None:
        """Where python-socketio queues events: `Server._handle_event(eio_sid, namespace,
        id, data)` runs in the connection's reader and starts `_handle_event_internal` in a
        new greenlet for each (`async_handlers`), however many the client pipelines.

        Here an event on `/` first asks `gate.admit(sid)`; one refused (the connection has
        too many unanswered) is answered on the spot through `gate.refused(sid, event)`,
        in this greenlet, and nothing of it stays in memory. An admitted one is handled as
        the library would, and `gate.finished(sid)` follows its answer.

        After every 16 refusals the reader yields: a client whose frames are all buffered
        already would otherwise keep the event loop to itself until it has read them all
        (and the events it was admitted would not run meanwhile). Admitted events never
        yield here: their greenlets start in the order they came, as the library's do.
        """
        namespace = namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        gate = self.gate
        if gate is None or namespace != "/" or not self.manager.is_connected(sid, namespace):
            super()._handle_event(eio_sid, namespace, id, data)
            return
        if gate.admit(sid):
            self.start_background_task(self._handle_admitted, gate, sid, eio_sid, data,
                                       namespace, id)
            return
        _handling().wants_ack = id is not None
        name = data[0] if data and isinstance(data[0], str) and data[0] != "*" else \
            "<not an event name>"
        result = gate.refused(sid, name)
        if id is not None:
            self.send_ack(self, eio_sid, namespace, id, result)
        self._refused_since_yield += 1
        if self._refused_since_yield >= 16:
            self._refused_since_yield = 0
            self.sleep(0)

    def _handle_admitted(self, gate: EventGate, sid: str, eio_sid: str, data: list,
                         namespace: str, id: int | None) -> None:
        try:
            self._handle_event_internal(self, sid, eio_sid, data, namespace, id)
        finally:
            gate.finished(sid)

    def _handle_event_internal(self, server: Any, sid: str, eio_sid: str, data: list,
                               namespace: str, id: int | None) -> None:
        _handling().wants_ack = id is not None
        if not data or not isinstance(data[0], str) or data[0] == "*":
            # "*" names the library's catch-all handler: called directly, it would take
            # the client's first argument for the sid (and answer someone else).
            data = ["<not an event name>", *(data[1:] if data else [])]
        result = server._trigger_event(data[0], namespace, sid, *data[1:])
        if id is not None and result is not self.not_handled:
            self.send_ack(server, eio_sid, namespace, id, result)


class EventGate(Protocol):
    """What `SocketServer._handle_event` asks before an event gets a greenlet."""

    def admit(self, sid: str) -> bool: ...
    def refused(self, sid: str, event: str) -> Any: ...  # the ack's value, if one is asked
    def finished(self, sid: str) -> None: ...


@functools.cache
def _handling() -> Any:
    """Per-greenlet state of the event being handled (`wants_ack`)."""
    from . import runtime

    return runtime.local()


def wants_ack() -> bool:
    """Whether the event being handled (in this greenlet) came with an ack id."""
    return getattr(_handling(), "wants_ack", False)


def _closing_on_unknown_packets(session: Any) -> Callable[[Any], Any]:
    """Engine.IO ignores unknown packet types over websocket; we close the connection.
    Relies on `engineio.socket.Socket.receive(pkt)` raising `UnknownPacketError`."""
    receive = session.receive

    def checked(pkt: Any) -> Any:
        try:
            return receive(pkt)
        except engineio.exceptions.UnknownPacketError:
            logger.info("closing %s: unknown Engine.IO packet type", session.sid)
            session.close(wait=False, abort=True)
            raise engineio.exceptions.SocketIsClosedError() from None

    return checked


def send_packet(server: socketio.Server, eio_sid: str, namespace: str, ack_id: int,
                args: list) -> None:
    """The library's own ack path (`Server._send_packet`), for answers that are not JSON."""
    server._send_packet(eio_sid, server.packet_class(sio_packet.ACK, namespace=namespace,
                                                     id=ack_id, data=args))


def send_eio_text(server: socketio.Server, eio_sid: str, text: str) -> None:
    """Queue one Engine.IO message (an encoded Socket.IO packet) for one client through
    `Server._send_eio_packet`, skipping the library's per-recipient re-encoding."""
    server._send_eio_packet(eio_sid, eio_packet.Packet(eio_packet.MESSAGE, text))


# -- python-engineio sessions ----------------------------------------------------------------

def sessions(server: socketio.Server) -> dict:
    """Engine.IO sessions by eio sid (`engineio.Server.sockets`)."""
    return server.eio.sockets


def queued_packets(session: Any) -> int:
    """Packets waiting in a session's send queue (`engineio.socket.Socket.queue`)."""
    return session.queue.qsize()


def close_session(session: Any, abort: bool = False) -> None:
    """Close a session without waiting for the client (`Socket.close(wait=False)`)."""
    session.close(wait=False, abort=abort)


def allow_many_packets_per_poll(limit: int) -> None:
    """Raise the class-wide limit of packets one long-polling payload may hold
    (`engineio.payload.Payload.max_decode_packets`, default 16, no constructor option)."""
    engineio.payload.Payload.max_decode_packets = limit


# -- eventlet's websockets -----------------------------------------------------------------

def track_websockets(eio: engineio.Server) -> None:
    """Remember each Engine.IO session's websocket (as `session.websocket`) while it is
    open, and decline per-message compression.

    Engine.IO keeps the websocket in a local variable of its handler; wrapping the factory
    in `engineio.Server._async["websocket"]` (eventlet driver: `WebSocketWSGI(handler,
    server)`, the handler a bound method of the session) is the one place to see it.
    Compression (browsers offer it) would make every frame different per socket, and chat
    frames are small: like Node's socket.io by default, the server does not take it up.
    """
    build = eio._async["websocket"]

    def websocket(handler: Any, server: Any) -> Any:
        session = handler.__self__

        def tracked(ws: Any) -> Any:
            session.websocket = ws
            try:
                return handler(ws)
            finally:
                session.websocket = None

        app = build(tracked, server)

        def uncompressed(environ: dict, start_response: Any) -> Any:
            environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
            return app(environ, start_response)

        return uncompressed

    eio._async = {**eio._async, "websocket": websocket}


def writable(session: Any) -> bool:
    """Whether frames may go straight to the session's websocket: it is uncompressed, the
    session is not upgrading or closed, nothing is queued (`Socket.queue/upgrading/
    closed`), and eventlet's `RFC6455WebSocket._sendlock` (a Semaphore: `counter`,
    `_waiters`) is free with nobody waiting. Nothing yields between this and a write."""
    ws = getattr(session, "websocket", None)
    if ws is None or ws.extensions or session.upgrading or session.closed:
        return False
    lock = ws._sendlock
    return lock.counter > 0 and not lock._waiters and not session.queue.qsize()


def write_now(session: Any, data: bytes) -> bool:
    """Write whole websocket frames to the session's socket (`ws.socket.fd`, the OS
    socket under eventlet's green one) if nothing waits before them.

    Returns False, having written nothing, when the frames must take the queue instead.
    A partial write is finished by a greenlet that holds the websocket's send lock until
    then, so nothing overtakes the rest.
    """
    if not writable(session):
        return False
    ws = session.websocket
    try:
        sent = ws.socket.fd.send(data)
    except OSError:  # a full buffer (BlockingIOError) or a broken connection:
        return False  # the queued path waits, or notices and closes the session
    if sent < len(data):
        from . import runtime

        ws._sendlock.acquire()  # free and nobody waiting: returns at once
        runtime.spawn(_finish, ws, data[sent:])
    return True


def _finish(ws: Any, rest: bytes) -> None:
    try:
        ws.socket.sendall(rest)
    except OSError:
        pass  # the connection is gone; its reader will see that and close the session
    finally:
        ws._sendlock.release()


def speed_up_unmasking() -> None:
    """Replace eventlet's `RFC6455WebSocket._apply_mask` (a bytes object per byte) with
    `unmask`, which computes the same; a test compares the two on the same input."""
    from .runtime import eventlet

    eventlet.websocket.RFC6455WebSocket._apply_mask = staticmethod(unmask)


def unmask(data: bytes, mask: bytes, length: int | None = None, offset: int = 0) -> bytes:
    """XOR `length` bytes of a client's frame with its 4-byte mask, starting `offset`
    bytes into the mask cycle, as one big-integer XOR (eventlet's loop was a tenth of the
    event loop's time in the DM benchmark)."""
    if length is None:
        length = len(data)
    key = bytes(mask[(offset + i) % 4] for i in range(4))
    pad = (key * (length // 4 + 1))[:length]
    return (int.from_bytes(data[:length], "big") ^ int.from_bytes(pad, "big")).to_bytes(
        length, "big")


def eventlet_unmask() -> Callable[..., bytes]:
    """eventlet's own `_apply_mask`, for the equality test (before `speed_up_unmasking`)."""
    from .runtime import eventlet

    return eventlet.websocket.RFC6455WebSocket._apply_mask


# -- eventlet's WSGI server: connection budgets and the request head -----------------------

class ConnectionGate(Protocol):
    """What `guarded_http_protocol` asks before it serves (edge.ConnectionBudgets)."""

    def connection_opened(self, address: str) -> bool: ...
    def connection_closed(self, address: str) -> None: ...
    def head_started(self, address: str) -> bool: ...
    def head_finished(self, address: str) -> None: ...
    def head_timed_out(self, address: str, seconds: float) -> None: ...


def guarded_http_protocol(gate: ConnectionGate, header_timeout: float,
                          error_headers: list[tuple[str, str]]) -> type:
    """eventlet's `wsgi.HttpProtocol` with budgets per peer address and a head deadline,
    for `eventlet.wsgi.server(protocol=...)` (a documented parameter, marked deprecated).

    eventlet gives each connection a socket timeout that every received byte restarts, so
    a head trickled a byte at a time holds its connection (and a slot of the server's
    pool) for ever. Here a connection over its address's budget is closed at once, and
    the whole head must arrive within `header_timeout` seconds: counted from the accept
    for a connection's first request, from the first byte for the next ones (a keep-alive
    connection waits idle as before). Relies on `HttpProtocol.__init__(conn_state,
    server)` serving the whole connection, `conn_state[0]` the peer address,
    `handle_one_request()` reading the request line through `_read_request_line()` and the
    head through the standard library's `parse_request()`, `self.rfile` a buffered reader
    (`rbufsize` not 0, for `peek`), and `close_connection`.

    Also: a head with more than one Content-Length is refused with 400 (the first value
    would win here, a proxy may take the last: request smuggling); and the standard
    library's error pages (`send_error`) become plain text with `error_headers`.
    """
    from .runtime import eventlet

    head = b"".join(f"{name}: {value}\r\n".encode("latin-1") for name, value in error_headers)

    class GuardedHttpProtocol(eventlet.wsgi.HttpProtocol):
        def __init__(self, conn_state: list, server: Any) -> None:
            peer = conn_state[0]
            self.peer = str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)
            self.head_timer: Any = None
            self.in_head = False
            self.requests_read = 0
            if not gate.connection_opened(self.peer):
                return  # eventlet closes the socket as this greenlet ends
            try:
                super().__init__(conn_state, server)
            finally:
                gate.connection_closed(self.peer)

        def handle_one_request(self) -> None:
            try:
                super().handle_one_request()
            except eventlet.Timeout as timeout:
                if timeout is not self.head_timer:
                    raise
                gate.head_timed_out(self.peer, header_timeout)
                self.close_connection = 1
            finally:
                self._head_done()
                self.requests_read += 1

        def _read_request_line(self) -> Any:
            if self.requests_read and not self.rfile.closed:
                try:  # keep-alive: idle until the next request's first byte
                    if not self.rfile.peek(1):
                        return ""
                except OSError:  # the socket timeout, or the peer went away
                    return ""
            if not gate.head_started(self.peer):
                return ""  # eventlet closes the connection
            self.in_head = True
            self.head_timer = eventlet.Timeout(header_timeout)
            return super()._read_request_line()

        def parse_request(self) -> bool:
            ok: bool = super().parse_request()
            self._head_done()
            if ok and len(self.headers.get_all("Content-Length") or ()) > 1:
                self.send_error(400, "more than one Content-Length")
                return False
            return ok

        def _head_done(self) -> None:
            if self.head_timer is not None:
                self.head_timer.cancel()
                self.head_timer = None
            if self.in_head:
                self.in_head = False
                gate.head_finished(self.peer)

        def send_error(self, code: int, message: str | None = None,
                       explain: str | None = None) -> None:
            self.close_connection = 1
            try:
                phrase = http.HTTPStatus(code).phrase
            except ValueError:
                phrase = "Error"
            body = f"{code} {phrase}\n".encode()
            reply = (f"HTTP/1.1 {code} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n").encode()
            if getattr(self, "command", None) == "HEAD":
                body = b""
            try:
                self.wfile.write(reply + head + b"\r\n" + body)
                self.wfile.flush()
            except OSError:
                pass

    return GuardedHttpProtocol


def response_already_sent() -> None:
    """Tell eventlet's WSGI server that the application wrote its own response (as
    eventlet's websocket does after switching protocols: `wsgi.WSGI_LOCAL.already_handled`),
    so it writes nothing more on this connection and closes it."""
    from .runtime import eventlet

    eventlet.wsgi.WSGI_LOCAL.already_handled = True


# -- python-engineio's client (tests and tools) ----------------------------------------------

def handle_in_arrival_order(client: socketio.Client) -> None:
    """Make a python-socketio client handle incoming packets one after another.

    python-engineio's client runs every received message on a new thread
    (`engineio.Client._trigger_event(..., run_async=True)`), so two events that arrived in
    order can be handled in the opposite order. Socket.IO DISCONNECT packets (type "1")
    keep the threaded path: their handler joins the reader thread."""
    eio = client.eio
    dispatch = eio._trigger_event

    def in_order(event: str, *args: Any, **kwargs: Any) -> Any:
        if event == "message" and not (args and isinstance(args[0], str)
                                       and args[0][:1] == "1"):
            kwargs["run_async"] = False
        return dispatch(event, *args, **kwargs)

    eio._trigger_event = in_order


# -- the check ---------------------------------------------------------------------------------

def _has(owner: Any, name: str, params: tuple[str, ...] = ()) -> str | None:
    target = getattr(owner, name, None)
    label = f"{getattr(owner, '__module__', '')}.{getattr(owner, '__name__', owner)}.{name}"
    if target is None:
        return f"{label} is missing"
    if params:
        found = tuple(inspect.signature(target).parameters)
        if found[:len(params)] != params:
            return f"{label}{found} no longer takes {params}"
    return None


def check() -> None:
    """Raise `IncompatibleLibrary` naming every internal above that the installed
    libraries lack."""
    from .runtime import eventlet

    server = socketio.Server
    problems = [
        _has(server, "_handle_eio_connect", ("self", "eio_sid", "environ")),
        _has(server, "_handle_eio_message", ("self", "eio_sid", "data")),
        _has(server, "_handle_event", ("self", "eio_sid", "namespace", "id", "data")),
        _has(server, "_handle_event_internal",
             ("self", "server", "sid", "eio_sid", "data", "namespace", "id")),
        _has(server, "_trigger_event", ("self", "event", "namespace")),
        _has(server, "_send_packet", ("self", "eio_sid", "pkt")),
        _has(server, "_send_eio_packet", ("self", "eio_sid", "eio_pkt")),
        _has(engineio.socket.Socket, "receive", ("self", "pkt")),
        _has(engineio.socket.Socket, "close", ("self", "wait", "abort")),
        _has(engineio.payload.Payload, "max_decode_packets"),
        _has(engineio.Client, "_trigger_event", ("self", "event")),
        _has(eventlet.websocket.RFC6455WebSocket, "_apply_mask",
             ("data", "mask", "length", "offset")),
        _has(eventlet.wsgi.HttpProtocol, "__init__", ("self", "conn_state", "server")),
        _has(eventlet.wsgi.HttpProtocol, "handle_one_request", ("self",)),
        _has(eventlet.wsgi.HttpProtocol, "_read_request_line", ("self",)),
        _has(eventlet.wsgi.HttpProtocol, "parse_request", ("self",)),
        _has(eventlet.wsgi.HttpProtocol, "send_error", ("self", "code", "message")),
        _has(eventlet.wsgi, "WSGI_LOCAL"),
    ]
    if "protocol" not in inspect.signature(eventlet.wsgi.server).parameters:
        problems.append("eventlet.wsgi.server no longer takes protocol=")
    if not getattr(eventlet.wsgi.HttpProtocol, "rbufsize", 0):
        problems.append("eventlet.wsgi.HttpProtocol reads unbuffered (rbufsize): no peek")
    request = inspect.getsource(eventlet.wsgi.HttpProtocol.handle_one_request)
    for step in ("self._read_request_line()", "self.parse_request()",
                 "self.close_connection"):
        if step not in request:
            problems.append(f"eventlet.wsgi.HttpProtocol.handle_one_request lacks {step}")
    if "already_handled" not in request + inspect.getsource(
            eventlet.wsgi.HttpProtocol.handle_one_response):
        problems.append("eventlet.wsgi no longer reads WSGI_LOCAL.already_handled")
    if "self._handle_event_internal" not in inspect.getsource(server._handle_event):
        problems.append("socketio.Server._handle_event no longer starts "
                        "_handle_event_internal")
    probe = server(async_mode="eventlet")  # eventlet's driver: what the server runs
    for name in ("_binary_packet", "not_handled"):
        if not hasattr(probe, name):
            problems.append(f"socketio.Server()._binary_packet/{name} is missing")
    if "websocket" not in getattr(probe.eio, "_async", {}):
        problems.append("engineio.Server._async['websocket'] is missing")
    session = engineio.socket.Socket(probe.eio, "probe")
    for name in ("queue", "upgrading", "closed"):
        if not hasattr(session, name):
            problems.append(f"engineio.socket.Socket.{name} is missing")
    lock = eventlet.semaphore.Semaphore()
    for name in ("counter", "_waiters"):
        if not hasattr(lock, name):
            problems.append(f"eventlet.semaphore.Semaphore.{name} is missing")
    if "self._sendlock = semaphore.Semaphore()" not in inspect.getsource(eventlet.websocket):
        problems.append("eventlet.websocket.WebSocket._sendlock is no longer a Semaphore")
    missing = [p for p in problems if p]
    if missing:
        raise IncompatibleLibrary("installed library internals changed: "
                                  + "; ".join(missing))
