"""eventlet's WSGI server: per-address budgets and a deadline for the request head."""

from __future__ import annotations

import http
import inspect
import logging
from typing import Any, Protocol

from ._checks import has

logger = logging.getLogger(__name__)


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
    from ..runtime import eventlet

    head = b"".join(f"{name}: {value}\r\n".encode("latin-1") for name, value in error_headers)

    class GuardedHttpProtocol(eventlet.wsgi.HttpProtocol):
        def __init__(self, conn_state: list, server: Any) -> None:
            peer = conn_state[0]
            self.peer = str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)
            self.head_timer: Any = None
            self.in_head = False
            self.requests_read = 0
            self.adopted = False
            if not gate.connection_opened(self.peer):
                return  # eventlet closes the socket as this greenlet ends
            try:
                super().__init__(conn_state, server)
            finally:
                if not self.adopted:
                    gate.connection_closed(self.peer)

        def adopt(self) -> Any:
            """Let the connection outlive this request's greenlet (a websocket served
            from the hub, compat.websocket_sessions): eventlet's `finish()` and the
            server's `_clean_connection` (which shuts down and closes `conn_state[1]`)
            leave it alone, and it keeps its place in its address's budget. Returns the
            function that ends it: shutdown, close, budget released (once)."""
            self.adopted = True
            connection = self.conn_state[1]
            self.conn_state[1] = _AdoptedElsewhere()
            peer = self.peer
            done: list[bool] = []

            def close() -> None:
                if done:
                    return
                done.append(True)
                try:
                    eventlet.greenio.shutdown_safe(connection)
                    connection.close()
                finally:
                    gate.connection_closed(peer)

            return close

        def finish(self) -> None:
            if not self.adopted:
                super().finish()

        def get_environ(self) -> dict:
            environ: dict = super().get_environ()
            environ[RELEASE_HTTP_BUFFERS] = self.release_buffers
            environ[ADOPT_CONNECTION] = self.adopt
            # eventlet's copy of the headers as they came (nothing here reads it); the
            # environ lives as long as a Socket.IO connection (python-socketio keeps it).
            environ.pop("headers_raw", None)
            return environ

        def release_buffers(self) -> None:
            """Close this connection's buffered reader and writer (`rfile`, `wfile`,
            made by `setup()`), freeing their buffers: for a websocket, once the 101 is
            out (compat.websockets). The socket stays open; eventlet then reads no further
            request (`_read_request_line` sees `rfile.closed`) and skips its flush."""
            for stream in (self.wfile, self.rfile):
                if not stream.closed:
                    try:
                        stream.close()
                    except OSError:  # flushing an empty buffer failed: the peer is gone
                        pass

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


# The environ keys under which a request finds `release_buffers` and `adopt` of its
# connection (guarded_http_protocol).
RELEASE_HTTP_BUFFERS = "chat_server.release_http_buffers"
ADOPT_CONNECTION = "chat_server.adopt_connection"


class _AdoptedElsewhere:
    """Stands in for an adopted connection's socket in eventlet's bookkeeping, whose
    clean-up shuts down and closes it when the request's greenlet ends."""

    def shutdown(self, *_args: Any) -> None:
        pass

    def close(self) -> None:
        pass


def response_already_sent() -> None:
    """Tell eventlet's WSGI server that the application wrote its own response (as
    eventlet's websocket does after switching protocols: `wsgi.WSGI_LOCAL.already_handled`),
    so it writes nothing more on this connection and closes it."""
    from ..runtime import eventlet

    eventlet.wsgi.WSGI_LOCAL.already_handled = True


def problems() -> list[str | None]:
    """What this module relies on in eventlet's WSGI server."""
    from ..runtime import eventlet

    protocol = eventlet.wsgi.HttpProtocol
    found = [
        has(protocol, "__init__", ("self", "conn_state", "server")),
        has(protocol, "handle_one_request", ("self",)),
        has(protocol, "_read_request_line", ("self",)),
        has(protocol, "parse_request", ("self",)),
        has(protocol, "send_error", ("self", "code", "message")),
        has(protocol, "get_environ", ("self",)),
        has(protocol, "finish", ("self",)),
        has(eventlet.greenio, "shutdown_safe", ("sock",)),
        has(eventlet.wsgi, "WSGI_LOCAL"),
    ]
    if "protocol" not in inspect.signature(eventlet.wsgi.server).parameters:
        found.append("eventlet.wsgi.server no longer takes protocol=")
    clean = inspect.getsource(eventlet.wsgi.server)
    if "greenio.shutdown_safe(conn[1])" not in clean or "conn[1].close()" not in clean:
        found.append("eventlet.wsgi.server no longer closes conn_state[1] when a request's "
                     "greenlet ends")
    if "self.conn_state = conn_state" not in inspect.getsource(protocol.__init__):
        found.append("eventlet.wsgi.HttpProtocol no longer keeps conn_state")
    setup = inspect.getsource(protocol.setup)
    if "self.rfile = conn.makefile" not in setup or "self.wfile = conn.makefile" not in setup:
        found.append("eventlet.wsgi.HttpProtocol.setup no longer makes rfile and wfile")
    if "self.rfile.closed" not in inspect.getsource(protocol._read_request_line):
        found.append("eventlet.wsgi.HttpProtocol._read_request_line ignores a closed rfile")
    if not getattr(protocol, "rbufsize", 0):
        found.append("eventlet.wsgi.HttpProtocol reads unbuffered (rbufsize): no peek")
    request = inspect.getsource(protocol.handle_one_request)
    for step in ("self._read_request_line()", "self.parse_request()",
                 "self.close_connection"):
        if step not in request:
            found.append(f"eventlet.wsgi.HttpProtocol.handle_one_request lacks {step}")
    if "already_handled" not in request + inspect.getsource(protocol.handle_one_response):
        found.append("eventlet.wsgi no longer reads WSGI_LOCAL.already_handled")
    return found
