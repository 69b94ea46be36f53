"""The HTTP edge: what one client address may hold, and what every response looks like.

Budgets per client address, each refused cheaply before any work is done for it:

- `ConnectionBudgets`: open TCP connections, and requests whose head is not complete yet
  (the slowloris attack), per peer address. eventlet's accept loop reaches it through
  `compat.guarded_http_protocol`, which also gives each head a deadline.
- `SessionBudget`: Engine.IO sessions that have no Socket.IO connection yet, per client
  address and in total (each costs memory until `CONNECT_TIMEOUT` closes it).
- `FailureBudget`: failed secret checks (the `/metrics` token) per client address.

And WSGI wrappers that every request passes: `harden` (no traceback ever reaches a client,
and every response carries the security headers), `limit_handshakes` and
`refuse_oversize_posts`; `hosts.check_host` (DNS rebinding) is the Host's part. No
eventlet here: `compat` and `runtime` own it.
"""

from __future__ import annotations

import logging
import math
import sys
import time
import urllib.parse
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING

from . import compat
from .config import Config, RateLimit

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from _typeshed import OptExcInfo

logger = logging.getLogger(__name__)

Headers = list[tuple[str, str]]
AddressOf = Callable[["WSGIEnvironment"], str]

RETRY_AFTER_SESSIONS = 5  # seconds: sessions without CONNECT normally last one round trip


class QuietLog:
    """At most one log line per key and interval: a flood must not flood the log too."""

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 10_000) -> None:
        self.interval = interval
        self.clock = clock
        self.max_keys = max_keys
        self.last: dict[str, float] = {}

    def allow(self, key: str) -> bool:
        now = self.clock()
        last = self.last.get(key)
        if last is not None and now - last < self.interval:
            return False
        if len(self.last) >= self.max_keys:
            self.last.clear()
        self.last[key] = now
        return True


# -- TCP connections and unfinished requests, per peer address ---------------------------

class ConnectionBudgets:
    """Open connections and unfinished request heads per peer address.

    Trusted proxies are exempt: every user behind one shares its address, and a proxy
    sends whole heads (nginx buffers them), so counting it would only refuse its users.
    Used from the hub only (no locks): each call is a few dict operations.
    """

    def __init__(self, max_connections: int, max_unfinished: int,
                 exempt: Collection[str] = ()) -> None:
        self.max_connections = max_connections
        self.max_unfinished = max_unfinished
        self.exempt = frozenset(exempt)
        self.connections: dict[str, int] = {}
        self.unfinished: dict[str, int] = {}
        self.quiet = QuietLog()

    @classmethod
    def from_config(cls, config: Config) -> ConnectionBudgets:
        return cls(max_connections_per_address(config), config.max_unfinished_requests,
                   config.trusted_proxies)

    def connection_opened(self, address: str) -> bool:
        """Count a new connection; False (refuse it) when the address holds its budget."""
        return self._take(self.connections, self.max_connections, address, "connections")

    def connection_closed(self, address: str) -> None:
        self._give(self.connections, address)

    def head_started(self, address: str) -> bool:
        """A request head begins; False (close the connection) when the address already has
        its budget of heads in progress."""
        return self._take(self.unfinished, self.max_unfinished, address, "unfinished requests")

    def head_finished(self, address: str) -> None:
        self._give(self.unfinished, address)

    def head_timed_out(self, address: str, seconds: float) -> None:
        if self.quiet.allow("deadline " + address):
            logger.info("closed a connection from %s: request head not complete in %gs "
                        "(more may follow, logged once per 10 s)", address, seconds)

    def _take(self, counts: dict[str, int], limit: int, address: str, what: str) -> bool:
        if address in self.exempt:
            return True
        held = counts.get(address, 0)
        if held >= limit:
            if self.quiet.allow(what + " " + address):
                logger.warning("refusing %s from %s: it holds %d, the limit "
                               "(logged once per 10 s)", what, address, held)
            return False
        counts[address] = held + 1
        return True

    def _give(self, counts: dict[str, int], address: str) -> None:
        if address in self.exempt:
            return
        held = counts.get(address, 0) - 1
        if held > 0:
            counts[address] = held
        else:
            counts.pop(address, None)


# eventlet's pool has this many slots beyond MAX_CONNECTIONS (runtime.serve): page loads,
# /healthz and handshakes that are not (yet) Socket.IO connections.
EXTRA_SLOTS = 100


def max_connections_per_address(config: Config) -> int:
    """`MAX_CONNECTIONS_PER_ADDRESS`, by default half of the server's connection slots
    (`MAX_CONNECTIONS` + 100): one address can never hold more than half of them."""
    return config.max_connections_per_address or (config.max_connections + EXTRA_SLOTS) // 2


# -- Engine.IO sessions without a Socket.IO connection ------------------------------------

def is_handshake(environ: WSGIEnvironment) -> bool:
    """A request that opens an Engine.IO session: GET /socket.io/ without a `sid`."""
    if environ.get("REQUEST_METHOD") != "GET" or \
            not environ.get("PATH_INFO", "").startswith("/socket.io"):
        return False
    return "sid" not in urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))


class SessionBudget:
    """Engine.IO sessions that have not made a Socket.IO connection, per client address
    and in total.

    A handshake costs almost nothing to send and a session about 8 KB to keep until
    `CONNECT_TIMEOUT` closes it, so without a budget one address could fill the memory;
    `CONNECT_RATE` and `MAX_CONNECTIONS` only see Socket.IO CONNECTs. A session leaves the
    count once it is connected (`connected(eio_sid)`) or gone (not `alive(eio_sid)`),
    noticed at the next check of its address or by `prune()`, which runs every second.
    """

    def __init__(self, per_address: int, total: int, address_of: AddressOf,
                 connected: Callable[[str], bool], alive: Callable[[str], bool],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_address = per_address
        self.total = total
        self.address_of = address_of
        self.connected = connected
        self.alive = alive
        self.clock = clock
        self.owner: dict[str, str] = {}  # eio sid -> client address
        self.by_address: dict[str, set[str]] = {}
        self.pruned_at = -math.inf
        self.quiet = QuietLog()

    def opened(self, eio_sid: str, environ: WSGIEnvironment) -> None:
        """A session was created (python-engineio's connect event)."""
        address = self.address_of(environ)
        self.owner[eio_sid] = address
        self.by_address.setdefault(address, set()).add(eio_sid)

    def connect_handled(self, eio_sid: str) -> None:
        """A Socket.IO CONNECT of this session was handled: it leaves the count if it
        was accepted."""
        if self.connected(eio_sid):
            self._settle(eio_sid)

    def _settle(self, eio_sid: str) -> None:
        address = self.owner.pop(eio_sid, None)
        sids = self.by_address.get(address or "")
        if address is not None and sids is not None:
            sids.discard(eio_sid)
            if not sids:
                del self.by_address[address]

    def admit(self, environ: WSGIEnvironment) -> tuple[str, str] | None:
        """None when a handshake may go on, else the HTTP status and body refusing it."""
        address = self.address_of(environ)
        self._prune_address(address)
        held = len(self.by_address.get(address, ()))
        if held >= self.per_address:
            if self.quiet.allow(address):
                logger.warning("refusing Engine.IO handshakes from %s: %d sessions without "
                               "CONNECT, the limit (logged once per 10 s)", address, held)
            return "429 Too Many Requests", "too many sessions without CONNECT from your address\n"
        if len(self.owner) >= self.total:
            now = self.clock()
            if now - self.pruned_at >= 0.25:  # a full pass at most four times a second
                self.prune()
            if len(self.owner) >= self.total:
                if self.quiet.allow("total"):
                    logger.warning("refusing Engine.IO handshakes: %d sessions without CONNECT, "
                                   "the limit (logged once per 10 s)", len(self.owner))
                return "503 Service Unavailable", "too many sessions without CONNECT\n"
        return None

    def prune(self) -> None:
        self.pruned_at = self.clock()
        for address in list(self.by_address):
            self._prune_address(address)

    def run(self, sleep: Callable[[float], None]) -> None:
        """Forever: forget sessions that connected or closed (a background task)."""
        while True:
            sleep(1.0)
            try:
                self.prune()
            except Exception:
                logger.exception("pruning sessions without CONNECT failed")

    def _prune_address(self, address: str) -> None:
        sids = self.by_address.get(address)
        if not sids:
            return
        for eio_sid in [s for s in sids if self.connected(s) or not self.alive(s)]:
            sids.discard(eio_sid)
            self.owner.pop(eio_sid, None)
        if not sids:
            del self.by_address[address]


def limit_handshakes(app: WSGIApplication, budget: SessionBudget) -> WSGIApplication:
    """Refuse an Engine.IO handshake over the `SessionBudget` with 429 (this address) or
    503 (everyone), before python-engineio makes a session for it."""

    def limited(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if is_handshake(environ):
            refused = budget.admit(environ)
            if refused is not None:
                status, text = refused
                return plain(start_response, status, text,
                              [("Retry-After", str(RETRY_AFTER_SESSIONS))])
        return app(environ, start_response)

    return limited


def refuse_oversize_posts(app: WSGIApplication, sio: compat.SocketServer,
                          limit: int) -> WSGIApplication:
    """Close a long-polling session whose POST is over the buffer size, without reading it.

    python-engineio refuses such a POST too, but then waits for the client's next poll
    before it answers; a client that never polls again would hold that request forever.
    """

    def guarded(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "POST" and \
                environ.get("PATH_INFO", "").startswith("/socket.io"):
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = limit + 1
            if length > limit:
                query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
                session = compat.sessions(sio).get((query.get("sid") or [""])[0])
                if session is not None:
                    logger.info("closing %s: POST of %d bytes is over the limit",
                                session.sid, length)
                    compat.close_session(session)
                return plain(start_response, "413 Payload Too Large", "payload too large\n",
                              [("Connection", "close")])
        return app(environ, start_response)

    return guarded


# -- failed secret checks ---------------------------------------------------------------

class FailureBudget:
    """Failed checks of a secret per client address, as a token bucket that starts full:
    `limit.count` failures, then one more every `limit.seconds / limit.count` seconds.

    Callers ask `wait(address)` before checking at all: once the budget is spent, a right
    guess is refused like a wrong one, so guessing gains nothing from going on.
    """

    def __init__(self, limit: RateLimit | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit  # None: off
        self.clock = clock
        self.spent: dict[str, tuple[float, float]] = {}  # address -> (failures, as of)
        self.quiet = QuietLog()

    def _current(self, address: str, now: float) -> float:
        assert self.limit is not None
        failures, stamp = self.spent.get(address, (0.0, now))
        return max(0.0, failures - (now - stamp) * self.limit.per_second)

    def wait(self, address: str) -> float:
        """Seconds until `address` may try again; 0 when it may now."""
        if self.limit is None or address not in self.spent:
            return 0.0
        now = self.clock()
        failures = self._current(address, now)
        if failures <= 0:
            del self.spent[address]
            return 0.0
        over = failures - (self.limit.count - 1)
        return over / self.limit.per_second if over > 0 else 0.0

    def failed(self, address: str, what: str) -> None:
        if self.limit is None:
            return
        now = self.clock()
        if len(self.spent) > 100_000:  # forget those that are whole again
            self.spent = {a: v for a, v in self.spent.items() if self._current(a, now) > 0}
        self.spent[address] = (self._current(address, now) + 1, now)
        if self.wait(address) and self.quiet.allow(address):
            logger.warning("%s: too many failed checks from %s; refused for %.0fs",
                           what, address, self.wait(address))


# -- every response -----------------------------------------------------------------------

def harden(app: WSGIApplication, security_headers: Headers) -> WSGIApplication:
    """Every response carries the security headers (those the app did not set itself), and
    an exception becomes a plain 500 without details; its traceback goes to the log."""
    names = [(name.lower(), name, value) for name, value in security_headers]

    def hardened(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started: list[bool] = []

        def start(status: str, headers: Headers, exc_info: OptExcInfo | None = None, /
                  ) -> Callable[[bytes], object]:
            started.append(True)
            present = {name.lower() for name, _ in headers}
            headers = [*headers, *((n, v) for low, n, v in names if low not in present)]
            return start_response(status, headers, exc_info)

        try:
            return app(environ, start)
        except Exception:
            logger.exception("error answering %s %r", environ.get("REQUEST_METHOD"),
                             environ.get("PATH_INFO"))
            if environ.get("HTTP_UPGRADE", "").lower() == "websocket" and not started:
                # The socket may have switched protocols already: no HTTP answer on it.
                compat.response_already_sent()
                return []
            return plain(start_response, "500 Internal Server Error",
                          "internal server error\n", list(security_headers), sys.exc_info())

    return hardened


def plain(start_response: StartResponse, status: str, text: str,
           extra: Headers | None = None, exc_info: OptExcInfo | None = None) -> list[bytes]:
    body = text.encode()
    headers = [("Content-Type", "text/plain; charset=utf-8"),
               ("Content-Length", str(len(body))), *(extra or [])]
    start_response(status, headers, exc_info)
    return [body]
