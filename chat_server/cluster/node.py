"""This node in a cluster: its name, its Redis connection, its heartbeat."""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis

from .. import runtime
from ..config import Config, RateLimit, without_password
from ..domain.models import User
from ..fanout import FanoutRedisManager
from .presence import RedisPresence
from .ratelimit import SharedRateLimiter

if TYPE_CHECKING:
    from collections.abc import Iterable
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger(__name__)


class ClusterNode:
    """python-socketio's Redis manager carries every emit between nodes; presence and
    rate-limit buckets live in Redis, with per-node heartbeats."""

    def __init__(self, config: Config) -> None:
        assert config.redis_url is not None
        self.node = config.node_name or f"{socket.gethostname()}-{os.getpid()}-" \
                                        f"{secrets.token_hex(3)}"
        self.manager = FanoutRedisManager(config.redis_url, channel="chat_server")
        self.redis = redis.Redis.from_url(config.redis_url, socket_timeout=5,
                                          socket_connect_timeout=5, health_check_interval=10)
        self.presence = RedisPresence(self.redis, self.node, lambda d: User(**d),
                                      ttl=config.presence_ttl)
        self.limiter = SharedRateLimiter(self.redis, config.rate_limit)
        logger.info("scaled mode: node %s, Redis at %s", self.node,
                    without_password(config.redis_url))

    def budget_limiter(self, limit: RateLimit | None, name: str) -> SharedRateLimiter:
        """The buckets of one budget (`domain.budgets`), shared by every node: a user's
        tabs, an address or a password target spread over nodes get no more."""
        return SharedRateLimiter(self.redis, limit, prefix=f"chat:{name}:")

    def mark_node(self, app: WSGIApplication) -> WSGIApplication:
        """Name this node in a cookie, so a proxy can keep a long-polling session on it
        (deploy/nginx.conf routes on it)."""
        cookie = ("Set-Cookie", f"chat_node={self.node}; Path=/; HttpOnly; SameSite=Lax")

        def marked(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
            if not environ.get("PATH_INFO", "").startswith("/socket.io"):
                return app(environ, start_response)

            def start(status: str, headers: list[tuple[str, str]],
                      exc_info: Any = None) -> Callable[[bytes], object]:
                return start_response(status, [*headers, cookie], exc_info)

            return app(environ, start)

        return marked

    def ping(self) -> bool:
        try:
            with runtime.timeout(2):
                return bool(self.redis.ping())
        except Exception:
            return False

    def beat(self, reap: Callable[[], None]) -> None:
        """Heartbeat this node and reap dead ones, for as long as the server runs."""
        while True:
            try:
                self.presence.heartbeat()
                reap()
            except Exception as error:
                logger.warning("presence heartbeat failed: %s", error)
            runtime.sleep(self.presence.beat_every)

    def leave(self) -> None:
        try:
            self.presence.leave_cluster()
        except Exception as error:
            logger.warning("could not leave the cluster cleanly: %s", error)
