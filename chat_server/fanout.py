"""One frame, many sockets: how an event reaches a crowd.

python-socketio encodes an emit once, but then gives every recipient its own trip
through Engine.IO: a queue put, a wake-up of that socket's writer greenlet, the
websocket frame built again, and only then the send. With a thousand recipients per
message that per-recipient Python work is the whole budget of the event loop.

Here an emit is framed once and written straight to every websocket that has nothing
waiting to go out before it; a socket that does (a long-polling client, one in the
middle of an upgrade, a compressed connection, a slow reader with a backlog, a writer
busy with an earlier frame) takes the library's own path. Either way each socket gets
its frames in emit order: a frame is written directly only when the socket's queue is
empty and its websocket's send lock is free with no one waiting for it.
"""

import json
import struct

import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from . import runtime


def text_frame(payload):
    """An unmasked, final websocket text frame (RFC 6455 section 5.2) around `payload`."""
    size = len(payload)
    if size < 126:
        head = bytes((0x81, size))
    elif size < 65536:
        head = struct.pack("!BBH", 0x81, 126, size)
    else:
        head = struct.pack("!BBQ", 0x81, 127, size)
    return head + payload


def track_websockets(eio):
    """Remember each Engine.IO socket's websocket (as `socket.websocket`) while it is open.

    Engine.IO keeps the websocket in a local variable of its handler; wrapping the
    websocket class it builds for each upgrade is the one place to see it.
    """
    build = eio._async["websocket"]

    def websocket(handler, server):
        eio_socket = handler.__self__

        def tracked(ws):
            eio_socket.websocket = ws
            try:
                return handler(ws)
            finally:
                eio_socket.websocket = None

        return build(tracked, server)

    eio._async = {**eio._async, "websocket": websocket}


def write_now(eio_socket, frame):
    """Write `frame` to the socket's websocket if nothing is waiting to go out before it.

    Returns False, having written nothing, when the frame must take the queue instead.
    Nothing yields between the checks and the send, so a free send lock means no frame
    is half written. A partial write is finished by a greenlet that holds the lock until
    then, so nothing overtakes the rest of the frame.
    """
    ws = getattr(eio_socket, "websocket", None)
    if ws is None or ws.extensions or eio_socket.upgrading or eio_socket.closed:
        return False
    lock = ws._sendlock
    if lock.counter <= 0 or lock._waiters or eio_socket.queue.qsize():
        return False
    try:
        sent = ws.socket.fd.send(frame)
    except OSError:  # a full buffer (BlockingIOError) or a broken connection:
        return False  # the queued path waits, or notices and closes the session
    if sent < len(frame):
        lock.acquire()  # free and nobody waiting: returns at once
        runtime.spawn(_finish, ws, lock, frame[sent:])
    return True


def _finish(ws, lock, rest):
    try:
        ws.socket.sendall(rest)
    except OSError:
        pass  # the connection is gone; its reader will see that and close the session
    finally:
        lock.release()


def dumps(value):
    """JSON as Socket.IO packets carry it (the library's separators)."""
    return _encoder.encode(value)


_encoder = json.JSONEncoder(separators=(",", ":"))


def send_text(server, eio_sid, text):
    """Send one Engine.IO text packet (`text` starts with its type, "4") to one client."""
    eio_socket = server.eio.sockets.get(eio_sid)
    if eio_socket is None or not write_now(eio_socket, text_frame(text.encode())):
        server.eio.send(eio_sid, text[1:])


def send_ack(server, eio_sid, namespace, ack_id, result):
    """The ack for a client's event, encoded without the library's search for binary
    data: the domain's answers are plain JSON."""
    args = [] if result is None else [result]
    if namespace == "/":
        try:
            text = f"43{ack_id}{dumps(args)}"
        except TypeError:  # not JSON (bytes): the library knows how
            pass
        else:
            return send_text(server, eio_sid, text)
    server._send_packet(eio_sid, server.packet_class(sio_packet.ACK, namespace=namespace,
                                                     id=ack_id, data=args))


class FanoutManager(socketio.Manager):
    """python-socketio's client manager, with emits framed once and written directly."""

    def emit(self, event, data, namespace, room=None, skip_sid=None, callback=None,
             to=None, **kwargs):
        room = to or room
        text = None
        if namespace == "/" and callback is None and not isinstance(data, tuple):
            try:
                text = "42" + dumps([event] if data is None else [event, data])
            except TypeError:  # binary attachments: the library sends them as frames
                pass
        if text is None or namespace not in self.rooms:
            return super().emit(event, data, namespace, room=room, skip_sid=skip_sid,
                                callback=callback, **kwargs)
        frame = text_frame(text.encode())
        skip = skip_sid if isinstance(skip_sid, list) else (skip_sid,)
        sockets = self.server.eio.sockets
        queued = None
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid in skip:
                continue
            eio_socket = sockets.get(eio_sid)
            if eio_socket is None or write_now(eio_socket, frame):
                continue
            if queued is None:
                queued = eio_packet.Packet(eio_packet.MESSAGE, text[1:])
            self.server._send_eio_packet(eio_sid, queued)


class FanoutRedisManager(socketio.RedisManager, FanoutManager):
    """The Redis manager: emits go through Redis, and each node frames them once for
    its own clients (its `_handle_emit` reaches `FanoutManager.emit`)."""
