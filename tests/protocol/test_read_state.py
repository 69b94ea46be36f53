"""docs/protocol.md §9 (PROTOCOL.md §9): read state, mentions, search. `markRead` and who
hears of it (`readMarker` to the user's other tabs, `read` to a DM's peer); the read state
in `welcome.conversations` (lastRead, unread without deleted messages and capped at 1000,
mentions); `@name` mentions of users who exist and can read the conversation; `search`
over what the user can read now, every word, the last as a prefix, newest first."""

import json

import pytest
from support.actions import join, send, send_to
from support.checks import err, ok
from support.names import dm_key, uid, uname, uroom


def mark_read(client, conversation, message_id):
    return ok(client.call("markRead", {"conversation": conversation,
                                       "id": message_id}))["lastRead"]


def search(client, query, **fields):
    """`search`, asserting ok; the MESSAGEs."""
    return ok(client.call("search", {"query": query, **fields}))["messages"]


def ids(messages):
    return [m["id"] for m in messages]


def conversation_state(welcome, conversation):
    found = [c for c in welcome["conversations"] if c["conversation"] == conversation]
    assert len(found) == 1, welcome["conversations"]
    return found[0]


def word():
    """A word no other message holds (a letter first: never read as a number)."""
    return "w" + uid(12)


# -- markRead ----------------------------------------------------------------------------------

def test_mark_read_keeps_the_larger_marker_and_tells_the_users_other_tabs(server, connect):
    """§9.1: the marker becomes max(old, id), the ack says which; the user's other tabs
    (not this one, nobody else) get readMarker with the conversation's key."""
    alice = connect(server.url, auth={"name": uname("alice")})
    tab2 = connect(server.url, auth={"token": alice.token})
    tab3 = connect(server.url, auth={"token": alice.token})
    bob = connect(server.url, auth={"name": uname("bob")})
    room = uroom("read")
    join(alice, room)
    join(bob, room)
    first = send_to(bob, room, "one " + uid())
    second = send_to(bob, room, "two " + uid())
    marks = {c: c.mark() for c in (alice, tab2, tab3, bob)}

    assert mark_read(alice, room, second["id"]) == second["id"]
    for tab in (tab2, tab3):
        assert tab.wait_for("readMarker", since=marks[tab]) == {"conversation": room,
                                                                "lastRead": second["id"]}
    assert mark_read(tab2, room.upper(), first["id"]) == second["id"], "max(old, id)"
    assert alice.wait_for("readMarker", since=marks[alice]) == {"conversation": room,
                                                                "lastRead": second["id"]}
    alice.assert_no_event("readMarker", lambda e: e["lastRead"] != second["id"],
                          since=marks[alice])
    assert len(alice.events("readMarker", since=marks[alice])) == 1, "not to its own tab"
    bob.assert_no_event("readMarker", since=marks[bob])
    bob.assert_no_event("read", since=marks[bob])  # receipts are for DMs only
    assert mark_read(tab3, room, second["id"] + 5) == second["id"] + 5

    back = connect(server.url, auth={"token": alice.token})
    assert conversation_state(back.welcome, room)["lastRead"] == second["id"] + 5


def test_mark_read_in_a_dm_sends_a_read_receipt_to_the_peer(server, connect):
    """§9.1: in a DM, named by the peer's name or by its key, the peer's tabs get
    read {conversation, name, lastRead}; the reader's other tabs a readMarker; no one else
    anything."""
    alice = connect(server.url, auth={"name": uname("Alice")})
    alice2 = connect(server.url, auth={"token": alice.token})
    bob = connect(server.url, auth={"name": uname("bob")})
    bob2 = connect(server.url, auth={"token": bob.token})
    carol = connect(server.url, auth={"name": uname("carol")})
    dm = send_to(bob, alice.name, "hi " + uid())
    key = dm_key(alice.name, bob.name)
    marks = {c: c.mark() for c in (alice, alice2, bob, bob2, carol)}

    assert mark_read(alice, bob.name.upper(), dm["id"]) == dm["id"]
    receipt = {"conversation": key, "name": alice.name, "lastRead": dm["id"]}
    for peer in (bob, bob2):
        assert peer.wait_for("read", since=marks[peer]) == receipt
    assert alice2.wait_for("readMarker", since=marks[alice2]) == {"conversation": key,
                                                                  "lastRead": dm["id"]}
    for c in (alice, alice2):
        c.assert_no_event("read", since=marks[c], wait=0.05)
    for c in (bob, bob2):
        c.assert_no_event("readMarker", since=marks[c], wait=0.05)
    carol.assert_no_event("read", since=marks[carol])
    carol.assert_no_event("readMarker", since=marks[carol], wait=0)

    assert mark_read(bob2, key, dm["id"]) == dm["id"]
    alice.wait_for("read", lambda r: r["name"] == bob.name, since=marks[alice])


def test_mark_read_errors(server, connect):
    """A conversation is named as for history (§2.5, §8.5): a room one is not in is
    forbidden, an unknown room or user not_found, somebody else's dm: key forbidden."""
    alice = connect(server.url, auth={"name": uname("alice")})
    bob = connect(server.url, auth={"name": uname("bob")})
    carol = connect(server.url, auth={"name": uname("carol")})
    room = uroom("theirs")
    join(bob, room)
    err(alice.call("markRead", {"conversation": room, "id": 1}), "forbidden")
    err(alice.call("markRead", {"conversation": uroom("none"), "id": 1}), "not_found")
    err(alice.call("markRead", {"conversation": uname("nobody"), "id": 1}), "not_found")
    err(alice.call("markRead", {"conversation": dm_key(bob.name, carol.name), "id": 1}),
        "forbidden")
    bob.assert_no_event("read")


@pytest.mark.parametrize("payload", [
    None, "lobby", [], {}, {"conversation": "lobby"}, {"id": 1},
    {"conversation": "lobby", "id": -1}, {"conversation": "lobby", "id": "1"},
    {"conversation": "lobby", "id": 1.5}, {"conversation": "lobby", "id": True},
    {"conversation": "lobby", "id": None}, {"conversation": "lobby", "id": 2**63},
    {"conversation": 5, "id": 1}, {"conversation": "", "id": 1},
    {"conversation": None, "id": 1}, {"conversation": "x" * 301, "id": 1},
], ids=lambda p: json.dumps(p)[:40])
def test_bad_mark_read_payloads(server, connect, payload):
    a = connect(server.url)
    err(a.call("markRead", payload), "invalid_payload")


# -- welcome.conversations -----------------------------------------------------------------------

def test_welcome_carries_last_read_unread_and_mentions(server, connect):
    """§9.2: lastRead (null if never), unread = messages of others after lastRead that
    are not deleted, mentions = how many of those mention the user; the user's own
    messages count for neither."""
    alice = connect(server.url, auth={"name": uname("alice")})
    bob = connect(server.url, auth={"name": uname("bob")})
    room, quiet = uroom("unread"), uroom("quiet")
    join(alice, room)
    join(alice, quiet)
    join(bob, room)
    seen = send_to(bob, room, f"before @{alice.name} " + uid())
    mark_read(alice, room, seen["id"])
    token = alice.token
    alice.disconnect()

    send_to(bob, room, "plain " + uid())
    send_to(bob, room, f"hey @{alice.name.upper()}, look " + uid())
    gone = send_to(bob, room, f"@{alice.name} soon deleted " + uid())
    also_gone = send_to(bob, room, "also deleted " + uid())
    ok(bob.call("deleteMessage", {"messageId": gone["id"]}))
    ok(bob.call("deleteMessage", {"messageId": also_gone["id"]}))
    newest = send_to(bob, room, "newest " + uid())
    ok(bob.call("editMessage", {"messageId": newest["id"], "text": "edited, still 1"}))
    dm1 = send_to(bob, alice.name, "dm one " + uid())
    dm2 = send_to(bob, alice.name, f"dm two @{alice.name}")
    key = dm_key(alice.name, bob.name)

    back = connect(server.url, auth={"token": token})
    assert conversation_state(back.welcome, room) == {
        "conversation": room, "lastId": newest["id"], "lastRead": seen["id"],
        "unread": 3, "mentions": 1}
    assert conversation_state(back.welcome, quiet) == {
        "conversation": quiet, "lastId": None, "lastRead": None, "unread": 0,
        "mentions": 0}
    dm_state = conversation_state(back.welcome, key)
    assert dm_state["lastRead"] is None and dm_state["unread"] == 2
    assert dm_state["mentions"] == 1

    send_to(back, room, f"my own @{alice.name} " + uid())  # neither unread nor a mention
    mark_read(back, key, dm1["id"])
    again = connect(server.url, auth={"token": token})
    assert conversation_state(again.welcome, room)["unread"] == 3
    assert conversation_state(again.welcome, room)["mentions"] == 1
    assert conversation_state(again.welcome, key) == {
        "conversation": key, "lastId": dm2["id"], "lastRead": dm1["id"], "unread": 1,
        "mentions": 1}
    mark_read(again, room, newest["id"] + 10_000)
    last = connect(server.url, auth={"token": token})
    assert conversation_state(last.welcome, room)["unread"] == 0
    assert conversation_state(last.welcome, room)["mentions"] == 0


def test_unread_and_mentions_stop_at_1000(server, connect, client_factory):
    """§9.2: never more than 1,000."""
    reader = connect(server.url, auth={"name": uname("reader")})
    room = uroom("many")
    join(reader, room)
    token = reader.token
    reader.disconnect()
    sender = client_factory()
    sender.connect(server.url, auth={"name": uname("sender")}, transport="websocket")
    join(sender, room)
    for start in range(0, 1002, 334):
        acks = sender.call_many("sendMessage", [
            {"content": f"@{reader.name} {i}", "destId": room}
            for i in range(start, start + 334)])
        assert all(ok(ack) for ack in acks)
    back = connect(server.url, auth={"token": token})
    state = conversation_state(back.welcome, room)
    assert state["unread"] == 1000 and state["mentions"] == 1000


# -- mentions ----------------------------------------------------------------------------------

def test_mentions_name_users_who_exist_and_can_read_the_conversation(server, connect):
    """§9.3: @name, case-insensitive, ending at a character a name cannot hold, for users
    who exist and can read the conversation; MESSAGE.mentions spells them as registered,
    once each."""
    alice = connect(server.url, auth={"name": uname("Alice")})
    bob = connect(server.url, auth={"name": uname("Bob")})
    carol = connect(server.url, auth={"name": uname("carol")})
    room = uroom("men")
    join(alice, room)
    join(bob, room)
    ghost = uname("ghost")

    lobby = send(alice, f"@{bob.name.upper()}, @{carol.name}! @{ghost} @{bob.name.lower()}")
    assert lobby["mentions"] == [bob.name, carol.name]
    assert bob.wait_for("reply", lambda m: m["id"] == lobby["id"])["mentions"] == [
        bob.name, carol.name]
    in_room = send_to(alice, room, f"(@{bob.name}) and @{carol.name}: carol is not here")
    assert in_room["mentions"] == [bob.name]
    assert send_to(alice, room, f"mail {bob.name}@example.org @{bob.name}x "
                                f"@ {bob.name} @{bob.name}.")["mentions"] == []
    assert send(alice, "no at sign at all")["mentions"] == []


def test_a_mention_runs_to_the_first_character_a_name_cannot_hold(server, connect):
    """Names hold letters of any script with their combining marks, digits, _ - and .:
    a Devanagari name is mentioned whole; a run longer than any name (32) mentions no
    one, not the name its first 32 characters spell."""
    alice = connect(server.url, auth={"name": uname("alice")})
    hindi = connect(server.url, auth={"name": "नमस्ते-" + uid(8)})
    longest = connect(server.url, auth={"name": ("l" + uid(32))[:32]})
    assert len(longest.name) == 32
    assert send(alice, f"hi @{hindi.name}, hi")["mentions"] == [hindi.name]
    assert send(alice, f"@{longest.name}")["mentions"] == [longest.name]
    assert send(alice, f"@{longest.name}x")["mentions"] == []
    assert send(alice, f"@{longest.name}\u0301")["mentions"] == []


def test_a_dm_mentions_only_its_two_users(server, connect):
    """In a DM only its two users can read it: the peer is mentioned, from the very first
    message of the conversation on; a third user never."""
    alice = connect(server.url, auth={"name": uname("alice")})
    bob = connect(server.url, auth={"name": uname("bob")})
    carol = connect(server.url, auth={"name": uname("carol")})
    first = send_to(alice, bob.name, f"@{bob.name} @{carol.name} first " + uid())
    assert first["mentions"] == [bob.name]
    second = send_to(alice, bob.name, f"@{bob.name} @{carol.name} second " + uid())
    assert second["mentions"] == [bob.name]
    to_self = send_to(carol, carol.name, f"note to @{carol.name} about @{bob.name}")
    assert to_self["mentions"] == [carol.name]


def test_an_edit_recomputes_mentions_and_a_deletion_clears_them(server, connect):
    alice = connect(server.url, auth={"name": uname("alice")})
    bob = connect(server.url, auth={"name": uname("bob")})
    carol = connect(server.url, auth={"name": uname("carol")})
    msg = send(alice, f"hi @{bob.name}")
    update = ok(alice.call("editMessage", {"messageId": msg["id"],
                                           "text": f"hi @{carol.name}"}))["update"]
    # docs/protocol.md §8.3: the edit's UPDATE names whom the new text mentions.
    assert update["mentions"] == [carol.name]
    assert bob.wait_for("update", lambda u: u["id"] == update["id"])["mentions"] == [carol.name]
    hist = ok(bob.call("history", {"conversation": "lobby", "after": msg["id"] - 1,
                                   "limit": 1}))["messages"]
    assert hist[0]["mentions"] == [carol.name]
    replayed = connect(server.url, auth={"token": bob.welcome["token"], "lastId": msg["id"]})
    assert replayed.wait_for("update", lambda u: u["id"] == update["id"]) == update
    ok(alice.call("deleteMessage", {"messageId": msg["id"]}))
    hist = ok(bob.call("history", {"conversation": "lobby", "after": msg["id"] - 1,
                                   "limit": 1}))["messages"]
    assert hist[0]["mentions"] == []
    again = connect(server.url, auth={"token": bob.welcome["token"], "lastId": msg["id"]})
    gone_edit = again.wait_for("update", lambda u: u["id"] == update["id"])
    assert gone_edit["text"] == "" and gone_edit["mentions"] == []


# -- search ------------------------------------------------------------------------------------

def test_search_matches_every_word_case_insensitively_newest_first(server, connect):
    """§9.4: every word of the query, in any case and order; newest first; full MESSAGEs
    in their current state."""
    a = connect(server.url, auth={"name": uname("a")})
    w1, w2, w3 = word(), word(), word()
    both_old = send(a, f"{w1} and {w2.upper()}")
    only_one = send(a, f"{w1} alone")
    both_new = send(a, f"{w2}, then {w1.capitalize()}!")
    ok(a.call("react", {"messageId": both_new["id"], "emoji": "x", "on": True}))
    found = search(a, f"{w2.upper()} {w1}")
    assert ids(found) == [both_new["id"], both_old["id"]]
    assert found[0]["reactions"] == [{"emoji": "x", "count": 1, "names": [a.name]}]
    assert ids(search(a, w1)) == [both_new["id"], only_one["id"], both_old["id"]]
    assert search(a, f"{w1} {w3}") == []
    assert ids(search(a, f"  {w1} -- {w2}?! ")) == [both_new["id"], both_old["id"]]


def test_search_takes_the_last_word_as_a_prefix_only(server, connect):
    a = connect(server.url, auth={"name": uname("a")})
    w1, w2 = word(), word()
    msg = send(a, f"{w1} {w2}")
    assert ids(search(a, f"{w1} {w2[:6]}")) == [msg["id"]]
    assert ids(search(a, w1[:7].upper())) == [msg["id"]]
    assert search(a, f"{w1[:7]} {w2}") == [], "only the last word is a prefix"
    assert search(a, f"{w1} {w2}zz") == []


def test_search_pages_with_before_and_limit(server, connect):
    """`before` keeps ids below it, `limit` is 1-50 and 20 by default."""
    a = connect(server.url, auth={"name": uname("a")})
    w = word()
    acks = a.call_many("message", [f"{w} {i}" for i in range(25)])
    sent = [ok(ack)["message"] for ack in acks]
    newest_first = sorted(ids(sent), reverse=True)
    assert ids(search(a, w)) == newest_first[:20]
    assert ids(search(a, w, limit=50)) == newest_first
    page = search(a, w, limit=10)
    assert ids(page) == newest_first[:10]
    page = search(a, w, limit=10, before=page[-1]["id"])
    assert ids(page) == newest_first[10:20]
    assert ids(search(a, w, before=page[-1]["id"])) == newest_first[20:]
    assert ids(search(a, w, limit=1, before=newest_first[-1])) == []


@pytest.mark.parametrize("payload", [
    None, "word", [], {}, {"query": ""}, {"query": 5}, {"query": None},
    {"query": "x" * 201}, {"query": "!? -- ..."}, {"query": "   "},
    {"query": "a", "limit": 0}, {"query": "a", "limit": 51}, {"query": "a", "limit": "5"},
    {"query": "a", "limit": 1.5}, {"query": "a", "limit": True},
    {"query": "a", "before": -1}, {"query": "a", "before": "9"},
    {"query": "a", "conversation": 5}, {"query": "a", "conversation": ""},
], ids=lambda p: json.dumps(p)[:40])
def test_bad_search_payloads(server, connect, payload):
    a = connect(server.url)
    err(a.call("search", payload), "invalid_payload")


def test_search_in_one_conversation(server, connect):
    """`conversation` restricts the search: lobby, a #room in any case, a DM by the
    peer's name or by its key; one the user cannot read is refused as history would."""
    alice = connect(server.url, auth={"name": uname("alice")})
    bob = connect(server.url, auth={"name": uname("bob")})
    carol = connect(server.url, auth={"name": uname("carol")})
    room, theirs = uroom("s"), uroom("theirs")
    join(alice, room)
    join(carol, theirs)
    w = word()
    lobby = send(alice, f"{w} lobby")
    in_room = send_to(alice, room, f"{w} room")
    dm = send_to(bob, alice.name, f"{w} dm")
    send_to(carol, theirs, f"{w} theirs")
    send_to(bob, carol.name, f"{w} not alice's")
    assert ids(search(alice, w)) == [dm["id"], in_room["id"], lobby["id"]]
    assert ids(search(alice, w, conversation="lobby")) == [lobby["id"]]
    assert ids(search(alice, w, conversation=room.upper())) == [in_room["id"]]
    assert ids(search(alice, w, conversation=bob.name.upper())) == [dm["id"]]
    assert ids(search(alice, w, conversation=dm_key(alice.name, bob.name))) == [dm["id"]]
    assert search(alice, w, conversation=carol.name) == []
    err(alice.call("search", {"query": w, "conversation": theirs}), "forbidden")
    err(alice.call("search", {"query": w, "conversation": dm_key(bob.name, carol.name)}),
        "forbidden")
    err(alice.call("search", {"query": w, "conversation": uroom("none")}), "not_found")
    err(alice.call("search", {"query": w, "conversation": uname("nobody")}), "not_found")


def test_search_never_leaks_what_one_cannot_read(server, connect):
    """Rooms one is not in (or left), and other people's DMs, never match."""
    alice = connect(server.url, auth={"name": uname("alice")})
    bob = connect(server.url, auth={"name": uname("bob")})
    carol = connect(server.url, auth={"name": uname("carol")})
    room, private, left = uroom("pub"), uroom("priv"), uroom("left")
    join(bob, room)
    join(bob, private, password="pw-" + uid())
    join(alice, left)
    join(bob, left)
    w = word()
    send_to(bob, room, f"{w} public room")
    send_to(bob, private, f"{w} private room")
    send_to(bob, carol.name, f"{w} bob to carol")
    send_to(carol, bob.name, f"{w} carol to bob")
    was_readable = send_to(bob, left, f"{w} left room")
    assert ids(search(alice, w)) == [was_readable["id"]]
    ok(alice.call("leaveRoom", {"room": left}))
    assert search(alice, w) == []
    assert search(alice, w[:5] + " " + w) == []
    assert len(search(bob, w)) == 5
    assert len(search(carol, w)) == 2


def test_search_skips_deleted_messages_and_finds_edits_by_their_new_text(server, connect):
    a = connect(server.url, auth={"name": uname("a")})
    old, new, gone = word(), word(), word()
    edited = send(a, f"{old} text")
    deleted = send(a, f"{gone} text")
    ok(a.call("editMessage", {"messageId": edited["id"], "text": f"{new} text"}))
    ok(a.call("deleteMessage", {"messageId": deleted["id"]}))
    assert search(a, old) == [] and search(a, old[:6]) == []
    found = search(a, new)
    assert ids(found) == [edited["id"]] and found[0]["text"] == f"{new} text"
    assert found[0]["editedAt"] is not None
    assert search(a, gone) == [] and search(a, f"text {gone[:5]}") == []
    assert ids(search(a, f"{new[:5]}")) == [edited["id"]]


def test_search_is_case_insensitive_beyond_ascii(server, connect):
    a = connect(server.url, auth={"name": uname("a")})
    tag = word()
    msg = send(a, f"ÉTÉ Привет {tag}")
    assert ids(search(a, f"été привет {tag}")) == [msg["id"]]
    assert ids(search(a, f"{tag} ПРИВ")) == [msg["id"]]
