"""PROTOCOL.md section 6 and the ack/error rules of section 2, at the wire level."""

import base64
import json
import time

import pytest
from support.actions import send
from support.checks import ok
from support.names import uid
from support.server import private_server

timeout_server = private_server({"CONNECT_TIMEOUT": "1", "RATE_LIMIT": "off"})


def test_success_without_ack_sends_no_error_event(server, connect):
    """A valid event without an ack callback takes effect and produces no `error` event."""
    a = connect(server.url)
    b = connect(server.url)
    text = "no ack " + uid()
    a.emit("message", text)
    b.wait_for("reply", lambda m: m["text"] == text)
    a.emit("listUsers")
    a.emit("joinRoom", {"room": "#noack-" + uid()})
    a.assert_no_event("error")


def test_error_event_payload_has_code_message_and_event(server, connect):
    """A failure without ack callback is an `error` event {code, message, event}."""
    a = connect(server.url)
    a.emit("history", {"conversation": "lobby", "limit": 0})
    e = a.wait_for("error")
    assert set(e) >= {"code", "message", "event"}, e
    assert e["code"] == "invalid_payload" and e["event"] == "history"
    assert isinstance(e["message"], str) and e["message"]


def test_ack_always_receives_exactly_one_object(server, connect):
    """Acks carry a single object argument, for successes and failures alike."""
    a = connect(server.url)
    for event, data in [("listUsers", None), ("listRooms", None),
                        ("history", {"conversation": "lobby", "limit": 1}),
                        ("message", "one object " + uid()), ("message", {"text": ""}),
                        ("joinRoom", {"room": "bad"})]:
        args = []
        a.sio.emit(event, data, callback=lambda *x, acc=args: acc.append(x))
        deadline = time.monotonic() + 5
        while not args and time.monotonic() < deadline:
            time.sleep(0.01)
        assert args, f"no ack for {event}"
        assert len(args[0]) == 1 and isinstance(args[0][0], dict), (event, args[0])
        assert isinstance(args[0][0].get("ok"), bool), (event, args[0])


def raw_connected(raw_factory, url, transport):
    raw = raw_factory(url, transport)
    raw.connect_socketio()
    return raw


def raw_call(raw, ack_id, event, data=None, timeout=3.0):
    """Send an event with an ack id over a raw session and return the ack's arguments."""
    args = [event] if data is None else [event, data]
    raw.send(f"42{ack_id}" + json.dumps(args))
    return raw.ack(ack_id, timeout)


def test_raw_session_works(server, raw_factory, transport):
    """A hand-driven session can call events (the baseline of the raw tests below)."""
    raw = raw_connected(raw_factory, server.url, transport)
    (ack,) = raw_call(raw, 1, "listRooms")
    ok(ack)


def test_ack_for_unknown_id_is_ignored(server, raw_factory, transport):
    """An ACK packet for an id the server never sent is ignored; the session keeps working."""
    raw = raw_connected(raw_factory, server.url, transport)
    raw.send("43999[]")
    raw.send('4312345[{"ok":true}]')
    (ack,) = raw_call(raw, 7, "listUsers")
    ok(ack)


UNDECODABLE = [
    ("invalid-json", '42["message","unterminated'),
    ("invalid-json-ack", "421[not json]"),
    ("unknown-socketio-type", '49["message","x"]'),
    ("unknown-engineio-type", "9garbage"),
    ("binary-unexpected", b"\x00\x01\x02binary"),
    ("over-buffer-size", "42" + json.dumps(["message", "z" * 70_000])),
]


@pytest.mark.parametrize("packet", [p for _, p in UNDECODABLE], ids=[i for i, _ in UNDECODABLE])
def test_undecodable_packet_closes_only_that_connection(server, raw_factory, connect,
                                                        transport, packet):
    """An undecodable or oversize packet closes that session; other clients are unaffected."""
    bystander = connect(server.url)
    raw = raw_connected(raw_factory, server.url, transport)
    if isinstance(packet, bytes) and transport == "polling":
        packet = "b" + base64.b64encode(packet).decode()
    status = raw.send(packet)
    assert status in (None, -1, 200, 400, 413), status
    assert raw.closed(timeout=3.0), "the server kept the session open"
    assert bystander.connected
    send(bystander, "still fine " + uid())


def test_session_without_connect_is_closed_after_connect_timeout(timeout_server, raw_factory,
                                                                 transport):
    """An Engine.IO session that never sends CONNECT is closed after CONNECT_TIMEOUT seconds."""
    srv = timeout_server
    t0 = time.monotonic()
    raw = raw_factory(srv.url, transport)
    assert raw.closed(timeout=4.0), "session without CONNECT still open after 4 s"
    elapsed = time.monotonic() - t0
    assert 0.7 <= elapsed <= 4.0, f"closed after {elapsed:.2f}s, expected about 1 s"


def test_connected_session_outlives_connect_timeout(timeout_server, connect):
    """A session that did send CONNECT is not closed by CONNECT_TIMEOUT."""
    srv = timeout_server
    c = connect(srv.url)
    time.sleep(2.0)
    assert c.connected and not c.disconnects
    ok(c.call("listUsers"))
