"""Plain HTTP: the browser page, its static files, the Socket.IO client, and /healthz."""

from __future__ import annotations

import json
import logging
import math
import mimetypes
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .metrics import Metrics, authorized

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

    from .edge import FailureBudget

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
PACKAGED = Path(__file__).resolve().parent / "page"  # a wheel's copy (setup.py's build)


def page_dirs() -> tuple[Path, Path]:
    """Where the page and the socket.io client are: in the package when it was built as a
    wheel (`chat_server/page`, `page/vendor`), else in the checkout (`static/`, and
    `node_modules/` after `npm ci`)."""
    if (PACKAGED / "index.html").is_file():
        return PACKAGED, PACKAGED / "vendor"
    return ROOT / "static", ROOT / "node_modules" / "socket.io-client" / "dist"


STATIC_DIR, CLIENT_DIR = page_dirs()
CLIENT_FILE = "socket.io.min.js"


def client_missing(client_dir: Path = CLIENT_DIR) -> bool:
    """The page cannot work without the socket.io client: said once at start, and by
    /readyz."""
    return not (client_dir / CLIENT_FILE).is_file()

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
]


class WebApp:
    """The WSGI app behind `socketio.WSGIApp` for every path that is not Socket.IO."""

    def __init__(self, health: Callable[[], dict[str, Any]], metrics: Metrics | None = None,
                 metrics_token: str | None = None, static_dir: str | Path = STATIC_DIR,
                 client_dir: str | Path = CLIENT_DIR,
                 token_failures: FailureBudget | None = None,
                 address_of: Callable[[WSGIEnvironment], str] | None = None) -> None:
        self.health = health  # callable -> dict with "store" (and "redis"): "ok" or not,
        # and "degraded": what works with less than usual
        self.metrics = metrics
        self.metrics_token = metrics_token
        # Wrong /metrics tokens per client address: guessing it is throttled.
        self.token_failures = token_failures
        self.address_of = address_of or (lambda environ: environ.get("REMOTE_ADDR", ""))
        self.static_dir = Path(static_dir).resolve()
        self.client_dir = Path(client_dir).resolve()

    def __call__(self, environ: WSGIEnvironment,
                 start_response: StartResponse) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/")
        if method not in ("GET", "HEAD"):
            return self._respond(start_response, "405 Method Not Allowed", b"method not allowed\n",
                                "text/plain; charset=utf-8", [("Allow", "GET, HEAD")])
        if path in ("/healthz", "/readyz"):
            report = self.health()
            # Without Redis a node still does its job for its own users (it says what is
            # degraded); without the store it does not. Every node answering 503 during a
            # Redis outage would take the whole service away.
            ready = all(report.get(k, "ok") == "ok" for k in ("status", "store"))
            # /healthz: the process serves (liveness); /readyz: it can do its job.
            status = "200 OK" if path == "/healthz" or ready else "503 Service Unavailable"
            report["ready"] = ready
            return self._respond(start_response, status, json.dumps(report).encode(),
                                 "application/json", [("Cache-Control", "no-store")])
        if path == "/metrics" and self.metrics is not None and self.metrics_token:
            address = self.address_of(environ)
            wait = self.token_failures.wait(address) if self.token_failures else 0.0
            if wait:  # checked before the token: past the budget, a right guess is no use
                return self._respond(start_response, "429 Too Many Requests",
                                     b"too many wrong tokens; try later\n",
                                     "text/plain; charset=utf-8",
                                     [("Retry-After", str(max(1, math.ceil(wait))))])
            if not authorized(environ, self.metrics_token):
                if self.token_failures:
                    self.token_failures.failed(address, "/metrics")
                return self._respond(start_response, "401 Unauthorized", b"unauthorized\n",
                                     "text/plain; charset=utf-8",
                                     [("WWW-Authenticate", 'Bearer realm="metrics"')])
            body, content_type = self.metrics.render()
            return self._respond(start_response, "200 OK", body, content_type,
                                 [("Cache-Control", "no-store")])
        if path == "/favicon.ico":  # the page names none; browsers ask anyway
            return self._respond(start_response, "204 No Content", b"", "image/x-icon")
        if path in ("/", "/index.html"):
            return self._file(start_response, self.static_dir / "index.html")
        if path.startswith("/static/"):
            return self._file(start_response, self._inside(self.static_dir, path[8:]))
        if path.startswith("/vendor/socket.io"):
            name = path[len("/vendor/"):]
            if name in ("socket.io.min.js", "socket.io.min.js.map", "socket.io.js",
                        "socket.io.js.map"):
                return self._file(start_response, self.client_dir / name)
        return self._not_found(start_response)

    @staticmethod
    def _inside(base: Path, relative: str) -> Path | None:
        """The file under `base`, or None for paths that try to leave it or that no file
        system can hold (a NUL byte, a name too long): those are simply not found."""
        if "\x00" in relative:
            return None
        try:
            candidate = (base / relative).resolve()
        except (OSError, ValueError):
            return None
        return candidate if candidate.is_relative_to(base) else None

    def _file(self, start_response: StartResponse, path: Path | None) -> list[bytes]:
        try:
            found = path is not None and path.is_file()
        except (OSError, ValueError):
            found = False
        if path is None or not found:
            return self._not_found(start_response)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type.endswith("javascript"):
            content_type += "; charset=utf-8"
        return self._respond(start_response, "200 OK", path.read_bytes(), content_type,
                             [("Cache-Control", "no-cache")])

    def _not_found(self, start_response: StartResponse) -> list[bytes]:
        return self._respond(start_response, "404 Not Found", b"not found\n",
                             "text/plain; charset=utf-8")

    @staticmethod
    def _respond(start_response: StartResponse, status: str, body: bytes, content_type: str,
                 extra: Iterable[tuple[str, str]] = ()) -> list[bytes]:
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body))),
                   *SECURITY_HEADERS, *extra]
        start_response(status, headers)
        return [body]
