"""Who may do what: every way to read or write where one does not belong (issue 5).

The basic refusals have their own tests (protocol/test_dm.py: a third user's history by
name and one `dm:` key; protocol/test_rooms.py: a non-member's send/history/typing/leave,
a left room's send/history/leave, a closed room's send/history, closeRoom by a non-owner,
a private room's join without or with a wrong password; protocol/test_connect.py: a
registered name without token or password, a gone guest's token; protocol/test_messages.py:
forged fields in `message`; test_operations.py: no secrets in logs). This module tries the
other doors: more `dm:` spellings, sids, typing, the other tabs of a user who left, rooms
re-created after closing, case variants, forged fields in every event, secrets in anything
the server sends, and how tokens and passwords are stored.
"""

import json
import re
import sqlite3
import time

import pytest
from support.actions import join, send, send_to
from support.checks import check_message, err, ok, room_entry, user_entry
from support.client import ConnectRefused
from support.names import dm_key, uid, uname, uroom

REFUSALS = {"invalid_payload", "not_found", "forbidden", "bad_password"}


@pytest.fixture
def conn(client_factory, server):
    """conn(auth=None, transport="websocket", url=server.url) -> a connected ChatClient."""

    def make(auth=None, transport="websocket", url=None):
        c = client_factory()
        c.connect(url or server.url, auth=auth, transport=transport)
        return c

    return make


def refused(connect_fn, auth):
    """Connecting with `auth` is refused; return the refusal."""
    with pytest.raises(ConnectRefused) as info:
        connect_fn(auth)
    return info.value


def quiet(client, since, wait=0.3, allowed=("addChat", "userLeft")):
    """Nothing but `allowed` event names reached `client` since the mark `since`."""
    time.sleep(wait)
    got = [(n, p) for n, p in client.all_events(since) if n not in allowed]
    assert not got, f"{client.name} received {got!r}"


# -- direct messages -----------------------------------------------------------------

def dm_guesses(a, b, eve):
    """Every spelling of alice and bob's conversation a third user might try."""
    x, y = sorted([a.lower(), b.lower()])
    key = f"dm:{x}:{y}"
    return [
        key, key.upper(), f"dm:{y}:{x}", f"DM:{x}:{y}", f"dm:{x.upper()}:{y}",
        f"dm:{x}:{y}:{eve.lower()}", f"dm:{eve.lower()}:{x}:{y}", f"dm:{x}:{y}:",
        f"dm::{x}:{y}", f"dm:{x}:{y} ", f" {key}", f"dm:{x}:{y}\x00", f"dm:{x}", f"dm:{y}",
        f"dm:{x}:{x}", f"dm:{y}:{y}", f"dm:{x}:*", "dm:%:%", "dm:*:*", f"dm:{x}:{y}%",
        f"dm:{x}\u200b:{y}", f"dm:{x}:{y}\u202e", f"{x}:{y}", f"{x},{y}", f"{x} {y}",
        f"{x}:{y}:dm", "dm", "dm:", "dm::",
    ]


def test_a_third_user_cannot_read_a_dm_any_way(conn):
    """Eve tries history with every spelling of alice and bob's `dm:` key, their sids and
    names, welcome and replay from id 0: never a message of their conversation."""
    alice = conn({"name": uname("alice")})
    bob = conn({"name": uname("bob")})
    bob2 = conn({"token": bob.token}, transport="polling")
    secret = [send_to(alice, bob.sid, "by sid " + uid()),
              send_to(bob2, alice.name, "by name " + uid()),
              send_to(alice, bob.name.upper(), "by upper name " + uid())]
    ids = {m["id"] for m in secret}
    eve = conn({"name": uname("eve")})
    for conversation in [*dm_guesses(alice.name, bob.name, eve.name), alice.sid, bob.sid,
                         bob2.sid, alice.token[:20]]:
        for query in ({"conversation": conversation},
                      {"conversation": conversation, "after": 0, "limit": 100}):
            ack = eve.call("history", query)
            if not ack["ok"]:
                err(ack, *REFUSALS)
                continue
            leaked = [m for m in ack["messages"] if m["id"] in ids or
                      eve.name.lower() not in m["conversation"].split(":")[1:]]
            assert not leaked, f"history {conversation!r} gave eve {leaked!r}"
    # By the peers' names eve reads her own (empty) conversations with them.
    assert ok(eve.call("history", {"conversation": alice.name}))["messages"] == []
    assert ok(eve.call("history", {"conversation": bob.name}))["messages"] == []
    # Neither welcome nor replay from the beginning of time shows their conversation.
    eve2 = conn({"token": eve.token, "lastId": 0})
    convs = [c["conversation"] for c in eve2.welcome["conversations"]]
    assert dm_key(alice.name, bob.name) not in convs, convs
    ok(eve2.call("listUsers"))  # the replay, if any, came before this ack
    assert not [m for m in eve2.events("reply") if m["id"] in ids]


def test_dm_keys_and_sids_are_no_way_to_write_or_type_into_a_dm(conn):
    """sendMessage and typing aimed at a `dm:` key reach no one; typing goes by name only,
    and whatever eve sends is from eve, to eve's own conversation."""
    alice = conn({"name": uname("alice")})
    bob = conn({"name": uname("bob")})
    eve = conn({"name": uname("eve")})
    marks = alice.mark(), bob.mark()
    key = dm_key(alice.name, bob.name)
    for dest in (key, key.upper(), f"dm:{alice.name}:{bob.name}"):
        err(eve.call("sendMessage", {"content": "into their dm", "destId": dest}), *REFUSALS)
        err(eve.call("typing", {"to": dest, "typing": True}), *REFUSALS)
    # A sid is not a `typing` target (names only); if a server took it, it is eve's typing.
    ack = eve.call("typing", {"to": bob.sid, "typing": True})
    if ack["ok"]:
        got = bob.wait_for("typing", since=marks[1])
        assert got["from"] == eve.name
    else:
        err(ack, *REFUSALS)
    quiet(alice, marks[0])
    assert not [p for p in bob.events("typing", since=marks[1]) if p["from"] != eve.name]
    assert not bob.events("reply", since=marks[1])
    # Eve's DM to bob's sid lands in eve and bob's conversation, never alice and bob's.
    msg = send_to(eve, bob.sid, "hello bob " + uid())
    assert msg["conversation"] == dm_key(eve.name, bob.name)
    history = ok(bob.call("history", {"conversation": alice.name}))["messages"]
    assert msg["id"] not in [m["id"] for m in history]


def test_a_name_that_spells_a_sid_does_not_capture_that_sids_dms(conn):
    """Mallory cannot register bob's sid as her name (`invalid_name`, docs/protocol.md
    §1.3), nor its case-folded spelling; DMs to that sid go to bob."""
    alice = conn({"name": uname("alice")})
    bob = conn({"name": uname("bob")})
    for name in (bob.sid, bob.sid.swapcase()):
        assert refused(conn, {"name": name}).code == "invalid_name"
    msg = send_to(alice, bob.sid, "for bob only " + uid())
    assert msg["to"] == bob.name and msg["conversation"] == dm_key(alice.name, bob.name)
    bob.wait_for("reply", lambda m: m["id"] == msg["id"])


# -- rooms left, closed, re-created ------------------------------------------------------

def test_a_left_room_is_closed_to_every_tab_of_the_leaver(conn):
    """Leaving from one tab: no tab (nor a tab opened later) gets the room's messages,
    typing or events, and every room action from any tab is refused."""
    owner = conn({"name": uname("own")})
    leaver = conn({"name": uname("leaver")})
    tab2 = conn({"token": leaver.token}, transport="polling")
    room = uroom("Left")
    join(owner, room)
    join(leaver, room)
    seen = send_to(owner, room, "before leaving " + uid())
    tab2.wait_for("reply", lambda m: m["id"] == seen["id"])
    ok(leaver.call("leaveRoom", {"room": room}))
    for tab in (leaver, tab2):  # each tab hears of the leave itself, then nothing more
        tab.wait_for("roomEvent", lambda p: p == {"room": room, "event": "left",
                                                 "name": leaver.name})
    marks = {c: c.mark() for c in (leaver, tab2)}
    msg = send_to(owner, room, "after leaving " + uid())
    ok(owner.call("typing", {"to": room, "typing": True}))
    other = conn({"name": uname("joiner")})
    join(other, room)
    owner.wait_for("roomEvent", lambda p: p.get("name") == other.name)
    for tab in (leaver, tab2):
        for spelling in (room, room.upper(), room.lower()):
            err(tab.call("sendMessage", {"content": "x", "destId": spelling}), "forbidden")
            err(tab.call("history", {"conversation": spelling}), "forbidden")
            err(tab.call("typing", {"to": spelling, "typing": True}), "forbidden")
            err(tab.call("leaveRoom", {"room": spelling}), "forbidden")
            err(tab.call("closeRoom", {"room": spelling}), "forbidden")
        quiet(tab, marks[tab], wait=0.1)
    tab3 = conn({"token": leaver.token, "lastId": seen["id"]})
    assert room_entry(tab3.welcome["rooms"], room) is None
    assert room not in [c["conversation"] for c in tab3.welcome["conversations"]]
    ok(tab3.call("listUsers"))
    assert msg["id"] not in [m["id"] for m in tab3.events("reply")], "replayed a left room"
    later = send_to(owner, room, "later " + uid())
    owner.wait_for("reply", lambda m: m["id"] == later["id"])
    for tab in (leaver, tab2, tab3):
        tab.assert_no_event("reply", lambda m: m["id"] == later["id"], wait=0.1)
    assert room_entry(ok(owner.call("listRooms"))["rooms"], room)["members"] == 2


def test_a_closed_room_and_its_successor_stay_closed_to_former_members(conn):
    """After closeRoom every former member's tabs get `not_found`; when someone else
    creates a room of the same name, former members (owner included) neither receive
    its messages nor may act in it."""
    owner = conn({"name": uname("own")})
    member = conn({"name": uname("mem")})
    member_tab2 = conn({"token": member.token}, transport="polling")
    room = uroom("Phoenix")
    join(owner, room)
    join(member, room)
    old = send_to(member, room, "old history " + uid())
    ok(owner.call("closeRoom", {"room": room}))
    for tab in (owner, member, member_tab2):
        tab.wait_for("roomEvent", lambda p: p.get("event") == "closed")
    for tab in (owner, member, member_tab2):
        err(tab.call("sendMessage", {"content": "x", "destId": room}), "not_found")
        err(tab.call("history", {"conversation": room}), "not_found")
        err(tab.call("typing", {"to": room, "typing": True}), "not_found")
        err(tab.call("leaveRoom", {"room": room}), "not_found")
        err(tab.call("closeRoom", {"room": room}), "not_found")

    successor = conn({"name": uname("succ")})
    ack = join(successor, room.lower(), password="pw-" + uid())
    assert ack["history"] == [] and ack["room"]["owner"] == successor.name
    marks = {c: c.mark() for c in (owner, member, member_tab2)}
    fresh = send_to(successor, room, "new room " + uid())
    ok(successor.call("typing", {"to": room, "typing": True}))
    for tab in (owner, member, member_tab2):
        err(tab.call("sendMessage", {"content": "x", "destId": room}), "forbidden")
        err(tab.call("history", {"conversation": room}), "forbidden")
        err(tab.call("typing", {"to": room, "typing": True}), "forbidden")
        err(tab.call("closeRoom", {"room": room}), "forbidden")
        err(tab.call("joinRoom", {"room": room}), "bad_password")
        quiet(tab, marks[tab], wait=0.1)
    assert old["id"] not in [m["id"] for m in
                             ok(successor.call("history", {"conversation": room}))["messages"]]
    assert ok(successor.call("history", {"conversation": room}))["messages"] == [fresh]


def test_a_private_room_stays_locked_without_its_password(conn):
    """Outsiders cannot get into a private room by case variants of its name or password,
    by typing, leaving or closing it; a refused join carries nothing of the room; a member
    who left needs the password again, even its creator."""
    password = "Open-Sesame-" + uid()
    owner = conn({"name": uname("own")})
    insider = conn({"name": uname("ins")})
    outsider = conn({"name": uname("out")})
    room = uroom("Vault")
    join(owner, room, password=password)
    join(insider, room, password=password)
    owner.wait_for("roomEvent", lambda p: p.get("name") == insider.name)
    marks = owner.mark(), insider.mark()
    for name in (room, room.upper(), room.lower()):
        for pw in (None, "", password.upper(), password.lower(), password + " ", " " + password,
                   password[:-1], password + "\x00", 12345, [password], {"password": password}):
            payload = {"room": name} if pw is None else {"room": name, "password": pw}
            ack = outsider.call("joinRoom", payload)
            code = err(ack, "bad_password", "invalid_payload")
            assert set(ack) == {"ok", "error"}, f"a refused join leaked more: {ack!r}"
            if isinstance(pw, str) and pw:
                assert pw.strip() not in ack["error"]["message"]
            assert code == "bad_password" or not isinstance(pw, str) or pw == ""
        err(outsider.call("typing", {"to": name, "typing": True}), "forbidden")
        err(outsider.call("leaveRoom", {"room": name}), "forbidden")
        err(outsider.call("closeRoom", {"room": name}), "forbidden")
        err(outsider.call("sendMessage", {"content": "x", "destId": name}), "forbidden")
        err(outsider.call("history", {"conversation": name, "after": 0}), "forbidden")
    quiet(owner, marks[0], wait=0.1)
    quiet(insider, marks[1], wait=0)
    assert room_entry(ok(outsider.call("listRooms"))["rooms"], room) is None

    ok(insider.call("leaveRoom", {"room": room}))
    err(insider.call("joinRoom", {"room": room}), "bad_password")
    err(insider.call("joinRoom", {"room": room, "password": "wrong"}), "bad_password")
    ok(owner.call("leaveRoom", {"room": room}))  # the room is now empty: deleted
    err(owner.call("history", {"conversation": room}), "not_found")


def test_private_room_ownership_passes_but_the_password_holds(conn):
    """When the creator of a private room leaves, the next member owns it; the creator
    cannot close it or come back without the password."""
    password = "pw-" + uid()
    creator = conn({"name": uname("creator")})
    heir = conn({"name": uname("heir")})
    room = uroom("Heir")
    join(creator, room, password=password)
    join(heir, room, password=password)
    ok(creator.call("leaveRoom", {"room": room}))
    info = room_entry(ok(heir.call("listRooms"))["rooms"], room)
    assert info["owner"] == heir.name and info["private"] is True
    err(creator.call("closeRoom", {"room": room}), "forbidden")
    err(creator.call("joinRoom", {"room": room}), "bad_password")
    assert join(creator, room, password=password)["room"]["owner"] == heir.name
    err(creator.call("closeRoom", {"room": room}), "forbidden")


# -- identities ---------------------------------------------------------------------------

def test_a_token_works_only_for_its_own_name(conn):
    """Alice's token with bob's name is refused; it never signs in as either of them."""
    alice = conn({"name": uname("alice")})
    bob = conn({"name": uname("bob"), "password": "bob-pass-" + uid()})
    for auth in ({"name": bob.name, "token": alice.token},
                 {"name": bob.name.upper(), "token": alice.token},
                 {"name": uname("new"), "token": alice.token},
                 {"name": bob.name, "token": alice.token, "password": "nope-nope"}):
        code = refused(conn, auth).code
        assert code in ("bad_token", "name_taken", "bad_password"), (auth, code)
    users = ok(alice.call("listUsers"))["users"]
    assert user_entry(users, bob.name)["sids"] == [bob.sid]
    assert user_entry(users, alice.name)["sids"] == [alice.sid]


def test_each_login_gets_its_own_long_random_token(conn):
    """Tokens are long random secrets: each password login gets a new one, all differ,
    and every one of them resumes the identity."""
    name, password = uname("pw"), "pw-" + uid(16)
    logins = [conn({"name": name, "password": password}) for _ in range(3)]
    tokens = [c.token for c in logins] + [conn().token, conn({"name": uname("x")}).token]
    assert len(set(tokens)) == len(tokens)
    for token in tokens:
        assert isinstance(token, str) and len(token) >= 32, token
        assert re.fullmatch(r"[A-Za-z0-9_\-]+", token), token
        assert name.lower() not in token.lower() and password not in token
    for c in logins:
        assert conn({"token": c.token}).name == name


def test_forged_fields_are_ignored_in_every_event(conn):
    """A client cannot set `from`, `fromSid`, `ts`, `id`, `kind`, `conversation`, `to`,
    `owner`, `private` or `members` through any event; extra fields change nothing."""
    mallory = conn({"name": uname("mallory")})
    victim = conn({"name": uname("victim")})
    forged = {"from": victim.name, "fromSid": victim.sid, "ts": 1, "id": 1, "kind": "broadcast",
              "conversation": "lobby", "to": None, "owner": victim.name, "private": True,
              "members": 99, "name": victim.name, "sid": victim.sid, "room": "#forged",
              "token": victim.token}
    room = uroom("Forge")
    ack = ok(mallory.call("joinRoom", {**forged, "room": room}))
    assert ack["room"] == {"room": room, "owner": mallory.name, "private": False, "members": 1,
                           "moderators": []}
    join(victim, room)

    text = "forged " + uid()
    for payload, expect in (
            ({**forged, "content": text + " dm", "destId": victim.name},
             {"kind": "direct", "to": victim.name,
              "conversation": dm_key(mallory.name, victim.name)}),
            ({**forged, "content": text + " room", "destId": room},
             {"kind": "room", "to": room, "conversation": room})):
        msg = ok(mallory.call("sendMessage", payload))["message"]
        check_message(msg, from_=mallory.name, fromSid=mallory.sid, **expect)
        assert msg["id"] != 1 and msg["ts"] != 1
        delivered = victim.wait_for("reply", lambda m, i=msg["id"]: m["id"] == i)
        assert delivered == msg
        stored = ok(victim.call("history", {"conversation": expect["conversation"]
                                            if expect["kind"] == "room" else mallory.name}))
        assert msg in stored["messages"]

    ok(mallory.call("typing", {**forged, "to": victim.name, "typing": True}))
    assert victim.wait_for("typing") == {"from": mallory.name, "to": victim.name,
                                         "typing": True}
    # history with forged extras reads only what the conversation field names.
    got = ok(mallory.call("history", {**forged, "conversation": room, "limit": 5}))
    assert {m["conversation"] for m in got["messages"]} == {room}
    err(mallory.call("closeRoom", {**forged, "room": uroom("none")}), "not_found")
    ok(victim.call("leaveRoom", {**forged, "room": room}))
    info = room_entry(ok(mallory.call("listRooms"))["rooms"], room)
    assert info == {"room": room, "owner": mallory.name, "private": False, "members": 1,
                    "moderators": []}


# -- secrets ---------------------------------------------------------------------------------

def test_tokens_and_passwords_never_reach_anyone_else(conn):
    """Over a session with failed logins, failed joins and chatting: no acknowledgement,
    error or event carries a password, and nobody receives another user's token."""
    alice_pw, room_pw = "alice-secret-" + uid(), "room-secret-" + uid()
    guesses = ["guess-" + uid(), alice_pw.upper(), room_pw + "x"]
    alice = conn({"name": uname("alice"), "password": alice_pw})
    bob = conn({"name": uname("bob")}, transport="polling")
    guest = conn()
    room = uroom("Secrets")
    join(alice, room, password=room_pw)
    answers = []
    for guess in guesses:
        r = refused(conn, {"name": alice.name, "password": guess})
        answers.append(r.payload)
        r = refused(conn, {"token": guess})
        answers.append(r.payload)
        answers.append(bob.call("joinRoom", {"room": room, "password": guess}))
        answers.append(guest.call("joinRoom", {"room": room, "password": guess}))
    answers.append(refused(conn, {"token": alice.token[:-2] + "xx"}).payload)
    answers.append(refused(conn, {"name": alice.name}).payload)
    join(bob, room, password=room_pw)
    send_to(bob, room, "hi " + uid())
    send_to(alice, bob.name, "dm " + uid())
    send(guest, "lobby " + uid())
    for event, payload in (("listUsers", None), ("listRooms", None),
                           ("history", {"conversation": room}),
                           ("history", {"conversation": alice.name})):
        answers.append(bob.call(event, payload) if payload else bob.call(event))
    late = conn({"token": bob.token, "lastId": 0})
    ok(late.call("listUsers"))

    everything = json.dumps(answers)
    for secret in (alice_pw, room_pw, *guesses, alice.token, bob.token, guest.token):
        assert secret not in everything, f"a secret appears in an answer: {secret!r}"
    for client in (alice, bob, guest, late):
        received = json.dumps([(n, p) for n, p in client.all_events() if n != "welcome"])
        own_welcome = json.dumps(client.welcome)
        for secret in (alice_pw, room_pw, *guesses):
            assert secret not in received and secret not in own_welcome, \
                f"{client.name} received a password"
        for other in (alice, bob, guest):
            if other.name != client.name:
                assert other.token not in received + own_welcome, \
                    f"{client.name} received {other.name}'s token"


def test_tokens_and_passwords_are_stored_only_as_hashes(server_factory, client_factory):
    """Neither the database file nor its WAL holds a token or a password in clear; user
    and room passwords are argon2 hashes, session tokens SHA-256 digests."""
    srv = server_factory(env={"RATE_LIMIT": "off"})
    clients = []

    def connect(auth=None):
        c = client_factory()
        c.connect(srv.url, auth=auth)
        clients.append(c)
        return c

    user_pw, room_pw = "user-pass-" + uid(12), "room-pass-" + uid(12)
    alice = connect({"name": uname("alice"), "password": user_pw})
    again = connect({"name": alice.name, "password": user_pw})
    bob = connect({"name": uname("bob")})
    guest = connect()
    join(alice, uroom("Hashed"), password=room_pw)
    secrets_ = [user_pw, room_pw, alice.token, again.token, bob.token, guest.token]
    raw = b"".join(p.read_bytes() for p in sorted(srv.db_path.parent.glob("chat.db*")))
    for secret in secrets_:
        for encoding in ("utf-8", "utf-16-le", "utf-16-be"):
            assert secret.encode(encoding) not in raw, f"{secret!r} stored in clear"
    srv.stop()  # checkpoints the WAL into the database file
    raw = srv.db_path.read_bytes()
    assert not any(s.encode() in raw for s in secrets_)
    db = sqlite3.connect(srv.db_path)
    try:
        hashes = [h for (h,) in db.execute("SELECT password_hash FROM users "
                                           "WHERE password_hash IS NOT NULL")]
        hashes += [h for (h,) in db.execute("SELECT password_hash FROM rooms "
                                            "WHERE password_hash IS NOT NULL")]
        assert len(hashes) == 2 and all(h.startswith("$argon2") for h in hashes), hashes
        tokens = [t for (t,) in db.execute("SELECT token_hash FROM sessions")]
        assert len(tokens) >= 3  # the guest's session ended with its connection
        assert all(re.fullmatch(r"[0-9a-f]{64}", t) for t in tokens), tokens
    finally:
        db.close()
