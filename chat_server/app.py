"""`create_app(config)` builds the whole server; nothing happens at import time."""

import logging
from dataclasses import dataclass

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


def create_app(config):
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

    wsgi = socketio.WSGIApp(sio, WebApp(health))
    return App(wsgi, sio, chat, store, transport)
