"""Connection attempts per client address, proxies, and clients that stop reading."""

import socket
import time

import pytest
from support.checks import ok
from support.client import ConnectRefused
from support.names import uname


def test_connections_per_address_are_limited(server_factory, client_factory):
    srv = server_factory(env={"CONNECT_RATE": "3/60"})
    for _ in range(3):
        client_factory().connect(srv.url)
    with pytest.raises(ConnectRefused) as refused:
        client_factory().connect(srv.url)
    assert refused.value.code == "rate_limited"  # docs/protocol.md §1.6


def test_forwarded_for_is_believed_only_from_trusted_proxies(server_factory, client_factory):
    """Behind a trusted proxy each forwarded address has its own budget; from anywhere
    else X-Forwarded-For is ignored, so forging it gains nothing."""
    trusted = server_factory(env={"CONNECT_RATE": "1/60", "TRUSTED_PROXIES": "127.0.0.1"})
    for i in range(3):
        client_factory().connect(trusted.url, headers={"X-Forwarded-For": f"203.0.113.{i}"})
    with pytest.raises(ConnectRefused):
        client_factory().connect(trusted.url, headers={"X-Forwarded-For": "203.0.113.0"})

    untrusted = server_factory(env={"CONNECT_RATE": "1/60"})
    client_factory().connect(untrusted.url, headers={"X-Forwarded-For": "198.51.100.1"})
    with pytest.raises(ConnectRefused):
        client_factory().connect(untrusted.url, headers={"X-Forwarded-For": "198.51.100.2"})


def test_a_client_that_stops_reading_is_cut_off_and_stalls_no_one(server_factory,
                                                                   client_factory):
    """A websocket client that never reads: others keep chatting at full speed, and the
    server drops the stalled one once its unsent packets pass the limit."""
    srv = server_factory(env={"RATE_LIMIT": "off", "MAX_QUEUED_PACKETS": "100"})
    host, port = "127.0.0.1", srv.port
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before the handshake
    stalled.connect((host, port))
    stalled.sendall(
        f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {host}:{port}\r\n"
        .encode() +
        b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
        b"dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    time.sleep(0.3)
    # Socket.IO CONNECT as a masked text frame, then never read again.
    payload = b"40"
    mask = b"\x01\x02\x03\x04"
    stalled.sendall(bytes([0x81, 0x80 | len(payload)]) + mask +
                    bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    time.sleep(0.3)
    talker, listener = client_factory(), client_factory()
    talker.connect(srv.url, auth={"name": uname("talk")})
    listener.connect(srv.url, auth={"name": uname("listen")})
    big = "\U0001F600" * 1900  # about 23 KB per frame once JSON-escaped: beats socket buffers
    for i in range(300):
        ok(talker.call("message", f"{i} {big}"))
    listener.wait_for("reply", lambda m: m["text"].startswith("299 "), timeout=10)
    numbers = [int(m["text"].split()[0]) for m in listener.events("reply")]
    assert numbers == list(range(300))  # everything, in order, despite the stalled peer
    log = srv.log_text()
    deadline = time.monotonic() + 5
    while "not reading" not in log and time.monotonic() < deadline:
        time.sleep(0.2)
        log = srv.log_text()
    assert "packets queued, the client is not reading" in log
    stalled.close()
