"""PROTOCOL.md section 4: an acked message survives SIGKILL; ids keep increasing after restart."""

from functools import partial

from support.actions import join, send, send_to
from support.checks import expect_refused, ok, room_entry
from support.names import dm_key, uid, uname, uroom


def test_acked_messages_survive_sigkill(server_factory, connect):
    """Messages acked ok right before a SIGKILL are in history and replay after a restart."""
    srv = server_factory(env={"RATE_LIMIT": "off"})
    alice = connect(srv.url, auth={"name": uname("alice")})
    bob = connect(srv.url, auth={"name": uname("bob"), "password": "bob-pass"})
    room = uroom("Durable")
    join(alice, room)
    join(bob, room)
    before = send(alice, "before " + uid())
    m_lobby = send(bob, "lobby " + uid())
    m_room = send_to(bob, room, "room " + uid())
    m_dm = send_to(bob, alice.name, "dm " + uid())
    srv.kill()  # immediately after the last ack: no shutdown code runs
    srv.start()

    back = connect(srv.url, auth={"token": alice.token, "lastId": before["id"]})
    assert back.name == alice.name, "the registered identity did not survive"
    assert back.welcome.get("replayTruncated") is False
    replayed = back.wait_for_n("reply", 3)
    assert replayed == [m_lobby, m_room, m_dm]
    assert room_entry(back.welcome["rooms"], room)["members"] == 2
    convs = {c["conversation"]: c["lastId"] for c in back.welcome["conversations"]}
    assert convs["lobby"] == m_lobby["id"]
    assert convs[room] == m_room["id"]
    assert convs[dm_key(alice.name, bob.name)] == m_dm["id"]
    assert ok(back.call("history", {"conversation": "lobby"}))["messages"] == [before, m_lobby]
    assert ok(back.call("history", {"conversation": room}))["messages"] == [m_room]
    assert ok(back.call("history", {"conversation": bob.name}))["messages"] == [m_dm]

    newer = send(back, "after restart " + uid())
    assert newer["id"] > m_dm["id"]
    expect_refused(connect, srv.url, {"name": bob.name}, "name_taken", "bad_password")
    assert connect(srv.url, auth={"name": bob.name, "password": "bob-pass"}).name == bob.name


def connect_ws(client_factory, url, auth=None):
    """A websocket client: the storage tests below do not depend on the transport."""
    c = client_factory()
    c.connect(url, auth=auth, transport="websocket")
    return c


def test_ids_are_never_reused_after_deletion_and_restart(server_factory, client_factory):
    """Ids stay larger than every id ever given, even when the newest messages were deleted."""
    srv = server_factory(env={"RATE_LIMIT": "off"})
    connect = partial(connect_ws, client_factory)
    a = connect(srv.url, auth={"name": uname("a")})
    send(a, "lobby " + uid())
    room = uroom("Gone")
    join(a, room)
    last = None
    for i in range(5):
        last = send_to(a, room, f"to be deleted {i}")
    ok(a.call("closeRoom", {"room": room}))
    srv.kill()
    srv.start()
    b = connect(srv.url, auth={"token": a.token})
    fresh = send(b, "fresh " + uid())
    assert fresh["id"] > last["id"], f"id {fresh['id']} reused (had given {last['id']})"


def test_graceful_restart_keeps_everything(server_factory, client_factory):
    """A normal stop and start (SIGTERM) keeps users, rooms and messages."""
    srv = server_factory(env={"RATE_LIMIT": "off"})
    connect = partial(connect_ws, client_factory)
    a = connect(srv.url, auth={"name": uname("a")})
    room = uroom("Kept")
    join(a, room)
    m = send_to(a, room, "kept " + uid())
    srv.stop()
    srv.start()
    b = connect(srv.url, auth={"token": a.token})
    assert b.name == a.name
    assert ok(b.call("history", {"conversation": room}))["messages"] == [m]
