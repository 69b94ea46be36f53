"""docs/protocol.md §10 (PROTOCOL.md §10), rule by rule, over both transports: room roles
and ROOM_INFO.moderators; kick, ban, mute and their `roomEvent`s (to the room and to every
tab of the user concerned; `owner` when ownership passes); a kicked or banned user cut
off at once on every tab (no message, typing, history or room event of the room, and
nothing it sends is stored); server admins (ADMINS, registered with a password):
banUser, deleting any message, closing any room; blocks; payload validation.

The whole who-may-do-what table is walked by test_authorization_table.py."""

import time

import pytest
from support.actions import join, send, send_to
from support.checks import err, expect_refused, ok, room_entry
from support.client import QUIET_WAIT
from support.names import dm_key, uname, uroom
from support.server import private_server

ADMIN, ADMIN2, NO_PASSWORD = "boss-mod", "boss2-mod", "nopw-mod"
PASSWORD = "admin password 1"  # a test password
WAIT = 10  # seconds for an event that must come (generous: CI machines are loaded)
TOKENS = {}  # name -> token, for names registered without a password by an earlier test

moderation_server = private_server({
    "ADMINS": f"{ADMIN},{ADMIN2},{NO_PASSWORD}", "RATE_LIMIT": "off", "EVENT_RATE": "off",
    "ROOM_RATE": "off", "EVENT_WINDOW": "1000"})


@pytest.fixture
def url(moderation_server):
    return moderation_server.url


def tabs(connect, url, name=None, n=2, password=None):
    """`n` connections of one registered user (the first registers the name)."""
    auth = {"name": name or uname()}
    if password:
        auth["password"] = password
    first = connect(url, auth=auth)
    return [first] + [connect(url, auth={"token": first.token}) for _ in range(n - 1)]


def admin(connect, url, name=ADMIN):
    return connect(url, auth={"name": name, "password": PASSWORD})


def mentions(room, payload):
    """Whether an event's payload concerns the room."""
    return room.lower() in repr(payload).lower()


def room_events(client, room, event, since=0):
    return client.events("roomEvent", lambda e: e.get("room") == room and
                         e.get("event") == event, since)


def expect_room_event(clients, room, event, since=0, **fields):
    """Each client gets `roomEvent {room, event, **fields}`; the first is returned."""
    found = []
    for c in clients:
        e = c.wait_for("roomEvent", lambda e: e.get("room") == room and
                       e.get("event") == event, since=since, timeout=WAIT)
        for key, value in fields.items():
            assert e.get(key) == value, f"{key}: expected {value!r} in {e!r}"
        found.append(e)
    return found[0]


def assert_cut_off(gone, room, member, newcomer):
    """`gone` (every tab of a user removed from `room`) gets nothing of the room any more
    and cannot read or write it; what it tries to send is not stored."""
    marks = [c.mark() for c in gone]
    text = f"after removal {uname()}"
    send_to(member, room, text)
    ok(member.call("typing", {"to": room, "typing": True}))
    join(newcomer, room)  # a roomEvent `joined`
    ok(newcomer.call("leaveRoom", {"room": room}))
    time.sleep(QUIET_WAIT)
    for c, mark in zip(gone, marks, strict=True):
        leaked = [(n, p) for n, p in c.all_events(mark)
                  if n in ("reply", "typing", "roomEvent", "update") and mentions(room, p)]
        assert not leaked, f"{c.name} still hears {room}: {leaked!r}"
    for c in gone:
        err(c.call("history", {"conversation": room}), "forbidden", "not_found")
        err(c.call("sendMessage", {"destId": room, "content": f"sneaky {c.sid}"}),
            "forbidden", "not_found")
        err(c.call("typing", {"to": room, "typing": True}), "forbidden", "not_found")
    stored = ok(member.call("history", {"conversation": room}))["messages"]
    assert not [m for m in stored if m["text"].startswith("sneaky")], stored
    assert any(m["text"] == text for m in stored)


# -- 10.1 room roles --------------------------------------------------------------------

def test_set_role_and_moderators(connect, url):
    owner = connect(url, auth={"name": uname("own")})
    b = tabs(connect, url, uname("b"))
    c = connect(url, auth={"name": uname("c")})
    room = uroom()
    for x in (owner, b[0], c):
        join(x, room)
    mark = [x.mark() for x in (owner, *b, c)]
    ok(owner.call("setRole", {"room": room, "name": b[0].name, "role": "moderator"}))
    for x, m in zip((owner, *b, c), mark, strict=True):
        expect_room_event([x], room, "role", since=m, name=b[0].name, by=owner.name,
                          role="moderator")
    info = room_entry(ok(c.call("listRooms"))["rooms"], room)
    assert info["moderators"] == [b[0].name] and info["owner"] == owner.name
    assert ok(c.call("joinRoom", {"room": room}))["room"]["moderators"] == [b[0].name]
    # Only the owner: a moderator or a member may not.
    err(b[0].call("setRole", {"room": room, "name": c.name, "role": "moderator"}), "forbidden")
    err(c.call("setRole", {"room": room, "name": b[0].name, "role": "member"}), "forbidden")
    marks = [x.mark() for x in (b[1], c)]
    ok(owner.call("setRole", {"room": room, "name": b[0].name, "role": "member"}))
    for x, m in zip((b[1], c), marks, strict=True):
        expect_room_event([x], room, "role", since=m, name=b[0].name, role="member")
    assert room_entry(ok(c.call("listRooms"))["rooms"], room)["moderators"] == []


# -- 10.2 kick, ban, mute; 10.3 their events -----------------------------------------------

def test_kick_cuts_off_every_tab_then_rejoin_is_allowed(connect, url):
    owner = connect(url, auth={"name": uname("own")})
    b = tabs(connect, url, uname("b"))
    c = connect(url, auth={"name": uname("c")})
    newcomer = connect(url, auth={"name": uname("n")})
    room = uroom()
    for x in (owner, b[0], c):
        join(x, room)
    marks = [x.mark() for x in (owner, c, *b)]
    ok(owner.call("kick", {"room": room, "name": b[0].name}))
    for x, m in zip((owner, c, *b), marks, strict=True):
        expect_room_event([x], room, "kicked", since=m, name=b[0].name, by=owner.name)
    assert b[0].name not in ok(c.call("joinRoom", {"room": room}))["members"]
    assert_cut_off(b, room, c, newcomer)
    # A kick is not a ban: it may come back.
    assert b[0].name in join(b[1], room)["members"]
    text = f"back {uname()}"
    send_to(c, room, text)
    for x in b:
        x.wait_for("reply", lambda m: m["text"] == text, timeout=WAIT)


def test_ban_keeps_out_until_unban(connect, url):
    owner = connect(url, auth={"name": uname("own")})
    b = tabs(connect, url, uname("b"))
    c = connect(url, auth={"name": uname("c")})
    newcomer = connect(url, auth={"name": uname("n")})
    room = uroom()
    for x in (owner, b[0], c):
        join(x, room)
    marks = [x.mark() for x in (owner, c, *b)]
    ok(owner.call("ban", {"room": room, "name": b[0].name, "on": True}))
    for x, m in zip((owner, c, *b), marks, strict=True):
        expect_room_event([x], room, "banned", since=m, name=b[0].name, by=owner.name)
    assert_cut_off(b, room, c, newcomer)
    for x in b:
        err(x.call("joinRoom", {"room": room}), "forbidden")
    marks = [x.mark() for x in (c, *b)]
    ok(owner.call("ban", {"room": room, "name": b[0].name, "on": False}))
    for x, m in zip((c, *b), marks, strict=True):  # the room, and the user's tabs
        expect_room_event([x], room, "unbanned", since=m, name=b[0].name, by=owner.name)
    join(b[0], room)
    # A ban may also keep out someone who never joined.
    ok(owner.call("ban", {"room": room, "name": newcomer.name, "on": True}))
    expect_room_event([newcomer], room, "banned", name=newcomer.name)
    err(newcomer.call("joinRoom", {"room": room}), "forbidden")


def test_ownership_passes_on_leave_and_on_kick(connect, url):
    owner = connect(url, auth={"name": uname("own")})
    b = tabs(connect, url, uname("b"))
    c = tabs(connect, url, uname("c"))
    boss = admin(connect, url)
    room = uroom()
    for x in (owner, b[0], c[0]):
        join(x, room)
    marks = [x.mark() for x in (*b, *c)]
    ok(owner.call("leaveRoom", {"room": room}))
    firsts = [expect_room_event([x], room, "owner", since=m, by=owner.name)
              for x, m in zip((*b, *c), marks, strict=True)]
    new_owner = firsts[0]["name"]
    assert {e["name"] for e in firsts} == {new_owner} and new_owner in (b[0].name, c[0].name)
    assert room_entry(ok(c[0].call("listRooms"))["rooms"], room)["owner"] == new_owner
    # An admin removes the new owner: ownership passes again, told to the room.
    ousted, heir = (b, c) if new_owner == b[0].name else (c, b)
    marks = [x.mark() for x in (*ousted, *heir)]
    ok(boss.call("kick", {"room": room, "name": new_owner}))
    for x, m in zip((*ousted, *heir), marks, strict=True):
        expect_room_event([x], room, "kicked", since=m, name=new_owner, by=ADMIN)
    for x, m in zip(heir, marks[len(ousted):], strict=True):
        expect_room_event([x], room, "owner", since=m, name=heir[0].name, by=ADMIN)


def test_mute_forbids_sending_and_typing_but_not_reading(connect, url):
    owner = connect(url, auth={"name": uname("own")})
    b = tabs(connect, url, uname("b"))
    c = connect(url, auth={"name": uname("c")})
    room = uroom()
    for x in (owner, b[0], c):
        join(x, room)
    marks = [x.mark() for x in (c, *b)]
    before = int(time.time() * 1000)
    ok(owner.call("mute", {"room": room, "name": b[0].name, "seconds": 600}))
    for x, m in zip((c, *b), marks, strict=True):
        e = expect_room_event([x], room, "muted", since=m, name=b[0].name, by=owner.name)
        assert before + 600_000 - 5000 <= e["until"] <= int(time.time() * 1000) + 600_000
    mark = c.mark()
    for x in b:
        err(x.call("sendMessage", {"destId": room, "content": "muted words"}), "forbidden")
        err(x.call("typing", {"to": room, "typing": True}), "forbidden")
    c.assert_no_event("reply", lambda m: m["text"] == "muted words", since=mark)
    c.assert_no_event("typing", since=mark)
    assert not [m for m in ok(c.call("history", {"conversation": room}))["messages"]
                if m["text"] == "muted words"]
    text = f"still read {uname()}"  # a muted member keeps reading
    send_to(c, room, text)
    for x in b:
        x.wait_for("reply", lambda m: m["text"] == text, timeout=WAIT)
    ok(b[0].call("history", {"conversation": room}))
    send(b[0], f"the lobby is not the room {uname()}")  # a mute is one room's
    # 0 lifts it, announced as `muted` with until null.
    mark = b[1].mark()
    ok(owner.call("mute", {"room": room, "name": b[0].name, "seconds": 0}))
    assert expect_room_event([b[1]], room, "muted", since=mark)["until"] is None
    send_to(b[1], room, "free again")
    ok(b[0].call("typing", {"to": room, "typing": True}))
    for seconds in (-1, 604_801, 1.5, "60", None, True):
        err(owner.call("mute", {"room": room, "name": b[0].name, "seconds": seconds}),
            "invalid_payload")
    ok(owner.call("mute", {"room": room, "name": b[0].name, "seconds": 604_800}))
    err(b[0].call("sendMessage", {"destId": room, "content": "x"}), "forbidden")


def test_moderators_act_on_members_only(connect, url):
    owner = connect(url, auth={"name": uname("own")})
    mod = connect(url, auth={"name": uname("mod")})
    mod2 = connect(url, auth={"name": uname("mod2")})
    member = connect(url, auth={"name": uname("mem")})
    room = uroom()
    for x in (owner, mod, mod2, member):
        join(x, room)
    for x in (mod, mod2):
        ok(owner.call("setRole", {"room": room, "name": x.name, "role": "moderator"}))
    for target in (owner, mod2):
        err(mod.call("kick", {"room": room, "name": target.name}), "forbidden")
        err(mod.call("ban", {"room": room, "name": target.name, "on": True}), "forbidden")
        err(mod.call("mute", {"room": room, "name": target.name, "seconds": 5}), "forbidden")
    err(member.call("kick", {"room": room, "name": mod.name}), "forbidden")
    err(mod.call("kick", {"room": room, "name": mod.name}), "forbidden")  # not oneself
    ok(mod.call("mute", {"room": room, "name": member.name, "seconds": 5}))
    ok(mod.call("kick", {"room": room, "name": member.name}))
    err(mod.call("kick", {"room": room, "name": member.name}), "not_found")  # not a member
    err(mod.call("kick", {"room": room, "name": uname("nobody")}), "not_found")
    err(mod.call("kick", {"room": uroom("none"), "name": owner.name}), "not_found")


# -- 10.4 server admins --------------------------------------------------------------------

def test_ban_user_closes_every_tab_and_refuses_connects(connect, url):
    boss = admin(connect, url)
    name = uname("troll")
    b = tabs(connect, url, name, n=3, password="troll password")
    token = b[0].token
    other = connect(url, auth={"name": uname("x")})
    err(other.call("banUser", {"name": name, "on": True}), "forbidden")  # admins only
    err(boss.call("banUser", {"name": ADMIN2, "on": True}), "forbidden", "not_found")
    err(boss.call("banUser", {"name": uname("nobody"), "on": True}), "not_found")
    ok(boss.call("banUser", {"name": name, "on": True}))
    for x in b:
        assert x.wait_for("banned", timeout=WAIT) == {"by": ADMIN}
        x.wait_disconnected(timeout=WAIT)
    expect_refused(connect, url, {"token": token}, "banned")
    expect_refused(connect, url, {"name": name, "password": "troll password"}, "banned")
    ok(other.call("listUsers"))  # others are untouched
    ok(boss.call("banUser", {"name": name, "on": False}))
    ok(connect(url, auth={"token": token}).call("listUsers"))


def test_admins_need_a_password(connect, url):
    # Listed in ADMINS, but registered without a password: an ordinary user.
    fake = connect(url, auth={"token": TOKENS[NO_PASSWORD]} if NO_PASSWORD in TOKENS
                   else {"name": NO_PASSWORD})
    TOKENS[NO_PASSWORD] = fake.token
    victim = connect(url, auth={"name": uname("v")})
    room = uroom()
    join(victim, room)
    message = send(victim, "mine")
    err(fake.call("banUser", {"name": victim.name, "on": True}), "forbidden")
    err(fake.call("closeRoom", {"room": room}), "forbidden")
    err(fake.call("deleteMessage", {"messageId": message["id"]}), "forbidden")
    join(fake, room)
    err(fake.call("kick", {"room": room, "name": victim.name}), "forbidden")
    ok(victim.call("listUsers"))


def test_admin_deletes_any_message_and_closes_any_room(connect, url):
    boss = admin(connect, url)
    b = connect(url, auth={"name": uname("b")})
    c = connect(url, auth={"name": uname("c")})
    room = uroom()
    join(b, room)
    join(c, room)
    in_lobby = send(b, "lobby words")
    in_room = send_to(b, room, "room words")  # the admin is not in the room
    in_dm = send_to(b, c.name, "private words")
    for message, readers in ((in_lobby, (b, c)), (in_room, (b, c)), (in_dm, (b, c))):
        marks = [x.mark() for x in readers]
        update = ok(boss.call("deleteMessage", {"messageId": message["id"]}))["update"]
        assert update["type"] == "delete" and update["by"] == ADMIN
        for x, m in zip(readers, marks, strict=True):
            x.wait_for("update", lambda u, i=message["id"]: u["messageId"] == i, since=m,
                       timeout=WAIT)
    history = ok(c.call("history", {"conversation": dm_key(b.name, c.name)}))["messages"]
    assert [m["deleted"] for m in history if m["id"] == in_dm["id"]] == [True]
    # Another admin's message is not its to delete.
    boss2 = admin(connect, url, ADMIN2)
    err(boss.call("deleteMessage", {"messageId": send(boss2, "admin words")["id"]}),
        "forbidden")
    marks = [x.mark() for x in (b, c)]
    ok(boss.call("closeRoom", {"room": room}))
    for x, m in zip((b, c), marks, strict=True):
        x.wait_for("roomEvent", lambda e: e.get("event") == "closed", since=m, timeout=WAIT)
    assert room_entry(ok(b.call("listRooms"))["rooms"], room) is None


# -- 10.5 blocks ----------------------------------------------------------------------------

def test_block_refuses_dms_and_typing(connect, url):
    a = tabs(connect, url, uname("a"))
    b = tabs(connect, url, uname("b"))
    ack = ok(a[0].call("block", {"name": b[0].name, "on": True}))
    assert ack["blocked"] == [b[0].name]
    marks = [x.mark() for x in (*a, *b)]
    err(b[0].call("sendMessage", {"destId": a[0].name, "content": "let me in"}), "forbidden")
    err(b[0].call("typing", {"to": a[0].name, "typing": True}), "forbidden")
    time.sleep(QUIET_WAIT)
    for x, m in zip((*a, *b), marks, strict=True):  # delivered to nobody
        assert not x.events("reply", lambda p: p["text"] == "let me in", since=m)
        assert not x.events("typing", since=m)
    assert not [m for m in ok(a[0].call("history", {
        "conversation": dm_key(a[0].name, b[0].name)}))["messages"]]
    send_to(a[0], b[0].name, "I may still write")  # the blocker is not blocked
    send(b[0], "the lobby is open to all")
    assert connect(url, auth={"token": a[0].token}).welcome["blocked"] == [b[0].name]
    err(a[0].call("block", {"name": a[0].name, "on": True}), "forbidden")
    err(a[0].call("block", {"name": uname("nobody"), "on": True}), "not_found")
    assert ok(a[0].call("block", {"name": b[0].name, "on": False}))["blocked"] == []
    send_to(b[0], a[0].name, "friends again")
    for x in a:
        x.wait_for("reply", lambda p: p["text"] == "friends again", timeout=WAIT)
    assert connect(url, auth={"token": a[0].token}).welcome["blocked"] == []


# -- payloads --------------------------------------------------------------------------------

BAD = {
    "setRole": [None, [], "x", {"name": "bob", "role": "moderator"},
                {"room": "#r", "name": "bob"}, {"room": "#r", "name": "bob", "role": "owner"},
                {"room": "#r", "name": 5, "role": "member"},
                {"room": 5, "name": "bob", "role": "member"}],
    "kick": [None, [], {"room": "#r"}, {"name": "bob"}, {"room": "#r", "name": ""},
             {"room": "no hash", "name": "bob"}],
    "ban": [{"room": "#r", "name": "bob"}, {"room": "#r", "name": "bob", "on": "yes"},
            {"room": "#r", "name": "bob", "on": 1}],
    "mute": [{"room": "#r", "name": "bob"}, {"room": "#r", "name": "bob", "seconds": -5},
             {"room": "#r", "name": "bob", "seconds": 10**20}],
    "banUser": [None, {"name": "bob"}, {"on": True}, {"name": 3, "on": True},
                {"name": "bob", "on": None}],
    "block": [None, "bob", {"name": "bob"}, {"name": ["bob"], "on": True},
              {"name": "x" * 65, "on": True}],
}


def test_bad_payloads_are_invalid(connect, url):
    client = admin(connect, url)
    for event, payloads in BAD.items():
        for payload in payloads:
            ack = client.call(event, payload)
            assert ack.get("ok") is False and ack["error"]["code"] == "invalid_payload", \
                f"{event} {payload!r}: {ack!r}"
    ok(client.call("listUsers"))
