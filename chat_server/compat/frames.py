"""A client's websocket frames read in bulk: one `recv` per readable socket, every whole
frame parsed from a buffer kept per connection.

eventlet's `RFC6455WebSocket.wait()` reads one frame with four `recv` calls or more
(header, extended length, mask, payload), and blocks its greenlet until the frame is
whole. Nearly every frame a chat client sends is of one kind: masked, final, text, no
larger than the size limit. Those are parsed here from what the socket held, and an
incomplete one waits in the buffer for the next readable event (no greenlet waits on
it). Everything else (control frames, fragments, binary or unmasked frames, reserved
bits, a frame over the limit, invalid UTF-8, the end of the stream, a socket error) goes
to eventlet's own reader, for one message, with the bytes taken from the socket put
where it reads first: it then does what it always did (answers a ping, closes with its
status code, raises).
"""

from __future__ import annotations

import inspect
import socket
from collections.abc import Callable
from typing import Any

from . import websockets  # `unmask` (this module is imported while it loads)
from ._checks import has

RECV_SIZE = 64 * 1024  # one read takes up to this much; a full read means: read again
_FINAL_TEXT = 0x81  # FIN, no reserved bits, opcode 1 (text)
_MASKED = 0x80


class FrameReader:
    """The frames of one RFC 6455 websocket (`ws`, eventlet's `RFC6455WebSocket`):
    bytes received and not yet parsed, and whole frames parsed out of them.

    `limit` is the largest message the caller takes (python-engineio's
    `max_http_buffer_size`, which its eventlet driver also gives the websocket as
    `max_frame_length`): a frame over it, in bytes, goes to eventlet, which refuses it
    or passes it to the caller's own check, as before. Anything smaller decodes to
    fewer characters than that, so both would have accepted it."""

    def __init__(self, ws: Any, limit: int) -> None:
        self.ws = ws
        self.sock = ws.socket  # eventlet's GreenSocket; `fd` is the OS socket under it
        self.limit = min(limit, ws.max_frame_length)
        self.pending = b""

    @staticmethod
    def fits(ws: Any) -> bool:
        """Whether `ws` frames as RFC 6455 does (eventlet also serves the drafts 75/76,
        whose framing is another)."""
        from ..runtime import eventlet

        return isinstance(ws, eventlet.websocket.RFC6455WebSocket)

    def read(self, deliver: Callable[[str], bool], read_one: Callable[[], bool]) -> bool:
        """Read what the socket holds now, without waiting for more: `deliver(text)` for
        each whole fast frame, in order; `read_one()` (one message through eventlet's
        `ws.wait()`) for the first frame of any other kind. Returns True to be called
        again when the socket is readable, False once either of them returned False
        (the connection ends)."""
        drained = False
        while True:
            texts, stuck = self._parse()
            for text in texts:
                if not deliver(text):
                    return False
            if stuck:
                if not self._hand_over(read_one, None):
                    return False
                drained = False  # eventlet may have read from the socket: look again
                continue
            if drained:
                return True
            try:
                data = self.sock.fd.recv(RECV_SIZE, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return True
            except OSError as error:  # eventlet meets it after the bytes taken
                if not self._hand_over(read_one, error):
                    return False
                continue
            if not data:  # the stream ended (inside a frame or not): eventlet's verdict
                if not self._hand_over(read_one, None):
                    return False
                continue
            self.pending = self.pending + data if self.pending else data
            drained = len(data) < RECV_SIZE

    def _parse(self) -> tuple[list[str], bool]:
        """Take the whole fast frames from the start of the buffer; also whether the frame
        after them is one for eventlet (else the buffer holds part of a fast frame, or
        nothing)."""
        buf = self.pending
        size = len(buf)
        limit = self.limit
        unmask = websockets.unmask
        texts: list[str] = []
        pos = 0
        stuck = False
        while size - pos >= 2:
            second = buf[pos + 1]
            if buf[pos] != _FINAL_TEXT or not second & _MASKED:
                stuck = True
                break
            length = second & 0x7F
            start = pos + 6  # the 2-byte header and the 4-byte mask
            if length == 126:
                start = pos + 8
                if size < start:
                    break
                length = int.from_bytes(buf[pos + 2:pos + 4], "big")
            elif length == 127:
                start = pos + 14
                if size < start:
                    break
                length = int.from_bytes(buf[pos + 2:pos + 10], "big")
            if length > limit:
                stuck = True
                break
            end = start + length
            if size < end:
                break
            try:
                texts.append(unmask(buf[start:end], buf[start - 4:start]).decode("utf-8"))
            except UnicodeDecodeError:
                stuck = True
                break
            pos = end
        if pos:
            self.pending = buf[pos:]
        return texts, stuck

    def _hand_over(self, read_one: Callable[[], bool], error: OSError | None) -> bool:
        """`read_one()` with `ws.socket` replaying the buffer (then `error`) first."""
        replay = _Replay(self.sock, self.pending, error)
        self.pending = b""
        self.ws.socket = replay
        try:
            return read_one()
        finally:
            self.ws.socket = self.sock
            self.pending = replay.pending


class _Replay:
    """`ws.socket` while eventlet reads: the bytes already taken from the socket first,
    then, once, the error that taking more met, turned into what eventlet's green socket
    makes of it (the end of the stream, a wait, or the error raised), then the socket.
    Everything else (sends, `fd`, `close`) is the socket's own."""

    def __init__(self, sock: Any, pending: bytes, error: OSError | None) -> None:
        self.sock = sock
        self.pending = pending
        self.error = error

    def recv(self, size: int, flags: int = 0) -> bytes:
        if self.pending:
            data, self.pending = self.pending[:size], self.pending[size:]
            return data
        if self.error is not None:
            from ..runtime import eventlet

            error, self.error = self.error, None
            base = eventlet.greenio.base
            if error.errno in base.SOCKET_CLOSED:
                return b""
            if error.errno not in base.SOCKET_BLOCKING:
                raise error
        return self.sock.recv(size, flags)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def problems() -> list[str | None]:
    """What the reader relies on in eventlet's websocket and green socket."""
    from ..runtime import eventlet

    ws_class = eventlet.websocket.RFC6455WebSocket
    found = [
        has(ws_class, "wait", ("self",)),
        has(ws_class, "_recv_frame", ("self", "message")),
        has(ws_class, "_get_bytes", ("self", "numbytes")),
        has(eventlet.greenio.GreenSocket, "recv", ("self", "bufsize", "flags")),
    ]
    # every byte eventlet's reader takes comes from `self.socket.recv`, nothing is
    # buffered inside it between frames, and the frame size limit is `max_frame_length`
    for method, steps in ((ws_class._get_bytes, ("self.socket.recv(",)),
                          (ws_class._recv_frame, ("recv = self._get_bytes",
                                                  "self.socket.recv(length - received)",
                                                  "length > self.max_frame_length")),
                          (ws_class.__init__, ("self.max_frame_length = max_frame_length",)),
                          (eventlet.websocket.WebSocket.__init__, ("self.socket = sock",))):
        source = inspect.getsource(method)
        for step in steps:
            if step not in source:
                found.append(f"eventlet.websocket.{method.__qualname__} no longer does {step}")
    # text frames decode as UTF-8 (the standard codec, unless a validator is installed)
    if "getincrementaldecoder('utf8')" not in inspect.getsource(ws_class.UTF8Decoder):
        found.append("eventlet.websocket.RFC6455WebSocket.UTF8Decoder no longer uses utf8")
    base = eventlet.greenio.base
    for name in ("SOCKET_CLOSED", "SOCKET_BLOCKING"):
        if not isinstance(getattr(base, name, None), (set, frozenset)):
            found.append(f"eventlet.greenio.base.{name} is missing")
    if "self.fd = fd" not in inspect.getsource(eventlet.greenio.GreenSocket.__init__):
        found.append("eventlet.greenio.GreenSocket no longer keeps the OS socket as fd")
    if "get_errno(e) in SOCKET_CLOSED" not in inspect.getsource(
            eventlet.greenio.GreenSocket._recv_loop):
        found.append("eventlet.greenio.GreenSocket._recv_loop no longer ends at SOCKET_CLOSED")
    return found
