"""The one place that leans on library internals (python-socketio, python-engineio, eventlet).

Everything else in the package uses only public APIs. It is one package of a few
modules, one per library surface (`server`, `rooms`, `websockets`, `websocket_sessions`,
`frames`, `wsgi_server`, `client`); each
function names the
upstream behaviour it relies on; `check()` looks for every such name and fails loudly when
an installed version lacks one (the server calls it at start, and a test calls it), so an
upgrade inside the pinned ranges cannot break us silently. If a check fails, read the
library's changelog for the named attribute and adapt the function here, nowhere else.

Nothing here is imported by the domain. eventlet is reached through `runtime` (which
filters its deprecation warning) inside the functions that need it: test processes use
the client-side helpers without loading eventlet.
"""

from __future__ import annotations

from .client import handle_in_arrival_order
from .rooms import IndexedRooms
from .server import (
    EventGate,
    SocketServer,
    allow_many_packets_per_poll,
    close_session,
    closed_session_is_bad_request,
    queued_packets,
    send_eio_text,
    send_packet,
    sessions,
    wants_ack,
)
from .websockets import (
    eventlet_unmask,
    speed_up_unmasking,
    track_websockets,
    unmask,
    writable,
    write_now,
)
from .wsgi_server import ConnectionGate, guarded_http_protocol, response_already_sent


class IncompatibleLibrary(RuntimeError):
    """An installed library lacks an internal this package relies on."""


def check() -> None:
    """Raise `IncompatibleLibrary` naming every internal that the installed libraries
    lack (each module lists its own in `problems()`)."""
    from . import client, frames, server, websocket_sessions, websockets, wsgi_server

    found = [problem for module in (server, websockets, websocket_sessions, frames,
                                    wsgi_server, client)
             for problem in module.problems() if problem]
    if found:
        raise IncompatibleLibrary("installed library internals changed: " + "; ".join(found))


__all__ = [
    "ConnectionGate", "EventGate", "IncompatibleLibrary", "IndexedRooms", "SocketServer",
    "allow_many_packets_per_poll", "check", "close_session", "closed_session_is_bad_request",
    "eventlet_unmask",
    "guarded_http_protocol", "handle_in_arrival_order", "queued_packets",
    "response_already_sent", "send_eio_text", "send_packet", "sessions",
    "speed_up_unmasking", "track_websockets", "unmask", "wants_ack", "writable",
    "write_now",
]
