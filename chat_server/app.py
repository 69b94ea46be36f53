"""`create_app(config)` builds the whole server; nothing happens at import time."""

import logging
import urllib.parse
from dataclasses import dataclass

import engineio.payload
import socketio

from . import runtime
from .chat import Chat
from .errors import Unavailable
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


def _origin_check(config):
    """Same origin always; `CORS_ORIGINS` adds to it (python-socketio's default is only the
    same origin, and a list would replace it rather than widen it)."""
    extra = set(config.cors_origins)

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
    store = Store(config.database_url)
    lane = runtime.Lane("store", threaded=store.is_sqlite)
    sio = ChatSocketServer(
        async_mode="eventlet",
        cors_allowed_origins=_origin_check(config),
        max_http_buffer_size=config.max_http_buffer_size,
        logger=False,
        engineio_logger=False,
    )
    transport = Transport(sio, config)
    chat = Chat(store, config, publish=transport.apply, store_call=lane.run,
                offload=runtime.offload)
    chat.submit = runtime.Batcher(chat.commit_batch).submit
    transport.attach(chat)
    chat.start()
    sio.start_background_task(transport.watch_handshakes)

    def health():
        try:
            with runtime.timeout(3):
                lane.run(store.ping)
            state = "ok"
        except (Unavailable, runtime.TimeoutError):
            state = "unavailable"
        return {"status": "ok", "store": state, "connections": len(chat.presence)}

    wsgi = _refuse_oversize_posts(socketio.WSGIApp(sio, WebApp(health)), sio,
                                  config.max_http_buffer_size)
    return App(wsgi, sio, chat, store, transport)


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
