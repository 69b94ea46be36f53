"""PROTOCOL.md `typing`: to a room's members or a DM peer, never the sender, never stored."""

import pytest
from support.actions import join
from support.checks import assert_has, err, ok
from support.names import uname, uroom


def test_typing_in_room_reaches_other_members_only(server, connect):
    """Typing in a room goes to its other members, not to the sender nor to outsiders."""
    a = connect(server.url, auth={"name": uname("a")})
    b = connect(server.url, auth={"name": uname("b")})
    outsider = connect(server.url, auth={"name": uname("o")})
    room = uroom("Typing")
    join(a, room)
    join(b, room)
    ok(a.call("typing", {"to": room, "typing": True}))
    assert_has(b.wait_for("typing"), {"from": a.name, "to": room, "typing": True})
    ok(a.call("typing", {"to": room.lower(), "typing": False}))
    assert_has(b.wait_for("typing", lambda p: p["typing"] is False),
               {"from": a.name, "to": room, "typing": False})
    a.assert_no_event("typing")
    outsider.assert_no_event("typing", wait=0)


def test_typing_to_user_reaches_the_peer_only(server, connect):
    """Typing to a user name goes to all of that user's tabs and to no one else."""
    a = connect(server.url, auth={"name": uname("a")})
    b1 = connect(server.url, auth={"name": uname("Bee")})
    b2 = connect(server.url, auth={"token": b1.token})
    c = connect(server.url, auth={"name": uname("c")})
    ok(a.call("typing", {"to": b1.name.lower(), "typing": True}))
    for tab in (b1, b2):
        assert_has(tab.wait_for("typing"), {"from": a.name, "to": b1.name, "typing": True})
    a.assert_no_event("typing")
    c.assert_no_event("typing", wait=0)


def test_typing_to_offline_user_is_ok_and_not_stored(server, connect):
    """Typing to an offline registered user is acked ok, delivered to no one, and not stored."""
    b = connect(server.url, auth={"name": uname("b")})
    b.disconnect()
    a = connect(server.url, auth={"name": uname("a")})
    ok(a.call("typing", {"to": b.name, "typing": True}))
    back = connect(server.url, auth={"token": b.token})
    back.assert_no_event("typing")
    assert ok(back.call("history", {"conversation": a.name}))["messages"] == []


def test_typing_to_unknown_targets(server, connect):
    """Typing to an unknown room or user is `not_found`; to a foreign room `forbidden`."""
    a = connect(server.url, auth={"name": uname("a")})
    owner = connect(server.url, auth={"name": uname("own")})
    room = uroom()
    join(owner, room)
    err(a.call("typing", {"to": uroom("none"), "typing": True}), "not_found")
    err(a.call("typing", {"to": uname("nobody"), "typing": True}), "not_found")
    err(a.call("typing", {"to": room, "typing": True}), "forbidden")
    owner.assert_no_event("typing")


@pytest.mark.parametrize("payload", [
    {"to": "#x"},
    {"typing": True},
    {"to": "#x", "typing": "yes"},
    {"to": "#x", "typing": 1},
    {"to": "#x", "typing": None},
    {"to": 5, "typing": True},
    {"to": "", "typing": True},
    "typing",
    None,
], ids=["no_typing", "no_to", "string_flag", "int_flag", "null_flag", "int_to", "empty_to",
        "string_payload", "null_payload"])
def test_malformed_typing_is_invalid(server, connect, payload):
    """A typing payload without a string `to` and a boolean `typing` is `invalid_payload`."""
    a = connect(server.url)
    err(a.call("typing", payload), "invalid_payload")
