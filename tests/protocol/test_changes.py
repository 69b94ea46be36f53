"""docs/protocol.md §8 (PROTOCOL.md §8): messages that change. `editMessage`,
`deleteMessage`, `react`, `replyTo`; the `update` event and its audience; changes replayed
after `lastId` in one id order with the messages; tombstones; reactions' current state; and
the error codes this server chose where the contract is open (§8.2): someone else's message
or a deleted one is `forbidden`, a 21st distinct emoji `too_large`, a message of a
conversation one cannot read `not_found`, exactly as if it did not exist."""

import json
import threading

import pytest
from support.actions import join, send, send_to
from support.checks import check_message, err, ok
from support.client import CALL_TIMEOUT
from support.names import dm_key, uid, uname, uroom

NO_SUCH_ID = 2**63 - 1  # a valid id no message will have


# -- steps ---------------------------------------------------------------------------------

def edit(client, message_id, text):
    """`editMessage`, asserting ok; the UPDATE."""
    return ok(client.call("editMessage", {"messageId": message_id, "text": text}))["update"]


def delete(client, message_id):
    """`deleteMessage`, asserting ok; the whole ack (a repeat has no update)."""
    return ok(client.call("deleteMessage", {"messageId": message_id}))


def react(client, message_id, emoji, on=True):
    """`react`, asserting ok; the whole ack (a repeated state has no update)."""
    return ok(client.call("react", {"messageId": message_id, "emoji": emoji, "on": on}))


def current(client, message):
    """The message as `history` has it now."""
    found = ok(client.call("history", {"conversation": message["conversation"],
                                       "after": message["id"] - 1, "limit": 1}))["messages"]
    assert found and found[0]["id"] == message["id"], found
    return found[0]


def emit_all(client, calls, timeout=CALL_TIMEOUT * 2):
    """Emit several (event, payload) at once; the acks, in the order sent."""
    return client.call_each(calls, timeout)


def check_update(update, **expected):
    """Assert `update` has the UPDATE shape of §8.3 and the given values."""
    assert isinstance(update, dict), update
    for key in ("id", "conversation", "messageId", "type", "by", "ts"):
        assert key in update, f"UPDATE lacks {key!r}: {update!r}"
    for key in ("id", "messageId", "ts"):
        assert type(update[key]) is int, update
    assert update["type"] in ("edit", "delete", "react", "unreact"), update
    assert ("text" in update) == (update["type"] == "edit"), update
    assert ("emoji" in update) == (update["type"] in ("react", "unreact")), update
    assert update["id"] > update["messageId"], "a change takes a newer id than its message"
    for key, value in expected.items():
        assert update[key] == value, f"UPDATE {key!r}: expected {value!r}, got {update!r}"
    return update


def stream(client, conversation, since=0):
    """(event, id) of the `reply` and `update` events of one conversation, as received."""
    return [(name, payload["id"]) for name, payload in client.all_events(since)
            if name in ("reply", "update") and isinstance(payload, dict)
            and payload.get("conversation") == conversation]


def after_welcome(client):
    names = [name for name, _ in client.all_events()]
    return names.index("welcome") + 1


# -- the new MESSAGE fields ----------------------------------------------------------------

def test_a_fresh_message_carries_the_v2_fields(server, connect):
    """§8.4: replyTo null, editedAt null, deleted false, mentions [], reactions []."""
    a = connect(server.url, auth={"name": uname("a")})
    msg = send(a, "fresh " + uid())
    check_message(msg, replyTo=None, editedAt=None, deleted=False, mentions=[], reactions=[])
    assert current(a, msg) == msg


# -- editMessage ---------------------------------------------------------------------------

def test_edit_is_acked_sent_as_update_to_everyone_and_keeps_ts(server, connect):
    """§8.2, §8.3: the author edits; the ack and every lobby connection get the same
    UPDATE; history has the new text, editedAt the change's ts, and the original ts."""
    a = connect(server.url, auth={"name": uname("a")})
    b = connect(server.url, auth={"name": uname("b")})
    msg = send(a, "first draft " + uid())
    text = "  second draft " + uid() + "  "
    update = check_update(edit(a, msg["id"], text), conversation="lobby",
                          messageId=msg["id"], type="edit", by=a.name, text=text)
    for c in (a, b):
        assert c.wait_for("update", lambda u: u["id"] == update["id"]) == update
    now = current(b, msg)
    assert now == {**msg, "text": text, "editedAt": update["ts"]}
    assert now["ts"] == msg["ts"], "an edit keeps the message's ts"

    again = check_update(edit(a, msg["id"], "third " + uid()), type="edit")
    assert again["id"] > update["id"]
    assert current(a, msg)["editedAt"] == again["ts"]


def test_edit_rules_and_their_codes(server, connect):
    """Only the author edits (someone else: forbidden), never a deleted message
    (forbidden), no such message or a change's id: not_found; the text follows §5.
    A refused edit reaches no one."""
    a = connect(server.url, auth={"name": uname("a")})
    b = connect(server.url, auth={"name": uname("b")})
    msg = send(a, "mine " + uid())
    mark = b.mark()
    err(b.call("editMessage", {"messageId": msg["id"], "text": "hijack"}), "forbidden")
    err(a.call("editMessage", {"messageId": NO_SUCH_ID, "text": "x"}), "not_found")
    change = edit(a, msg["id"], "edited " + uid())
    err(a.call("editMessage", {"messageId": change["id"], "text": "x"}), "not_found")
    err(a.call("editMessage", {"messageId": msg["id"], "text": "x" * 2001}), "too_large")
    err(a.call("editMessage", {"messageId": msg["id"], "text": "   "}), "invalid_payload")
    err(a.call("editMessage", {"messageId": msg["id"], "text": "nul\x00"}), "invalid_payload")
    gone = delete(a, msg["id"])["update"]
    err(a.call("editMessage", {"messageId": msg["id"], "text": "back"}), "forbidden")
    b.wait_for("update", lambda u: u["id"] == gone["id"])
    assert [u["id"] for u in b.events("update", since=mark)
            if u["messageId"] == msg["id"]] == [change["id"], gone["id"]]
    assert current(a, msg)["text"] == ""


def test_edited_text_of_2000_code_points_is_accepted(server, connect):
    a = connect(server.url, auth={"name": uname("a")})
    msg = send(a, "short")
    assert edit(a, msg["id"], "\U0001F600" * 2000)["text"] == "\U0001F600" * 2000


# -- deleteMessage -------------------------------------------------------------------------

def test_delete_by_the_author_leaves_a_tombstone(server, connect):
    """§8.2, §8.4: deleted by its author, the message stays in history with text "",
    deleted true, no mentions and no reactions; a second delete is ok with no update and
    sends nothing."""
    a = connect(server.url, auth={"name": uname("a")})
    b = connect(server.url, auth={"name": uname("b")})
    secret = "delete me " + uid()
    msg = send(a, f"{secret} @{b.name}")
    assert msg["mentions"] == [b.name]
    react(b, msg["id"], "\U0001F44D")
    ack = delete(a, msg["id"])
    update = check_update(ack["update"], conversation="lobby", messageId=msg["id"],
                          type="delete", by=a.name)
    for c in (a, b):
        assert c.wait_for("update", lambda u: u["id"] == update["id"]) == update
    tomb = current(b, msg)
    assert tomb == {**msg, "text": "", "deleted": True, "mentions": [], "reactions": []}

    mark = b.mark()
    again = delete(a, msg["id"])
    assert "update" not in again, f"a repeated delete changes nothing: {again}"
    b.assert_no_event("update", since=mark)


def test_only_the_author_or_the_rooms_owner_deletes(server, connect):
    """Another member's delete is forbidden; the room's owner may delete anyone's message
    there, and the UPDATE says who did; in the lobby and in DMs only the author."""
    owner = connect(server.url, auth={"name": uname("owner")})
    member = connect(server.url, auth={"name": uname("member")})
    other = connect(server.url, auth={"name": uname("other")})
    room = uroom("del")
    join(owner, room)
    join(member, room)
    join(other, room)
    by_member = send_to(member, room, "member says " + uid())
    by_owner = send_to(owner, room, "owner says " + uid())
    err(other.call("deleteMessage", {"messageId": by_member["id"]}), "forbidden")
    err(member.call("deleteMessage", {"messageId": by_owner["id"]}), "forbidden")
    update = check_update(delete(owner, by_member["id"])["update"], type="delete",
                          by=owner.name, conversation=room, messageId=by_member["id"])
    for c in (owner, member, other):
        c.wait_for("update", lambda u: u["id"] == update["id"])
    assert current(other, by_owner)["deleted"] is False

    in_lobby = send(member, "lobby " + uid())
    err(owner.call("deleteMessage", {"messageId": in_lobby["id"]}), "forbidden")
    dm = send_to(member, owner.name, "dm " + uid())
    err(owner.call("deleteMessage", {"messageId": dm["id"]}), "forbidden")
    assert current(owner, dm)["deleted"] is False


# -- react -----------------------------------------------------------------------------------

def test_reactions_add_remove_and_repeat(server, connect):
    """§8.2: react/unreact are sent as update with the emoji; repeating the state holds
    changes nothing, sends nothing, and its ack has no update; the current state is
    {emoji, count, names} in the order the reactions came; [] once the last is gone."""
    a = connect(server.url, auth={"name": uname("a")})
    b = connect(server.url, auth={"name": uname("b")})
    c = connect(server.url, auth={"name": uname("c")})
    msg = send(a, "react to me " + uid())
    up = "\U0001F44D"
    first = check_update(react(b, msg["id"], up)["update"], type="react", emoji=up,
                         by=b.name, conversation="lobby", messageId=msg["id"])
    for client in (a, b, c):
        assert client.wait_for("update", lambda u: u["id"] == first["id"]) == first

    mark = a.mark()
    repeat = react(b, msg["id"], up)
    assert "update" not in repeat, repeat
    assert "update" not in react(a, msg["id"], "\U0001F440", on=False), "nothing to take back"
    react(c, msg["id"], up)
    heart = react(c, msg["id"], "\u2764\ufe0f")["update"]
    a.wait_for("update", lambda u: u["id"] == heart["id"], since=mark)
    assert len(a.events("update", since=mark)) == 2, "a repeated state sent an update"
    assert current(a, msg)["reactions"] == [
        {"emoji": up, "count": 2, "names": [b.name, c.name]},
        {"emoji": "\u2764\ufe0f", "count": 1, "names": [c.name]}]

    taken = check_update(react(b, msg["id"], up, on=False)["update"], type="unreact",
                         emoji=up, by=b.name)
    c.wait_for("update", lambda u: u["id"] == taken["id"])
    assert "update" not in react(b, msg["id"], up, on=False)
    react(c, msg["id"], up, on=False)
    react(c, msg["id"], "\u2764\ufe0f", on=False)
    assert current(a, msg)["reactions"] == []


def test_at_most_20_distinct_emoji(server, connect):
    """The 21st distinct emoji is too_large (this server's code); a further reaction with
    one of the 20 is fine, and once one is gone another fits."""
    a = connect(server.url, auth={"name": uname("a")})
    b = connect(server.url, auth={"name": uname("b")})
    msg = send(a, "twenty " + uid())
    emojis = [chr(0x1F600 + i) for i in range(21)]
    acks = emit_all(a, [("react", {"messageId": msg["id"], "emoji": e, "on": True})
                        for e in emojis[:20]])
    assert all(ok(ack).get("update") for ack in acks)
    mark = b.mark()
    err(a.call("react", {"messageId": msg["id"], "emoji": emojis[20], "on": True}),
        "too_large")
    err(b.call("react", {"messageId": msg["id"], "emoji": emojis[20], "on": True}),
        "too_large")
    assert react(b, msg["id"], emojis[0])["update"]["emoji"] == emojis[0]
    b.wait_for("update", lambda u: u["by"] == b.name, since=mark)
    assert not b.events("update", lambda u: u.get("emoji") == emojis[20], since=mark), \
        "a refused reaction was sent"
    assert len(current(a, msg)["reactions"]) == 20
    react(a, msg["id"], emojis[5], on=False)
    react(b, msg["id"], emojis[20])
    reactions = current(a, msg)["reactions"]
    assert sorted(r["emoji"] for r in reactions) == sorted(set(emojis) - {emojis[5]})


def test_reacting_to_a_deleted_message_is_forbidden(server, connect):
    a = connect(server.url, auth={"name": uname("a")})
    b = connect(server.url, auth={"name": uname("b")})
    msg = send(a, "soon gone " + uid())
    delete(a, msg["id"])
    err(b.call("react", {"messageId": msg["id"], "emoji": "x", "on": True}), "forbidden")
    err(b.call("react", {"messageId": msg["id"], "emoji": "x", "on": False}), "forbidden")
    assert current(a, msg)["reactions"] == []


def test_the_names_of_a_reaction_stop_at_50(server, client_factory, transport):
    """§8.4: `names` lists at most 50 of those who reacted; `count` counts them all."""
    author = client_factory()
    author.connect(server.url, auth={"name": uname("author")}, transport=transport)
    msg = send(author, "popular " + uid())
    names = []
    for i in range(51):
        fan = client_factory()
        fan.connect(server.url, auth={"name": uname(f"f{i}")}, transport="websocket")
        react(fan, msg["id"], "\U0001F389")
        names.append(fan.name)
        fan.disconnect()
    reaction, = current(author, msg)["reactions"]
    assert reaction["count"] == 51
    assert len(reaction["names"]) == 50 and set(reaction["names"]) <= set(names)


# -- payloads ----------------------------------------------------------------------------------

BAD_IDS = ["1", -1, 1.5, True, None, 2**63, [1], {"id": 1}]


@pytest.mark.parametrize("payload", [
    None, "text", 5, [], {}, {"text": "no id"},
    *({"messageId": bad, "text": "t"} for bad in BAD_IDS),
    {"messageId": 1, "text": 5}, {"messageId": 1}, {"messageId": 1, "text": ""},
], ids=lambda p: json.dumps(p))
def test_bad_edit_payloads(server, connect, payload):
    a = connect(server.url)
    err(a.call("editMessage", payload), "invalid_payload")


@pytest.mark.parametrize("payload", [
    None, "1", 1, [], {}, *({"messageId": bad} for bad in BAD_IDS),
], ids=lambda p: json.dumps(p))
def test_bad_delete_payloads(server, connect, payload):
    a = connect(server.url)
    err(a.call("deleteMessage", payload), "invalid_payload")


@pytest.mark.parametrize("fields", [
    *({"messageId": bad} for bad in BAD_IDS),
    {"emoji": ""}, {"emoji": "x" * 17}, {"emoji": "\U0001F600" * 17}, {"emoji": 5},
    {"emoji": None}, {"emoji": "a b"}, {"emoji": " x"}, {"emoji": "x\n"}, {"emoji": "\t"},
    {"emoji": "\x07"}, {"emoji": "\x7f"}, {"emoji": "x\u2028"}, {"emoji": "\u00a0"},
    {"emoji": "\u3000"}, {"emoji": "\ud83d"},
    {"on": None}, {"on": "true"}, {"on": 1}, {"on": 0},
], ids=lambda p: json.dumps(p))
def test_bad_react_payloads(server, connect, fields):
    """emoji: 1-16 code points without whitespace or control characters; on: a bool."""
    a = connect(server.url)
    msg = send(a, "target " + uid())
    payload = {"messageId": msg["id"], "emoji": "\U0001F44D", "on": True, **fields}
    err(a.call("react", payload), "invalid_payload")
    err(a.call("react", {k: v for k, v in payload.items() if k not in fields}),
        "invalid_payload")
    assert current(a, msg)["reactions"] == []


@pytest.mark.parametrize("emoji", [
    "x", "x" * 16, "\U0001F600" * 16, "\U0001F468\u200d\U0001F469\u200d\U0001F467",
    "\U0001F1EB\U0001F1F7", ":+1:"])
def test_emoji_of_1_to_16_code_points_are_accepted(server, connect, emoji):
    a = connect(server.url)
    msg = send(a, "target " + uid())
    assert react(a, msg["id"], emoji)["update"]["emoji"] == emoji
    assert current(a, msg)["reactions"] == [{"emoji": emoji, "count": 1, "names": [a.name]}]


def test_a_refused_change_without_ack_is_an_error_event(server, connect):
    """Without an ack, a refused change comes back as one `error` event naming it."""
    a = connect(server.url)
    mark = a.mark()
    a.emit("editMessage", {"messageId": NO_SUCH_ID, "text": "x"})
    a.emit("react", {"messageId": "x"})
    errors = a.wait_for_n("error", 2, since=mark)
    assert sorted((e["event"], e["code"]) for e in errors) == [
        ("editMessage", "not_found"), ("react", "invalid_payload")]


# -- audiences -------------------------------------------------------------------------------

def test_updates_reach_whoever_a_reply_would(server, connect):
    """§8.3: in a room its members (all their tabs), in a DM both users' tabs, and no one
    else."""
    alice = connect(server.url, auth={"name": uname("alice")})
    alice2 = connect(server.url, auth={"token": alice.token})
    bob = connect(server.url, auth={"name": uname("bob")})
    carol = connect(server.url, auth={"name": uname("carol")})
    room = uroom("aud")
    join(alice, room)
    join(bob, room)
    in_room = send_to(bob, room, "room " + uid())
    dm = send_to(alice, bob.name, "dm " + uid())
    mark = carol.mark()
    changes = [edit(bob, in_room["id"], "room edited"), react(alice, in_room["id"], "a")["update"],
               edit(alice, dm["id"], "dm edited"), react(bob, dm["id"], "b")["update"],
               delete(alice, dm["id"])["update"], delete(bob, in_room["id"])["update"]]
    assert [u["conversation"] for u in changes] == [room] * 2 + [dm_key(alice.name,
                                                                       bob.name)] * 3 + [room]
    for client in (alice, alice2, bob):
        for update in changes:
            assert client.wait_for("update", lambda u, i=update["id"]: u["id"] == i) == update
    carol.assert_no_event("update", since=mark)
    for client in (alice, alice2, bob):
        ids = [u["id"] for u in client.events("update")
               if u["conversation"] in (room, dm_key(alice.name, bob.name))]
        assert ids == [u["id"] for u in changes], "each once, in id order"


def test_a_room_member_who_left_hears_no_more_updates(server, connect):
    a = connect(server.url, auth={"name": uname("a")})
    b = connect(server.url, auth={"name": uname("b")})
    room = uroom("left")
    join(a, room)
    join(b, room)
    msg = send_to(a, room, "hello " + uid())
    ok(b.call("leaveRoom", {"room": room}))
    mark = b.mark()
    update = edit(a, msg["id"], "edited after b left")
    a.wait_for("update", lambda u: u["id"] == update["id"])
    b.assert_no_event("update", since=mark)
    err(b.call("react", {"messageId": msg["id"], "emoji": "x", "on": True}), "not_found")


def test_live_messages_and_changes_arrive_in_id_order_in_send_order(server, connect):
    """§8.1, §4: changes share the messages' sequence; pipelined sends and changes from
    one connection get ids in the order sent, and every recipient receives replies and
    updates in id order."""
    a = connect(server.url, auth={"name": uname("a")})
    b = connect(server.url, auth={"name": uname("b")})
    watcher = connect(server.url, auth={"name": uname("w")})
    room = uroom("order")
    for c in (a, b, watcher):
        join(c, room)
    base = send_to(a, room, "base " + uid())
    mark = watcher.mark()
    calls = []
    for i in range(10):
        calls += [("sendMessage", {"content": f"m{i}", "destId": room}),
                  ("editMessage", {"messageId": base["id"], "text": f"edit {i}"}),
                  ("react", {"messageId": base["id"], "emoji": f"e{i}", "on": True})]
    calls.append(("deleteMessage", {"messageId": base["id"]}))
    b_calls = [("react", {"messageId": base["id"], "emoji": f"b{i}", "on": True})
               for i in range(10)]
    b_acks = []
    thread = threading.Thread(target=lambda: b_acks.extend(emit_all(b, b_calls)))
    thread.start()
    acks = emit_all(a, calls)
    thread.join(CALL_TIMEOUT * 3)
    ids = [ok(ack).get("message", ack.get("update"))["id"] for ack in acks]
    assert ids == sorted(ids), "one connection's sends and changes keep their order"
    b_ids = [ack["update"]["id"] for ack in b_acks if ack.get("ok")]
    for ack in b_acks:  # those after the deletion find a deleted message
        if not ack.get("ok"):
            err(ack, "forbidden")
    assert b_ids == sorted(b_ids)
    expected = sorted(ids + b_ids)
    for client in (a, b, watcher):
        client.wait_for("update", lambda u: u["id"] == ids[-1])
        got = [i for _, i in stream(client, room, mark if client is watcher else 0)
               if i > base["id"]]
        assert got == expected, f"not in id order: {got}"


# -- replyTo -------------------------------------------------------------------------------------

def test_reply_to_a_message_of_the_same_conversation(server, connect):
    """`message` and `sendMessage` take replyTo; MESSAGE.replyTo carries it everywhere."""
    a = connect(server.url, auth={"name": uname("a")})
    b = connect(server.url, auth={"name": uname("b")})
    room = uroom("rt")
    join(a, room)
    join(b, room)
    lobby = send(a, "question " + uid())
    answer = send(b, "answer " + uid(), replyTo=lobby["id"])
    check_message(answer, replyTo=lobby["id"], conversation="lobby")
    assert a.wait_for("reply", lambda m: m["id"] == answer["id"]) == answer
    in_room = send_to(a, room, "room q " + uid())
    room_answer = send_to(b, room, "room a " + uid(), replyTo=in_room["id"])
    assert room_answer["replyTo"] == in_room["id"]
    dm = send_to(a, b.name, "dm q " + uid())
    dm_answer = send_to(b, a.name, "dm a " + uid(), replyTo=dm["id"])
    assert dm_answer["replyTo"] == dm["id"]
    assert current(a, dm_answer)["replyTo"] == dm["id"]
    to_deleted = send_to(a, room, "gone " + uid())
    delete(a, to_deleted["id"])
    assert send_to(b, room, "late " + uid(), replyTo=to_deleted["id"])["replyTo"] == \
        to_deleted["id"]
    assert send(a, "null is none " + uid(), replyTo=None)["replyTo"] is None


def test_reply_to_outside_the_conversation_is_not_found(server, connect):
    """§8.2: replyTo must be in the same conversation: another conversation, a change's
    id, a message that does not exist, or one of a room the sender is not in are all
    not_found, alike, and nothing is sent."""
    a = connect(server.url, auth={"name": uname("a")})
    b = connect(server.url, auth={"name": uname("b")})
    c = connect(server.url, auth={"name": uname("c")})
    room, foreign = uroom("mine"), uroom("foreign")
    join(a, room)
    join(c, foreign)
    lobby = send(a, "lobby " + uid())
    in_room = send_to(a, room, "room " + uid())
    hidden = send_to(c, foreign, "hidden " + uid())
    other_dm = send_to(b, c.name, "b to c " + uid())
    change = edit(a, lobby["id"], "edited " + uid())
    mark = b.mark()
    answers = [
        a.call("sendMessage", {"content": "x", "destId": room, "replyTo": lobby["id"]}),
        a.call("message", {"text": "x", "replyTo": in_room["id"]}),
        a.call("sendMessage", {"content": "x", "destId": b.name, "replyTo": lobby["id"]}),
        a.call("sendMessage", {"content": "x", "destId": b.name,
                               "replyTo": other_dm["id"]}),
        a.call("message", {"text": "x", "replyTo": change["id"]}),
        a.call("message", {"text": "x", "replyTo": hidden["id"]}),
        a.call("message", {"text": "x", "replyTo": NO_SUCH_ID}),
    ]
    for answer in answers:
        err(answer, "not_found")
    assert len({answer["error"]["message"] for answer in answers[-2:]}) == 1, \
        "an unreadable message must look like no message at all"
    b.assert_no_event("reply", lambda m: m["text"] == "x", since=mark)


@pytest.mark.parametrize("bad", ["1", -1, 1.5, True, 2**63, [1]], ids=json.dumps)
def test_bad_reply_to_is_invalid_payload(server, connect, bad):
    a = connect(server.url)
    err(a.call("message", {"text": "x", "replyTo": bad}), "invalid_payload")
    err(a.call("sendMessage", {"content": "x", "destId": a.name, "replyTo": bad}),
        "invalid_payload")


# -- what one cannot read --------------------------------------------------------------------

def test_changes_to_what_one_cannot_read_are_not_found_and_leak_nothing(server, connect):
    """A message of a room one is not in, or of other people's DM, is not_found for
    editMessage, deleteMessage and react, with the very answer a message that does not
    exist gets; nothing changes and no one hears of it."""
    alice = connect(server.url, auth={"name": uname("alice")})
    bob = connect(server.url, auth={"name": uname("bob")})
    eve = connect(server.url, auth={"name": uname("eve")})
    room = uroom("closed")
    join(alice, room)
    join(bob, room)
    secret = "secret " + uid()
    in_room = send_to(alice, room, secret)
    in_dm = send_to(alice, bob.name, secret + " dm")
    private = uroom("priv")
    join(alice, private, password="pw-" + uid())
    in_private = send_to(alice, private, secret + " private")
    marks = {c: c.mark() for c in (alice, bob, eve)}

    def attempts(message_id):
        return [eve.call("editMessage", {"messageId": message_id, "text": "pwned"}),
                eve.call("deleteMessage", {"messageId": message_id}),
                eve.call("react", {"messageId": message_id, "emoji": "x", "on": True}),
                eve.call("react", {"messageId": message_id, "emoji": "x", "on": False})]

    nothing = attempts(NO_SUCH_ID)
    for answer in nothing:
        err(answer, "not_found")
    for target in (in_room, in_dm, in_private):
        assert attempts(target["id"]) == nothing, "the answer tells that it exists"
    for c in (alice, bob, eve):
        c.assert_no_event("update", since=marks[c], wait=0.1)
    assert secret not in json.dumps(eve.all_events(marks[eve]))
    for target in (in_room, in_dm):
        assert current(bob, target) == target
    assert current(alice, in_private) == in_private


# -- replay -----------------------------------------------------------------------------------

def test_replay_interleaves_replies_and_updates_in_id_order(server, connect):
    """§8.1, §1.9: after lastId, replay sends reply for newer messages (in their current
    state) and update for newer changes, in one id order, changes to older messages
    included."""
    alice = connect(server.url, auth={"name": uname("alice")})
    bob = connect(server.url, auth={"name": uname("bob")})
    room = uroom("replay")
    join(alice, room)
    join(bob, room)
    old = send_to(bob, room, "old " + uid())
    token, last_id = alice.token, old["id"]
    alice.disconnect()

    m1 = send_to(bob, room, "m1 " + uid())
    e_old = edit(bob, old["id"], "old edited " + uid())
    r1 = react(bob, old["id"], "\U0001F44D")["update"]
    m2 = send_to(bob, room, "m2 " + uid(), replyTo=old["id"])
    e_m1 = edit(bob, m1["id"], "m1 edited " + uid())
    r2 = react(bob, m1["id"], "\U0001F525")["update"]
    m3 = send_to(bob, room, "m3 " + uid(), replyTo=m1["id"])
    u_r1 = react(bob, old["id"], "\U0001F44D", on=False)["update"]

    back = connect(server.url, auth={"token": token, "lastId": last_id})
    assert back.welcome["replayTruncated"] is False
    back.wait_for("update", lambda u: u["id"] == u_r1["id"])
    got = stream(back, room, after_welcome(back))
    expected = sorted([("reply", m1["id"]), ("update", e_old["id"]), ("update", r1["id"]),
                       ("reply", m2["id"]), ("update", e_m1["id"]), ("update", r2["id"]),
                       ("reply", m3["id"]), ("update", u_r1["id"])], key=lambda p: p[1])
    assert got == expected
    replies = {m["id"]: m for m in back.events("reply") if m["conversation"] == room}
    updates = {u["id"]: u for u in back.events("update") if u["conversation"] == room}
    assert updates[e_old["id"]] == e_old and updates[r1["id"]] == r1
    assert updates[e_m1["id"]] == e_m1 and updates[u_r1["id"]] == u_r1
    # the messages in their current state
    assert replies[m1["id"]] == {**m1, "text": e_m1["text"], "editedAt": e_m1["ts"],
                                 "reactions": [{"emoji": "\U0001F525", "count": 1,
                                                "names": [bob.name]}]}
    assert replies[m2["id"]] == {**m2, "replyTo": old["id"]}
    assert replies[m3["id"]]["replyTo"] == m1["id"]


def test_a_message_deleted_since_is_replayed_as_a_tombstone_never_with_its_text(
        server, connect):
    """§8.1: "a message deleted since is sent as its tombstone, its text never again":
    neither in its reply nor in any update of the replay, edits made before the deletion
    included."""
    alice = connect(server.url, auth={"name": uname("alice")})
    bob = connect(server.url, auth={"name": uname("bob")})
    room = uroom("tomb")
    join(alice, room)
    join(bob, room)
    before = send_to(bob, room, "before-secret-" + uid())  # older than lastId
    start = send_to(alice, room, "start " + uid())
    token = alice.token
    alice.disconnect()

    secrets = ["fresh-secret-" + uid(), "edited-secret-" + uid(), "older-edit-" + uid()]
    fresh = send_to(bob, room, secrets[0])
    react(bob, fresh["id"], "\U0001F44D")
    edit(bob, fresh["id"], secrets[1])
    edit(bob, before["id"], secrets[2])
    delete(bob, fresh["id"])
    gone_before = delete(bob, before["id"])["update"]

    back = connect(server.url, auth={"token": token, "lastId": start["id"]})
    back.wait_for("update", lambda u: u["id"] == gone_before["id"])
    replies = [m for m in back.events("reply") if m["id"] == fresh["id"]]
    assert len(replies) == 1
    assert replies[0] == {**fresh, "text": "", "deleted": True, "reactions": [],
                          "editedAt": replies[0]["editedAt"]}
    assert [(u["type"], u["messageId"]) for u in back.events("update")
            if u["messageId"] in (fresh["id"], before["id"])][-2:] == [
        ("delete", fresh["id"]), ("delete", before["id"])]
    seen = json.dumps(back.all_events())
    for secret in [*secrets, before["text"]]:
        assert secret not in seen, f"replay sent the text of a deleted message: {secret}"
    hist = ok(back.call("history", {"conversation": room}))["messages"]
    assert all(secret not in json.dumps(hist) for secret in [*secrets, before["text"]])


def test_reactions_current_state_in_history_replay_and_join_room(server, connect):
    """§8.4: history, replay and joinRoom's history all carry each message's current
    reactions."""
    alice = connect(server.url, auth={"name": uname("alice")})
    bob = connect(server.url, auth={"name": uname("bob")})
    room = uroom("rx")
    join(alice, room)
    join(bob, room)
    start = send_to(alice, room, "start " + uid())
    token = alice.token
    alice.disconnect()
    msg = send_to(bob, room, "liked " + uid())
    react(bob, msg["id"], "\U0001F44D")
    react(bob, msg["id"], "\U0001F602")
    react(bob, msg["id"], "\U0001F602", on=False)
    state = [{"emoji": "\U0001F44D", "count": 1, "names": [bob.name]}]

    back = connect(server.url, auth={"token": token, "lastId": start["id"]})
    replayed = back.wait_for("reply", lambda m: m["id"] == msg["id"])
    assert replayed["reactions"] == state
    react(back, msg["id"], "\U0001F44D")
    state = [{"emoji": "\U0001F44D", "count": 2, "names": [bob.name, back.name]}]
    assert current(bob, msg)["reactions"] == state
    newcomer = connect(server.url, auth={"name": uname("new")})
    history = join(newcomer, room)["history"]
    assert next(m for m in history if m["id"] == msg["id"])["reactions"] == state


def test_after_a_restart_the_commit_checks_who_may_change_what(server_factory, connect):
    """A restarted node keeps no message of before: changes to them are checked by the
    commit (docs/protocol.md §8.2: a conversation one cannot read is not found), with
    the same answers as for the messages it keeps."""
    srv = server_factory(env={"RATE_LIMIT": "off"})
    alice = connect(srv.url, auth={"name": uname("alice")})
    bob = connect(srv.url, auth={"name": uname("bob")})
    carol = connect(srv.url, auth={"name": uname("carol")})
    room = uroom("Before")
    join(alice, room)
    join(bob, room)
    in_room = send_to(alice, room, "in the room " + uid())
    direct = send_to(alice, bob.name, "psst " + uid())
    srv.kill()
    srv.start()
    alice, bob, carol = (connect(srv.url, auth={"token": c.token}) for c in (alice, bob, carol))

    err(carol.call("react", {"messageId": in_room["id"], "emoji": "👍", "on": True}),
        "not_found")  # not a member
    err(carol.call("editMessage", {"messageId": direct["id"], "text": "mine"}), "not_found")
    err(bob.call("editMessage", {"messageId": in_room["id"], "text": "mine"}), "forbidden")
    check_update(react(bob, in_room["id"], "👍")["update"], type="react", by=bob.name,
                 conversation=in_room["conversation"])
    seen = edit(alice, direct["id"], "psst!")
    bob.wait_for("update", lambda u: u["id"] == seen["id"])
    ok(bob.call("leaveRoom", {"room": room}))
    err(bob.call("react", {"messageId": in_room["id"], "emoji": "🎉", "on": True}), "not_found")
