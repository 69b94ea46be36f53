"""runtime.unmask stands in for eventlet's websocket unmasking: it must agree byte for byte."""

import os
import random

from chat_server import runtime


def test_unmask_agrees_with_eventlets_own():
    original = runtime.eventlet.websocket.RFC6455WebSocket.__dict__["_apply_mask"]
    assert original.__func__ is not runtime.unmask  # tests never patch in-process
    rng = random.Random(7)
    for size in [0, 1, 2, 3, 4, 5, 7, 8, 125, 126, 1000, 70000]:
        data = os.urandom(size)
        for mask in (os.urandom(4), list(os.urandom(4))):
            for length in {None, size, size // 2}:
                offset = rng.randrange(0, 9)
                assert runtime.unmask(data, mask, length, offset) == \
                    original.__func__(data, mask, length, offset)
    assert runtime.unmask(bytearray(b"abcd"), b"\x01\x02\x03\x04") == \
        original.__func__(b"abcd", b"\x01\x02\x03\x04")
