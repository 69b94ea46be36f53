"""PROTOCOL.md `history`: paging with before/after/limit, order, and who may read what."""

import pytest
from support.actions import join, send, send_to
from support.checks import err, ok
from support.names import uname, uroom


@pytest.fixture
def room_with_60(server, connect):
    """A client in a fresh room holding 60 messages m0..m59; returns (client, room, messages)."""
    a = connect(server.url, auth={"name": uname("hist")})
    room = uroom("Page")
    join(a, room)
    acks = a.call_many("sendMessage", [{"content": f"m{i}", "destId": room} for i in range(60)])
    msgs = [ok(x)["message"] for x in acks]
    assert [m["text"] for m in msgs] == [f"m{i}" for i in range(60)]
    return a, room, msgs


def hist(client, **query):
    return ok(client.call("history", query))["messages"]


def test_default_is_newest_50_oldest_first(room_with_60):
    """Without paging arguments history returns the newest 50, oldest first."""
    a, room, msgs = room_with_60
    assert hist(a, conversation=room) == msgs[-50:]


def test_limit_takes_the_newest(room_with_60):
    """`limit` alone returns the newest `limit` messages, oldest first."""
    a, room, msgs = room_with_60
    assert hist(a, conversation=room, limit=7) == msgs[-7:]
    assert hist(a, conversation=room, limit=1) == msgs[-1:]
    assert hist(a, conversation=room, limit=100) == msgs


def test_before_pages_backwards(room_with_60):
    """`before` returns the newest messages below that id."""
    a, room, msgs = room_with_60
    assert hist(a, conversation=room, before=msgs[20]["id"], limit=5) == msgs[15:20]
    assert hist(a, conversation=room, before=msgs[3]["id"]) == msgs[:3]
    assert hist(a, conversation=room, before=msgs[0]["id"]) == []


def test_paging_backwards_visits_every_message_once(room_with_60):
    """Following `before` from the oldest returned id walks the whole history exactly once."""
    a, room, msgs = room_with_60
    seen = []
    page = hist(a, conversation=room, limit=25)
    while page:
        seen = page + seen
        page = hist(a, conversation=room, limit=25, before=page[0]["id"])
    assert seen == msgs


def test_after_pages_forwards(room_with_60):
    """`after` returns the oldest `limit` messages above that id."""
    a, room, msgs = room_with_60
    assert hist(a, conversation=room, after=msgs[4]["id"], limit=5) == msgs[5:10]
    assert hist(a, conversation=room, after=msgs[9]["id"]) == msgs[10:60]
    assert hist(a, conversation=room, after=msgs[-1]["id"]) == []
    assert hist(a, conversation=room, after=0, limit=3) == msgs[:3]


def test_after_and_before_bound_both_sides(room_with_60):
    """With both `after` and `before`, the oldest messages strictly between them."""
    a, room, msgs = room_with_60
    assert hist(a, conversation=room, after=msgs[4]["id"], before=msgs[8]["id"]) == msgs[5:8]
    assert hist(a, conversation=room, after=msgs[4]["id"], before=msgs[30]["id"],
                limit=3) == msgs[5:8]
    assert hist(a, conversation=room, after=msgs[4]["id"], before=msgs[5]["id"]) == []


@pytest.mark.parametrize("limit", [0, -1, 101, 10**6, "5", 2.5, True, [5]],
                         ids=["zero", "negative", "101", "huge", "string", "float", "bool",
                              "list"])
def test_out_of_range_limit_is_invalid(server, connect, limit):
    """`limit` must be an integer 1-100."""
    a = connect(server.url)
    err(a.call("history", {"conversation": "lobby", "limit": limit}), "invalid_payload")


@pytest.mark.parametrize("field", ["before", "after"])
@pytest.mark.parametrize("value", ["10", 1.5, True, [1], {"id": 1}],
                         ids=["string", "float", "bool", "list", "object"])
def test_non_integer_cursor_is_invalid(server, connect, field, value):
    """`before` and `after` must be integers."""
    a = connect(server.url)
    err(a.call("history", {"conversation": "lobby", field: value}), "invalid_payload")


def test_lobby_history_is_readable_by_anyone(server, connect):
    """Any client, guests included, reads the lobby's history."""
    a = connect(server.url)
    m = send(a, "for the record")
    g = connect(server.url)
    got = hist(g, conversation="lobby", after=m["id"] - 1)
    assert got[0] == m


def test_room_history_is_for_members_only(server, connect):
    """A room's history is refused to non-members and to a member who left."""
    a = connect(server.url, auth={"name": uname("a")})
    b = connect(server.url, auth={"name": uname("b")})
    room = uroom()
    join(a, room)
    join(b, room)
    m = send_to(a, room, "members only")
    assert hist(b, conversation=room) == [m]
    ok(b.call("leaveRoom", {"room": room}))
    err(b.call("history", {"conversation": room}), "forbidden")
    c = connect(server.url)
    err(c.call("history", {"conversation": room}), "forbidden")


def test_history_of_unknown_user_is_not_found(server, connect):
    """History with a user name that does not exist is `not_found`."""
    a = connect(server.url)
    err(a.call("history", {"conversation": uname("nobody")}), "not_found")


def test_history_returns_id_order_across_senders(server, connect):
    """History of a conversation with several senders is in increasing id order."""
    a = connect(server.url, auth={"name": uname("a")})
    b = connect(server.url, auth={"name": uname("b")})
    room = uroom()
    join(a, room)
    join(b, room)
    for i in range(5):
        a.emit("sendMessage", {"content": f"a{i}", "destId": room})
        b.emit("sendMessage", {"content": f"b{i}", "destId": room})
    a.wait_for_n("reply", 10, lambda m: m["conversation"] == room)
    got = hist(a, conversation=room)
    assert len(got) == 10
    assert [m["id"] for m in got] == sorted(m["id"] for m in got)
