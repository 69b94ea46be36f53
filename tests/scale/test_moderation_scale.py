"""Moderation on two nodes (docs/protocol.md §10, §11): a ban given on node 1 takes the
banned user's tab on node 2 out of the room at once (no later message of the room reaches
it), and banUser on node 1 closes the user's tabs on both nodes with `banned {by}`."""

import time

import pytest
from support.actions import join, send_to
from support.checks import err, expect_refused, ok
from support.client import QUIET_WAIT
from support.names import uname, uroom

pytestmark = pytest.mark.scale

ADMIN, PASSWORD = "boss-scale", "admin password 2"


def test_bans_reach_the_other_node(cluster, client_factory):
    n1, n2 = cluster(2, env={"ADMINS": ADMIN})

    def on(node, transport="websocket", **auth):
        client = client_factory()
        client.connect(node.url, auth=auth, transport=transport, timeout=15)
        return client

    def on_url(url, auth):
        client = client_factory()
        client.connect(url, auth=auth, transport="websocket", timeout=15)
        return client

    boss = on(n1, name=ADMIN, password=PASSWORD)
    owner = on(n1, name=uname("own"))
    member = on(n1, name=uname("mem"))
    troll = on(n1, name=uname("troll"))
    far = on(n2, transport="polling", token=troll.token)  # the troll's tab on node 2
    room = uroom("scale")
    for c in (owner, member, troll):
        join(c, room)
    send_to(member, room, "before")
    far.wait_for("reply", lambda m: m["text"] == "before", timeout=10)

    mark = far.mark()
    ok(owner.call("ban", {"room": room, "name": troll.name, "on": True}))
    far.wait_for("roomEvent", lambda e: e.get("event") == "banned" and e["room"] == room,
                 since=mark, timeout=10)
    send_to(member, room, "after")  # at once: no grace for the far tab
    ok(member.call("typing", {"to": room, "typing": True}))
    time.sleep(QUIET_WAIT * 3)
    leaked = [(n, p) for n, p in far.all_events(mark)
              if n in ("reply", "typing") and room in repr(p)]
    assert not leaked, leaked
    err(far.call("history", {"conversation": room}), "forbidden", "not_found")
    err(far.call("sendMessage", {"destId": room, "content": "from afar"}),
        "forbidden", "not_found")
    err(far.call("joinRoom", {"room": room}), "forbidden")

    started = time.monotonic()
    ok(boss.call("banUser", {"name": troll.name, "on": True}))
    for tab in (troll, far):
        assert tab.wait_for("banned", timeout=10) == {"by": ADMIN}
        tab.wait_disconnected(timeout=10)
    closed_in = time.monotonic() - started
    assert closed_in < 6, f"tabs closed after {closed_in:.1f}s"
    for node in (n1, n2):
        expect_refused(lambda url, auth: on_url(url, auth), node.url,
                       {"token": troll.token}, "banned")
    ok(boss.call("banUser", {"name": troll.name, "on": False}))
    ok(on(n2, token=troll.token).call("listUsers"))
