"""PROTOCOL.md sections 2-5: `message` broadcast, MESSAGE shape, text limits, idempotency, order."""

import time

import pytest
from support.actions import join, send
from support.checks import check_message, err, ok
from support.client import QUIET_WAIT
from support.names import uid, uname, uroom
from support.server import private_server


def test_message_string_is_broadcast_to_everyone(server, connect):
    """`message` "text" is acked with the MESSAGE and replied to everyone, sender included."""
    a = connect(server.url)
    b = connect(server.url, auth={"name": uname("b")})
    text = "hello " + uid()
    msg = ok(a.call("message", text))["message"]
    check_message(msg, conversation="lobby", kind="broadcast", from_=a.name, fromSid=a.sid,
                  to=None, text=text)
    assert b.wait_for("reply", lambda m: m["id"] == msg["id"]) == msg
    assert a.wait_for("reply", lambda m: m["id"] == msg["id"]) == msg


def test_message_object_form_is_broadcast(server, connect):
    """`message` {"text", "clientId"} works like the string form."""
    a = connect(server.url)
    b = connect(server.url)
    text = "obj " + uid()
    msg = ok(a.call("message", {"text": text, "clientId": uid()}))["message"]
    check_message(msg, conversation="lobby", kind="broadcast", from_=a.name, text=text)
    assert b.wait_for("reply", lambda m: m["id"] == msg["id"]) == msg


def test_each_recipient_gets_a_broadcast_once(server, connect):
    """A lobby message reaches each connection exactly once."""
    a = connect(server.url)
    b = connect(server.url)
    msg = send(a, "once " + uid())
    b.wait_for("reply", lambda m: m["id"] == msg["id"])
    time.sleep(QUIET_WAIT)
    assert len(b.events("reply", lambda m: m["id"] == msg["id"])) == 1
    assert len(a.events("reply", lambda m: m["id"] == msg["id"])) == 1


def test_ids_increase_and_history_has_the_message(server, connect):
    """Successive messages get increasing integer ids and are returned by lobby history."""
    a = connect(server.url)
    m1 = send(a, "first " + uid())
    m2 = send(a, "second " + uid())
    assert m2["id"] > m1["id"]
    hist = ok(a.call("history", {"conversation": "lobby", "after": m1["id"] - 1, "limit": 100}))
    assert hist["messages"][:2] == [m1, m2]


@pytest.mark.parametrize("text", [
    "  padded text  ",
    "<script>alert(1)</script> &amp; <b>bold</b>",
    "line one\nline two\ttab",
    "emoji \U0001F600 and 中文 and العربية",
    "\"quotes\" 'single' \\backslash",
], ids=["untrimmed", "html", "newlines", "unicode", "quotes"])
def test_text_is_stored_and_delivered_as_given(server, connect, text):
    """Text is delivered and stored verbatim (untrimmed, not escaped)."""
    a = connect(server.url)
    b = connect(server.url)
    text = text + " " + uid()
    msg = send(a, text)
    assert msg["text"] == text
    assert b.wait_for("reply", lambda m: m["id"] == msg["id"])["text"] == text
    hist = ok(a.call("history", {"conversation": "lobby", "after": msg["id"] - 1, "limit": 1}))
    assert hist["messages"][0]["text"] == text


@pytest.mark.parametrize("text", [
    "x" * 2000,
    "\U0001F600" * 2000,
    "é" * 2000,
    "   " + "y" * 2000 + "\n\n  ",
], ids=["ascii_2000", "astral_2000", "accented_2000", "padded_2000"])
def test_text_of_2000_code_points_is_accepted(server, connect, text):
    """2000 code points after trimming are accepted, whatever their UTF-8/UTF-16 size."""
    a = connect(server.url)
    msg = send(a, text)
    assert msg["text"] == text


@pytest.mark.parametrize("text", [
    "x" * 2001,
    "\U0001F600" * 2001,
    "  " + "z" * 2001 + "  ",
    "w" * 60000,
], ids=["ascii_2001", "astral_2001", "padded_2001", "60k"])
def test_text_over_2000_code_points_is_too_large(server, connect, text):
    """More than 2000 code points after trimming is refused with `too_large`, delivered to
    no one."""
    a = connect(server.url)
    b = connect(server.url)
    err(a.call("message", text), "too_large")
    err(a.call("sendMessage", {"content": text, "destId": b.sid}), "too_large")
    b.assert_no_event("reply", lambda m: m["text"] == text)


@pytest.mark.parametrize("text", ["", "   ", "\n\t  \n"], ids=["empty", "spaces", "whitespace"])
def test_blank_text_is_invalid(server, connect, text):
    """Text that is empty after trimming is refused with `invalid_payload`."""
    a = connect(server.url)
    err(a.call("message", text), "invalid_payload")
    err(a.call("message", {"text": text}), "invalid_payload")


short_text_server = private_server({"MAX_TEXT_LENGTH": "10", "RATE_LIMIT": "off"})


def test_text_limit_is_configurable(short_text_server, connect):
    """MAX_TEXT_LENGTH changes the limit."""
    srv = short_text_server
    a = connect(srv.url)
    assert send(a, "0123456789")["text"] == "0123456789"
    err(a.call("message", "0123456789A"), "too_large")


def test_client_cannot_set_server_fields(server, connect):
    """A client cannot set id, from, fromSid, ts (or kind/conversation) of its message."""
    a = connect(server.url)
    text = "spoof " + uid()
    ack = a.call("message", {"text": text, "from": "mallory", "fromSid": "fake-sid",
                             "ts": 1, "id": 1, "kind": "direct", "conversation": "#x",
                             "to": "bob"})
    if ack.get("ok"):
        check_message(ack["message"], from_=a.name, fromSid=a.sid, conversation="lobby",
                      kind="broadcast", to=None, text=text)
        assert ack["message"]["id"] != 1
    else:
        err(ack, "invalid_payload")


# -- idempotency -------------------------------------------------------------------------

def test_retry_with_same_client_id_is_acked_with_original(server, connect):
    """A retried clientId gets the original MESSAGE and is delivered to no one again."""
    a = connect(server.url, auth={"name": uname("idem")})
    b = connect(server.url)
    cid = "cid-" + uid()
    first = ok(a.call("message", {"text": "once " + cid, "clientId": cid}))["message"]
    b.wait_for("reply", lambda m: m["id"] == first["id"])
    again = ok(a.call("message", {"text": "once " + cid, "clientId": cid}))["message"]
    assert again == first
    different_text = ok(a.call("message", {"text": "changed", "clientId": cid}))["message"]
    assert different_text == first
    b.assert_no_event("reply", lambda m: m["text"] == "changed")
    assert len(b.events("reply", lambda m: m["id"] == first["id"])) == 1
    assert len(a.events("reply", lambda m: m["id"] == first["id"])) == 1
    hist = ok(a.call("history", {"conversation": "lobby", "after": first["id"] - 1}))
    assert [m for m in hist["messages"] if m["text"] in ("once " + cid, "changed")] == [first]


def test_client_id_is_idempotent_across_tabs_and_reconnects(server, connect):
    """The same clientId from another tab, or after a reconnect, returns the original MESSAGE."""
    t1 = connect(server.url, auth={"name": uname("idem")})
    t2 = connect(server.url, auth={"token": t1.token})
    watcher = connect(server.url)
    cid = uid(16)
    first = ok(t1.call("message", {"text": "tabs " + cid, "clientId": cid}))["message"]
    assert ok(t2.call("message", {"text": "tabs " + cid, "clientId": cid}))["message"] == first
    t1.disconnect()
    t2.disconnect()
    t3 = connect(server.url, auth={"token": t1.token})
    assert ok(t3.call("message", {"text": "tabs " + cid, "clientId": cid}))["message"] == first
    watcher.assert_no_event(
        "reply", lambda m: m["text"] == "tabs " + cid and m["id"] != first["id"])
    assert len(watcher.events("reply", lambda m: m["id"] == first["id"])) == 1


def test_client_id_is_idempotent_across_both_events(server, connect):
    """A clientId accepted by `message` is not sent again by `sendMessage`, and vice versa."""
    a = connect(server.url, auth={"name": uname("idem")})
    b = connect(server.url, auth={"name": uname("peer")})
    cid1, cid2 = uid(16), uid(16)
    first = ok(a.call("message", {"text": "via message", "clientId": cid1}))["message"]
    again = ok(a.call("sendMessage", {"content": "via send", "destId": b.sid,
                                      "clientId": cid1}))["message"]
    assert again == first
    dm = ok(a.call("sendMessage", {"content": "dm " + cid2, "destId": b.name,
                                   "clientId": cid2}))["message"]
    assert ok(a.call("message", {"text": "dm " + cid2, "clientId": cid2}))["message"] == dm
    b.wait_for("reply", lambda m: m["id"] == dm["id"])
    b.assert_no_event("reply", lambda m: m["text"] in ("via send",) or
                      (m["text"] == "dm " + cid2 and m["id"] != dm["id"]))


def test_a_retry_gets_its_original_after_the_dm_peer_went_offline(server, connect):
    """A DM to a sid is retried after that sid went offline: the clientId was accepted, so
    the ack is the original MESSAGE (not `not_found`), and no one gets it again."""
    a = connect(server.url, auth={"name": uname("idem")})
    a2 = connect(server.url, auth={"token": a.token})
    b = connect(server.url, auth={"name": uname("peer")})
    cid, text = uid(16), "to your sid " + uid()
    first = ok(a.call("sendMessage", {"content": text, "destId": b.sid,
                                      "clientId": cid}))["message"]
    a2.wait_for("reply", lambda m: m["id"] == first["id"])
    gone = b.sid
    b.disconnect()
    a.wait_for("userLeft", lambda p: p["sid"] == gone)
    err(a.call("sendMessage", {"content": "new", "destId": gone}), "not_found")
    mark = a2.mark()
    again = a.call("sendMessage", {"content": text, "destId": gone, "clientId": cid})
    assert ok(again)["message"] == first
    assert ok(a.call("message", {"text": text, "clientId": cid}))["message"] == first
    a2.assert_no_event("reply", lambda m: m["text"] == text, since=mark)


def test_a_retry_gets_its_original_after_the_sender_left_the_room(server, connect):
    """A room message is retried after its sender left the room: the original MESSAGE,
    not `forbidden`, and the members do not get it again."""
    a = connect(server.url, auth={"name": uname("idem")})
    b = connect(server.url, auth={"name": uname("member")})
    room = uroom("left")
    join(a, room)
    join(b, room)
    cid, text = uid(16), "before leaving " + uid()
    first = ok(a.call("sendMessage", {"content": text, "destId": room,
                                      "clientId": cid}))["message"]
    b.wait_for("reply", lambda m: m["id"] == first["id"])
    ok(a.call("leaveRoom", {"room": room}))
    err(a.call("sendMessage", {"content": "new", "destId": room}), "forbidden")
    mark = b.mark()
    again = a.call("sendMessage", {"content": text, "destId": room, "clientId": cid})
    assert ok(again)["message"] == first
    b.assert_no_event("reply", lambda m: m["text"] == text, since=mark)


def test_client_id_is_per_user(server, connect):
    """Two users using the same clientId send two distinct messages."""
    a = connect(server.url, auth={"name": uname("a")})
    b = connect(server.url, auth={"name": uname("b")})
    cid = uid(16)
    ma = ok(a.call("message", {"text": "from a", "clientId": cid}))["message"]
    mb = ok(b.call("message", {"text": "from b", "clientId": cid}))["message"]
    assert ma["id"] != mb["id"] and mb["from"] == b.name and mb["text"] == "from b"


def test_client_id_of_64_chars_is_accepted(server, connect):
    """clientId may be up to 64 characters."""
    a = connect(server.url)
    msg = ok(a.call("message", {"text": "cid64", "clientId": uid(32) + uid(32)}))["message"]
    check_message(msg, text="cid64")


# -- order -------------------------------------------------------------------------------

def test_pipelined_messages_keep_sender_order(server, connect):
    """Messages sent back to back get ids, and reach others, in the order they were sent."""
    a = connect(server.url)
    b = connect(server.url)
    tag = uid()
    texts = [f"{tag} #{i}" for i in range(30)]
    acks = a.call_many("message", texts)
    ids = [ok(x)["message"]["id"] for x in acks]
    assert [x["message"]["text"] for x in acks] == texts
    assert ids == sorted(ids), f"ids not in send order: {ids}"
    got = b.wait_for_n("reply", 30, lambda m: m["text"].startswith(tag + " #"))
    assert [m["text"] for m in got] == texts


def test_interleaved_senders_reach_everyone_in_the_same_order(server, connect):
    """Two senders' messages reach every recipient in one common, id-ascending order."""
    a = connect(server.url)
    b = connect(server.url)
    r1 = connect(server.url)
    r2 = connect(server.url)
    tag = uid()
    acks_a = []
    acks_b = []
    for i in range(10):
        a.emit("message", f"{tag} a{i}", callback=acks_a.append)
        b.emit("message", f"{tag} b{i}", callback=acks_b.append)
    got1 = r1.wait_for_n("reply", 20, lambda m: m["text"].startswith(tag))
    got2 = r2.wait_for_n("reply", 20, lambda m: m["text"].startswith(tag))
    assert [m["id"] for m in got1] == [m["id"] for m in got2]
    assert [m["id"] for m in got1] == sorted(m["id"] for m in got1)
