"""One frame, many sockets: how events reach a crowd.

python-socketio encodes an emit once, but then gives every recipient its own trip
through Engine.IO: a queue put, a wake-up of that socket's writer greenlet, the
websocket frame built again, and only then the send. With a thousand recipients per
message that per-recipient Python work is the whole budget of the event loop.

Here an emit (and an ack) is encoded and framed once, and the `FrameBatcher` writes each
websocket's frames of one turn of the event loop with one send. A socket that cannot
take them so (a long-polling client, one in the middle of an upgrade, a slow reader
with a backlog, a writer busy with an earlier frame) takes the library's own path.
Either way each socket gets its frames in emit order: frames skip the queue only when
the socket's queue is empty and its websocket's send lock is free with no one waiting
for it."""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Callable
from typing import Any

import socketio

from . import compat, runtime

logger = logging.getLogger(__name__)


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final websocket text frame (RFC 6455 section 5.2) around `payload`."""
    size = len(payload)
    if size < 126:
        head = bytes((0x81, size))
    elif size < 65536:
        head = struct.pack("!BBH", 0x81, 126, size)
    else:
        head = struct.pack("!BBQ", 0x81, 127, size)
    return head + payload


class FrameBatcher:
    """Frames for websockets, gathered while the event loop runs other work and written
    with one send per socket when it next comes round.

    A commit of twenty messages to a thousand clients is then a thousand sends, not
    twenty thousand, and a connection storm's `addChat`s to one client leave together.
    A socket that cannot take frames directly gets them queued at once (nothing of it
    is pending), or, if that changed meanwhile, when the frames is flushed, in order.
    """

    def __init__(self, server: socketio.Server) -> None:
        self.server = server
        # pending[eio_sid] = [(frame, Engine.IO text), ...]
        self.pending: dict[str, list[tuple[bytes, str]]] = {}

    def put(self, eio_sid: str, frame: bytes, text: str) -> bool:
        """Take a frame for the socket; False when it must be queued by the caller now."""
        frames = self.pending.get(eio_sid)
        if frames is None:
            session = compat.sessions(self.server).get(eio_sid)
            if session is None or not compat.writable(session):
                return False
            if not self.pending:
                runtime.spawn_n(self.flush)
            frames = self.pending[eio_sid] = []
        frames.append((frame, text))
        return True

    def flush(self) -> None:
        pending, self.pending = self.pending, {}
        sessions = compat.sessions(self.server)
        for eio_sid, frames in pending.items():
            session = sessions.get(eio_sid)
            if session is None:
                continue
            data = frames[0][0] if len(frames) == 1 else b"".join(f for f, _ in frames)
            try:
                if not compat.write_now(session, data):
                    for _, text in frames:
                        self.server.eio.send(eio_sid, text[1:])
            except Exception:  # one broken session must not cost the others their frames
                logger.exception("could not send to %s", eio_sid)


def dumps(value: object) -> str:
    """JSON as Socket.IO packets carry it (the library's separators)."""
    return _encoder.encode(value)


_encoder = json.JSONEncoder(separators=(",", ":"))


def event_text(event: str, data: object) -> str:
    """The Engine.IO message of a Socket.IO EVENT on the default namespace, as the library
    would encode an emit of `data` (None: no argument)."""
    return "42" + dumps([event] if data is None else [event, data])


def ack_text(ack_id: int, args: list[object]) -> str:
    """The Engine.IO message of a Socket.IO ACK on the default namespace."""
    return f"43{ack_id}{dumps(args)}"


def send_text(server: socketio.Server, eio_sid: str, text: str) -> None:
    """Send one Engine.IO text packet (`text` starts with its type, "4") to one client."""
    if not server.manager.frames.put(eio_sid, text_frame(text.encode()), text):
        server.eio.send(eio_sid, text[1:])


def send_ack(server: socketio.Server, eio_sid: str, namespace: str, ack_id: int,
             result: object) -> None:
    """The ack for a client's event, encoded without the library's search for binary
    data: the domain's answers are plain JSON."""
    args = [] if result is None else [result]
    if namespace == "/":
        try:
            text = ack_text(ack_id, args)
        except TypeError:  # not JSON (bytes): the library knows how
            pass
        else:
            return send_text(server, eio_sid, text)
    compat.send_packet(server, eio_sid, namespace, ack_id, args)


class FanoutManager(compat.IndexedRooms):
    """python-socketio's client manager, with emits framed once and sent by the frames,
    and connections held while they go live (`hold`, `release`)."""

    _frames: FrameBatcher | None = None
    _held: dict[str, list[str]] | None = None  # eio sid -> Engine.IO texts kept for it

    @property
    def held(self) -> dict[str, list[str]]:
        if self._held is None:
            self._held = {}
        return self._held

    def hold(self, sid: str, namespace: str) -> None:
        """From now on keep what is emitted to `sid`, until `release`."""
        eio_sid = self.eio_sid_from_sid(sid, namespace)
        if eio_sid is not None:
            self.held[eio_sid] = []

    def release(self, sid: str, namespace: str, first: list[tuple[str, object]],
                upto: int) -> None:
        """Send `first`, then what was kept, skipping each `reply`/`update` with an id at
        most `upto`: the connection had it in `first` (its replay) or before."""
        eio_sid = self.eio_sid_from_sid(sid, namespace)
        if eio_sid is None:
            return
        kept = self.held.pop(eio_sid, [])
        for event, data in first:
            send_text(self.server, eio_sid, event_text(event, data))
        for text in kept:
            if not _replayed(text, upto):
                send_text(self.server, eio_sid, text)

    def disconnect(self, sid: str, namespace: str, **kwargs: Any) -> Any:
        eio_sid = self.eio_sid_from_sid(sid, namespace)
        if eio_sid is not None and self._held:
            self._held.pop(eio_sid, None)
        return super().disconnect(sid, namespace, **kwargs)

    def emit(self, event: str, data: object, namespace: str,
             room: str | list[str] | None = None, skip_sid: str | list[str] | None = None,
             callback: Callable[..., object] | None = None,
             to: str | list[str] | None = None, **kwargs: Any) -> None:
        room = to or room
        text = None
        if namespace == "/" and callback is None and not isinstance(data, tuple):
            try:
                text = event_text(event, data)
            except TypeError:  # binary attachments: the library sends them as frames
                pass
        if text is None or namespace not in self.rooms:
            return super().emit(event, data, namespace, room=room, skip_sid=skip_sid,
                                callback=callback, **kwargs)
        frame = text_frame(text.encode())
        skip = skip_sid if isinstance(skip_sid, list) else (skip_sid,)
        put = self.frames.put
        held = self._held
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid in skip:
                continue
            if held and eio_sid in held:
                held[eio_sid].append(text)
                continue
            if put(eio_sid, frame, text):
                continue
            compat.send_eio_text(self.server, eio_sid, text[1:])

    @property
    def frames(self) -> FrameBatcher:
        if self._frames is None:
            self._frames = FrameBatcher(self.server)
        return self._frames


def _replayed(text: str, upto: int) -> bool:
    """Whether a kept `reply`/`update` frame carries an id at most `upto`."""
    if not text.startswith(('42["reply"', '42["update"')):
        return False
    _event, data = json.loads(text[2:])
    return isinstance(data, dict) and isinstance(data.get("id"), int) and data["id"] <= upto


class FanoutRedisManager(socketio.RedisManager, FanoutManager):
    """The Redis manager: emits go through Redis, and each node frames them once for
    its own clients (its `_handle_emit` reaches `FanoutManager.emit`)."""
