"""python-engineio's websocket transport, served lean: no greenlet while a websocket idles.

The library serves a websocket with three greenlets: the WSGI request's own, blocked
reading for the connection's whole life (about 35 frames deep: eventlet's server, our
edge, python-socketio, python-engineio, eventlet's websocket), a writer blocked on the
session's queue, and one asleep until the next ping. Each suspended greenlet keeps its
saved C stack and its Python frames: together most of what a connection cost
(bench/README.md, "Memory per connection"). Here, once the websocket is open:

- the WSGI request ends: its connection is adopted (wsgi_server's `adopt`), so eventlet
  neither closes the socket nor forgets it in the per-address budget;
- reading is a hub listener: when the socket becomes readable a greenlet takes what
  arrived (one `recv`), hands each whole text frame to `Socket.receive` (frames.py), keeps
  the part of a frame that is still to come for the next time, and ends; any other frame
  goes to eventlet's websocket, which waits for it as it always did (with the socket
  timeout);
- writing is a greenlet started by the queue's `put` only while packets wait
  (`_OnDemandWriter`), and pings are hub timers (server.py's `_ping_by_timer`).

What the library's `Socket._websocket_handler(ws)` does is kept step by step: the socket
timeout, the upgrade from long-polling (probe, NOOP, UPGRADE), the size limit, `receive`
per packet, and at the end the queue flushed, the websocket closed and the session closed
with `TRANSPORT_CLOSE`.
"""

from __future__ import annotations

import inspect
import logging
import socket
from collections.abc import Callable
from typing import Any

import engineio
import engineio.exceptions
import engineio.socket
import socketio
from engineio import packet as eio_packet

from ._checks import has
from .frames import FrameReader
from .wsgi_server import ADOPT_CONNECTION, RELEASE_HTTP_BUFFERS

logger = logging.getLogger(__name__)


def serve_websocket(session: Any, ws: Any) -> list:
    """Stands in for `Socket._websocket_handler(ws)`. Relies on `Socket.connected`,
    `upgrading`, `upgraded`, `queue` (eventlet's `Queue`: `put`, `get_nowait`,
    `task_done`), `receive(pkt)`, `close(wait, abort, reason)`, the server's `sockets`,
    `ping_interval`, `ping_timeout`, `max_http_buffer_size`, `reason.TRANSPORT_CLOSE`,
    and eventlet's `RFC6455WebSocket.wait/send/close/environ/socket`."""
    server = session.server
    release = ws.environ.get(RELEASE_HTTP_BUFFERS)
    if release is not None:
        release()  # the 8 + 16 KiB buffers of the upgrade request
    for attr in ("_sock", "socket"):
        sock = getattr(ws, attr, None)
        if sock is not None and hasattr(sock, "settimeout"):
            sock.settimeout(server.ping_interval + server.ping_timeout)

    if session.connected:  # an upgrade from long-polling
        session.upgrading = True  # the library's queue holds packets meanwhile
        pkt = eio_packet.Packet(encoded_packet=_read(session, ws))
        if pkt.packet_type != eio_packet.PING or pkt.data != "probe":
            logger.info("%s: failed websocket upgrade, no PING probe", session.sid)
            session.upgrading = False
            session.websocket = None
            return []
        ws.send(eio_packet.Packet(eio_packet.PONG, data="probe").encode())
        session.queue.put(eio_packet.Packet(eio_packet.NOOP))  # ends the pending poll
        pkt = eio_packet.Packet(encoded_packet=_read(session, ws))
        if pkt.packet_type != eio_packet.UPGRADE:
            logger.info("%s: failed websocket upgrade, no UPGRADE packet", session.sid)
            session.upgraded = False
            session.upgrading = False
            session.websocket = None
            return []
        session.upgraded = True
        session.upgrading = False
    else:
        session.connected = True
        session.upgraded = True

    adopt = ws.environ.get(ADOPT_CONNECTION)
    if adopt is None:  # not under our WSGI protocol: read in this greenlet, as the library
        _Connection(session, ws, None).serve_here()
        return []
    _Connection(session, ws, adopt()).listen()
    # eventlet's WebSocketWSGI sends a closing frame when this handler returns: not now.
    ws._send_closing_frame = _skip_once(ws)
    return []


def _read(session: Any, ws: Any) -> Any:
    data = ws.wait()
    if data and len(data) > session.server.max_http_buffer_size:
        raise ValueError("packet is too large")
    return data


def _skip_once(ws: Any) -> Callable[..., None]:
    def skip(*_args: Any, **_kwargs: Any) -> None:
        del ws._send_closing_frame  # the class's own, from now on

    return skip


class _Connection:
    """One open websocket of one Engine.IO session, after the handshake."""

    def __init__(self, session: Any, ws: Any, close_socket: Callable[[], None] | None) -> None:
        from .. import runtime

        self.session = session
        self.ws = ws
        self.close_socket = close_socket
        self.runtime = runtime
        self.listener: Any = None
        self.ended = False
        self.delivered = 0  # messages of this read handed over (`_deliver_in_turns`)
        self.frames = (FrameReader(ws, session.server.max_http_buffer_size)
                       if FrameReader.fits(ws) else None)
        self.writer = _OnDemandWriter(session.queue, ws, on_closed=self._closed_by_writer)

    # -- reading -------------------------------------------------------------------------

    def serve_here(self) -> None:
        """Read in this greenlet until the connection ends (the library's way)."""
        while self._receive_one():
            pass
        self.end()

    def listen(self) -> None:
        """Read whenever the socket becomes readable (a hub listener, no greenlet)."""
        if self.ended or self.listener is not None:
            return
        hub = self.runtime.hub()
        self.listener = hub.add(hub.READ, self.ws.socket.fileno(), self._readable,
                                self._listener_failed, _no_op)

    def _unlisten(self) -> None:
        if self.listener is not None:
            self.runtime.hub().remove(self.listener)
            self.listener = None

    def _readable(self, _fileno: int) -> None:
        """On the hub: stop listening and read what arrived, in a greenlet."""
        self._unlisten()
        self.runtime.spawn_n(self._read_available)

    def _listener_failed(self, *_args: Any) -> None:
        self.listener = None
        self.runtime.spawn(self.end)

    def _read_available(self) -> None:
        if self.frames is None:  # a websocket of drafts 75/76: a frame at a time
            while self._receive_one():
                if not self._more_to_read():
                    self.listen()
                    return
        elif not self.ended:
            self.delivered = 0
            if self.frames.read(self._deliver_in_turns, self._receive_one):
                self.listen()
                return
        self.end()

    def _more_to_read(self) -> bool:
        try:
            return self.ws.socket.fd.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) is not None
        except BlockingIOError:
            return False
        except OSError:
            return True  # the next read meets the error and ends the connection

    def _receive_one(self) -> bool:
        """Read one message and hand it to the session; False when the connection ends."""
        session = self.session
        if self.ended:
            return False
        try:
            data = _read(session, self.ws)
        except Exception as error:
            if not session.closed and not self.ended:
                logger.info("%s: websocket error (%s), closing", session.sid, error)
            return False
        if data is None:  # closed by the client
            return False
        return self._deliver(data)

    # Messages handed over between two turns of the event loop. One read takes up to
    # 64 KiB, hundreds of small frames: without a turn in between, a client's burst kept
    # the loop from everyone else, and from the handlers of its own first events, so its
    # window of unanswered events (EVENT_WINDOW) filled and the rest were refused.
    DELIVER_PER_TURN = 16

    def _deliver_in_turns(self, data: Any) -> bool:
        self.delivered += 1
        if self.delivered % self.DELIVER_PER_TURN == 0:
            self.runtime.sleep(0)
        return self._deliver(data)

    def _deliver(self, data: Any) -> bool:
        """Hand one message to the session; False when the connection ends."""
        session = self.session
        if self.ended:
            return False
        try:
            session.receive(eio_packet.Packet(encoded_packet=data))
        except engineio.exceptions.UnknownPacketError:
            pass
        except engineio.exceptions.SocketIsClosedError:
            return False
        except Exception:
            logger.exception("%s: error receiving a packet", session.sid)
            return False
        return True

    # -- the end -------------------------------------------------------------------------

    def _closed_by_writer(self) -> None:
        """The session was closed (the library queued None): the websocket is closed; with
        nobody reading, the connection must end here too."""
        self.runtime.spawn(self.end)

    def end(self) -> None:
        """What the library does after its read loop, then the socket's own end."""
        if self.ended:
            return
        self.ended = True
        self._unlisten()
        session = self.session
        try:
            session.queue.put(None)  # the writer sends what is queued, then closes
            self.writer.join()
        finally:
            self.writer.detach()
        session.close(wait=False, abort=True, reason=session.server.reason.TRANSPORT_CLOSE)
        session.websocket = None
        sockets = session.server.sockets
        if sockets.get(session.sid) is session and session.closed:
            del sockets[session.sid]  # as engineio does when its handler returns
        if self.close_socket is not None:
            self.close_socket()


def _no_op(*_args: Any) -> None:
    pass


class _OnDemandWriter:
    """Sends a session's queued packets on its websocket from a greenlet that exists only
    while there is something to send (the library keeps one blocked on the queue for the
    connection's life). The queue's `put` is wrapped on the instance: every packet the
    library queues (sends, pings, the close) starts a writer if none runs. It takes one
    packet at a time and sends it before taking the next, without yielding in between,
    so `websockets.writable()` (queue empty, send lock free) never lets a direct write
    overtake a queued packet. `None`, as in the library, means: close the websocket (then
    `on_closed()`)."""

    def __init__(self, queue: Any, ws: Any, on_closed: Callable[[], None]) -> None:
        from .. import runtime

        self.queue = queue
        self.ws = ws
        self.on_closed = on_closed
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
                # eventlet closes the websocket itself when the client's close frame
                # comes (`websocket_closed`); closing it twice logs a shutdown error.
                if not ws.websocket_closed:
                    try:
                        ws.close()
                    except OSError:
                        pass
                self.on_closed()
        finally:
            self.running = None

    def join(self) -> None:
        """Wait until the writer that runs (if any) has finished (never called from the
        writer itself: `on_closed` starts the end in a greenlet of its own)."""
        while self.running is not None:
            self.running.wait()

    def detach(self) -> None:
        """Give the queue its own `put` back (and break the reference cycle)."""
        self.closed = True
        self.queue.__dict__.pop("put", None)


def problems() -> list[str | None]:
    """What this module relies on in python-engineio's socket and eventlet's hub."""
    from ..runtime import eventlet

    found = [
        has(engineio.socket.Socket, "_websocket_handler", ("self", "ws")),
        has(engineio.socket.Socket, "close", ("self", "wait", "abort", "reason")),
        has(eventlet.websocket.RFC6455WebSocket, "_send_closing_frame",
            ("self", "ignore_send_errors")),
    ]
    handler = inspect.getsource(engineio.socket.Socket._websocket_handler)
    for step in ("self.upgrading = True", "decoded_pkt.data != 'probe'",
                 "self.queue.put(packet.Packet(packet.NOOP))", "packet.UPGRADE",
                 "self.receive(pkt)", "reason=self.server.reason.TRANSPORT_CLOSE"):
        if step not in handler:
            found.append(f"engineio.socket.Socket._websocket_handler no longer does {step}")
    source = inspect.getsource(eventlet.websocket)
    for step in ("self.environ = environ", "ws._send_closing_frame(True)",
                 "self.websocket_closed = True"):
        if step not in source:
            found.append(f"eventlet.websocket no longer has {step}")
    hub = eventlet.hubs.get_hub()
    found.append(has(type(hub), "add", ("self", "evtype", "fileno", "cb", "tb")))
    found.append(has(type(hub), "remove", ("self", "listener")))
    probe = socketio.Server(async_mode="eventlet")
    if not hasattr(getattr(probe.eio, "reason", None), "TRANSPORT_CLOSE"):
        found.append("engineio.Server.reason.TRANSPORT_CLOSE is missing")
    if not isinstance(getattr(probe.eio, "sockets", None), dict):
        found.append("engineio.Server.sockets is no longer a dict")
    queue = probe.eio.create_queue()
    for name in ("put", "get_nowait", "task_done", "qsize"):
        if not hasattr(queue, name):
            found.append(f"the eventlet driver's queue lacks {name}")
    if not hasattr(queue, "__dict__"):
        found.append("the eventlet driver's queue takes no instance attributes (put)")
    return found
