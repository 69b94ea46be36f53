"""Settings, read in one place: command-line flags win over environment variables."""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn


class ConfigError(ValueError):
    """A setting that cannot be used; the entry point prints it as one line and exits."""


@dataclass(frozen=True)
class RateLimit:
    """`count` sends allowed per `seconds`, as a token bucket that starts full."""

    count: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.count / self.seconds


@dataclass(frozen=True)
class Config:
    host: str = "0.0.0.0"
    port: int = 8000
    database_url: str = "sqlite:///chat.db"
    log_level: str = "INFO"
    rate_limit: RateLimit | None = field(default_factory=lambda: RateLimit(20, 10.0))
    max_connections: int = 10000
    connect_timeout: float = 45.0
    max_text_length: int = 2000
    max_http_buffer_size: int = 64 * 1024
    cors_origins: tuple[str, ...] = ()
    replay_limit: int = 1000
    redis_url: str | None = None
    node_name: str | None = None
    presence_ttl: float = 15.0
    metrics_token: str | None = None
    admin_user: str | None = None
    admin_password: str | None = None
    admin_read_only: bool = True
    admin_origin: str = "https://admin.socket.io"
    log_format: str = "text"
    shutdown_grace: float = 10.0
    # An office behind one NAT address reconnecting after a restart: hundreds a minute.
    connect_rate: RateLimit | None = field(default_factory=lambda: RateLimit(600, 60.0))
    trusted_proxies: tuple[str, ...] = ()
    max_queued_packets: int = 2000
    token_ttl: float = 30.0  # days a sign-in token may go unused before it expires
    guest_grace: float = 120.0  # seconds a guest outlives its last connection
    # Above this many users online (or members of a room) presence goes only to watchers
    # (docs/protocol.md §7): a connect then costs O(watchers), not O(online).
    presence_limit: int = 200
    retention_days: float = 0.0  # messages older than this are pruned; 0 keeps them all
    # Server admins (docs/protocol.md §10.4): registered names, each with a password.
    admins: tuple[str, ...] = ()
    # The HTTP edge (edge.py): budgets per client address, head deadline, Host check.
    max_connections_per_address: int | None = None  # None: (max_connections + 100) / 2
    max_unfinished_requests: int = 256
    header_timeout: float = 10.0
    max_pending_sessions_per_address: int = 500
    max_pending_sessions: int = 5000
    metrics_auth_failures: RateLimit | None = field(
        default_factory=lambda: RateLimit(10, 60.0))
    allowed_hosts: tuple[str, ...] = ()
    # What one connection, user or client address may do (domain/budgets.py, issue 12).
    event_rate: RateLimit | None = field(default_factory=lambda: RateLimit(600, 60.0))
    event_window: int = 32
    room_rate: RateLimit | None = field(default_factory=lambda: RateLimit(10, 60.0))
    password_rate: RateLimit | None = field(default_factory=lambda: RateLimit(60, 60.0))
    password_target_rate: RateLimit | None = field(default_factory=lambda: RateLimit(10, 60.0))
    password_workers: int = 2
    check_config: bool = False  # validate settings and connections, then exit


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("must be 0-65535")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be a positive integer")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise ValueError("must be a number of seconds, 0 or more")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("must be a positive number")
    return value


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return level


def _rate_limit(text: str) -> RateLimit | None:
    text = text.strip().lower()
    if text in ("off", "none", "0"):
        return None
    count, sep, seconds = text.partition("/")
    if not sep:
        raise ValueError("must look like 20/10 (sends per seconds) or off")
    return RateLimit(_positive_int(count), _positive_float(seconds))


def _database_url(text: str) -> str:
    if not (text.startswith("sqlite:///") or text.startswith("postgresql")):
        raise ValueError("must be sqlite:///PATH or postgresql://...")
    return text


def _redis_url(text: str) -> str:
    if not text.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must be redis://HOST:PORT/DB (or rediss://, unix://)")
    return text


def _node_name(text: str) -> str:
    if not text or len(text) > 64 or any(c.isspace() for c in text):
        raise ValueError("must be 1-64 characters without spaces")
    return text


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _secret(text: str) -> str:
    if len(text) < 8:
        raise ValueError("must be at least 8 characters")
    return text


def _log_format(text: str) -> str:
    value = text.strip().lower()
    if value not in ("text", "json"):
        raise ValueError("must be text or json")
    return value


def _origins(text: str) -> tuple[str, ...]:
    text = text.strip()
    if text == "*":
        return ("*",)
    return tuple(o.strip() for o in text.split(",") if o.strip())


def _names(text: str) -> tuple[str, ...]:
    """ADMINS: user names, comma separated."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _hosts(text: str) -> tuple[str, ...]:
    """ALLOWED_HOSTS: host names without scheme or port (any port is served), or `*`."""
    names = tuple(n.strip().lower().rstrip(".") for n in text.split(",") if n.strip())
    for name in names:
        bracketed = name.startswith("[") and name.endswith("]")
        if "/" in name or any(c.isspace() for c in name) or (":" in name and not bracketed):
            raise ValueError(f"{name!r}: give host names without scheme or port, "
                             "comma separated, or *")
    return names


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError(message)


# (flag, environment variable, Config field, parser, help)
SETTINGS: list[tuple[str, str, str, Callable[[str], Any], str]] = [
    ("--host", "HOST", "host", str, "address to listen on (default 0.0.0.0)"),
    ("--port", "PORT", "port", _port, "port to listen on, 0 for any free port (default 8000)"),
    ("--database-url", "DATABASE_URL", "database_url", _database_url,
     "store: sqlite:///PATH (default sqlite:///chat.db) or postgresql://..."),
    ("--log-level", "LOG_LEVEL", "log_level", _log_level, "DEBUG, INFO (default), WARNING, ERROR"),
    ("--rate-limit", "RATE_LIMIT", "rate_limit", _rate_limit,
     "sends allowed per connection and per user, as COUNT/SECONDS (default 20/10) or off"),
    ("--event-rate", "EVENT_RATE", "event_rate", _rate_limit,
     "client events of any kind allowed per connection and per user, as COUNT/SECONDS "
     "(default 600/60) or off"),
    ("--event-window", "EVENT_WINDOW", "event_window", _positive_int,
     "events one connection may have received and not yet answered; more are refused "
     "with rate_limited (default 32)"),
    ("--room-rate", "ROOM_RATE", "room_rate", _rate_limit,
     "new rooms a user may create, as COUNT/SECONDS (default 10/60) or off"),
    ("--password-rate", "PASSWORD_RATE", "password_rate", _rate_limit,
     "password checks (sign-in, private rooms, the Admin UI) per client address, as "
     "COUNT/SECONDS (default 60/60) or off"),
    ("--password-target-rate", "PASSWORD_TARGET_RATE", "password_target_rate", _rate_limit,
     "password checks per name, per private room and for the Admin UI, as COUNT/SECONDS "
     "(default 10/60) or off"),
    ("--password-workers", "PASSWORD_WORKERS", "password_workers", _positive_int,
     "OS threads hashing and checking passwords (argon2, 64 MiB each); 16 more calls per "
     "thread may wait, beyond that unavailable (default 2)"),
    ("--max-connections", "MAX_CONNECTIONS", "max_connections", _positive_int,
     "connections served at once before refusing with server_full (default 10000)"),
    ("--connect-timeout", "CONNECT_TIMEOUT", "connect_timeout", _positive_float,
     "seconds an Engine.IO session may wait before its Socket.IO CONNECT (default 45)"),
    ("--connect-rate", "CONNECT_RATE", "connect_rate", _rate_limit,
     "connections allowed per client address, as COUNT/SECONDS (default 600/60) or off"),
    ("--trusted-proxies", "TRUSTED_PROXIES", "trusted_proxies", _origins,
     "addresses of proxies whose X-Forwarded-For is believed, comma separated "
     "(default: none)"),
    ("--max-queued-packets", "MAX_QUEUED_PACKETS", "max_queued_packets", _positive_int,
     "packets waiting for a client that does not read before it is disconnected "
     "(default 2000)"),
    ("--guest-grace", "GUEST_GRACE", "guest_grace", _seconds,
     "seconds a guest's token stays valid after its last connection closes, so a reload "
     "keeps the guest (default 120; 0: gone at once)"),
    ("--retention-days", "RETENTION_DAYS", "retention_days", _seconds,
     "days a message is kept; older ones are deleted in the background, in small batches "
     "(default 0: kept for ever)"),
    ("--admins", "ADMINS", "admins", _names,
     "comma-separated registered names (each with a password) that may moderate every "
     "room and ban users from the server (default: none)"),
    ("--presence-limit", "PRESENCE_LIMIT", "presence_limit", _positive_int,
     "users online (or members of a room) above which addChat/userLeft go only to those "
     "watching the user, and rooms get no joined/left/typing (default 200)"),
    ("--token-ttl", "TOKEN_TTL", "token_ttl", _positive_float,
     "days a sign-in token stays valid without being used (default 30)"),
    ("--max-text-length", "MAX_TEXT_LENGTH", "max_text_length", _positive_int,
     "longest message text in code points, after trimming (default 2000)"),
    ("--max-http-buffer-size", "MAX_HTTP_BUFFER_SIZE", "max_http_buffer_size", _positive_int,
     "largest Engine.IO packet in bytes (default 65536)"),
    ("--cors-origins", "CORS_ORIGINS", "cors_origins", _origins,
     "extra origins allowed to connect, comma separated, or * (default: same origin only)"),
    ("--redis-url", "REDIS_URL", "redis_url", _redis_url,
     "Redis for running several nodes: fan-out between nodes and shared presence"),
    ("--presence-ttl", "PRESENCE_TTL", "presence_ttl", _positive_float,
     "scaled mode: seconds after a node's last heartbeat before survivors reap its users "
     "(default 15; heartbeats every third of it)"),
    ("--node-name", "NODE_NAME", "node_name", _node_name,
     "this node's name in shared presence (default: host name, process id and a random tag)"),
    ("--shutdown-grace", "SHUTDOWN_GRACE", "shutdown_grace", _positive_float,
     "on SIGTERM, seconds to let sends in flight finish before clients are closed "
     "(default 10)"),
    ("--log-format", "LOG_FORMAT", "log_format", _log_format,
     "text (default) or json (one JSON object per line)"),
    ("--metrics-token", "METRICS_TOKEN", "metrics_token", _secret,
     "serve Prometheus metrics at /metrics to requests with 'Authorization: Bearer TOKEN' "
     "(default: /metrics is off)"),
    ("--admin-user", "ADMIN_USER", "admin_user", str,
     "with ADMIN_PASSWORD: turn on the Socket.IO Admin UI on namespace /admin"),
    ("--admin-password", "ADMIN_PASSWORD", "admin_password", _secret,
     "the Admin UI password (at least 8 characters)"),
    ("--admin-read-only", "ADMIN_READ_ONLY", "admin_read_only", _bool,
     "the Admin UI may only watch (default true); false lets it disconnect clients"),
    ("--admin-origin", "ADMIN_ORIGIN", "admin_origin", str,
     "where the Admin UI page is served from (default https://admin.socket.io)"),
    ("--allowed-hosts", "ALLOWED_HOSTS", "allowed_hosts", _hosts,
     "Host names served, comma separated, or * (default: loopback names on a loopback "
     "address, else any Host, with a warning)"),
    ("--max-connections-per-address", "MAX_CONNECTIONS_PER_ADDRESS",
     "max_connections_per_address", _positive_int,
     "open TCP connections per client address; trusted proxies are exempt "
     "(default: half of the connection slots, (MAX_CONNECTIONS + 100) / 2)"),
    ("--max-unfinished-requests", "MAX_UNFINISHED_REQUESTS", "max_unfinished_requests",
     _positive_int,
     "requests per client address whose head is still arriving (default 256)"),
    ("--header-timeout", "HEADER_TIMEOUT", "header_timeout", _positive_float,
     "seconds for a whole request head to arrive, however it trickles (default 10)"),
    ("--max-pending-sessions-per-address", "MAX_PENDING_SESSIONS_PER_ADDRESS",
     "max_pending_sessions_per_address", _positive_int,
     "Engine.IO sessions without a Socket.IO CONNECT per client address (default 500)"),
    ("--max-pending-sessions", "MAX_PENDING_SESSIONS", "max_pending_sessions", _positive_int,
     "Engine.IO sessions without a Socket.IO CONNECT in total (default 5000)"),
    ("--metrics-auth-failures", "METRICS_AUTH_FAILURES", "metrics_auth_failures", _rate_limit,
     "wrong /metrics tokens per client address, as COUNT/SECONDS (default 10/60) or off"),
]


def load(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Build the Config from flags and environment; raise ConfigError on a bad value."""
    environ = os.environ if environ is None else environ
    parser = _Parser(
        prog="python -m chat_server",
        description="Socket.IO chat server. Every flag can also be set by the environment "
                    "variable named in brackets; flags win.",
    )
    for flag, env, _name, _parse, help_text in SETTINGS:
        parser.add_argument(flag, metavar=env, help=f"{help_text} [{env}]")
    parser.add_argument("--check-config", action="store_true",
                        help="check the settings, the store and Redis, print the result, exit")
    args = parser.parse_args(argv)

    values: dict[str, Any] = {"check_config": args.check_config}
    for flag, env, name, parse, _help in SETTINGS:
        raw = getattr(args, name)
        source = flag
        if raw is None:
            raw = environ.get(env)
            source = env
        if raw is None or raw == "":
            continue
        try:
            values[name] = parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{source}={raw!r}: {exc}") from None
    config = Config(**values)
    if (config.admin_user is None) != (config.admin_password is None):
        raise ConfigError("ADMIN_USER and ADMIN_PASSWORD go together: set both or neither")
    return config


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
                 "level": record.levelname, "logger": record.name,
                 "message": record.getMessage()}
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str, log_format: str = "text") -> None:
    handler = logging.StreamHandler()
    formatter: logging.Formatter
    if log_format == "json":
        formatter = JsonFormatter()
        formatter.converter = time.gmtime
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level))
    # Alembic tells every start which database kind it drives; `schema.migrate` logs the
    # one line that matters (an upgrade), and a CLI's output stays one line.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def without_password(url: str) -> str:
    """`url` as it may be logged: a password in it is replaced by `***`."""
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return url
