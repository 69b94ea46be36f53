"""The HTTP API on two nodes (docs/protocol.md §11, §12): a bot's messages posted to either
node reach Socket.IO clients on both, once each and in one id order, and a retry of a
clientId on the other node answers the original without delivering it again."""

import subprocess
import sys

import pytest
import requests
from support import ROOT
from support.actions import join
from support.names import uid, uname, uroom

pytestmark = pytest.mark.scale


def test_bot_messages_reach_clients_on_both_nodes(cluster, client_factory):
    n1, n2 = cluster(2)
    name = uname("bot")
    added = subprocess.run([sys.executable, "-m", "chat_server", "bot", "add", name,
                            "--database-url", cluster.database_url],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    auth = {"Authorization": f"Bearer {added.stdout.strip()}"}

    def post(node, path, body):
        r = requests.post(node.url + path, json=body, headers=auth, timeout=30)
        assert r.status_code in (200, 201), r.text
        return r.json()

    clients = []
    for node, transport in ((n1, "websocket"), (n2, "polling")):
        client = client_factory()
        client.connect(node.url, auth={"name": uname("reader")}, transport=transport,
                       timeout=15)
        clients.append(client)
    room = uroom("bots")
    for client in clients:
        join(client, room)
    post(n2, "/api/v1/rooms/join", {"room": room})
    prefix = uid()
    ids = [post((n1, n2)[i % 2], "/api/v1/messages",
                {"to": room, "text": f"{prefix}-{i}", "clientId": f"{prefix}-{i}"})
           ["message"]["id"] for i in range(20)]
    again = post(n2, "/api/v1/messages", {"to": room, "text": f"{prefix}-0",
                                          "clientId": f"{prefix}-0"})
    assert again["message"]["id"] == ids[0]
    mine = lambda m: m["conversation"] == room and m["text"].startswith(prefix)  # noqa: E731
    for client in clients:
        got = client.wait_for_n("reply", 20, mine, timeout=15)
        assert [m["id"] for m in got] == sorted(ids)
        client.assert_no_event("reply", lambda m: mine(m) and m["id"] not in ids, wait=0.5)
        assert len(client.events("reply", mine)) == 20
    history = requests.get(n1.url + "/api/v1/messages", headers=auth, timeout=30,
                           params={"conversation": room, "limit": 100}).json()["messages"]
    assert [m["id"] for m in history] == sorted(ids)
