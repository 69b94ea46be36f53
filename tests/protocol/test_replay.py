"""PROTOCOL.md section 1 "Replay", and welcome.rooms / welcome.conversations after a resume."""

import threading
import time

from support.actions import join, send, send_to
from support.checks import assert_has, ok, room_entry
from support.names import dm_key, uid, uname, uroom


def replies_after_welcome(client):
    """The `reply` payloads recorded after `welcome`, asserting none came before it."""
    names = [n for n, _ in client.all_events()]
    assert "welcome" in names
    first_welcome = names.index("welcome")
    assert "reply" not in names[:first_welcome], "replay must come after welcome"
    return [p for n, p in client.all_events(first_welcome) if n == "reply"]


def test_replay_delivers_everything_missed_in_id_order(server, connect):
    """With lastId, every newer message of the identity's conversations is replayed in order."""
    alice = connect(server.url, auth={"name": uname("alice")})
    bob = connect(server.url, auth={"name": uname("bob")})
    carol = connect(server.url, auth={"name": uname("carol")})
    room, other_room = uroom("shared"), uroom("foreign")
    join(alice, room)
    join(bob, room)
    join(carol, other_room)
    seen = send(alice, "before " + uid())
    token = alice.token
    alice.disconnect()

    m_lobby = send(bob, "lobby " + uid())
    m_room = send_to(bob, room, "room " + uid())
    m_dm = send_to(bob, alice.name, "dm " + uid())
    m_foreign = send_to(carol, other_room, "foreign " + uid())
    m_other_dm = send_to(bob, carol.name, "other dm " + uid())

    back = connect(server.url, auth={"token": token, "lastId": seen["id"]})
    assert back.welcome.get("replayTruncated") is False
    back.wait_for("reply", lambda m: m["id"] == m_dm["id"])
    replayed = replies_after_welcome(back)
    ids = [m["id"] for m in replayed]
    assert ids == sorted(ids) and len(set(ids)) == len(ids), f"not in id order: {ids}"
    assert all(i > seen["id"] for i in ids)
    by_id = {m["id"]: m for m in replayed}
    for expected in (m_lobby, m_room, m_dm):
        assert by_id.get(expected["id"]) == expected, f"missing/changed in replay: {expected}"
    assert m_foreign["id"] not in by_id, "replayed a room the user is not in"
    assert m_other_dm["id"] not in by_id, "replayed somebody else's DM"
    mine = {"lobby", room, dm_key(alice.name, bob.name)}
    for m in replayed:
        assert m["conversation"] in mine, f"replayed a conversation alice is not in: {m}"


def test_resume_restores_rooms_and_conversations_with_last_ids(server, connect):
    """A resumed identity's welcome lists its rooms and every conversation with its newest id."""
    alice = connect(server.url, auth={"name": uname("alice")})
    bob = connect(server.url, auth={"name": uname("bob")})
    room, quiet_room = uroom("busy"), uroom("quiet")
    join(alice, room)
    join(alice, quiet_room)
    join(bob, room)
    alice.disconnect()
    m_room = send_to(bob, room, "r " + uid())
    m_dm = send_to(bob, alice.name, "d " + uid())
    m_lobby = send(bob, "l " + uid())

    back = connect(server.url, auth={"token": alice.token})
    rooms = back.welcome["rooms"]
    assert_has(room_entry(rooms, room), {"room": room, "owner": alice.name, "private": False,
                                         "members": 2})
    assert room_entry(rooms, quiet_room) is not None
    convs = {c["conversation"]: c["lastId"] for c in back.welcome["conversations"]}
    assert convs.get(room) == m_room["id"]
    assert convs.get(dm_key(alice.name, bob.name)) == m_dm["id"]
    assert quiet_room in convs and convs[quiet_room] is None
    assert convs["lobby"] >= m_lobby["id"]
    assert "replayTruncated" not in back.welcome or back.welcome["replayTruncated"] is False


def test_replay_with_nothing_missed_is_empty(server, connect):
    """lastId at the newest message replays nothing and says replayTruncated false."""
    a = connect(server.url, auth={"name": uname("n")})
    newest = send(a, "newest " + uid())
    a.disconnect()
    b = connect(server.url, auth={"token": a.token, "lastId": newest["id"]})
    assert b.welcome.get("replayTruncated") is False
    b.assert_no_event("reply", lambda m: m["id"] <= newest["id"])
    assert all(m["id"] > newest["id"] for m in b.events("reply"))


def test_guest_with_last_id_gets_lobby_replay(server, connect):
    """A guest connecting with lastId gets the lobby messages newer than it."""
    poster = connect(server.url)
    m1 = send(poster, "one " + uid())
    m2 = send(poster, "two " + uid())
    g = connect(server.url, auth={"lastId": m1["id"] - 1})
    assert g.welcome.get("replayTruncated") is False
    got = g.wait_for_n("reply", 2, lambda m: m["id"] in (m1["id"], m2["id"]))
    assert got == [m1, m2]


def test_replay_is_capped_at_the_1000_oldest(server_factory, connect, client_factory):
    """Replay sends at most the 1000 oldest missed messages; replayTruncated says if more remain."""
    # 1,000 sends from one user, 250 at a time: no budget of sends or events in the way.
    srv = server_factory(env={"RATE_LIMIT": "off", "EVENT_RATE": "off", "EVENT_WINDOW": "250"})
    reader = connect(srv.url, auth={"name": uname("reader")})
    token = reader.token
    reader.disconnect()
    sender = client_factory()
    sender.connect(srv.url, transport="websocket")
    sent = []
    for start in range(0, 1000, 250):
        acks = sender.call_many("message", [f"m{i}" for i in range(start, start + 250)])
        sent.extend(ok(a)["message"] for a in acks)
    assert len(sent) == 1000

    exact = connect(srv.url, auth={"token": token, "lastId": 0})
    assert exact.welcome.get("replayTruncated") is False, "exactly 1000 missed: nothing remains"
    got = exact.wait_for_n("reply", 1000, timeout=15)
    assert [m["id"] for m in got] == [m["id"] for m in sent]
    exact.disconnect()

    extra = send(sender, "m1000")
    more = connect(srv.url, auth={"token": token, "lastId": 0})
    assert more.welcome.get("replayTruncated") is True
    got = more.wait_for_n("reply", 1000, timeout=15)
    assert [m["id"] for m in got] == [m["id"] for m in sent], "must be the 1000 oldest"
    more.assert_no_event("reply", lambda m: m["id"] == extra["id"], wait=0.3)
    rest = ok(more.call("history", {"conversation": "lobby", "after": got[-1]["id"]}))
    assert rest["messages"] == [extra]


def test_connecting_while_messages_flow_gets_each_once_in_order(server, connect):
    """docs/protocol.md §1.9: a client that connects with lastId while a room is busy gets
    every message after lastId exactly once, replayed or live, in id order."""
    room = uroom("busy")
    sender = connect(server.url, auth={"name": uname("busy")})
    reader = connect(server.url, auth={"name": uname("reader")})
    join(sender, room)
    join(reader, room)
    start = send_to(sender, room, "start")["id"]
    token = reader.token
    reader.disconnect()
    texts = [f"flow {i} {uid()}" for i in range(120)]
    acks = []
    done = threading.Event()

    def pipeline():
        acks.extend(sender.call_many("sendMessage", [{"content": t, "destId": room}
                                                     for t in texts]))
        done.set()

    threading.Thread(target=pipeline, daemon=True).start()
    time.sleep(0.02)
    back = connect(server.url, auth={"token": token, "lastId": start})
    assert done.wait(20)
    ids = sorted(ok(a)["message"]["id"] for a in acks)
    back.wait_for("reply", lambda m: m["id"] == ids[-1], timeout=10)
    got = [m["id"] for m in replies_after_welcome(back) if m["conversation"] == room]
    assert got == ids, (got[:10], ids[:10])
