"""A real full disk under the SQLite store.

The database lives on a small tmpfs the test mounts (root only, as in CI): filling it is
the fault itself, with no stand-in for SQLite or the disk. (A read-only remount cannot be
had while the server holds its files open for writing, so that fault is not tried.)
"""

import os
import subprocess
import tempfile

import pytest
from support.actions import send
from support.checks import err, ok
from support.names import uname
from support.server import ServerProcess

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture
def small_disk():
    """A 2 MiB tmpfs, unmounted afterwards."""
    path = tempfile.mkdtemp(prefix="chat-disk-")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", path],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    yield path
    subprocess.run(["umount", "-l", path], check=False)
    os.rmdir(path)


@pytest.fixture
def disk_server(small_disk):
    """A server whose database lives on the small tmpfs."""
    srv = ServerProcess(small_disk, env={"RATE_LIMIT": "off"})
    srv.start()
    yield srv
    srv.stop()


def fill(path):
    """Fill the file system; returns the filler file's path."""
    filler = os.path.join(path, "filler")
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def test_full_disk_gives_unavailable_and_recovers(disk_server, small_disk, client_factory):
    alice, bob = client_factory(), client_factory()
    alice.connect(disk_server.url, auth={"name": uname("alice")})
    bob.connect(disk_server.url, auth={"name": uname("bob")})
    before = send(alice, "before the disk filled")
    filler = fill(small_disk)
    big = "x" * 2000
    codes = set()
    for _ in range(200):  # the WAL soon needs a page it cannot get
        ack = alice.call("message", big, timeout=15)
        codes.add("ok" if ack["ok"] else ack["error"]["code"])
        if not ack["ok"]:
            break
    err(ack, "unavailable")
    assert codes <= {"ok", "unavailable"}
    mark = bob.mark()
    ok(bob.call("listUsers"))  # the server keeps serving
    history = ok(bob.call("history", {"conversation": "lobby", "limit": 1}))
    assert history["messages"]  # reads still work
    bob.assert_no_event("reply", lambda m: False, since=mark)
    os.remove(filler)
    after = send(alice, "after space came back")
    assert after["id"] > before["id"]
    bob.wait_for("reply", lambda m: m["id"] == after["id"])
