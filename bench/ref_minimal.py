"""Reference server for the benchmark only: the minimal python-socketio + eventlet chat.

This is the chat of the original design, kept deliberately bare: no persistence, no
validation, no identities, no limits.

- `message` (any payload): `reply` with that payload to every client;
- `sendMessage {content, destId}`: `reply` `{content, from}` to `destId`, which may be a
  sid (a direct message) or a room name such as `#r1` (every sid is also a room in
  python-socketio, so one emit covers both);
- `join ROOM`: the sender enters that room.

Each handler returns `{"ok": true}`, which python-socketio sends back only when the client
asked for an ack; the benchmark uses that to time acknowledged sends.

eventlet.wsgi runs with its defaults (a pool of 1,024 greenlets, a listen backlog of 50)
unless `--max-size` / `--backlog` say otherwise: those defaults are part of what the
benchmark measures.

    python bench/ref_minimal.py --port 8001
"""

import argparse
import logging
import sys

import eventlet

eventlet.monkey_patch()

import eventlet.wsgi  # noqa: E402
import socketio  # noqa: E402

sio = socketio.Server(async_mode="eventlet")
OK = {"ok": True}


@sio.on("message")
def on_message(sid, data=None):
    sio.emit("reply", data)
    return OK


@sio.on("sendMessage")
def on_send_message(sid, data=None):
    if isinstance(data, dict) and data.get("destId"):
        sio.emit("reply", {"content": data.get("content"), "from": sid}, to=data["destId"])
    return OK


@sio.on("join")
def on_join(sid, room=None):
    if isinstance(room, str) and room:
        sio.enter_room(sid, room)
    return OK


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--max-size", type=int, default=None,
                        help="eventlet.wsgi pool size (default: eventlet's, 1024)")
    parser.add_argument("--backlog", type=int, default=None,
                        help="listen backlog (default: eventlet's, 50)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    listen_kwargs = {} if args.backlog is None else {"backlog": args.backlog}
    listener = eventlet.listen((args.host, args.port), **listen_kwargs)
    host, port = listener.getsockname()[:2]
    print(f"Serving on http://{host}:{port}", flush=True)
    server_kwargs = {} if args.max_size is None else {"max_size": args.max_size}
    try:
        eventlet.wsgi.server(listener, socketio.WSGIApp(sio), **server_kwargs)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
