"""`python -m chat_server admin list|ban|unban NAME` (docs/protocol.md §10.4, §10.6) run
against a running server's database: the server closes the user's connections within a
few seconds with `banned {by}`, its next connect is refused with `banned`, `list` shows
the ban, and `unban` lets the user back."""

import os
import subprocess
import sys
import time

import pytest
from support import ROOT
from support.checks import ok
from support.client import ConnectRefused
from support.names import uname


def admin(*args, database_url):
    return subprocess.run(
        [sys.executable, "-m", "chat_server", "admin", *args, "--database-url", database_url],
        cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=60)


def test_admin_command_bans_a_connected_user(server_factory, client_factory):
    srv = server_factory()
    name = uname("troll")

    def connect(auth, transport="websocket"):
        client = client_factory()
        client.connect(srv.url, auth=auth, transport=transport)
        return client

    tabs = [connect({"name": name})]
    tabs.append(connect({"token": tabs[0].token}, transport="polling"))
    bystander = connect({"name": uname("ok")})

    result = admin("ban", name, "--by", "the operators", database_url=srv.database_url)
    assert result.returncode == 0, result.stderr
    assert f"{name} banned" in result.stdout
    started = time.monotonic()
    for tab in tabs:
        assert tab.wait_for("banned", timeout=8) == {"by": "the operators"}
        tab.wait_disconnected(timeout=8)
    took = time.monotonic() - started
    assert took < 6.5, f"connections closed after {took:.1f}s"
    with pytest.raises(ConnectRefused) as refused:
        connect({"token": tabs[0].token})
    assert refused.value.code == "banned"
    ok(bystander.call("listUsers"))

    listed = admin("list", database_url=srv.database_url)
    assert listed.returncode == 0, listed.stderr
    assert [line.split("\t")[:2] for line in listed.stdout.splitlines()] == [
        [name, "banned by the operators"]]

    assert admin("unban", name, database_url=srv.database_url).returncode == 0
    ok(connect({"token": tabs[0].token}).call("listUsers"))
    assert admin("list", database_url=srv.database_url).stdout == ""
    missing = admin("ban", uname("nobody"), database_url=srv.database_url)
    assert missing.returncode == 1 and "no user" in missing.stderr
