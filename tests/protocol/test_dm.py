"""PROTOCOL.md `sendMessage` to a user: direct messages by sid, by name, to self, offline."""

from support.actions import send_to
from support.checks import check_message, err, ok
from support.names import dm_key, uid, uname


def test_dm_by_sid_reaches_both_parties_every_tab_and_no_one_else(server, connect):
    """A DM to a sid goes to all of both users' connections, and to nobody else."""
    a1 = connect(server.url, auth={"name": uname("Alice")})
    a2 = connect(server.url, auth={"token": a1.token})
    b1 = connect(server.url, auth={"name": uname("bob")})
    b2 = connect(server.url, auth={"token": b1.token})
    carol = connect(server.url, auth={"name": uname("carol")})
    text = "psst " + uid()
    msg = send_to(a1, b1.sid, text)
    check_message(msg, kind="direct", conversation=dm_key(a1.name, b1.name), from_=a1.name,
                  fromSid=a1.sid, to=b1.name, text=text)
    assert msg["conversation"] == msg["conversation"].lower()
    for c in (a1, a2, b1, b2):
        assert c.wait_for("reply", lambda m: m["id"] == msg["id"]) == msg
    carol.assert_no_event("reply", lambda m: m["id"] == msg["id"])
    for c in (a1, a2, b1, b2):
        assert len(c.events("reply", lambda m: m["id"] == msg["id"])) == 1


def test_dm_by_name_is_case_insensitive(server, connect):
    """A DM to a registered name in another case reaches that user, `to` as registered."""
    a = connect(server.url)
    b = connect(server.url, auth={"name": uname("CamelBob")})
    msg = send_to(a, b.name.upper(), "hi " + uid())
    check_message(msg, kind="direct", to=b.name, conversation=dm_key(a.name, b.name))
    assert b.wait_for("reply", lambda m: m["id"] == msg["id"]) == msg


def test_dm_to_a_guest_by_sid(server, connect):
    """A guest can receive a DM addressed to its sid."""
    a = connect(server.url, auth={"name": uname("a")})
    g = connect(server.url)
    msg = send_to(a, g.sid, "to guest " + uid())
    check_message(msg, kind="direct", to=g.name, conversation=dm_key(a.name, g.name))
    assert g.wait_for("reply", lambda m: m["id"] == msg["id"]) == msg


def test_dm_to_offline_registered_user_is_kept_for_later(server, connect):
    """A DM to an offline registered user is acked, then found by replay and by history."""
    bob = connect(server.url, auth={"name": uname("bob")})
    bob_token = bob.token
    seen = ok(bob.call("history", {"conversation": "lobby", "limit": 1}))["messages"]
    last_id = seen[-1]["id"] if seen else 0
    bob.disconnect()
    alice = connect(server.url, auth={"name": uname("alice")})
    msg = send_to(alice, bob.name, "while you were out " + uid())
    check_message(msg, kind="direct", to=bob.name, conversation=dm_key(alice.name, bob.name))

    back = connect(server.url, auth={"token": bob_token, "lastId": last_id})
    assert back.wait_for("reply", lambda m: m["id"] == msg["id"]) == msg
    hist = ok(back.call("history", {"conversation": alice.name}))["messages"]
    assert hist == [msg]


def test_dm_to_self_by_sid_and_by_name(server, connect):
    """A DM to oneself is a direct message delivered once to each of one's tabs."""
    t1 = connect(server.url, auth={"name": uname("Self")})
    t2 = connect(server.url, auth={"token": t1.token})
    by_sid = send_to(t1, t1.sid, "note to self " + uid())
    check_message(by_sid, kind="direct", from_=t1.name, to=t1.name,
                  conversation=dm_key(t1.name, t1.name))
    by_name = send_to(t1, t1.name, "again " + uid())
    check_message(by_name, kind="direct", to=t1.name, conversation=by_sid["conversation"])
    for c in (t1, t2):
        c.wait_for("reply", lambda m: m["id"] == by_name["id"])
        assert len(c.events("reply", lambda m: m["id"] == by_sid["id"])) == 1
        assert len(c.events("reply", lambda m: m["id"] == by_name["id"])) == 1
    hist = ok(t2.call("history", {"conversation": t1.name}))["messages"]
    assert hist == [by_sid, by_name]


def test_dm_history_has_both_directions_in_order(server, connect):
    """History of a DM, asked by either party with the peer's name, has both sides in id order."""
    a = connect(server.url, auth={"name": uname("a")})
    b = connect(server.url, auth={"name": uname("b")})
    m1 = send_to(a, b.name, "1")
    m2 = send_to(b, a.name, "2")
    m3 = send_to(a, b.sid, "3")
    assert ok(a.call("history", {"conversation": b.name}))["messages"] == [m1, m2, m3]
    assert ok(b.call("history", {"conversation": a.name.upper()}))["messages"] == [m1, m2, m3]


def test_dm_is_private_to_its_two_parties(server, connect):
    """A third user can neither receive a DM nor read it through history."""
    a = connect(server.url, auth={"name": uname("a")})
    b = connect(server.url, auth={"name": uname("b")})
    eve = connect(server.url, auth={"name": uname("eve")})
    msg = send_to(a, b.name, "secret " + uid())
    eve.assert_no_event("reply", lambda m: m["id"] == msg["id"])
    own = ok(eve.call("history", {"conversation": a.name}))["messages"]
    assert msg["id"] not in [m["id"] for m in own]
    ack = eve.call("history", {"conversation": msg["conversation"]})
    assert not ack.get("ok"), f"history of a foreign dm key must fail: {ack!r}"
    err(ack, "invalid_payload", "not_found", "forbidden")


def test_dm_to_unknown_user_or_sid_is_not_found(server, connect):
    """A DM to a name never registered or to a sid that is not online is `not_found`."""
    a = connect(server.url)
    watcher = connect(server.url)
    gone = connect(server.url)
    gone_sid = gone.sid
    gone.disconnect()
    err(a.call("sendMessage", {"content": "x", "destId": uname("nobody")}), "not_found")
    err(a.call("sendMessage", {"content": "x", "destId": "AbCdEfGhIjKlMnOpQrSt"}), "not_found")
    watcher.wait_for("userLeft", lambda p: p.get("sid") == gone_sid or p.get("name") == gone.name)
    err(a.call("sendMessage", {"content": "x", "destId": gone_sid}), "not_found")
    err(a.call("sendMessage", {"content": "x", "destId": gone.name}), "not_found")


def test_dm_key_of_non_ascii_names_is_lower_case_not_casefolded(server, connect):
    """`dm:` keys are the two names lower-cased and sorted: "Straße" stays "straße" (its
    casefold would be "strasse"), a final "Σ" is "ς" (casefold: "σ"). Names still compare
    case-insensitively, so a DM to the casefolded spelling reaches the same user."""
    tag = uid(6)
    a_name, b_name = f"Straße{tag}", f"{tag}ΣΟΦΟΣ"
    a = connect(server.url, auth={"name": a_name})
    b = connect(server.url, auth={"name": b_name})
    key = "dm:" + ":".join(sorted([a_name.lower(), b_name.lower()]))
    assert key != "dm:" + ":".join(sorted([a_name.casefold(), b_name.casefold()]))
    first = send_to(a, b_name.casefold(), "hallo " + uid())
    second = send_to(b, a.sid, "γεια " + uid())
    for msg, to in ((first, b_name), (second, a_name)):
        check_message(msg, kind="direct", conversation=key, to=to)
        for c in (a, b):
            assert c.wait_for("reply", lambda m, i=msg["id"]: m["id"] == i) == msg
    for c, peer in ((a, b_name), (a, b_name.upper()), (b, a_name.casefold()), (a, key),
                    (b, key)):
        assert ok(c.call("history", {"conversation": peer}))["messages"] == [first, second]
    back = connect(server.url, auth={"token": a.token, "lastId": first["id"] - 1})
    assert {"conversation": key, "lastId": second["id"]} in [
        {"conversation": c["conversation"], "lastId": c["lastId"]}
        for c in back.welcome["conversations"]]
    assert back.wait_for("reply", lambda m: m["id"] == second["id"]) == second
