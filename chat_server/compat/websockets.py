"""eventlet's websockets under python-engineio: direct writes, no compression, fast unmasking."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

import engineio
import engineio.exceptions
import engineio.payload
import engineio.socket
import socketio
from engineio import packet as eio_packet

from ._checks import has
from .wsgi_server import RELEASE_HTTP_BUFFERS

logger = logging.getLogger(__name__)


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
                return serve_websocket(session, ws)
            finally:
                session.websocket = None

        app = build(tracked, server)

        def uncompressed(environ: dict, start_response: Any) -> Any:
            environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
            return app(environ, start_response)

        return uncompressed

    eio._async = {**eio._async, "websocket": websocket}


def serve_websocket(session: Any, ws: Any) -> list:
    """python-engineio's `Socket._websocket_handler(ws)`, without its writer greenlet.

    The library gives every websocket a second greenlet for its whole life, blocked on the
    session's queue (`Socket.poll`), and starts a third one every ping interval that
    sleeps until the next ping. Each suspended greenlet keeps its saved C stack, a Python
    frame stack and its bookkeeping: about half of what a connection cost (bench/README.md,
    "Memory per connection"). Here the connection's reader (the WSGI greenlet) is the only
    one that lives as long as the connection: the queue's `put` starts a short-lived
    writer when the queue has something and none runs (`_OnDemandWriter`), and pings are
    hub timers (`ping_by_timer`). What the library does otherwise is kept step by step:
    the socket timeout, the upgrade from long-polling (probe, NOOP, UPGRADE), the size
    limit, `receive` per packet, and at the end the queue flushed, the websocket closed
    and the session closed with `TRANSPORT_CLOSE`. Relies on `Socket.connected`,
    `upgrading`, `upgraded`, `queue` (eventlet's `Queue`: `put`, `get_nowait`,
    `task_done`), `receive(pkt)`, `close(wait, abort, reason)` and the server's
    `ping_interval`, `ping_timeout`, `max_http_buffer_size`, `reason.TRANSPORT_CLOSE`.
    """
    server = session.server
    release_http_buffers(ws)

    def wait() -> Any:
        data = ws.wait()
        if data and len(data) > server.max_http_buffer_size:
            raise ValueError("packet is too large")
        return data

    for attr in ("_sock", "socket"):
        sock = getattr(ws, attr, None)
        if sock is not None and hasattr(sock, "settimeout"):
            sock.settimeout(server.ping_interval + server.ping_timeout)

    if session.connected:  # an upgrade from long-polling
        session.upgrading = True  # the library's queue holds packets meanwhile
        pkt = eio_packet.Packet(encoded_packet=wait())
        if pkt.packet_type != eio_packet.PING or pkt.data != "probe":
            logger.info("%s: failed websocket upgrade, no PING probe", session.sid)
            session.upgrading = False
            return []
        ws.send(eio_packet.Packet(eio_packet.PONG, data="probe").encode())
        session.queue.put(eio_packet.Packet(eio_packet.NOOP))  # ends the pending poll
        pkt = eio_packet.Packet(encoded_packet=wait())
        if pkt.packet_type != eio_packet.UPGRADE:
            logger.info("%s: failed websocket upgrade, no UPGRADE packet", session.sid)
            session.upgraded = False
            session.upgrading = False
            return []
        session.upgraded = True
        session.upgrading = False
    else:
        session.connected = True
        session.upgraded = True

    writer = _OnDemandWriter(session.queue, ws)
    try:
        while True:
            try:
                data = wait()
            except Exception as error:
                if not session.closed:
                    logger.info("%s: websocket error (%s), closing", session.sid, error)
                break
            if data is None:  # closed by the client
                break
            try:
                session.receive(eio_packet.Packet(encoded_packet=data))
            except engineio.exceptions.UnknownPacketError:
                pass
            except engineio.exceptions.SocketIsClosedError:
                break
            except Exception:
                logger.exception("%s: error receiving a packet", session.sid)
                break
        session.queue.put(None)  # the writer sends what is queued, then closes
        writer.join()
    finally:
        writer.detach()
    session.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)
    return []


def release_http_buffers(ws: Any) -> None:
    """Free the buffered reader and writer (8 and 16 KiB) that eventlet's WSGI server made
    for the HTTP request this websocket came in on: after the 101 answer the websocket
    reads and writes the socket itself, and the buffers would otherwise live as long as
    the connection. Our WSGI protocol (wsgi_server.guarded_http_protocol) puts the
    function that closes them in the environ. A client may not send frames before the
    101, so the reader holds nothing unread."""
    release = getattr(ws, "environ", {}).get(RELEASE_HTTP_BUFFERS)
    if release is not None:
        release()


class _OnDemandWriter:
    """Sends a session's queued packets on its websocket from a greenlet that exists only
    while there is something to send (the library keeps one blocked on the queue for the
    connection's life). The queue's `put` is wrapped on the instance: every packet the
    library queues (sends, pings, the close) starts a writer if none runs. It takes one
    packet at a time and sends it before taking the next, without yielding in between,
    so `writable()` (queue empty, send lock free) never lets a direct write overtake a
    queued packet. `None`, as in the library, means: close the websocket."""

    def __init__(self, queue: Any, ws: Any) -> None:
        from .. import runtime

        self.queue = queue
        self.ws = ws
        self.spawn = runtime.spawn
        self.running: Any = None  # the greenlet writing now
        self.closed = False
        put = queue.put

        def put_and_write(item: Any, block: bool = True, timeout: float | None = None) -> None:
            put(item, block, timeout)
            self.wake()

        queue.put = put_and_write
        self.wake()  # what was queued before (the OPEN packet, or during an upgrade)

    def wake(self) -> None:
        if self.running is None and not self.closed and self.queue.qsize():
            self.running = self.spawn(self._write)

    def _write(self) -> None:
        queue, ws = self.queue, self.ws
        try:
            while not self.closed:
                try:
                    pkt = queue.get_nowait()
                except Exception:  # eventlet.queue.Empty: all sent
                    break
                queue.task_done()
                if pkt is None:
                    self.closed = True
                    break
                try:
                    ws.send(pkt.encode())
                except Exception:  # the connection is gone: close, as the library does
                    self.closed = True
            if self.closed:
                ws.close()
        finally:
            self.running = None

    def join(self) -> None:
        """Wait until the writer that runs (if any) has finished."""
        while self.running is not None:
            self.running.wait()

    def detach(self) -> None:
        """Give the queue its own `put` back (and break the reference cycle)."""
        self.closed = True
        self.queue.__dict__.pop("put", None)


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
        from .. import runtime

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
    from ..runtime import eventlet

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
    from ..runtime import eventlet

    return eventlet.websocket.RFC6455WebSocket._apply_mask


def problems() -> list[str | None]:
    """What this module relies on in python-engineio's driver and eventlet's websocket."""
    from ..runtime import eventlet

    found = [has(eventlet.websocket.RFC6455WebSocket, "_apply_mask",
                 ("data", "mask", "length", "offset"))]
    probe = socketio.Server(async_mode="eventlet")
    if "websocket" not in getattr(probe.eio, "_async", {}):
        found.append("engineio.Server._async['websocket'] is missing")
    # serve_websocket stands in for the library's handler, which the factory is given.
    found.append(has(engineio.socket.Socket, "_websocket_handler", ("self", "ws")))
    found.append(has(engineio.socket.Socket, "close", ("self", "wait", "abort", "reason")))
    handler = inspect.getsource(engineio.socket.Socket._websocket_handler)
    for step in ("self.upgrading = True", "decoded_pkt.data != 'probe'",
                 "self.queue.put(packet.Packet(packet.NOOP))", "packet.UPGRADE",
                 "self.receive(pkt)", "reason=self.server.reason.TRANSPORT_CLOSE"):
        if step not in handler:
            found.append(f"engineio.socket.Socket._websocket_handler no longer does {step}")
    if "self.environ = environ" not in inspect.getsource(eventlet.websocket):
        found.append("eventlet.websocket.RFC6455WebSocket.environ is missing")
    if not hasattr(getattr(probe.eio, "reason", None), "TRANSPORT_CLOSE"):
        found.append("engineio.Server.reason.TRANSPORT_CLOSE is missing")
    queue = probe.eio.create_queue()
    for name in ("put", "get_nowait", "task_done", "qsize"):
        if not hasattr(queue, name):
            found.append(f"the eventlet driver's queue lacks {name}")
    if not hasattr(queue, "__dict__"):
        found.append("the eventlet driver's queue takes no instance attributes (put)")
    lock = eventlet.semaphore.Semaphore()
    for name in ("counter", "_waiters"):
        if not hasattr(lock, name):
            found.append(f"eventlet.semaphore.Semaphore.{name} is missing")
    if "self._sendlock = semaphore.Semaphore()" not in inspect.getsource(eventlet.websocket):
        found.append("eventlet.websocket.WebSocket._sendlock is no longer a Semaphore")
    return found
