"""Socket.IO handlers: parse, call the domain, answer, and apply the domain's effects.

Nothing here decides who may read what; the domain (`domain/`) does. This layer only
turns domain errors into protocol errors (docs/protocol.md §2) and, through `delivery`,
effects into Socket.IO emits and room changes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import socketio

from . import compat, runtime
from .config import Config
from .domain.chat import Chat
from .domain.errors import ChatError, InvalidPayload, RateLimited, Unavailable
from .domain.ratelimit import RateLimiter
from .metrics import Metrics

if TYPE_CHECKING:
    from wsgiref.types import WSGIEnvironment

logger = logging.getLogger(__name__)

NAMESPACE = "/"
# Periodic scans over every session yield to the event loop after this many: at 10,000
# sessions one pass is tens of milliseconds that every client would wait for.
SCAN_SLICE = 500
Route = Callable[..., "dict | None"]  # (sid, payload), and a Turn for sends
# Events whose order a connection keeps: they take ids (docs/protocol.md §4, §8).
SENDS = frozenset({"message", "sendMessage", "editMessage", "deleteMessage", "react"})
Answer = dict[str, Any]  # what an ack carries: {"ok": true, ...} or {"ok": false, "error"}


def client_address(environ: WSGIEnvironment, trusted_proxies: tuple[str, ...]) -> str:
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


class SocketHandlers:
    """The handlers of every client event, registered on `sio` when built."""

    def __init__(self, sio: socketio.Server, chat: Chat, config: Config,
                 metrics: Metrics) -> None:
        self.sio = sio
        self.chat = chat
        self.config = config
        self.metrics = metrics
        self.ready: dict[str, runtime.Event] = {}  # set once the sid's `welcome` was sent
        self.in_flight = 0  # events being handled now; shutdown waits for them
        # sid -> events received and not yet answered (queued ones too): see `admit`
        self.unanswered: dict[str, int] = {}
        self.draining = False  # shutting down: no new connections
        self.connect_limiter = RateLimiter(config.connect_rate)
        self.routes = self._routes(chat)
        sio.on("connect", self.on_connect)
        sio.on("disconnect", self.on_disconnect)
        sio.on("*", self.on_event)

    @staticmethod
    def _routes(chat: Chat) -> dict[str, Route]:
        """Client events (docs/protocol.md §2) and what answers them."""
        sending, rooms = chat.sending, chat.rooms
        return {
            "message": lambda sid, p, turn=None: {
                "message": sending.send_lobby(sid, p, turn).to_wire()},
            "sendMessage": lambda sid, p, turn=None: {
                "message": sending.send_message(sid, p, turn).to_wire()},
            "joinRoom": rooms.join_room,
            "leaveRoom": rooms.leave_room,
            "closeRoom": rooms.close_room,
            "listRooms": lambda sid, p: {"rooms": rooms.list_rooms(sid)},
            "listUsers": chat.identity.list_users,
            "watchUsers": chat.watching.watch_users,
            "history": lambda sid, p: {"messages": chat.reading.history(sid, p)},
            "typing": chat.typing.typing,
            "signOut": chat.identity.sign_out,
            "editMessage": chat.changes.edit,
            "deleteMessage": chat.changes.delete,
            "react": chat.changes.react,
            "markRead": chat.reading.mark_read,
            "search": lambda sid, p: {"messages": chat.reading.search(sid, p)},
            "setRole": chat.moderation.set_role,
            "kick": chat.moderation.kick,
            "ban": chat.moderation.ban,
            "mute": chat.moderation.mute,
            "banUser": chat.moderation.ban_user,
            "block": chat.moderation.block,
        }

    # -- life-cycle of a connection -----------------------------------------------------

    def on_connect(self, sid: str, *args: Any) -> Answer | None:
        if self.chat.presence.get(sid) is not None or not args or not isinstance(args[0], dict):
            # A client emitted an event named "connect": not a real connection.
            return self._answer(sid, "connect", InvalidPayload("Unknown event."))
        environ, auth = args[0], (args[1] if len(args) > 1 else None)
        address = client_address(environ, self.config.trusted_proxies)
        transport = self.sio.transport(sid)
        if self.draining:
            return self._refuse(address, Unavailable("The server is restarting; try again."))
        if not self.connect_limiter.acquire(("addr", address)):
            # More than CONNECT_RATE from one address (docs/protocol.md §1.6).
            return self._refuse(address, RateLimited(
                "Too many connections from your address; try again in a minute."))
        try:
            conn = self.chat.identity.connect(sid, auth, transport=transport,
                                              address=address)
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
        return None

    def _refuse(self, address: str, error: ChatError) -> NoReturn:
        logger.info("refused connection from %s: %s", address, error.code)
        self.metrics.count(self.metrics.connections_refused, error.code)
        raise socketio.exceptions.ConnectionRefusedError(error.message, error.as_dict())

    def connections_by_transport(self) -> dict[str, int]:
        counts = {"websocket": 0, "polling": 0}
        for sid in list(self.chat.presence.local_sids()):
            try:
                counts[self.sio.transport(sid)] += 1
            except (KeyError, ValueError):
                pass
        return counts

    def _go_live(self, sid: str) -> None:
        try:
            self.chat.live.go_live(sid)
        except Exception:
            logger.exception("could not send welcome to %s", sid)
            self.sio.disconnect(sid)
        finally:
            ready = self.ready.get(sid)
            if ready is not None:
                ready.set()

    def on_disconnect(self, sid: str, *args: Any) -> Answer | None:
        if self.sio.manager.is_connected(sid, NAMESPACE):
            # A client emitted an event named "disconnect"; it is still connected.
            return self._answer(sid, "disconnect", InvalidPayload("Unknown event."))
        self.ready.pop(sid, None)
        conn = self.chat.presence.get(sid)
        try:
            self.chat.identity.disconnect(sid)
        except Exception:
            logger.exception("disconnect of %s failed", sid)
        if conn is not None:
            logger.info("disconnect sid=%s user=%s reason=%s duration=%.1fs", sid,
                        conn.user.name, args[0] if args else "",
                        time.monotonic() - conn.connected_at)
        return None

    # -- events -------------------------------------------------------------------------

    def admit(self, sid: str) -> bool:
        """Whether an event that just arrived may be handled (compat.EventGate): a
        connection may have `EVENT_WINDOW` events received and not yet answered; what it
        pipelines beyond them is refused at once, never queued (docs/protocol.md §1.10)."""
        count = self.unanswered.get(sid, 0)
        if count >= self.config.event_window:
            return False
        self.unanswered[sid] = count + 1
        return True

    def refused(self, sid: str, event: str) -> Answer | None:
        self.metrics.count(self.metrics.refused_by_budget, "window")
        return self._answer(sid, event, RateLimited(
            "Too many requests waiting for an answer; wait for them before sending more."))

    def finished(self, sid: str) -> None:
        count = self.unanswered.get(sid, 0) - 1
        if count > 0:
            self.unanswered[sid] = count
        else:
            self.unanswered.pop(sid, None)

    def on_event(self, event: str, sid: str, *args: Any) -> Answer | None:
        self.in_flight += 1
        try:
            return self._handle(event, sid, args)
        finally:
            self.in_flight -= 1

    def _handle(self, event: str, sid: str, args: tuple[Any, ...]) -> Answer | None:
        # A send's place among its connection's sends is taken now, in arrival order,
        # before anything below can yield (docs/protocol.md §4).
        turn = self.chat.sending.order.take(sid) if event in SENDS else None
        ready = self.ready.get(sid)
        if ready is not None:
            ready.wait(30)
        route = self.routes.get(event)
        try:
            self.chat.charge_event(sid)  # every event, known or not (§1.10)
            if route is None:
                raise InvalidPayload("Unknown event.")
            if len(args) > 1:
                raise InvalidPayload("Send one payload per event.")
            payload = args[0] if args else None
            result = route(sid, payload, turn) if turn else route(sid, payload)
        except ChatError as error:
            return self._answer(sid, event, error)
        except Exception:
            logger.exception("%s from %s failed", event, sid)
            return self._answer(sid, event, Unavailable("The server failed; try again."))
        finally:
            if turn is not None:
                turn.done()
        self.metrics.count(self.metrics.acks, "ok")
        answer: Answer = {"ok": True}
        if result:
            answer.update(result)
        return answer

    def _answer(self, sid: str, event: str, error: ChatError) -> Answer | None:
        """A failure: the ack if the client asked for one, else an `error` event."""
        self.metrics.count(self.metrics.acks, error.code)
        if error.code == "rate_limited":
            self.metrics.rate_limited.inc()
        if compat.wants_ack():
            return {"ok": False, "error": error.as_dict()}
        self.sio.emit("error", {**error.as_dict(), "event": event}, to=sid)
        return None

    # -- sessions that never connect, and clients that stopped reading -------------------

    def watch_sessions(self) -> None:
        """Every second or so: close Engine.IO sessions that have not sent a Socket.IO
        CONNECT in time, and clients whose unsent packets pile up because they stopped
        reading (their queue would otherwise grow without bound)."""
        timeout = self.config.connect_timeout
        first_seen: dict[str, float] = {}  # eio sid -> monotonic time it was first seen
        ticks = 0
        while True:
            runtime.sleep(min(1.0, timeout / 4))
            self.connect_limiter.prune()
            ticks += 1
            if ticks % 10 == 0:  # buckets full again (closed connections...) are dropped
                self.chat.budgets.prune()
            self._close_stalled_readers()
            now = time.monotonic()
            live = set(compat.sessions(self.sio))
            for eio_sid in list(first_seen):
                if eio_sid not in live:
                    del first_seen[eio_sid]
            for count, eio_sid in enumerate(live, 1):
                if count % SCAN_SLICE == 0:
                    runtime.sleep(0)  # thousands of sessions: let others run between slices
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

    def _close_stalled_readers(self) -> None:
        limit = self.config.max_queued_packets
        for count, (eio_sid, session) in enumerate(list(compat.sessions(self.sio).items()), 1):
            if count % SCAN_SLICE == 0:
                runtime.sleep(0)
            queued = compat.queued_packets(session)
            if queued > limit and not session.closed:
                logger.info("closing %s: %d packets queued, the client is not reading",
                            eio_sid, queued)
                compat.close_session(session, abort=True)
