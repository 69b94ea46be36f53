"""chat_server/compat/: the only place that leans on library internals."""

import os
import random
import subprocess
import sys
from pathlib import Path

from chat_server import compat

ROOT = Path(__file__).resolve().parent.parent
LIBRARIES = ("socketio", "engineio", "eventlet")


def test_every_internal_we_rely_on_exists_in_the_installed_libraries():
    """Fails loudly, naming the attribute, when an upgrade removed or reshaped one."""
    compat.check()


def test_the_check_names_what_is_missing(monkeypatch):
    import engineio.payload

    monkeypatch.delattr(engineio.payload.Payload, "max_decode_packets")
    try:
        compat.check()
    except compat.IncompatibleLibrary as error:
        assert "max_decode_packets is missing" in str(error)
    else:
        raise AssertionError("check() accepted a library without max_decode_packets")


def test_unmask_agrees_with_eventlets_own():
    """compat.unmask stands in for eventlet's websocket unmasking, byte for byte."""
    original = compat.eventlet_unmask()
    assert original is not compat.unmask  # tests never patch in-process
    rng = random.Random(7)
    for size in [0, 1, 2, 3, 4, 5, 7, 8, 125, 126, 1000, 70000]:
        data = os.urandom(size)
        for mask in (os.urandom(4), list(os.urandom(4))):
            for length in {None, size, size // 2}:
                offset = rng.randrange(0, 9)
                assert compat.unmask(data, mask, length, offset) == \
                    original(data, mask, length, offset)
    assert compat.unmask(bytearray(b"abcd"), b"\x01\x02\x03\x04") == \
        original(b"abcd", b"\x01\x02\x03\x04")


def test_no_other_module_touches_a_private_name_of_the_libraries():
    """`grep` for `._name` on anything imported from socketio, engineio or eventlet."""
    found = subprocess.run(
        ["git", "grep", "-nE", r"(eio|sio|socketio|engineio|eventlet|ws|lock|server|session|"
         r"Payload|RFC6455WebSocket|manager)\._[a-z]", "--", "*.py"],
        cwd=ROOT, capture_output=True, text=True).stdout.splitlines()
    outside = [line for line in found if not line.startswith("chat_server/compat/")
               and "self._" not in line]
    assert not outside, "\n".join(outside)


def test_importing_compat_does_not_import_eventlet():
    code = "import sys, chat_server.compat; print('eventlet' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "False"
