"""The HTTP API for bots and integrations (docs/protocol.md §12), a WSGI layer in front
of the rest of the server: it answers every path under `/api/v1` and passes the others on.

- `POST /api/v1/messages` `{to, text, clientId?, replyTo?}`: 201 `{"message": MESSAGE}`
- `POST /api/v1/rooms/join` `{room, password?}`: 200 `{room, members, history}`
- `GET /api/v1/messages?conversation=&before=&after=&limit=`: 200 `{"messages": [...]}`
- `GET /api/v1/openapi.json`: the OpenAPI 3.1 description (`openapi.py`), no token

The domain does the work (`domain/bots.py`), as it does for Socket.IO events; this layer
reads the bearer token, the JSON body or the query, and turns domain errors into HTTP
statuses with `{"error": {code, message}}`. No cookies are read or set, so there are no
origin or CSRF rules: the token is the only credential. A failure of ours is logged with
its traceback and answered 503 `unavailable`; no traceback reaches a client.
"""

from __future__ import annotations

import json
import logging
import math
import re
import urllib.parse
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from . import openapi
from .config import Config, RateLimit
from .domain.chat import Chat
from .domain.errors import ChatError, InvalidPayload, NotFound, TooLarge, Unavailable

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from .domain.presence import Connection
    from .handlers import SocketHandlers

logger = logging.getLogger(__name__)

PREFIX = "/api/v1"
# Domain error code -> (HTTP status, the code the API answers with): §12.3 names one code
# per status, so a wrong room password and a server ban are `forbidden` here.
STATUSES: dict[str, tuple[str, str]] = {
    "invalid_payload": ("400 Bad Request", "invalid_payload"),
    "invalid_name": ("400 Bad Request", "invalid_payload"),
    "name_taken": ("400 Bad Request", "invalid_payload"),
    "bad_token": ("401 Unauthorized", "bad_token"),
    "forbidden": ("403 Forbidden", "forbidden"),
    "bad_password": ("403 Forbidden", "forbidden"),
    "banned": ("403 Forbidden", "forbidden"),
    "not_found": ("404 Not Found", "not_found"),
    "too_large": ("413 Content Too Large", "too_large"),
    "rate_limited": ("429 Too Many Requests", "rate_limited"),
    "unavailable": ("503 Service Unavailable", "unavailable"),
    "server_full": ("503 Service Unavailable", "unavailable"),
}
QUERY_FIELDS = ("conversation", "before", "after", "limit")
BEARER = re.compile(r"Bearer +(\S+) *", re.IGNORECASE)
DIGITS = re.compile(r"[0-9]{1,19}")


Handler = Callable[["Connection", "WSGIEnvironment"], tuple[str, Any]]


class MethodNotAllowed(ChatError):
    code = "invalid_payload"
    default_message = "That method is not served on this path."


class Api:
    """`Api(app, chat, config, address_of, handlers)` is the WSGI app to serve."""

    def __init__(self, app: WSGIApplication, chat: Chat, config: Config,
                 address_of: Callable[[WSGIEnvironment], str],
                 handlers: SocketHandlers | None = None) -> None:
        self.app = app
        self.chat = chat
        self.config = config
        self.address_of = address_of
        self.handlers = handlers  # shutdown: draining refuses, in-flight requests finish
        self.body_limit = config.max_http_buffer_size
        self.description = json.dumps(openapi.document(config.max_text_length)).encode()
        # The budgets each endpoint spends, for `Retry-After`.
        sends = _retry_after(config.rate_limit, config.event_rate)
        joins = _retry_after(config.event_rate, config.room_rate, config.password_rate,
                             config.password_target_rate)
        reads = _retry_after(config.event_rate)
        # path -> method -> (handler(conn, environ) -> (status, body), Retry-After)
        self.routes: dict[str, dict[str, tuple[Handler, str]]] = {
            PREFIX + "/messages": {"POST": (self._send, sends), "GET": (self._history, reads)},
            PREFIX + "/rooms/join": {"POST": (self._join, joins)},
        }

    def __call__(self, environ: WSGIEnvironment,
                 start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path != PREFIX and not path.startswith(PREFIX + "/"):
            return self.app(environ, start_response)
        if self.handlers is not None:
            self.handlers.in_flight += 1
        try:
            return self._serve(environ, start_response, path)
        finally:
            if self.handlers is not None:
                self.handlers.in_flight -= 1

    def _serve(self, environ: WSGIEnvironment, start_response: StartResponse,
               path: str) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        headers: list[tuple[str, str]] = []
        try:
            if path == PREFIX + "/openapi.json":
                if method not in ("GET", "HEAD"):
                    headers.append(("Allow", "GET, HEAD"))
                    raise MethodNotAllowed()
                return self._respond(start_response, "200 OK", self.description, headers,
                                     method == "HEAD")
            methods = self.routes.get(path)
            if methods is None:
                raise NotFound("No such endpoint; see /api/v1/openapi.json.")
            route = methods.get(method)
            if route is None:
                headers.append(("Allow", ", ".join(methods)))
                raise MethodNotAllowed()
            handler, retry_after = route
            environ["chat.retry_after"] = retry_after
            if self.handlers is not None and self.handlers.draining:
                raise Unavailable("The server is restarting; try again.")
            conn = self.chat.bots.authenticate(_bearer(environ), self.address_of(environ))
            status, result = handler(conn, environ)
            return self._respond(start_response, status, json.dumps(result).encode(), headers)
        except ChatError as error:
            return self._error(start_response, error, headers, environ)
        except Exception:
            logger.exception("%s %s failed", method, path)
            return self._error(start_response, Unavailable("The server failed; try again."),
                               headers, environ)

    # -- endpoints -----------------------------------------------------------------------

    def _send(self, conn: Connection, environ: WSGIEnvironment) -> tuple[str, Any]:
        return "201 Created", {"message": self.chat.bots.send(conn, self._json(environ))}

    def _join(self, conn: Connection, environ: WSGIEnvironment) -> tuple[str, Any]:
        return "200 OK", self.chat.bots.join(conn, self._json(environ))

    def _history(self, conn: Connection, environ: WSGIEnvironment) -> tuple[str, Any]:
        return "200 OK", {"messages": self.chat.bots.history(conn, _query(environ))}

    # -- reading requests ----------------------------------------------------------------

    def _json(self, environ: WSGIEnvironment) -> object:
        """The body as JSON: `Content-Type: application/json`, UTF-8, at most
        `MAX_HTTP_BUFFER_SIZE` bytes (more is `too_large`, and not read)."""
        media = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        if media != "application/json":
            raise InvalidPayload("Send a JSON body with 'Content-Type: application/json'.")
        declared = environ.get("CONTENT_LENGTH") or ""
        too_large = TooLarge(f"The body is over {self.body_limit} bytes.")
        if declared:
            if not DIGITS.fullmatch(declared):
                raise InvalidPayload("Bad Content-Length.")
            if int(declared) > self.body_limit:
                raise too_large
            data = environ["wsgi.input"].read(int(declared))
        else:
            data = environ["wsgi.input"].read(self.body_limit + 1)
            if len(data) > self.body_limit:
                raise too_large
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise InvalidPayload("The body is not valid JSON in UTF-8.") from None

    # -- answering -----------------------------------------------------------------------

    def _error(self, start_response: StartResponse, error: ChatError,
               headers: list[tuple[str, str]], environ: WSGIEnvironment) -> Iterable[bytes]:
        status, code = STATUSES.get(error.code, ("400 Bad Request", "invalid_payload"))
        if isinstance(error, MethodNotAllowed):
            status = "405 Method Not Allowed"
        if code == "rate_limited":
            headers.append(("Retry-After", environ.get("chat.retry_after", "1")))
        elif code == "bad_token":
            headers.append(("WWW-Authenticate", 'Bearer realm="chat_server"'))
        elif code == "too_large":
            headers.append(("Connection", "close"))  # the rest of the body was not read
        body = json.dumps({"error": {"code": code, "message": error.message}}).encode()
        return self._respond(start_response, status, body, headers)

    @staticmethod
    def _respond(start_response: StartResponse, status: str, body: bytes,
                 headers: list[tuple[str, str]], head: bool = False) -> list[bytes]:
        start_response(status, [("Content-Type", "application/json"),
                                ("Content-Length", str(len(body))),
                                ("Cache-Control", "no-store"), *headers])
        return [] if head else [body]


def _bearer(environ: WSGIEnvironment) -> str | None:
    match = BEARER.fullmatch(environ.get("HTTP_AUTHORIZATION", ""))
    return match.group(1) if match else None


def _query(environ: WSGIEnvironment) -> dict[str, Any]:
    """`?conversation=&before=&after=&limit=` as `history`'s payload: each at most once,
    the numbers as decimal integers (their ranges are `history`'s to check)."""
    try:
        pairs = urllib.parse.parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True,
                                       strict_parsing=False, max_num_fields=20,
                                       errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise InvalidPayload("The query string is not valid.") from None
    query: dict[str, Any] = {}
    for name, value in pairs:
        if name not in QUERY_FIELDS:
            continue
        if name in query:
            raise InvalidPayload(f"'{name}' is given twice.")
        if name == "conversation":
            query[name] = value
        elif DIGITS.fullmatch(value):
            query[name] = int(value)
        else:
            raise InvalidPayload(f"'{name}' must be a non-negative integer.")
    if "conversation" not in query:
        raise InvalidPayload("'conversation' is required: 'lobby', a '#room' or a user name.")
    return query


def _retry_after(*limits: RateLimit | None) -> str:
    """Seconds until the slowest of the budgets an endpoint spends gives a token back
    (whole seconds, at least 1): waiting this long, the client has one again."""
    seconds = [1 / limit.per_second for limit in limits if limit is not None]
    return str(max(1, math.ceil(max(seconds, default=1))))
