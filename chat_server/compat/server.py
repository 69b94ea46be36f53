"""python-socketio's Server and python-engineio's sessions: our hooks into them."""

from __future__ import annotations

import functools
import inspect
import logging
import re
import time
from collections.abc import Callable
from typing import Any, Protocol

import engineio
import engineio.exceptions
import engineio.payload
import engineio.socket
import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from ._checks import has

logger = logging.getLogger(__name__)

MAX_ATTACHMENTS = 8  # binary attachments one packet may announce; each is one frame


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
      (edge.SessionBudget counts the sessions in between): see `report_sessions`.
    - Events on `/` pass a gate (handlers.SocketHandlers) before a greenlet is spawned for
      them: see `admit_events_through` and `_handle_event`.
    - The common packet, an EVENT on `/` without attachments, is decoded without the
      library's packet objects, and its greenlet is a plain one (`fast_events`): see
      `_message`, `plain_event` and `_handle_event`.

    The hooks are registered like handlers (`on`), once the objects behind them exist:
    they depend on this server, so they cannot be given to its constructor.
    """

    def __init__(self, send_ack: Callable[..., None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.send_ack = send_ack  # (server, eio_sid, namespace, ack id, result)
        self.on_session_open: Callable[[str, dict], None] | None = None
        self.on_session_connect: Callable[[str], None] | None = None
        self.gate: EventGate | None = None
        self._refused_since_yield = 0
        # False: every packet takes the library's path (the equivalence tests compare).
        self.fast_events = self.packet_class is sio_packet.Packet
        self._spawn_n: Callable[..., Any] = self.start_background_task
        if self.async_mode == "eventlet":
            from .. import runtime

            self._spawn_n = runtime.spawn_n

    def report_sessions(self, opened: Callable[[str, dict], None],
                        connect_handled: Callable[[str], None]) -> None:
        """Tell `opened(eio_sid, environ)` of each new Engine.IO session, and
        `connect_handled(eio_sid)` of each Socket.IO CONNECT it handled."""
        self.on_session_open, self.on_session_connect = opened, connect_handled

    def admit_events_through(self, gate: EventGate) -> None:
        """Every event on `/` asks `gate.admit(sid)` before it is queued."""
        self.gate = gate

    def _handle_eio_connect(self, eio_sid: str, environ: dict) -> Any:
        super()._handle_eio_connect(eio_sid, environ)
        if self.on_session_open is not None:
            self.on_session_open(eio_sid, environ)
        session = self.eio.sockets.get(eio_sid)
        if session is not None:
            session.receive = _receiving(self, session)
            session.schedule_ping = _ping_by_timer(session)

    def _message(self, eio_sid: str, data: Any) -> None:
        """What `Socket.receive(pkt)` does with a MESSAGE, without its two calls around
        it: it logs the packet (at INFO, which the server never shows), and
        `engineio.Server._trigger_event('message', sid, data, run_async=False)` calls the
        handler python-socketio registered, `_handle_eio_message`, logging whatever it
        raises (a bare `except:`, kept here)."""
        try:
            self._handle_eio_message(eio_sid, data)
        except BaseException:
            logger.exception("%s: message handler error", eio_sid)

    def _handle_eio_message(self, eio_sid: str, data: str | bytes) -> Any:
        try:
            if self.fast_events and type(data) is str and eio_sid not in self._binary_packet:
                event = plain_event(data, self.packet_class.json.loads)
                if event is not None:
                    # What the library calls for this packet (`pkt.namespace` is None).
                    self._handle_event(eio_sid, None, event[0], event[1])
                    return
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

        Under eventlet the greenlet is eventlet's `spawn_n`, not the library's
        `start_background_task` (`eventlet.spawn`): the same new greenlet, started by the
        same zero-delay hub timer, without the GreenThread and its exit Event for a
        `join()` nobody calls here (about 3 us per event instead of 12-17 in-process).
        """
        namespace = namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        gate = self.gate
        if gate is None or namespace != "/" or not self.manager.is_connected(sid, namespace):
            super()._handle_event(eio_sid, namespace, id, data)
            return
        if gate.admit(sid):
            spawn = self._spawn_n if self.fast_events else self.start_background_task
            spawn(self._handle_admitted, gate, sid, eio_sid, data, namespace, id)
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
    from .. import runtime

    return runtime.local()


def wants_ack() -> bool:
    """Whether the event being handled (in this greenlet) came with an ack id."""
    return getattr(_handling(), "wants_ack", False)


# An EVENT (2) with no attachment count, no namespace and an ack id of at most 10 digits
# (2**31 has 10), its JSON an array. Anything else is left to python-socketio's decoder.
_PLAIN_EVENT = re.compile(r"2([0-9]{0,10})(?=\[)")


def plain_event(text: str, loads: Callable[[str], Any]) -> tuple[int | None, list] | None:
    """(ack id, [name, *args]) of `2[...]` or `2<id>[...]`, else None (then the library
    decodes it). The same `loads` the library would run on the same text, so a JSON
    error raises here what it raises there. Relies on `socketio.packet.Packet.decode`:
    the attachment count ends in "-", a namespace starts with "/", and the ack id is
    ASCII digits before the JSON."""
    head = _PLAIN_EVENT.match(text)
    if head is None:
        return None
    data = loads(text[head.end():])
    digits = head.group(1)
    return (int(digits) if digits else None), data


def _receiving(server: SocketServer, session: Any) -> Callable[[Any], Any]:
    """`session.receive`, for both transports (the websocket reader and the long-polling
    POST call it per packet). A MESSAGE goes to `server._message`, as `Socket.receive`
    would send it (python-socketio makes engineio run it in the reader:
    `async_handlers=False`). Engine.IO ignores unknown packet types over websocket; we
    close the connection. Relies on `engineio.socket.Socket.receive(pkt)` raising
    `UnknownPacketError`."""
    receive = session.receive
    message = server._message if not session.server.async_handlers else None

    def checked(pkt: Any) -> Any:
        if message is not None and pkt.packet_type == eio_packet.MESSAGE and \
                server.fast_events:
            return message(session.sid, pkt.data)
        try:
            return receive(pkt)
        except engineio.exceptions.UnknownPacketError:
            logger.info("closing %s: unknown Engine.IO packet type", session.sid)
            session.close(wait=False, abort=True)
            raise engineio.exceptions.SocketIsClosedError() from None

    return checked


def _ping_by_timer(session: Any) -> Callable[[], None]:
    """`Socket.schedule_ping()` without a greenlet asleep for the whole ping interval.

    The library starts `Socket._send_ping` in a new greenlet that sleeps `ping_interval`
    seconds and then queues a PING (setting `last_ping`); a new one is scheduled when the
    PONG comes (`schedule_ping` is called from `receive`, and once when the session opens,
    after the connect handler). With ten thousand connections that is ten thousand
    suspended stacks doing nothing. Here a hub timer fires after the interval and only
    then starts a greenlet that does what `_send_ping` does after its sleep. Relies on
    `Socket.last_ping`, `closing`, `closed`, `send(pkt)` and `server.ping_interval`."""
    from .. import runtime

    def ping() -> None:
        if not session.closing and not session.closed:
            session.last_ping = time.time()
            session.send(eio_packet.Packet(eio_packet.PING))

    def schedule_ping() -> None:
        if session.last_ping:  # the previous ping was answered (or none was sent yet)
            session.last_ping = None
            runtime.call_later(session.server.ping_interval, ping)

    return schedule_ping


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


def closed_session_is_bad_request(app: Callable[..., Any]) -> Callable[..., Any]:
    """A request that reaches an Engine.IO session closing at that moment (a client's POST
    racing its refusal or close) makes python-engineio's `Server._get_socket` raise
    `KeyError('Session is disconnected')` out of `handle_request`; it is answered as
    python-engineio answers an unknown session, `400`, instead of failing as a 500."""

    def wsgi(environ: dict, start_response: Callable[..., Any]) -> Any:
        try:
            return app(environ, start_response)
        except KeyError as error:
            if error.args not in (("Session is disconnected",), ("Session not found",)):
                raise
            logger.info("%s to a session that just closed", environ.get("REQUEST_METHOD"))
            start_response("400 BAD REQUEST", [("Content-Type", "text/plain")])
            return [b"Session is disconnected"]

    return wsgi


def problems() -> list[str | None]:
    """What this module relies on in python-socketio and python-engineio."""
    server = socketio.Server
    found = [
        has(server, "_handle_eio_connect", ("self", "eio_sid", "environ")),
        has(server, "_handle_eio_message", ("self", "eio_sid", "data")),
        has(server, "_handle_event", ("self", "eio_sid", "namespace", "id", "data")),
        has(server, "_handle_event_internal",
            ("self", "server", "sid", "eio_sid", "data", "namespace", "id")),
        has(server, "_trigger_event", ("self", "event", "namespace")),
        has(server, "_send_packet", ("self", "eio_sid", "pkt")),
        has(server, "_send_eio_packet", ("self", "eio_sid", "eio_pkt")),
        has(engineio.socket.Socket, "receive", ("self", "pkt")),
        has(engineio.socket.Socket, "schedule_ping", ("self",)),
        has(engineio.socket.Socket, "send", ("self", "pkt")),
        has(engineio.socket.Socket, "close", ("self", "wait", "abort")),
        has(engineio.payload.Payload, "max_decode_packets"),
    ]
    from engineio import base_server

    if "KeyError('Session is disconnected')" not in inspect.getsource(base_server):
        found.append("engineio.base_server._get_socket no longer raises "
                     "KeyError('Session is disconnected')")
    if "self.schedule_ping()" not in inspect.getsource(engineio.socket.Socket.receive):
        found.append("engineio.socket.Socket.receive no longer schedules pings on PONG")
    if "self._handle_event_internal" not in inspect.getsource(server._handle_event):
        found.append("socketio.Server._handle_event no longer starts _handle_event_internal")
    found.extend(_fast_path_problems())
    probe = server(async_mode="eventlet")  # eventlet's driver: what the server runs
    for name in ("_binary_packet", "not_handled", "packet_class"):
        if not hasattr(probe, name):
            found.append(f"socketio.Server().{name} is missing")
    if getattr(probe.eio, "async_handlers", True) is not False:
        found.append("socketio.Server().eio.async_handlers is no longer False")
    session = engineio.socket.Socket(probe.eio, "probe")
    for name in ("queue", "upgrading", "upgraded", "connected", "closing", "closed",
                 "last_ping"):
        if not hasattr(session, name):
            found.append(f"engineio.socket.Socket.{name} is missing")
    return found


def _fast_path_problems() -> list[str]:
    """What `_receiving`, `_message` and `plain_event` take from the libraries' source
    (`_handle_event`'s `runtime.spawn_n` is eventlet's, bound when runtime is imported)."""
    from socketio import base_server

    found: list[str] = []
    relied_on = [
        (engineio.socket.Socket.receive, "engineio.socket.Socket.receive",
         ["elif pkt.packet_type == packet.MESSAGE:",
          "self.server._trigger_event('message', self.sid, pkt.data,",
          "run_async=self.server.async_handlers)"]),
        (base_server.BaseServer.__init__, "socketio.base_server.BaseServer.__init__",
         ["engineio_options['async_handlers'] = False",
          "self.eio.on('message', self._handle_eio_message)"]),
        (socketio.Server._handle_eio_message, "socketio.Server._handle_eio_message",
         ["pkt = self.packet_class(encoded_packet=data)",
          "self._handle_event(eio_sid, pkt.namespace, pkt.id, pkt.data)"]),
        (sio_packet.Packet.decode, "socketio.packet.Packet.decode",
         ["dash = ep.find('-')", "if ep and ep[0:1] == '/':",
          "if ep and ep[0].isdigit():", "self.data = self.json.loads(ep)"]),
    ]
    for function, name, steps in relied_on:
        source = inspect.getsource(function)
        found.extend(f"{name} no longer does {step}" for step in steps if step not in source)
    if (sio_packet.EVENT, eio_packet.MESSAGE) != (2, 4):
        found.append("socketio.packet.EVENT is no longer 2 or engineio.packet.MESSAGE 4")
    if not callable(getattr(getattr(sio_packet.Packet, "json", None), "loads", None)):
        found.append("socketio.packet.Packet.json.loads is missing")
    return found
