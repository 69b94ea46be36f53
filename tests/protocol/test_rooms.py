"""PROTOCOL.md rooms: joinRoom, leaveRoom, closeRoom, listRooms, private rooms, ownership."""

import pytest
from support.actions import join, send_to
from support.checks import assert_has, check_message, err, ok, room_entry
from support.names import uid, uname, uroom


def rooms_of(client):
    return ok(client.call("listRooms"))["rooms"]


def test_join_creates_room_with_joiner_as_owner(server, connect):
    """Joining a room that does not exist creates it, public, with the joiner as owner."""
    a = connect(server.url, auth={"name": uname("owner")})
    room = uroom("New")
    ack = join(a, room)
    assert_has(ack["room"], {"room": room, "owner": a.name, "private": False, "members": 1})
    assert ack["members"] == [a.name]
    assert ack["history"] == []


def test_join_existing_room_any_case_announces_joiner(server, connect):
    """Joining in another case joins the same room, shown as created; members see `joined`."""
    a = connect(server.url, auth={"name": uname("a")})
    b = connect(server.url, auth={"name": uname("b")})
    outsider = connect(server.url)
    room = uroom("MixedCase")
    join(a, room)
    ack = join(b, room.lower())
    assert_has(ack["room"], {"room": room, "owner": a.name, "private": False, "members": 2})
    assert sorted(ack["members"]) == sorted([a.name, b.name])
    ev = a.wait_for("roomEvent", lambda p: p.get("name") == b.name)
    assert_has(ev, {"room": room, "event": "joined", "name": b.name})
    outsider.assert_no_event("roomEvent")


def test_room_message_reaches_members_only(server, connect):
    """A room message is replied to the room's members (sender included) and no one else."""
    a = connect(server.url, auth={"name": uname("a")})
    b = connect(server.url, auth={"name": uname("b")})
    outsider = connect(server.url, auth={"name": uname("out")})
    room = uroom("Talk")
    join(a, room)
    join(b, room)
    text = "room text " + uid()
    msg = send_to(a, room.upper(), text)
    check_message(msg, kind="room", conversation=room, to=room, from_=a.name, fromSid=a.sid,
                  text=text)
    assert b.wait_for("reply", lambda m: m["id"] == msg["id"]) == msg
    assert a.wait_for("reply", lambda m: m["id"] == msg["id"]) == msg
    outsider.assert_no_event("reply", lambda m: m["id"] == msg["id"])
    assert ok(b.call("history", {"conversation": room}))["messages"] == [msg]


def test_membership_belongs_to_the_identity_across_tabs(server, connect):
    """A room joined from one tab is the user's: its other tabs get the room's messages."""
    t1 = connect(server.url, auth={"name": uname("tabs")})
    t2 = connect(server.url, auth={"token": t1.token})
    other = connect(server.url, auth={"name": uname("o")})
    room = uroom()
    join(other, room)
    join(t1, room)
    msg = send_to(other, room, "for all tabs " + uid())
    assert t2.wait_for("reply", lambda m: m["id"] == msg["id"]) == msg
    assert room_entry(rooms_of(t2), room) is not None
    t3 = connect(server.url, auth={"token": t1.token})
    assert room_entry(t3.welcome["rooms"], room)["members"] == 2


def test_join_returns_the_last_50_messages(server, connect):
    """The join ack carries the room's last 50 messages, oldest first."""
    a = connect(server.url, auth={"name": uname("a")})
    room = uroom("Hist")
    join(a, room)
    acks = a.call_many("sendMessage", [{"content": f"m{i}", "destId": room} for i in range(55)])
    sent = [ok(x)["message"] for x in acks]
    b = connect(server.url, auth={"name": uname("b")})
    ack = join(b, room)
    assert ack["history"] == sent[-50:]


def test_non_member_cannot_use_an_existing_room(server, connect):
    """Sending to, reading or typing in an existing room one is not in is `forbidden`."""
    owner = connect(server.url, auth={"name": uname("own")})
    stranger = connect(server.url, auth={"name": uname("str")})
    room = uroom()
    join(owner, room)
    err(stranger.call("sendMessage", {"content": "hi", "destId": room}), "forbidden")
    err(stranger.call("history", {"conversation": room}), "forbidden")
    err(stranger.call("typing", {"to": room, "typing": True}), "forbidden")
    err(stranger.call("leaveRoom", {"room": room}), "forbidden")
    owner.assert_no_event("reply", lambda m: m["conversation"] == room)
    owner.assert_no_event("typing", wait=0)


def test_unknown_room_is_not_found(server, connect):
    """Every room action on a room that does not exist (other than join) is `not_found`."""
    a = connect(server.url)
    room = uroom("ghost")
    err(a.call("sendMessage", {"content": "hi", "destId": room}), "not_found")
    err(a.call("history", {"conversation": room}), "not_found")
    err(a.call("typing", {"to": room, "typing": True}), "not_found")
    err(a.call("leaveRoom", {"room": room}), "not_found")
    err(a.call("closeRoom", {"room": room}), "not_found")
    assert room_entry(rooms_of(a), room) is None


def test_leave_room(server, connect):
    """After leaveRoom the others see `left`, and the leaver no longer gets or sends room
    messages."""
    a = connect(server.url, auth={"name": uname("a")})
    b = connect(server.url, auth={"name": uname("b")})
    outsider = connect(server.url)
    room = uroom()
    join(a, room)
    join(b, room)
    ok(b.call("leaveRoom", {"room": room}))
    ev = a.wait_for("roomEvent", lambda p: p.get("event") == "left")
    assert_has(ev, {"room": room, "event": "left", "name": b.name})
    outsider.assert_no_event("roomEvent", wait=0.1)
    msg = send_to(a, room, "after leave " + uid())
    b.assert_no_event("reply", lambda m: m["id"] == msg["id"])
    err(b.call("sendMessage", {"content": "x", "destId": room}), "forbidden")
    err(b.call("history", {"conversation": room}), "forbidden")
    err(b.call("leaveRoom", {"room": room}), "forbidden")
    assert room_entry(rooms_of(a), room)["members"] == 1


def test_owner_leaving_passes_ownership_to_longest_standing_member(server, connect):
    """An owner who leaves hands the room to the member who joined first after it."""
    a = connect(server.url, auth={"name": uname("owner")})
    # join order differs from name order, so that "alphabetically first" would fail
    b = connect(server.url, auth={"name": uname("zed")})
    c = connect(server.url, auth={"name": uname("amy")})
    d = connect(server.url, auth={"name": uname("mia")})
    room = uroom()
    join(a, room)
    join(b, room)
    join(c, room)
    join(d, room)
    ok(a.call("leaveRoom", {"room": room}))
    assert room_entry(rooms_of(c), room)["owner"] == b.name
    err(a.call("closeRoom", {"room": room}), "forbidden")
    err(c.call("closeRoom", {"room": room}), "forbidden")
    ok(b.call("leaveRoom", {"room": room}))
    info = room_entry(rooms_of(c), room)
    assert_has(info, {"room": room, "owner": c.name, "private": False, "members": 2})
    err(d.call("closeRoom", {"room": room}), "forbidden")
    ok(c.call("closeRoom", {"room": room}))


def test_room_left_empty_is_deleted_with_its_history(server, connect):
    """When the last member leaves, the room and its history are gone; a new join starts afresh."""
    a = connect(server.url, auth={"name": uname("a")})
    b = connect(server.url, auth={"name": uname("b")})
    room = uroom()
    join(a, room)
    send_to(a, room, "soon gone")
    ok(a.call("leaveRoom", {"room": room}))
    assert room_entry(rooms_of(b), room) is None
    err(b.call("history", {"conversation": room}), "not_found")
    ack = join(b, room)
    assert ack["room"]["owner"] == b.name and ack["room"]["members"] == 1
    assert ack["history"] == []
    assert ok(b.call("history", {"conversation": room}))["messages"] == []


def test_close_room_removes_everyone_and_deletes_history(server, connect):
    """closeRoom by the owner tells members `closed`, then the room and its history are gone."""
    owner = connect(server.url, auth={"name": uname("own")})
    m = connect(server.url, auth={"name": uname("mem")})
    outsider = connect(server.url)
    room = uroom("Closing")
    join(owner, room)
    join(m, room)
    send_to(m, room, "history to be deleted")
    ok(owner.call("closeRoom", {"room": room}))
    ev = m.wait_for("roomEvent", lambda p: p.get("event") == "closed")
    assert_has(ev, {"room": room, "event": "closed", "name": owner.name})
    outsider.assert_no_event("roomEvent", wait=0.1)
    assert room_entry(rooms_of(m), room) is None
    err(m.call("sendMessage", {"content": "x", "destId": room}), "not_found")
    err(m.call("history", {"conversation": room}), "not_found")
    back = connect(server.url, auth={"token": m.token})
    assert room_entry(back.welcome["rooms"], room) is None
    assert room not in [c["conversation"] for c in back.welcome["conversations"]]
    ack = join(owner, room)  # a new room of the same name: nobody else is in it
    assert ack["room"]["members"] == 1 and ack["members"] == [owner.name]
    assert ack["history"] == []
    fresh = send_to(owner, room, "new room " + uid())
    m.assert_no_event("reply", lambda x: x["id"] == fresh["id"])
    err(m.call("sendMessage", {"content": "x", "destId": room}), "forbidden")


def test_close_room_is_reserved_to_the_owner(server, connect):
    """closeRoom by a member who is not the owner, or by a non-member, is `forbidden`."""
    owner = connect(server.url, auth={"name": uname("own")})
    m = connect(server.url, auth={"name": uname("mem")})
    outsider = connect(server.url, auth={"name": uname("out")})
    room = uroom()
    join(owner, room)
    join(m, room)
    err(m.call("closeRoom", {"room": room}), "forbidden")
    err(outsider.call("closeRoom", {"room": room}), "forbidden")
    m.assert_no_event("roomEvent", lambda p: p.get("event") == "closed")
    assert room_entry(rooms_of(owner), room)["members"] == 2
    send_to(m, room, "still here")


def test_private_room_needs_its_password_and_is_hidden(server, connect):
    """A room created with a password is private: hidden from outsiders, joined only with it."""
    owner = connect(server.url, auth={"name": uname("own")})
    outsider = connect(server.url, auth={"name": uname("out")})
    room = uroom("Secret")
    ack = join(owner, room, password="open sesame")
    assert_has(ack["room"], {"room": room, "owner": owner.name, "private": True, "members": 1})
    assert room_entry(rooms_of(owner), room)["private"] is True
    assert room_entry(rooms_of(outsider), room) is None
    err(outsider.call("joinRoom", {"room": room}), "bad_password")
    err(outsider.call("joinRoom", {"room": room, "password": "wrong"}), "bad_password")
    err(outsider.call("history", {"conversation": room}), "forbidden")
    err(outsider.call("sendMessage", {"content": "x", "destId": room}), "forbidden")
    msg = send_to(owner, room, "members only " + uid())
    outsider.assert_no_event("reply", lambda m: m["id"] == msg["id"])
    outsider.assert_no_event("roomEvent", wait=0)
    ack = join(outsider, room, password="open sesame")
    assert ack["room"]["private"] is True and ack["room"]["members"] == 2
    assert ack["history"] == [msg]
    assert room_entry(rooms_of(outsider), room) is not None


def test_list_rooms_shows_public_room_info(server, connect):
    """listRooms lists public rooms with their ROOM_INFO, also to non-members."""
    a = connect(server.url, auth={"name": uname("a")})
    b = connect(server.url, auth={"name": uname("b")})
    room = uroom("Public")
    join(a, room)
    join(b, room)
    viewer = connect(server.url)
    assert_has(room_entry(rooms_of(viewer), room),
               {"room": room, "owner": a.name, "private": False, "members": 2})


VALID_ROOMS = [
    ("ascii", lambda u: "#Room_" + u),
    ("cyrillic", lambda u: "#комната-" + u),
    ("cjk", lambda u: "#部屋" + u),
    ("digits", lambda u: "#" + "".join(str(int(ch, 16) % 10) for ch in u)),
    ("max_length", lambda u: ("#x" + u + "y" * 40)[:33]),
]


@pytest.mark.parametrize("make", [m for _, m in VALID_ROOMS], ids=[i for i, _ in VALID_ROOMS])
def test_valid_room_names_are_accepted(server, connect, make):
    """`#` and 1-32 letters (any script), digits, `_` or `-` make a room name."""
    a = connect(server.url)
    room = make(uid(10))
    assert join(a, room)["room"]["room"] == room


INVALID_ROOMS = [
    ("no_hash", "room"),
    ("hash_only", "#"),
    ("too_long", "#" + "a" * 33),
    ("space", "#a b"),
    ("dot", "#a.b"),
    ("colon", "#a:b"),
    ("double_hash", "##ab"),
    ("trailing_newline", "#abc\n"),
    ("emoji", "#\U0001F600"),
    ("html", "#<b>"),
    ("number", 5),
    ("null", None),
    ("list", ["#abc"]),
]


@pytest.mark.parametrize("room", [r for _, r in INVALID_ROOMS], ids=[i for i, _ in INVALID_ROOMS])
def test_invalid_room_names_are_invalid_payload(server, connect, room):
    """A malformed room name is refused with `invalid_payload` and creates nothing."""
    a = connect(server.url)
    err(a.call("joinRoom", {"room": room}), "invalid_payload")
    if isinstance(room, str):
        assert room_entry(rooms_of(a), room) is None
