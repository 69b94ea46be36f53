"""The frames and packets fanout.py writes itself are, byte for byte, what eventlet's
websocket and python-socketio's packet encoder would have written (issue 18: every
shortcut around the libraries is compared with them on the same input)."""

import random
import socket

import pytest
from socketio import packet

from chat_server import fanout
from chat_server.runtime import eventlet

VALUES = [
    None, 0, -1, 2**53, 1.5, True, False, "", "plain", "é – ✓ 🎉 \u0000 \u2028 \"quoted\" \\",
    [], {}, {"ok": True, "message": {"id": 12, "text": "hi", "to": None, "mentions": []}},
    {"nested": [[{"deep": ["x" * 300]}]], "ünï": {"ключ": "значение"}},
]


@pytest.fixture
def websocket():
    ours, theirs = socket.socketpair()
    yield eventlet.websocket.RFC6455WebSocket(ours, {})
    ours.close()
    theirs.close()


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70_000])
def test_a_text_frame_is_eventlets(websocket, size):
    rng = random.Random(size)
    text = "".join(rng.choice("ab é✓🎉") for _ in range(size))
    text = text.encode()[:size].decode(errors="ignore")  # about `size` bytes, whole characters
    assert fanout.text_frame(text.encode()) == websocket._pack_message(text)


@pytest.mark.parametrize("data", VALUES)
def test_an_event_is_the_librarys_packet(data):
    """As `Server.emit("reply", data)` encodes it: no argument at all for None."""
    arguments = ["reply"] if data is None else ["reply", data]
    library = packet.Packet(packet.EVENT, data=arguments).encode()
    assert fanout.event_text("reply", data) == "4" + library


@pytest.mark.parametrize("data", VALUES)
@pytest.mark.parametrize("ack_id", [0, 7, 123456])
def test_an_ack_is_the_librarys_packet(data, ack_id):
    library = packet.Packet(packet.ACK, data=[data], id=ack_id).encode()
    assert fanout.ack_text(ack_id, [data]) == "4" + library
    empty = packet.Packet(packet.ACK, data=[], id=ack_id).encode()
    assert fanout.ack_text(ack_id, []) == "4" + empty
