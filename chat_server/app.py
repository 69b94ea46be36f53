"""`create_app(config)` builds the whole server; nothing happens at import time.

The one place where the mode is chosen: one node (everything in this process) or
several (`cluster/`: Redis for fan-out, presence and rate limits).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import socketio

from . import api, compat, edge, hosts, runtime
from .cluster.ordering import MessageChannel, Sequencer
from .config import Config, without_password
from .delivery import Delivery
from .domain.chat import Chat
from .domain.errors import ChatError, Unavailable
from .domain.modes import one_node, several_nodes
from .domain.watching import ONLINE_COUNT_EVERY
from .fanout import FanoutManager, send_ack
from .handlers import NAMESPACE, SocketHandlers, client_address
from .metrics import Metrics
from .store import Store
from .web import CLIENT_DIR, SECURITY_HEADERS, WebApp, client_missing

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication, WSGIEnvironment

    from .cluster.node import ClusterNode
    from .domain.ports import Runner

T = TypeVar("T")

logger = logging.getLogger(__name__)

# A long-polling client sends everything it queued in one POST: a browser retrying its
# pending messages after a reconnect easily sends more than python-engineio's default of
# 16 packets. The POST stays bounded by `max_http_buffer_size`.
MAX_PACKETS_PER_POLL = 512
# Password hashes and checks that may wait for a thread, per thread, before more are
# refused: with argon2's tens of ms each, a wait of well under a second.
PASSWORDS_QUEUED_PER_WORKER = 16


@dataclass
class App:
    wsgi: WSGIApplication
    sio: compat.SocketServer
    chat: Chat
    store: Store
    handlers: SocketHandlers
    cluster: ClusterNode | None = None
    http_protocol: type | None = None  # for runtime.serve: budgets and head deadline

    def shutdown(self, grace: float) -> None:
        """Let sends in flight finish (their acks go out), then close every connection at
        the Engine.IO level so clients see a transport close and reconnect elsewhere or
        later, rather than a server disconnect after which they would give up."""
        self.handlers.draining = True  # new connections are refused, /readyz says 503
        deadline = time.monotonic() + grace
        while self.handlers.in_flight and time.monotonic() < deadline:
            runtime.sleep(0.05)
        if self.handlers.in_flight:
            logger.warning("%d requests still running at shutdown", self.handlers.in_flight)
        self.sio.manager.frames.flush()  # the last acks, before their sockets close
        for session in list(compat.sessions(self.sio).values()):
            compat.close_session(session)
        runtime.sleep(0.5)  # let the close packets and disconnect handlers run
        if self.cluster:
            self.cluster.leave()
        self.store.close()


def create_app(config: Config) -> App:
    compat.check()
    if client_missing():
        logger.error("the page cannot load: no socket.io client in %s (run `npm ci` in the "
                     "checkout, or install the built wheel, which carries it)", CLIENT_DIR)
    compat.allow_many_packets_per_poll(MAX_PACKETS_PER_POLL)
    metrics = Metrics()
    store = Store(config.database_url)
    # The send path goes ahead of other calls waiting for the lane (`runtime.Lane`): its
    # group commit (which also checks blocks and mutes) and the short reads a send may
    # need before it (the recipient by name, the room, the message replied to, who an
    # @name is).
    send_path: list[Callable[..., Any]] = [
        store.insert_messages, store.user_by_key, store.room_for, store.message_heads,
        store.mention_candidates]
    store_call = metrics.timed(runtime.Lane(first=send_path).run
                               if store.is_sqlite else _green_call)
    cluster = _cluster(config)
    sio = compat.SocketServer(
        send_ack=send_ack,
        async_mode="eventlet",
        client_manager=cluster.manager if cluster else FanoutManager(),
        cors_allowed_origins=_origin_check(config),
        max_http_buffer_size=config.max_http_buffer_size,
        logger=False,
        engineio_logger=False,
    )
    compat.track_websockets(sio.eio)
    delivery = Delivery(sio, metrics)
    if cluster:
        # Committed messages cross the nodes on a channel of ours, in id order (§11).
        messages = MessageChannel(cluster.redis, Sequencer(
            lambda after, limit: store_call(store.messages_after, after, limit),
            delivery.apply, on_caught_up=metrics.caught_up.inc))
        mode = several_nodes(cluster.presence, cluster.limiter, messages,
                             cluster.budget_limiter)
    else:
        mode = one_node(config)
    chat = Chat(store, config, publish=delivery.apply, mode=mode, store_call=store_call,
                offload=_password_workers(config, metrics), group_commit=runtime.Batcher,
                pause=runtime.sleep, later=runtime.spawn_after, signal=runtime.Event,
                on_accepted=lambda m: metrics.count(metrics.messages_accepted, m.kind),
                on_refused=lambda budget: metrics.count(metrics.refused_by_budget, budget),
                on_moderated=lambda action: metrics.count(metrics.moderated, action))
    chat.start()
    if not cluster:
        chat.identity.retire_leftover_guests()
    handlers = SocketHandlers(sio, chat, config, metrics)
    sio.admit_events_through(handlers)
    sio.start_background_task(handlers.watch_sessions)
    sio.start_background_task(_tell_online_count, chat, delivery)
    sio.start_background_task(_apply_bans, chat)
    if config.retention_days > 0:
        sio.start_background_task(_prune, store, store_call, config.retention_days, metrics)
    sio.start_background_task(metrics.probe_loop, runtime.sleep)
    if cluster:
        sio.start_background_task(cluster.beat, chat.identity.reap)
        sio.start_background_task(messages.listen)
    if config.admin_user:
        _instrument(sio, config, chat)

    def health() -> dict[str, Any]:
        """Alive, and what answers: the store (and Redis when scaled)."""
        report: dict[str, Any] = {"status": "ok", "store": "ok",
                                  "connections": len(chat.presence)}
        if handlers.draining:
            report["status"] = "draining"
        try:
            with runtime.timeout(3):
                store_call(store.ping)
        except (Unavailable, runtime.TimeoutError):
            report["store"] = "unavailable"
        if client_missing():
            report["client"] = "missing"
            report.setdefault("degraded", []).append(
                "page: the socket.io client is missing (run `npm ci`, or install the wheel)")
        if cluster:
            report["redis"] = "ok" if cluster.ping() else "unavailable"
            report["node"] = cluster.node
            if report["redis"] != "ok" or not messages.connected:
                # Still serving: users of this node chat with each other, and hear the
                # other nodes through the store (docs/protocol.md §11).
                report.setdefault("degraded", []).append(
                    "redis: presence and rate limits are this node's, other nodes' "
                    "messages come from the store")
        return report

    def state() -> dict[str, Any]:
        figures = {"connections": handlers.connections_by_transport(),
                   "users": len(chat.presence.users()),
                   "rooms": store_call(store.count_rooms)}
        if cluster:
            figures["redis_up"] = 1 if cluster.ping() else 0
        return figures

    metrics.watch(state)

    def address_of(environ: WSGIEnvironment) -> str:
        return client_address(environ, config.trusted_proxies)

    web = WebApp(health, metrics=metrics, metrics_token=config.metrics_token,
                 token_failures=edge.FailureBudget(config.metrics_auth_failures),
                 address_of=address_of)
    socket_app = compat.closed_session_is_bad_request(socketio.WSGIApp(sio, web))
    wsgi = edge.refuse_oversize_posts(socket_app, sio, config.max_http_buffer_size)
    if cluster:
        wsgi = cluster.mark_node(wsgi)
    wsgi = api.Api(wsgi, chat, config, address_of, handlers)  # /api/v1 (protocol.md §12)
    wsgi = _edge(wsgi, sio, config, address_of)
    protocol = compat.guarded_http_protocol(edge.ConnectionBudgets.from_config(config),
                                            config.header_timeout, SECURITY_HEADERS)
    return App(wsgi, sio, chat, store, handlers, cluster, protocol)


def _edge(app: WSGIApplication, sio: compat.SocketServer, config: Config,
          address_of: Callable[[WSGIEnvironment], str]) -> WSGIApplication:
    """What every request passes first (edge.py): security headers and no tracebacks on
    every response, the Host check, and the budget of sessions without CONNECT."""
    budget = edge.SessionBudget(
        config.max_pending_sessions_per_address, config.max_pending_sessions, address_of,
        connected=lambda eio_sid: sio.manager.sid_from_eio_sid(eio_sid, NAMESPACE) is not None,
        alive=lambda eio_sid: eio_sid in compat.sessions(sio))
    sio.report_sessions(budget.opened, budget.connect_handled)
    sio.start_background_task(budget.run, runtime.sleep)
    policy = hosts.HostPolicy.from_config(config)
    policy.announce()
    return edge.harden(hosts.check_host(edge.limit_handshakes(app, budget), policy),
                       SECURITY_HEADERS)


def _tell_online_count(chat: Chat, delivery: Delivery) -> None:
    """`onlineCount` above PRESENCE_LIMIT (docs/protocol.md §7), for as long as the
    server runs: each node tells its own connections."""
    while True:
        runtime.sleep(ONLINE_COUNT_EVERY)
        try:
            delivery.apply(chat.watching.online_count())
        except Exception:  # Redis away, say: the next round tries again
            logger.exception("could not count who is online")


def _apply_bans(chat: Chat) -> None:
    """Every few seconds: bans written from outside this node (`python -m chat_server
    admin ban`, or another node) close this node's connections of the banned users."""
    since = int(time.time() * 1000)
    while True:
        runtime.sleep(BAN_CHECK_EVERY)
        try:
            since = chat.moderation.apply_bans_since(since)
        except Exception:  # the store away, say: the next round tries again
            logger.exception("could not look for new bans")


BAN_CHECK_EVERY = 5.0  # seconds
PRUNE_BATCH = 500  # messages per transaction: each a few milliseconds on the store's lane
PRUNE_EVERY = 60.0  # seconds between rounds once nothing is left to prune


def _prune(store: Store, store_call: Runner, days: float, metrics: Metrics) -> None:
    """Retention: delete what is older than `days`, a small batch per transaction on the
    store's lane with a pause between, so sends never queue behind a long delete."""
    while True:
        try:
            cutoff = int((time.time() - days * 86_400) * 1000)
            deleted = store_call(store.prune, cutoff, PRUNE_BATCH)
        except Exception:
            logger.exception("could not prune old messages")
            deleted = 0
        if deleted:
            metrics.pruned.inc(deleted)
            runtime.sleep(0.05)
        else:
            runtime.sleep(PRUNE_EVERY)


def _cluster(config: Config) -> ClusterNode | None:
    if not config.redis_url:
        return None
    from .cluster.node import ClusterNode  # imports redis: only scaled nodes need it

    return ClusterNode(config)


def _password_workers(config: Config, metrics: Metrics) -> Runner:
    """The domain's `offload`: argon2 on OS threads of its own, never in the store's
    queue; when as many calls wait as may, the next is refused at once (`unavailable`)."""
    workers = runtime.Workers("passwords", config.password_workers,
                              config.password_workers * PASSWORDS_QUEUED_PER_WORKER)

    def offload(fn: Callable[..., T], *args: Any) -> T:
        try:
            return workers.run(fn, *args)
        except runtime.Busy:
            metrics.count(metrics.refused_by_budget, "password_busy")
            raise Unavailable("The server is busy checking passwords; try again in a "
                              "moment.") from None

    return offload


def _green_call(fn: Callable[..., T], *args: Any) -> T:
    """psycopg2 is made green by eventlet's monkey-patching: call it on the hub."""
    return fn(*args)


def _origin_check(config: Config) -> Callable[[str | None, WSGIEnvironment], bool]:
    """Same origin always; `CORS_ORIGINS` adds to it (python-socketio's default is only the
    same origin, and a list would replace it rather than widen it). The Admin UI's page
    is let in when the Admin UI is on."""
    extra = set(config.cors_origins)
    if config.admin_user:
        extra.add(config.admin_origin)

    def allowed(origin: str | None, environ: WSGIEnvironment) -> bool:
        if origin is None or "*" in extra or origin in extra:
            return True
        host = environ.get("HTTP_HOST", "")
        return origin in (f"http://{host}", f"https://{host}")

    return allowed


def _instrument(sio: compat.SocketServer, config: Config, chat: Chat) -> None:
    """The official Socket.IO Admin UI on /admin, only ever with a password; each attempt
    spends a slot of the password budgets of its address and of /admin (§1.10)."""
    assert config.admin_user is not None and config.admin_password is not None
    expected_user = config.admin_user.encode()
    expected_password = config.admin_password.encode()

    def allowed(auth: object) -> bool:
        if not isinstance(auth, dict):
            return False
        user = str(auth.get("username", "")).encode()
        password = str(auth.get("password", "")).encode()
        # Both compared in full every time, so timing tells nothing about either.
        user_ok = hmac.compare_digest(user, expected_user)
        password_ok = hmac.compare_digest(password, expected_password)
        return user_ok and password_ok

    admin = sio.instrument(auth=allowed, mode="production", read_only=config.admin_read_only)

    def connect(sid: str, environ: WSGIEnvironment, auth: object = None) -> None:
        try:
            chat.budgets.charge_password_check(
                client_address(environ, config.trusted_proxies), ("admin", "/admin"))
        except ChatError as error:
            raise socketio.exceptions.ConnectionRefusedError(error.message,
                                                             error.as_dict()) from None
        admin.admin_connect(sid, environ, auth)

    sio.on("connect", connect, namespace="/admin")  # in place of the library's own
    logger.info("Admin UI on namespace /admin for %s (%s)", config.admin_origin,
                "read-only" if config.admin_read_only else "read-write")


def check_connections(config: Config) -> list[str]:
    """What stops `config` from serving: an unreachable store or Redis. Empty when fine."""
    problems = []
    store = Store(config.database_url)
    try:
        store.create_schema()
        store.ping()
    except Exception as error:
        problems.append(f"store {without_password(config.database_url)}: "
                        f"{error.__class__.__name__}")
    finally:
        store.close()
    if config.redis_url:
        import redis

        try:
            redis.Redis.from_url(config.redis_url, socket_connect_timeout=3).ping()
        except Exception as error:
            problems.append(f"redis {without_password(config.redis_url)}: "
                            f"{error.__class__.__name__}")
    return problems
