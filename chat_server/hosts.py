"""Which Host headers are served: the defence against DNS rebinding (docs/protocol.md §6)."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .config import Config
from .edge import QuietLog, plain

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger(__name__)

LOOPBACK_NAMES = frozenset({"localhost", "[::1]"})


def host_name(header: str) -> str:
    """The name in a Host header: no port, lower case, no trailing dot."""
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        name = value[:end + 1] if end != -1 else value
    elif value.count(":") == 1:
        name = value.partition(":")[0]
    else:
        name = value
    return name.rstrip(".") if name not in (".", "") else name


def is_loopback_name(name: str) -> bool:
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def is_loopback_bind(host: str) -> bool:
    """Whether listening on `host` serves only this machine."""
    return host.strip().lower() == "localhost" or is_loopback_name(host.strip().lower())


@dataclass(frozen=True)
class HostPolicy:
    """Which Host headers are served: the defence against DNS rebinding, where a page on
    another site resolves its own name to this server and reads it as same-origin."""

    loopback: bool  # loopback names are accepted (a loopback-bound server)
    names: frozenset[str]  # ALLOWED_HOSTS
    any_host: bool  # ALLOWED_HOSTS is `*`, or unset on a server that is not loopback-bound

    @classmethod
    def from_config(cls, config: Config) -> HostPolicy:
        loopback = is_loopback_bind(config.host)
        names = frozenset(config.allowed_hosts) - {"*"}
        any_host = "*" in config.allowed_hosts or (not config.allowed_hosts and not loopback)
        return cls(loopback, names, any_host)

    def allows(self, header: str | None) -> bool:
        if self.any_host or not header:
            return True  # no Host: no browser sent it, so it is no rebinding attempt
        name = host_name(header)
        return name in self.names or (self.loopback and is_loopback_name(name))

    def announce(self) -> None:
        """Say at start what is served: a warning while anything goes."""
        if self.any_host and not self.names and not self.loopback:
            logger.warning("ALLOWED_HOSTS is not set: any Host header is served, so a web page "
                           "can reach this server through DNS rebinding. Set ALLOWED_HOSTS to "
                           "the names clients use (e.g. chat.example.com)")
        elif not self.any_host:
            served = sorted(self.names) + (["localhost", "127.0.0.0/8", "[::1]"]
                                           if self.loopback else [])
            logger.info("serving Host %s (any port); ALLOWED_HOSTS adds names",
                        ", ".join(served))


def check_host(app: WSGIApplication, policy: HostPolicy) -> WSGIApplication:
    """400 for a Host the policy does not serve, Engine.IO handshakes included."""
    quiet = QuietLog()

    def checked(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        host = environ.get("HTTP_HOST")
        if not policy.allows(host):
            if quiet.allow(str(host)[:100]):
                logger.warning("refused requests for Host %r: not a name this server serves "
                               "(ALLOWED_HOSTS; logged once per 10 s)", str(host)[:100])
            return plain(start_response, "400 Bad Request", "unknown host\n")
        return app(environ, start_response)

    return checked
