"""`create_app(config)` builds the whole server; nothing happens at import time."""

import hmac
import logging
import os
import secrets
import socket
import time
import urllib.parse
from dataclasses import dataclass

import engineio.payload
import socketio

from . import runtime
from .chat import Chat
from .errors import Unavailable
from .fanout import FanoutManager, FanoutRedisManager, track_websockets
from .metrics import Metrics
from .store import Store
from .transport import ChatSocketServer, Transport
from .web import WebApp

logger = logging.getLogger(__name__)


@dataclass
class App:
    wsgi: object
    sio: socketio.Server
    chat: Chat
    store: Store
    transport: Transport
    scale: object = None

    def shutdown(self, grace):
        """Let sends in flight finish (their acks go out), then close every connection at
        the Engine.IO level so clients see a transport close and reconnect elsewhere or
        later, rather than a server disconnect after which they would give up."""
        self.transport.draining = True  # new connections are refused, /readyz says 503
        deadline = time.monotonic() + grace
        while self.transport.in_flight and time.monotonic() < deadline:
            runtime.sleep(0.05)
        if self.transport.in_flight:
            logger.warning("%d requests still running at shutdown", self.transport.in_flight)
        self.sio.manager.outbox.flush()  # the last acks, before their sockets close
        for socket_ in list(self.sio.eio.sockets.values()):
            socket_.close(wait=False)
        runtime.sleep(0.5)  # let the close packets and disconnect handlers run
        if self.scale:
            try:
                self.scale.presence.leave_cluster()
            except Exception as error:
                logger.warning("could not leave the cluster cleanly: %s", error)
        self.store.close()


def _origin_check(config):
    """Same origin always; `CORS_ORIGINS` adds to it (python-socketio's default is only the
    same origin, and a list would replace it rather than widen it). The Admin UI's page
    is let in when the Admin UI is on."""
    extra = set(config.cors_origins)
    if config.admin_user:
        extra.add(config.admin_origin)

    def allowed(origin, environ):
        if origin is None or "*" in extra or origin in extra:
            return True
        host = environ.get("HTTP_HOST", "")
        return origin in (f"http://{host}", f"https://{host}")

    return allowed


# A long-polling client sends everything it queued in one POST: a browser retrying its
# pending messages after a reconnect easily sends more than python-engineio's default of
# 16 packets. The POST stays bounded by `max_http_buffer_size`.
MAX_PACKETS_PER_POLL = 512


def create_app(config):
    engineio.payload.Payload.max_decode_packets = MAX_PACKETS_PER_POLL
    metrics = Metrics()
    store = Store(config.database_url)
    if store.is_sqlite:
        store_call = runtime.Lane().run  # sqlite3 blocks: OS thread, one at a time
    else:
        store_call = _call  # psycopg2 is made green by eventlet's monkey-patching
    store_call = metrics.timed(store_call)
    scale = _Scale(config) if config.redis_url else None
    sio = ChatSocketServer(
        async_mode="eventlet",
        client_manager=scale.manager if scale else FanoutManager(),
        cors_allowed_origins=_origin_check(config),
        max_http_buffer_size=config.max_http_buffer_size,
        logger=False,
        engineio_logger=False,
    )
    track_websockets(sio.eio)
    transport = Transport(sio, config, metrics)
    chat = Chat(store, config, publish=transport.apply, store_call=store_call,
                offload=runtime.offload, presence=scale.presence if scale else None,
                later=runtime.spawn_after, limiter=scale.limiter if scale else None,
                pause=runtime.sleep)
    chat.on_accepted = lambda message: metrics.count(metrics.messages_accepted, message.kind)
    chat.submit = runtime.Batcher(chat.commit_batch).submit
    transport.attach(chat)
    chat.start()
    sio.start_background_task(transport.watch_sessions)
    sio.start_background_task(metrics.probe_loop, runtime.sleep)
    if scale:
        sio.start_background_task(scale.beat, chat)
    if config.admin_user:
        _instrument(sio, config)

    def health():
        """Alive, and what answers: the store (and Redis when scaled)."""
        report = {"status": "ok", "store": "ok", "connections": len(chat.presence)}
        if transport.draining:
            report["status"] = "draining"
        try:
            with runtime.timeout(3):
                store_call(store.ping)
        except (Unavailable, runtime.TimeoutError):
            report["store"] = "unavailable"
        if scale:
            report["redis"] = "ok" if scale.ping() else "unavailable"
            report["node"] = scale.node
        return report

    def state():
        figures = {"connections": transport.connections_by_transport(),
                   "users": len(chat.presence.users()) if scale else len(chat.presence.by_user),
                   "rooms": store_call(store.count_rooms)}
        if scale:
            figures["redis_up"] = 1 if scale.ping() else 0
        return figures

    metrics.watch(state)
    web = WebApp(health, metrics=metrics, metrics_token=config.metrics_token)
    wsgi = _refuse_oversize_posts(socketio.WSGIApp(sio, web), sio, config.max_http_buffer_size)
    if scale:
        wsgi = scale.mark_node(wsgi)
    return App(wsgi, sio, chat, store, transport, scale)


def _instrument(sio, config):
    """The official Socket.IO Admin UI on /admin, only ever with a password."""
    expected_user = config.admin_user.encode()
    expected_password = config.admin_password.encode()

    def allowed(auth):
        if not isinstance(auth, dict):
            return False
        user = str(auth.get("username", "")).encode()
        password = str(auth.get("password", "")).encode()
        # Both compared in full every time, so timing tells nothing about either.
        user_ok = hmac.compare_digest(user, expected_user)
        password_ok = hmac.compare_digest(password, expected_password)
        return user_ok and password_ok

    sio.instrument(auth=allowed, mode="production", read_only=config.admin_read_only)
    logger.info("Admin UI on namespace /admin for %s (%s)", config.admin_origin,
                "read-only" if config.admin_read_only else "read-write")


def check_connections(config):
    """What stops `config` from serving: an unreachable store or Redis. Empty when fine."""
    problems = []
    store = Store(config.database_url)
    try:
        store.create_schema()
        store.ping()
    except Exception as error:
        problems.append(f"store {_without_password(config.database_url)}: "
                        f"{error.__class__.__name__}")
    finally:
        store.close()
    if config.redis_url:
        import redis

        try:
            redis.Redis.from_url(config.redis_url, socket_connect_timeout=3).ping()
        except Exception as error:
            problems.append(f"redis {_without_password(config.redis_url)}: "
                            f"{error.__class__.__name__}")
    return problems


def _call(fn, *args):
    return fn(*args)


class _Scale:
    """What running several nodes adds: python-socketio's Redis manager carries every
    emit between nodes, and presence lives in Redis with per-node heartbeats."""

    def __init__(self, config):
        import redis

        from .models import User
        from .presence import RedisPresence
        from .ratelimit import SharedRateLimiter

        self.node = config.node_name or f"{socket.gethostname()}-{os.getpid()}-" \
                                        f"{secrets.token_hex(3)}"
        self.manager = FanoutRedisManager(config.redis_url, channel="chat_server")
        self.redis = redis.Redis.from_url(config.redis_url, socket_timeout=5,
                                          socket_connect_timeout=5, health_check_interval=10)
        self.presence = RedisPresence(self.redis, self.node, lambda d: User(**d),
                                      ttl=config.presence_ttl)
        self.limiter = SharedRateLimiter(self.redis, config.rate_limit)
        logger.info("scaled mode: node %s, Redis at %s", self.node,
                    _without_password(config.redis_url))

    def mark_node(self, app):
        """Name this node in a cookie, so a proxy can keep a long-polling session on it
        (deploy/nginx.conf routes on it)."""
        cookie = ("Set-Cookie", f"chat_node={self.node}; Path=/; HttpOnly; SameSite=Lax")

        def marked(environ, start_response):
            if not environ.get("PATH_INFO", "").startswith("/socket.io"):
                return app(environ, start_response)

            def start(status, headers, exc_info=None):
                return start_response(status, [*headers, cookie], exc_info)

            return app(environ, start)

        return marked

    def ping(self):
        try:
            with runtime.timeout(2):
                return bool(self.redis.ping())
        except Exception:
            return False

    def beat(self, chat):
        """Heartbeat this node and reap dead ones, for as long as the server runs."""
        while True:
            try:
                self.presence.heartbeat()
                chat.reap()
            except Exception as error:
                logger.warning("presence heartbeat failed: %s", error)
            runtime.sleep(self.presence.beat_every)


def _without_password(url):
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return url


def _refuse_oversize_posts(app, sio, limit):
    """Close a long-polling session whose POST is over the buffer size, without reading it.

    python-engineio refuses such a POST too, but then waits for the client's next poll
    before it answers; a client that never polls again would hold that request forever.
    """

    def guarded(environ, start_response):
        if environ.get("REQUEST_METHOD") == "POST" and \
                environ.get("PATH_INFO", "").startswith("/socket.io"):
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = limit + 1
            if length > limit:
                query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
                socket = sio.eio.sockets.get((query.get("sid") or [""])[0])
                if socket is not None:
                    logger.info("closing %s: POST of %d bytes is over the limit",
                                socket.sid, length)
                    socket.close(wait=False)
                start_response("413 Payload Too Large", [("Content-Type", "text/plain"),
                                                          ("Connection", "close")])
                return [b"payload too large\n"]
        return app(environ, start_response)

    return guarded
