"""Socket.IO handlers: parse, call the domain, answer, and apply the domain's effects.

Nothing here decides who may read what; `chat.Chat` does. This layer only turns domain
errors into protocol errors and effects into Socket.IO emits and room changes.
"""

import logging
import time

import engineio.exceptions
import socketio

from . import runtime
from .effects import Close, Emit, Enter, Exit
from .errors import ChatError, InvalidPayload, ServerFull, Unavailable
from .fanout import send_ack
from .ratelimit import RateLimiter

logger = logging.getLogger(__name__)

NAMESPACE = "/"
MAX_ATTACHMENTS = 8  # binary attachments one packet may announce; each is one frame
_call = runtime.local()  # _call.wants_ack: whether the event being handled asked for an ack


class ChatSocketServer(socketio.Server):
    """python-socketio's Server, plus what PROTOCOL.md asks of it that the library leaves
    open. These overrides use the library's internal hooks, so they are kept few and small.

    - A failure goes back as an `error` event when the client gave no ack callback, so
      handlers must know whether one was given.
    - Event names that are not strings, or are "*", are renamed so they reach the
      catch-all handler as unknown events.
    - An undecodable packet closes that one connection (the library logs and goes on).
    - Acks are encoded and written by `fanout`, as emits are.
    """

    def _handle_eio_connect(self, eio_sid, environ):
        super()._handle_eio_connect(eio_sid, environ)
        socket = self.eio.sockets.get(eio_sid)
        if socket is not None:
            socket.receive = _closing_on_unknown_packets(socket)

    def _handle_eio_message(self, eio_sid, data):
        try:
            if isinstance(data, bytes) and eio_sid not in self._binary_packet:
                raise ValueError("binary frame where none was expected")
            if isinstance(data, str) and data[:1] in ("5", "6"):
                # BINARY_EVENT / BINARY_ACK: the library buffers every attachment a packet
                # announces, without a bound. A few are answered (as a bad payload); more
                # close the connection.
                count = data[1:data.find("-")] if "-" in data[:12] else ""
                if not count.isdigit() or int(count) > MAX_ATTACHMENTS:
                    raise ValueError("too many binary attachments")
            super()._handle_eio_message(eio_sid, data)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError,
                RecursionError) as error:
            logger.info("closing %s: undecodable packet (%s)", eio_sid, error)
            socket = self.eio.sockets.get(eio_sid)
            if socket is not None:
                # Not eio.disconnect(): over long-polling it waits for the client's next
                # poll, and this runs inside the client's POST.
                socket.close(wait=False)

    def _handle_event_internal(self, server, sid, eio_sid, data, namespace, id):
        _call.wants_ack = id is not None
        if not data or not isinstance(data[0], str) or data[0] == "*":
            # "*" names the library's catch-all handler: called directly, it would take
            # the client's first argument for the sid (and answer someone else).
            data = ["<not an event name>", *(data[1:] if data else [])]
        result = server._trigger_event(data[0], namespace, sid, *data[1:])
        if id is not None and result is not self.not_handled:
            send_ack(server, eio_sid, namespace, id, result)


def _closing_on_unknown_packets(socket):
    """Engine.IO ignores unknown packet types over websocket; we close the connection."""
    receive = socket.receive

    def checked(pkt):
        try:
            return receive(pkt)
        except engineio.exceptions.UnknownPacketError:
            logger.info("closing %s: unknown Engine.IO packet type", socket.sid)
            socket.close(wait=False, abort=True)
            raise engineio.exceptions.SocketIsClosedError() from None

    return checked


def client_address(environ, trusted_proxies):
    """The client's address; behind trusted proxies, the nearest address they vouch for.

    X-Forwarded-For is read right to left, skipping trusted proxies: anything further left
    was written by the client itself and proves nothing.
    """
    address = environ.get("REMOTE_ADDR", "")
    if address not in trusted_proxies:
        return address
    forwarded = environ.get("HTTP_X_FORWARDED_FOR", "")
    for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
        if hop not in trusted_proxies:
            return hop
    return address


class Transport:
    def __init__(self, sio, config, metrics):
        self.sio = sio
        self.config = config
        self.metrics = metrics
        self.chat = None
        self.ready = {}  # self.ready[sid] = runtime.Event, set once `welcome` was sent
        self.in_flight = 0  # events being handled now; shutdown waits for them
        self.draining = False  # shutting down: no new connections
        self.connect_limiter = RateLimiter(config.connect_rate)
        self.routes = {}

    def attach(self, chat):
        """Register handlers for `chat`'s actions on the server."""
        self.chat = chat
        self.routes = {
            "message": lambda sid, p: {"message": chat.send_lobby(sid, p).to_wire()},
            "sendMessage": lambda sid, p: {"message": chat.send_message(sid, p).to_wire()},
            "joinRoom": lambda sid, p: chat.join_room(sid, p),
            "leaveRoom": lambda sid, p: chat.leave_room(sid, p),
            "closeRoom": lambda sid, p: chat.close_room(sid, p),
            "listRooms": lambda sid, p: {"rooms": chat.list_rooms(sid)},
            "listUsers": lambda sid, p: {"users": chat.list_users(sid)},
            "history": lambda sid, p: {"messages": chat.history(sid, p)},
            "typing": lambda sid, p: chat.typing(sid, p),
        }
        self.sio.on("connect", self.on_connect)
        self.sio.on("disconnect", self.on_disconnect)
        self.sio.on("*", self.on_event)

    # -- life-cycle of a connection -----------------------------------------------------

    def on_connect(self, sid, *args):
        if self.chat.presence.get(sid) is not None or not args or not isinstance(args[0], dict):
            # A client emitted an event named "connect": not a real connection.
            return self._answer(sid, "connect", InvalidPayload("Unknown event."))
        environ, auth = args[0], (args[1] if len(args) > 1 else None)
        address = client_address(environ, self.config.trusted_proxies)
        transport = self.sio.transport(sid)
        if self.draining:
            return self._refuse(address, Unavailable("The server is restarting; try again."))
        if not self.connect_limiter.acquire(("addr", address)):
            # PROTOCOL.md has no connect code for this; server_full says "try later".
            return self._refuse(address, ServerFull(
                "Too many connections from your address; try again in a minute."))
        try:
            conn = self.chat.connect(sid, auth, transport=transport, address=address)
        except ChatError as error:
            return self._refuse(address, error)
        except Exception:
            logger.exception("connect failed")
            return self._refuse(address, Unavailable(
                "The server could not accept the connection; try again."))
        self.ready[sid] = runtime.Event()
        logger.info("connect sid=%s user=%s transport=%s address=%s",
                    sid, conn.user.name, transport, address)
        # The CONNECT packet goes out when this handler returns; welcome must follow it.
        runtime.spawn(self._go_live, sid)

    def _refuse(self, address, error):
        logger.info("refused connection from %s: %s", address, error.code)
        self.metrics.count(self.metrics.connections_refused, error.code)
        raise socketio.exceptions.ConnectionRefusedError(error.message, error.as_dict())

    def connections_by_transport(self):
        counts = {"websocket": 0, "polling": 0}
        for sid in list(self.chat.presence.local_sids()):
            try:
                counts[self.sio.transport(sid)] += 1
            except (KeyError, ValueError):
                pass
        return counts

    def _go_live(self, sid):
        try:
            self.chat.go_live(sid)
        except Exception:
            logger.exception("could not send welcome to %s", sid)
            self.sio.disconnect(sid)
        finally:
            ready = self.ready.get(sid)
            if ready is not None:
                ready.set()

    def on_disconnect(self, sid, *args):
        if self.sio.manager.is_connected(sid, NAMESPACE):
            # A client emitted an event named "disconnect"; it is still connected.
            return self._answer(sid, "disconnect", InvalidPayload("Unknown event."))
        self.ready.pop(sid, None)
        conn = self.chat.presence.get(sid)
        try:
            self.chat.disconnect(sid)
        except Exception:
            logger.exception("disconnect of %s failed", sid)
        if conn is not None:
            logger.info("disconnect sid=%s user=%s reason=%s duration=%.1fs", sid,
                        conn.user.name, args[0] if args else "",
                        time.monotonic() - conn.connected_at)

    # -- events -------------------------------------------------------------------------

    def on_event(self, event, sid, *args):
        self.in_flight += 1
        try:
            return self._handle(event, sid, args)
        finally:
            self.in_flight -= 1

    def _handle(self, event, sid, args):
        ready = self.ready.get(sid)
        if ready is not None:
            ready.wait(30)
        route = self.routes.get(event)
        try:
            if route is None:
                raise InvalidPayload("Unknown event.")
            if len(args) > 1:
                raise InvalidPayload("Send one payload per event.")
            result = route(sid, args[0] if args else None)
        except ChatError as error:
            return self._answer(sid, event, error)
        except Exception:
            logger.exception("%s from %s failed", event, sid)
            return self._answer(sid, event, Unavailable("The server failed; try again."))
        self.metrics.count(self.metrics.acks, "ok")
        answer = {"ok": True}
        if result:
            answer.update(result)
        return answer

    def _answer(self, sid, event, error):
        """A failure: the ack if the client asked for one, else an `error` event."""
        self.metrics.count(self.metrics.acks, error.code)
        if error.code == "rate_limited":
            self.metrics.rate_limited.inc()
        if getattr(_call, "wants_ack", False):
            return {"ok": False, "error": error.as_dict()}
        self.sio.emit("error", {**error.as_dict(), "event": event}, to=sid)
        return None

    # -- effects ------------------------------------------------------------------------

    def apply(self, effects):
        """Carry out the domain's effects, in order, without yielding in between.

        A failing effect is logged and skipped: by now the change is stored, so the
        sender's ack must still say so.
        """
        for effect in effects:
            try:
                self._apply(effect)
            except Exception:
                logger.exception("could not apply %r", effect)

    def _apply(self, effect):
        if isinstance(effect, Emit):
            self.sio.emit(effect.event, effect.data, to=effect.to, skip_sid=effect.skip or None)
            if effect.event == "reply":
                self._count_delivery(effect)
        elif isinstance(effect, Enter):
            for sid in effect.sids:
                self.sio.enter_room(sid, effect.audience)
        elif isinstance(effect, Exit):
            for sid in effect.sids:
                self.sio.leave_room(sid, effect.audience)
        elif isinstance(effect, Close):
            self.sio.close_room(effect.audience)

    def _count_delivery(self, effect):
        """Connections of this node that the emit reaches, from room sizes alone: this runs
        for every message, so it must not walk the members."""
        rooms = self.sio.manager.rooms.get(NAMESPACE, {})
        reached = sum(len(rooms.get(target, ())) for target in effect.to) - len(effect.skip)
        if reached > 0:
            self.metrics.count(self.metrics.messages_delivered, effect.data["kind"], reached)

    # -- sessions that never connect, and clients that stopped reading -------------------

    def watch_sessions(self):
        """Every second or so: close Engine.IO sessions that have not sent a Socket.IO
        CONNECT in time, and clients whose unsent packets pile up because they stopped
        reading (their queue would otherwise grow without bound)."""
        timeout = self.config.connect_timeout
        first_seen = {}  # first_seen[eio_sid] = monotonic time it was first seen
        while True:
            runtime.sleep(min(1.0, timeout / 4))
            self.connect_limiter.prune()
            self._close_stalled_readers()
            now = time.monotonic()
            live = set(self.sio.eio.sockets)
            for eio_sid in list(first_seen):
                if eio_sid not in live:
                    del first_seen[eio_sid]
            for eio_sid in live:
                if self.sio.manager.sid_from_eio_sid(eio_sid, NAMESPACE) is not None:
                    first_seen.pop(eio_sid, None)
                    continue
                since = first_seen.setdefault(eio_sid, now)
                if now - since >= timeout:
                    logger.info("closing Engine.IO session %s: no CONNECT in %.0fs",
                                eio_sid, timeout)
                    first_seen.pop(eio_sid, None)
                    try:
                        self.sio.eio.disconnect(eio_sid)
                    except Exception:
                        logger.exception("could not close session %s", eio_sid)

    def _close_stalled_readers(self):
        limit = self.config.max_queued_packets
        for eio_sid, socket in list(self.sio.eio.sockets.items()):
            queued = socket.queue.qsize()
            if queued > limit and not socket.closed:
                logger.info("closing %s: %d packets queued, the client is not reading",
                            eio_sid, queued)
                socket.close(wait=False, abort=True)
