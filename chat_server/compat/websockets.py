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

from ._checks import has
from .websocket_sessions import serve_websocket

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
            session.websocket = ws  # serve_websocket sets it back to None at the end
            return serve_websocket(session, ws)

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
    lock = eventlet.semaphore.Semaphore()
    for name in ("counter", "_waiters"):
        if not hasattr(lock, name):
            found.append(f"eventlet.semaphore.Semaphore.{name} is missing")
    if "self._sendlock = semaphore.Semaphore()" not in inspect.getsource(eventlet.websocket):
        found.append("eventlet.websocket.WebSocket._sendlock is no longer a Semaphore")
    return found
